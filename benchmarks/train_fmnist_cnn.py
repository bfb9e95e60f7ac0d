"""Fashion-MNIST CNN: TO and WO on the emulator, both recipes, several seeds, beside the paper's figures.

nice -n 10 python benchmarks/train_fmnist_cnn.py --epochs 65 --seeds 0 1 2 --out runs/bench/fmnist-cnn

Benchmarks run as several invocations (e.g. one per method, at the same time) are merged into one file:

    python benchmarks/train_fmnist_cnn.py --merge OUT.json RUN_FOLDER|RESULTS.json [...]

(a results file merged before stands for runs whose folders are gone: e.g. a seed run in an earlier session)

A sweep of settings, each with its own run folders, goes into one file with the validation figures that decide:

    python benchmarks/train_fmnist_cnn.py --sweep OUT.json LABEL=FOLDER[,FOLDER...] [LABEL=...]

(a setting may be one ``--merge`` results file kept earlier: LABEL=RESULTS.json; docs/training.md)
"""

import json
import sys
from pathlib import Path

from harness import RunFolderError, main, merge_parts, sweep_cli, table
from rramctl.fileio import atomic_write_text

INITIAL_PRUNE = 31_136  # half of the CNN's 62,272 pairs, pruned by the first mask sync

if __name__ == "__main__":
    if sys.argv[1:2] == ["--merge"]:  # --merge OUT.json RUN_FOLDER ...
        if len(sys.argv) < 4:
            sys.exit("usage: train_fmnist_cnn.py --merge OUT.json RUN_FOLDER|RESULTS.json [...]")
        try:
            res = merge_parts("fmnist-cnn", [Path(p) for p in sys.argv[3:]])
        except RunFolderError as e:
            sys.exit(f"error: {e}")
        atomic_write_text(Path(sys.argv[2]), json.dumps(res, indent=2))
        print(table("fmnist-cnn", res["summary"]))
    elif sys.argv[1:2] == ["--sweep"]:
        sweep_cli("fmnist-cnn", sys.argv[2:], INITIAL_PRUNE)
    else:
        main("fmnist-cnn", sys.argv[1:])
