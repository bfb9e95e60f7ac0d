"""cProfile of three Fashion-MNIST chip-forward TO steps (batch 128, after three warm-up steps) with the
emulator's array math on ``--device`` and ``--threads`` emulator threads (rramsim.workers; all: the CPUs):
where a chip step's time goes (the main thread's; the threads' parts show as waits).  With ``--evaluate``,
of one evaluation pass over 1,000 validation images instead (after the three steps and a warm-up pass over
500 images, as benchmarks/chip_epoch.py times it).

    python benchmarks/profile_chip_step.py [--device cpu|cuda] [--threads N|all] [--evaluate]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

import numpy as np
import torch
from rramctl.training.config import TrainConfig
from rramctl.training.data import load_fmnist
from rramctl.training.runner import Run
from rramsim import workers

BATCH = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", default="all")
    ap.add_argument("--evaluate", action="store_true", help="profile an evaluation pass instead of steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.threads != "all":
        workers.set_threads(int(args.threads))
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(task="fmnist-cnn", forward="chip", backend="emulator", device=args.device)
        run = Run.open(cfg, Path(tmp) / "run", load_fmnist())
        x, y = run.train_split.inputs(run.raw_inputs), run.train_split.y
        for s in range(3 if args.evaluate else 6):
            if s == 3:
                prof.enable()
            run._step(x[s * BATCH : (s + 1) * BATCH], y[s * BATCH : (s + 1) * BATCH])
        if args.evaluate:
            run.evaluate(run.val_split.take(np.arange(500)))  # warm-up: the evaluation's batch size
            prof.enable()
            run.evaluate(run.val_split.take(np.arange(1_000)))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        prof.disable()
        run.close()
    what = "one evaluation pass over 1,000 images" if args.evaluate else f"3 steps of batch {BATCH}"
    print(f"device {args.device}, {workers.threads()} emulator threads, {what}")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
