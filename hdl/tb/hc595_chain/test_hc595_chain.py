"""Bench of hc595_chain (hdl/rtl/hc595_chain.v): the SN74HC595 chain driver, checked on its pins against a model
of a chain of cascaded 595s written from the SN74HC595 datasheet facts (docs/hardware.md, "How read voltages reach
the bit lines" and "Interface and switching times"; docs/protocol.md, "The BL line-drive chain"), not from the RTL.

The chain (``Hc595Chain``, TB_CHIPS parts, event driven on SRCLK/RCLK): on each rising SRCLK edge every
part shifts (QA <- SER, QB <- QA, ..., QH' <- QH) and each part's SER is the QH' of the part before it
(part 0 is nearest the FPGA), so the first bit shifted ends at the far end; the rising RCLK edge copies
every shift register to its output latch; SRCLR (active low, asynchronous) clears the shift registers only
and OE high puts QA-QH in high-Z (QH' unaffected): the module has neither pin (the overlay ties SRCLR high
and its sequencer drives OE), so the model holds SRCLR high and OE low.  The shift registers power up
random.  Expected outputs come from the docs' formula, not from the model: after a stream of bits, chain
position 8 * part + output (QA = 0 .. QH = 7) holds the bit shifted `position` bits before the last one
(docs/protocol.md: bit p of a 2048-bit frame lands in position 2047 - p); each word goes out MSB first.

A clock-by-clock checker (``ChainChecker``, pins sampled on every falling PL clock): SER set up >= HALF
clocks before each SRCLK rise and held >= HALF clocks after it (never changing on the edge); SRCLK high
and low >= HALF clocks; 32 SRCLK rises per `shift` and none otherwise; RCLK rises only with SRCLK low, >=
HALF clocks after the last SRCLK fall (so after the last shift bit), high >= HALF clocks, once per `latch`;
SRCLK never rises while RCLK is high.  With TB_NS = 1 (HALF >= 3 at 100 MHz) also the datasheet figures at
VCC = 4.5 V: SER setup >= 25 ns, SRCLK and RCLK pulses >= 20 ns, RCLK rise >= 20 ns after the last SRCLK
rise (as hdl/tb/pin_checker.py reads it).

Transactions: frames of random words (shorter than, as long as and longer than the chain), issued with
random idle gaps (often none), each followed by a latch; some shifts without a latch (the outputs must not
move) and some latches without a shift; `word` scrambled after the command clock.  Checked: after every
latch the chain's outputs equal the formula's; idle levels (SER, SRCLK, RCLK, busy low) out of reset and at
once when rst_n falls mid-shift or mid-latch; a full frame after it is right.  The pytest matrix runs over
HALF and the chain length."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import ClockedPinChecker, env_int, run_module_bench

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]

CLK_NS = 10.0  # the bench's PL clock (100 MHz)
WORD_BITS = 32  # one `shift` command: a 32-bit word, MSB first
SETUP_NS = 25.0  # SN74HC595 at 4.5 V: SER setup before the SRCLK rise
PULSE_NS = 20.0  # SN74HC595 at 4.5 V: SRCLK / RCLK pulse width; SRCLK rise to RCLK rise


if cocotb is not None:

    class Hc595Chain:
        """`chips` cascaded SN74HC595: shift registers and output latches, outputs as chain positions."""

        def __init__(self, dut, chips: int, rng: random.Random) -> None:
            self.dut, self.chips = dut, chips
            self.sr = [rng.getrandbits(8) for _ in range(chips)]  # bit q = output q (QA = 0); power-up unknown
            self.latch = [rng.getrandbits(8) for _ in range(chips)]
            self.srclr_n, self.oe_n = 1, 0  # not pins of the module: held inactive
            self.shifts = self.latches = 0
            cocotb.start_soon(self._run())

        def outputs(self) -> list[int | None]:
            """QA..QH of each part as chain positions 8 * part + output; None = high-Z (OE high)."""
            return [None if self.oe_n else (self.latch[p] >> q) & 1 for p in range(self.chips) for q in range(8)]

        async def _run(self) -> None:
            d = self.dut
            while True:
                trig = await First(RisingEdge(d.srclk), RisingEdge(d.rclk))
                if trig is RisingEdge(d.srclk):
                    carry = int(d.ser.value)
                    for p in range(self.chips):  # QH' of part p is the SER of part p + 1
                        carry, self.sr[p] = self.sr[p] >> 7 & 1, (self.sr[p] << 1 | carry) & 0xFF
                    if not self.srclr_n:
                        self.sr = [0] * self.chips
                    self.shifts += 1
                else:
                    self.latch = list(self.sr)
                    self.latches += 1

    class ChainChecker(ClockedPinChecker):
        """The SN74HC595 timing rules on the pins, sampled on every falling PL clock (times in clocks)."""

        def __init__(self, dut, half: int, ns: bool) -> None:
            super().__init__(ns, CLK_NS)
            self.dut, self.half = dut, half
            self.rises = self.latches = 0
            cocotb.start_soon(self._run())

        async def _run(self) -> None:
            d = self.dut
            far = -(10**9)
            ser, srclk, rclk = 0, 0, 0
            ser_change = s_rise = s_fall = r_rise = far
            n = 0
            while True:
                await FallingEdge(d.clk)
                n += 1
                in_reset = not int(d.rst_n.value)
                a, s, r = int(d.ser.value), int(d.srclk.value), int(d.rclk.value)
                if in_reset:  # a reset ends every pulse: the rules start again from its release
                    s_rise, r_rise, s_fall = far, far, n
                if a != ser:
                    if not in_reset:
                        self._min(n, "SER hold after the SRCLK rise", n - s_rise, self.half, None)
                    ser, ser_change = a, n
                if s != srclk:
                    if s:
                        self._min(n, "SER setup", n - ser_change, self.half, SETUP_NS)
                        self._min(n, "SRCLK low", n - s_fall, self.half, PULSE_NS)
                        if r or rclk:
                            self._fail(n, "SRCLK rise with RCLK high")
                        self.rises += 1
                        s_rise = n
                    else:
                        if not in_reset:
                            self._min(n, "SRCLK high", n - s_rise, self.half, PULSE_NS)
                        s_fall = n
                    srclk = s
                if r != rclk:
                    if r:
                        if s:
                            self._fail(n, "RCLK rise with SRCLK high")
                        self._min(n, "last SRCLK fall to RCLK rise", n - s_fall, self.half, None)
                        self._min(n, "last SRCLK rise to RCLK rise", n - s_rise, 1, PULSE_NS)
                        self.latches += 1
                        r_rise = n
                    elif not in_reset:
                        self._min(n, "RCLK high", n - r_rise, self.half, PULSE_NS)
                    rclk = r

    async def _setup(dut) -> tuple[Hc595Chain, ChainChecker, random.Random]:
        rng = random.Random(env_int("TB_SEED", 1))
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.shift.value = dut.latch.value = dut.word.value = 0
        dut.rst_n.value = 0
        chain = Hc595Chain(dut, env_int("TB_CHIPS"), rng)
        await ClockCycles(dut.clk, 2)
        pins = {n: int(getattr(dut, n).value) for n in ("ser", "srclk", "rclk", "busy")}
        assert pins == {"ser": 0, "srclk": 0, "rclk": 0, "busy": 0}, f"in reset: {pins}"
        dut.rst_n.value = 1
        await FallingEdge(dut.clk)
        return chain, ChainChecker(dut, env_int("TB_HALF"), bool(env_int("TB_NS"))), rng

    async def _command(dut, rng: random.Random, signal, word: int = 0) -> None:
        """Wait for busy low, maybe idle a little, then one `shift` (with `word`) or `latch` strobe."""
        while int(dut.busy.value):
            await FallingEdge(dut.clk)
        for _ in range(rng.choice([0, 0, rng.randint(0, 12)])):
            await FallingEdge(dut.clk)
        dut.word.value = word
        signal.value = 1
        await FallingEdge(dut.clk)
        signal.value = 0
        dut.word.value = rng.getrandbits(WORD_BITS)  # the module must have taken it on the command clock
        assert int(dut.busy.value), "busy not raised by the command"

    async def _wait_idle(dut) -> None:
        while int(dut.busy.value):
            await FallingEdge(dut.clk)
        assert (int(dut.srclk.value), int(dut.rclk.value)) == (0, 0), "SRCLK / RCLK not low when idle"

    def _expected(history: list[int], positions: int) -> list[int | None]:
        """Chain position p holds the bit shifted p bits before the last (None: not shifted since reset)."""
        return [history[-1 - p] if p < len(history) else None for p in range(positions)]

    def _bits(word: int) -> list[int]:
        return [(word >> (WORD_BITS - 1 - k)) & 1 for k in range(WORD_BITS)]  # MSB first

    def _check_outputs(chain: Hc595Chain, want: list[int | None], what: str) -> None:
        got = chain.outputs()
        bad = [p for p, w in enumerate(want) if w is not None and got[p] != w]
        assert not bad, f"{what}: chain positions {bad[:16]} wrong (got {[got[p] for p in bad[:16]]})"

    @cocotb.test()
    async def frames_land_in_chain_order(dut) -> None:
        """Random frames, latched; shifts without a latch leave the outputs; latches without a shift re-latch."""
        chain, chk, rng = await _setup(dut)
        positions = 8 * chain.chips
        full = -(-positions // WORD_BITS)
        history: list[int] = []
        latched: list[int | None] = [None] * positions
        words = latches = 0
        for i in range(env_int("TB_FRAMES")):
            for _ in range(rng.choice([1, full, full, full + 1])):
                w = rng.getrandbits(WORD_BITS)
                await _command(dut, rng, dut.shift, w)
                history += _bits(w)
                words += 1
            await _wait_idle(dut)
            _check_outputs(chain, latched, f"frame {i}: outputs moved without a latch")
            if rng.random() < 0.85:
                await _command(dut, rng, dut.latch)
                await _wait_idle(dut)
                latches += 1
                latched = _expected(history, positions)
                _check_outputs(chain, latched, f"frame {i} after the latch")
                if rng.random() < 0.2:  # a second latch with nothing shifted: the same outputs
                    await _command(dut, rng, dut.latch)
                    await _wait_idle(dut)
                    latches += 1
                    _check_outputs(chain, latched, f"frame {i}, latched again")
        await ClockCycles(dut.clk, 2)
        assert chain.shifts == chk.rises == WORD_BITS * words, (chain.shifts, chk.rises, words)
        assert chain.latches == chk.latches == latches
        chk.assert_clean()

    @cocotb.test()
    async def reset_mid_command_returns_pins_to_idle(dut) -> None:
        """rst_n falling at a random clock of a shift or a latch: SER, SRCLK, RCLK and busy low at once; a full
        frame and latch after it land right."""
        chain, chk, rng = await _setup(dut)
        half, positions = env_int("TB_HALF"), 8 * chain.chips
        full = -(-positions // WORD_BITS)
        for _ in range(6):
            if rng.random() < 0.7:
                await _command(dut, rng, dut.shift, rng.getrandbits(WORD_BITS))
                await ClockCycles(dut.clk, rng.randint(0, 2 * half * WORD_BITS))
            else:
                await _command(dut, rng, dut.latch)
                await ClockCycles(dut.clk, rng.randint(0, 2 * half))
            await FallingEdge(dut.clk)
            dut.rst_n.value = 0
            await Timer(1, unit="ns")
            pins = {n: int(getattr(dut, n).value) for n in ("ser", "srclk", "rclk", "busy")}
            assert pins == {"ser": 0, "srclk": 0, "rclk": 0, "busy": 0}, f"in reset: {pins}"
            await ClockCycles(dut.clk, 2)
            dut.rst_n.value = 1
            await FallingEdge(dut.clk)
            history: list[int] = []
            for _ in range(full):
                w = rng.getrandbits(WORD_BITS)
                await _command(dut, rng, dut.shift, w)
                history += _bits(w)
            await _command(dut, rng, dut.latch)
            await _wait_idle(dut)
            _check_outputs(chain, _expected(history, positions), "after a reset")
        chk.assert_clean()


# (HALF, 595s in the chain, inside the datasheet at 100 MHz -> the ns checks too)
PARAMS = [(3, 4, 1), (1, 2, 0), (2, 9, 0), (5, 8, 1)]
SLOW_PARAMS = [(3, 256, 1), (1, 33, 0), (8, 16, 1)]


@pytest.mark.hdl
@pytest.mark.parametrize(
    ("half", "chips", "ns", "frames"),
    [(*p, 12) for p in PARAMS]
    + [pytest.param(*p, 6 if p[1] > 64 else 30, marks=pytest.mark.slow) for p in SLOW_PARAMS],
)
def test_hc595_chain(half: int, chips: int, ns: int, frames: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__,
        "hc595_chain",
        ["hc595_chain.v", "rram_prescaler.v"],
        tmp_path,
        parameters={"HALF": half},
        env={"TB_HALF": half, "TB_CHIPS": chips, "TB_NS": ns, "TB_FRAMES": frames, "TB_SEED": half * 1000 + chips},
    )
