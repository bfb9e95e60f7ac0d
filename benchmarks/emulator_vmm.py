"""The emulated multiply against its lower bound, measured side by side in one run.

A MULTIPLY of B input vectors with m-bit inputs is m bit-plane products per vector; the least any
emulator of it can cost is the m float32 matmuls (B, rows) @ (rows, cols) of the bit-planes.  This
benchmark times the whole emulated multiply at driver level (rramctl.driver.Driver.multiply:
bit-plane chain frames, one transact, the overlay decoding them, drive sums, a noise draw per ADC
sample, the ADC, shift and add) and the m float32 matmuls on the same machine, interleaved, and
prints the ratio of the medians:

- ``ratio_vs_bitplane_bound``: 512x512, 4-bit inputs, batch 256 (numpy path, the CPU);
- ``ratio_vs_bitplane_bound_64``: a 64x64 region, its own bound (four (256, 64) @ (64, 64));
- ``ratio_vs_bitplane_bound_cuda``: 512x512 with the array math on CUDA against four float32
  matmuls on the same GPU (only where torch sees one).

    python benchmarks/emulator_vmm.py [--repeats N] [--json] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread: CPU time = the work done
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RRAMSIM_THREADS", "1")  # the emulator's threads too (rramsim.workers)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from bench_report import emit  # noqa: E402
from rramctl.driver import Driver  # noqa: E402
from rramctl.geometry import Region  # noqa: E402
from rramctl.hw import dac80508  # noqa: E402
from rramctl.transport.emulator import EmulatorTransport  # noqa: E402
from rramsim.config import ChipModelConfig  # noqa: E402

BITS, BATCH = 4, 256


def _median_pair(
    a: Callable[[], object], b: Callable[[], object], repeats: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b`` on ``clock``, timed alternately (same conditions for both)."""
    a(), b()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        t0 = clock()
        a()
        ta.append(clock() - t0)
        t0 = clock()
        b()
        tb.append(clock() - t0)
    return statistics.median(ta), statistics.median(tb)


def formed_chip(device: str = "cpu") -> tuple[EmulatorTransport, Driver]:
    """A seed-0 chip (the ideal model's defaults), every cell given one forming pulse at 3.4 V (about
    half form), V_READ = 0.1 V."""
    t = EmulatorTransport(ChipModelConfig(seed=0))
    t.overlay.set_device(device)
    d = Driver(t)
    d.form(Region(), 1_000_000, dac80508.volts_to_code(3.4), dac80508.volts_to_code(1.2))
    return t, d


def measure(region: Region, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Median times (ms) of the emulated multiply and of its bit-plane bound for one region."""
    t, d = formed_chip(device)
    v_read = dac80508.volts_to_code(0.1)
    x = np.random.default_rng(0).integers(0, 1 << BITS, size=(BATCH, region.n_rows))
    g = t.overlay.crossbar.g[region.row : region.row + region.n_rows, region.col : region.col + region.n_cols]
    planes = [((x >> k) & 1).astype(np.float32) for k in range(BITS)]
    if device == "cpu":
        w = g.astype(np.float32)

        def bound() -> object:
            return [p @ w for p in planes]
    else:
        import torch

        wt = torch.from_numpy(g.astype(np.float32)).to(device)
        pt = [torch.from_numpy(p).to(device) for p in planes]
        prec = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # true float32 products, as on the CPU

        def bound() -> object:
            out = [p @ wt for p in pt]
            torch.cuda.synchronize()
            return out

    def emulated() -> object:
        return d.multiply(x, BITS, region, v_read)

    try:
        # CPU: process CPU time (one thread; what a shared machine's load does not inflate);
        # GPU: wall time, the GPU being the machine's own
        emu, lb = _median_pair(emulated, bound, repeats, time.process_time if device == "cpu" else time.perf_counter)
    finally:
        if device != "cpu":
            torch.backends.cuda.matmul.allow_tf32 = prec
    return {"emulator_ms": emu * 1e3, "bound_ms": lb * 1e3, "ratio": emu / lb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    full = measure(Region(), args.repeats)
    small = measure(Region(0, 64, 0, 64), args.repeats)
    result: dict[str, Any] = {
        "ratio_vs_bitplane_bound": round(full["ratio"], 2),
        "ratio_vs_bitplane_bound_64": round(small["ratio"], 2),
        "cpu_512": {k: round(v, 3) for k, v in full.items()},
        "cpu_64": {k: round(v, 3) for k, v in small.items()},
    }
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if cuda:
        gpu = measure(Region(), args.repeats, "cuda")
        result["ratio_vs_bitplane_bound_cuda"] = round(gpu["ratio"], 2)
        result["cuda_512"] = {k: round(v, 3) for k, v in gpu.items()}
        result["gpu"] = torch.cuda.get_device_name()
    setup = {
        "shape": "512x512 and 64x64, 4-bit inputs, batch 256, medians of interleaved runs",
        "clock": "CPU: process CPU time, one BLAS/torch thread; CUDA: wall time",
        "repeats": args.repeats,
    }
    rows = (("512x512", full), ("64x64", small)) + ((("cuda", gpu),) if cuda else ())
    lines = [
        f"{n:8} emulator {r['emulator_ms']:.2f} ms, bound {r['bound_ms']:.2f} ms, ratio {r['ratio']:.2f}"
        for n, r in rows
    ]
    emit(result, setup, args.out, args.json, lines)


if __name__ == "__main__":
    main()
