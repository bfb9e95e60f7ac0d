"""Bench of rram_pattern (hdl/rtl/rram_pattern.v): every word of every frame equals what the host's
frame encoder (rramctl.hw.linedrive.encode_frames, the docs/protocol.md layout) makes of the same row
pattern.  Random windows lo..hi (empty, single row, whole array, past the last row) and random nibbles,
seeded; the pytest matrix runs several seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from bench_util import expected_frame, run_module_bench
from rramctl.protocol import CHAIN_NIBBLE_BITS

try:
    import cocotb
    from cocotb.triggers import Timer
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None


if cocotb is not None:

    @cocotb.test()
    async def words_match_the_host_encoder(dut) -> None:
        rng = np.random.default_rng(int(os.environ.get("TB_SEED", "1")))
        windows = [(0, 511), (5, 5), (7, 3), (500, 600), (0, 0), (511, 511)]
        windows += [tuple(sorted(int(v) for v in rng.integers(0, 520, 2))) for _ in range(10)]
        for lo, hi in windows:
            nib_in, nib_out = (int(v) for v in rng.integers(0, 1 << CHAIN_NIBBLE_BITS, 2))
            want = expected_frame(lo, hi, nib_in, nib_out)
            dut.lo.value, dut.hi.value, dut.nib_in.value, dut.nib_out.value = lo, hi, nib_in, nib_out
            for w in range(len(want)):
                dut.w.value = w
                await Timer(1, unit="ns")
                assert int(dut.word.value) == int(want[w]), (lo, hi, nib_in, nib_out, w)


@pytest.mark.hdl
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rram_pattern(seed: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_pattern", ["rram_pattern.v"], tmp_path, env={"TB_SEED": seed})
