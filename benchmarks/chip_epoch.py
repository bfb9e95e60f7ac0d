"""What a Fashion-MNIST run with every product on the emulated chip costs in wall-clock time, by where the
emulator's array math runs and on how many threads (rramsim.workers): the question of issue 12's GPU target
(65 epochs with the chip in the training loop in under an hour).

For each device (``--devices``, e.g. ``cpu cuda``) and each thread count (``--threads``; ``all`` = the CPUs
this process may use, at most rramsim.workers.DEFAULT_MAX): the median wall-clock seconds of a TO training
step at ``--batch`` (rramctl's 128) with ``forward="chip"``, and of one evaluation pass over 1,000
validation images; then ``fmnist_65_epochs_chip_h_<device>_t<threads>``: 65 epochs of 55,000 training
images at that step time plus the evaluation passes the runner makes every epoch (5,000 validation and
10,000 test images).  The torch network's own layers run on the CPU with one thread throughout (as in
training); the threads are the emulator's.  The same codes on every device and thread count
(tests/test_emulator_fast_paths.py), so these are the same run's costs.

    python benchmarks/chip_epoch.py [--devices cpu cuda] [--threads 1 all] [--steps N] [--json] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_report import emit  # noqa: E402
from rramctl.training.config import TrainConfig  # noqa: E402
from rramctl.training.data import load_fmnist  # noqa: E402
from rramctl.training.runner import Run  # noqa: E402
from rramsim import workers  # noqa: E402

EPOCHS = 65
TRAIN, VALIDATION, TEST = 55_000, 5_000, 10_000  # the runner's Fashion-MNIST split, evaluated every epoch
EVAL_SAMPLES = 1_000


def _wall(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def measure(device: str, threads: int, batch: int, steps: int, data: Any) -> dict[str, float]:
    """Median step seconds and seconds per evaluated image of a fresh chip-forward run."""
    workers.set_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(task="fmnist-cnn", forward="chip", backend="emulator", device=device)
            run = Run.open(cfg.model_copy(update={"optimiser": cfg.optimiser.model_copy(update={"batch_size": batch})}),
                           Path(tmp) / "run", data)  # fmt: skip
            try:
                x, y = run.train_split.inputs(run.raw_inputs), run.train_split.y
                times = []
                for s in range(steps + 1):  # the first: warm-up (compiles, caches)
                    t0 = _wall(device)
                    run._step(x[s * batch : (s + 1) * batch], y[s * batch : (s + 1) * batch])
                    if s:
                        times.append(_wall(device) - t0)
                part = run.val_split.take(np.arange(min(EVAL_SAMPLES, len(run.val_split))))
                run.evaluate(run.val_split.take(np.arange(min(500, len(run.val_split)))))  # warm-up: its batch size
                t0 = _wall(device)
                run.evaluate(part)
                per_image = (_wall(device) - t0) / len(part)
            finally:
                run.close()
    finally:
        workers.set_threads(None)
    step = statistics.median(times)
    hours = EPOCHS * (TRAIN / batch * step + (VALIDATION + TEST) * per_image) / 3600
    return {"step_ms": round(step * 1000, 1), "eval_ms_per_1000": round(per_image * 1e6, 1), "hours": round(hours, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu"], help="cpu, numpy, torch-cpu, cuda")
    ap.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts, or all")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per figure (after one warm-up)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_fmnist()
    every = workers.threads()
    result: dict[str, Any] = {"cpus": every, "figures": {}}
    lines = []
    for device in args.devices:
        for t in args.threads:
            n = every if t == "all" else int(t)
            fig = measure(device, n, args.batch, args.steps, data)
            result["figures"][f"{device}_t{n}"] = fig
            result[f"fmnist_65_epochs_chip_h_{device}_t{n}"] = fig["hours"]
            lines.append(f"{device:>9} {n:>3} threads: step {fig['step_ms']:7.1f} ms, evaluation "
                         f"{fig['eval_ms_per_1000']:7.1f} ms / 1,000 images -> 65 epochs "
                         f"{fig['hours']:.2f} h")  # fmt: skip
    setup = {"task": "fmnist-cnn, TO, forward chip, emulator (default chip model), batch "
             f"{args.batch}", "clock": "wall-clock, medians; torch one thread",
             "steps": args.steps}  # fmt: skip
    emit(result, setup, args.out, args.json, lines)


if __name__ == "__main__":
    main()
