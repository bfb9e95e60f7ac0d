"""Multiplies per second of the emulator (512x512, 4-bit inputs) at batch 1 and batch 256, through the
EmulatorTransport at driver level (bit-plane chain frames, transact, decode), beside a plain float32
matmul of the same shapes (numpy and torch) in the same run.

    python benchmarks/emulator_vmm.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from rramctl import regmap as R
from rramctl.driver import Driver
from rramctl.geometry import Region
from rramctl.hw import adc, dac80508, linedrive
from rramctl.transport.base import RegWrite
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import ChipModelConfig

N, BITS = 512, 4


def _rate(fn: Callable[[], object], vectors: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return vectors / best


def emulator_multiply(t: EmulatorTransport, x: np.ndarray) -> np.ndarray:
    """One MULTIPLY at driver level: frames from rramctl.hw.linedrive, one transact, decoded words."""
    planes = ((x[:, None, :] >> np.arange(BITS)[None, :, None]) & 1).reshape(-1, N)
    frames = linedrive.bitplane_frames(planes)
    for reg, value in {R.OPCODE: 6, R.BATCH: x.shape[0], R.BITS: BITS, R.COL_START: 0, R.COL_COUNT: N,
                       R.TIA_GAIN: 0}.items():  # fmt: skip
        t.write_reg(reg, value)
    out = t.transact(frames.ravel(), x.shape[0] * N, RegWrite(R.CTRL, R.CTRL_START.put(1)))
    return adc.from_word(out).reshape(x.shape[0], N)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t = EmulatorTransport(ChipModelConfig(seed=0))
    d = Driver(t)
    d.form(Region(), 1_000_000, dac80508.volts_to_code(3.4), dac80508.volts_to_code(1.2))
    d.set_levels({3: dac80508.volts_to_code(0.1)})
    w32 = t.overlay.crossbar.g.astype(np.float32)
    wt = torch.from_numpy(w32)
    rng = np.random.default_rng(0)
    print(f"512x512, {BITS}-bit inputs, best of {args.repeats}; multiplies (input vectors) per second")
    print(f"{'batch':>6} {'emulator':>12} {'numpy f32':>12} {'torch f32':>12} {'numpy/emu':>10} {'torch/emu':>10}")
    for batch in (1, 256):
        x = rng.integers(0, 1 << BITS, size=(batch, N))
        xf, xt = x.astype(np.float32), torch.from_numpy(x.astype(np.float32))
        emu = _rate(lambda: emulator_multiply(t, x), batch, args.repeats)  # noqa: B023
        npy = _rate(lambda: xf @ w32, batch, args.repeats)  # noqa: B023
        tor = _rate(lambda: xt @ wt, batch, args.repeats)  # noqa: B023
        print(f"{batch:>6} {emu:>12.0f} {npy:>12.0f} {tor:>12.0f} {npy / emu:>10.0f} {tor / emu:>10.0f}")


if __name__ == "__main__":
    main()
