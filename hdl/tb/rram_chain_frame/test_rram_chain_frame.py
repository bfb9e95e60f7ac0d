"""Bench of rram_chain_frame (hdl/rtl/rram_chain_frame.v), parametrised over the array size (ROWS = 16, 64,
512: the chain has ROWS/2 595s, the first 64 - ROWS/8 words of a frame have none).

A model of the hc595_chain driver (busy for a random time after each `ch_shift` / `ch_latch`, refusing
neither: the bench fails if one comes while it is busy) records what reaches the chain.  Every frame goes out
in two latch steps (issue 14 class 1: mux addresses before INH): the frame with INH set in every nibble, a
latch, `addr` (the sequencer enables the outputs), the frame itself, a latch more than `guard` clocks after
`addr`.  Checked (random `guard` per frame, 0..40):
- `gen`: the words of the pattern frame that reach this array's 595s, each once and in order, equal the host
  encoder's (rramctl.hw.linedrive.encode_frames), in both steps; `addr` once after the first latch has ended,
  `done` once after the second;
- `put`: a host frame fed word by word with random gaps whenever `ready`: `real_word` / `last_word` before
  each word, the words for absent 595s dropped, the rest shifted in order (INH set), the latch after the 64th
  word, then the same words from the frame's buffer and the second latch;
- `abort` at random clocks of a frame: nothing more is shifted or latched, and the next frame is whole."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import Peripheral, env_int, expected_frame, pulse, reset, run_module_bench
from rramctl.protocol import CHAIN_NIBBLE_BITS, CHAIN_NIBBLE_INH, FRAME_WORDS

LATCH = "latch"
# INH (nibble bit 3) set in every nibble of a word: 0x88888888 (protocol.toml [word.CHAIN_NIBBLE])
INH_ALL = sum(CHAIN_NIBBLE_INH.mask << (CHAIN_NIBBLE_BITS * i) for i in range(32 // CHAIN_NIBBLE_BITS))
NIBBLE_MAX = (1 << CHAIN_NIBBLE_BITS) - 1

try:
    import cocotb
    from cocotb.triggers import FallingEdge
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]


if cocotb is not None:

    async def _setup(dut, salt: int) -> tuple[Peripheral, random.Random, int, int]:
        """The driver model (what was shifted and latched, in order), a generator, ROWS and the words of a
        frame that no 595 of this array takes."""
        for name in ("abort", "guard", "gen", "frame", "put", "put_word", "lo", "hi", "nib_in", "nib_out"):
            getattr(dut, name).value = 0
        await reset(dut)

        def command() -> int | str | None:
            shift, latch = int(dut.ch_shift.value), int(dut.ch_latch.value)
            assert not (shift and latch)
            return int(dut.ch_word.value) if shift else LATCH if latch else None

        chain = Peripheral(dut, dut.ch_busy, command, random.Random(env_int("TB_SEED")))
        rows = env_int("TB_ROWS")
        return chain, random.Random(env_int("TB_SEED") + salt), rows, FRAME_WORDS - rows // (32 // CHAIN_NIBBLE_BITS)

    async def _until_done(dut, guard: int, limit: int = 40_000) -> None:
        """Until `done`: `addr` once, between the first latch command and the second, which comes more than
        `guard` clocks after it (the sequencer enables the outputs on the clock after `addr`); `done` one
        clock, after the second latch."""
        latches: list[int] = []
        addr_at = -1
        for clock in range(limit):
            addr, done = int(dut.addr.value), int(dut.done.value)
            if int(dut.ch_latch.value):
                latches.append(clock)
            if addr:
                assert addr_at < 0 and len(latches) == 1, (addr_at, latches)
                addr_at = clock
            await FallingEdge(dut.clk)
            if done:
                assert not int(dut.done.value)  # one clock
                assert addr_at >= 0 and len(latches) == 2 and latches[1] - addr_at > guard, (addr_at, latches, guard)
                return
        raise AssertionError("no done")

    def _guard(dut, rng: random.Random) -> int:
        dut.guard.value = guard = rng.randint(0, 40)
        return guard

    def _two_steps(words: list[int]) -> list[int | str]:
        """What the driver gets for a frame: its words with INH set, a latch, the words, a latch."""
        return [w | INH_ALL for w in words] + [LATCH] + [*words] + [LATCH]

    def _pattern(dut, rng: random.Random, rows: int) -> tuple[int, int, int, int]:
        lo = rng.randint(0, rows - 1)
        hi = rng.choice([lo, rng.randint(lo, rows - 1)])
        nib_in, nib_out = rng.randint(0, NIBBLE_MAX), rng.randint(0, NIBBLE_MAX)
        dut.lo.value, dut.hi.value, dut.nib_in.value, dut.nib_out.value = lo, hi, nib_in, nib_out
        return lo, hi, nib_in, nib_out

    @cocotb.test()
    async def gen_shifts_the_pattern_frame_and_latches(dut) -> None:
        chain, rng, rows, skip = await _setup(dut, 1)
        for _ in range(6):
            want = _two_steps([int(v) for v in expected_frame(*_pattern(dut, rng, rows))[skip:]])
            guard = _guard(dut, rng)
            chain.seen.clear()
            await pulse(dut, dut.gen)
            await _until_done(dut, guard)
            assert chain.seen == want
            assert chain.busy_left == 0 and int(dut.idle.value) == 1 and int(dut.ready.value) == 1

    async def _put_frame(dut, rng: random.Random, words: list[int], skip: int) -> None:
        await pulse(dut, dut.frame)
        for i, word in enumerate(words):
            for _ in range(rng.choice([0, 0, 2])):  # the next word from the stream takes a while
                await FallingEdge(dut.clk)
            while not int(dut.ready.value):
                await FallingEdge(dut.clk)
            assert (int(dut.real_word.value), int(dut.last_word.value)) == (i >= skip, i == FRAME_WORDS - 1), i
            dut.put_word.value = word
            await pulse(dut, dut.put)

    @cocotb.test()
    async def put_drops_absent_words_and_latches_after_the_last(dut) -> None:
        chain, rng, rows, skip = await _setup(dut, 2)
        for _ in range(3):
            words = [rng.getrandbits(32) for _ in range(FRAME_WORDS)]
            guard = _guard(dut, rng)
            chain.seen.clear()
            await _put_frame(dut, rng, words, skip)
            await _until_done(dut, guard)
            assert chain.seen == _two_steps(words[skip:])
            assert int(dut.idle.value) == 1

    @cocotb.test()
    async def abort_then_a_whole_frame(dut) -> None:
        chain, rng, rows, skip = await _setup(dut, 3)
        for _ in range(8):
            pattern = _pattern(dut, rng, rows)
            guard = _guard(dut, rng)
            await pulse(dut, dut.gen)
            for _ in range(rng.randint(0, 2 * 12 * (FRAME_WORDS - skip) + guard)):
                await FallingEdge(dut.clk)
            await pulse(dut, dut.abort)
            seen = len(chain.seen)
            for _ in range(40):  # the driver ends what it was doing; nothing new comes
                assert not int(dut.done.value)
                await FallingEdge(dut.clk)
            assert len(chain.seen) == seen and int(dut.idle.value) == 1
            chain.seen.clear()
            await pulse(dut, dut.gen)
            await _until_done(dut, guard)
            assert chain.seen == _two_steps([int(v) for v in expected_frame(*pattern)[skip:]])


@pytest.mark.hdl
@pytest.mark.parametrize("rows", [16, 64, 512])
def test_rram_chain_frame(rows: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_chain_frame", ["rram_chain_frame.v", "rram_pattern.v"], tmp_path,
                     parameters={"ROWS": rows}, env={"TB_SEED": rows, "TB_ROWS": rows})  # fmt: skip
