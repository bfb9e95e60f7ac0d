"""Spoken-digit CRNN: TO and WO on the emulator, both recipes, several seeds, beside the paper's figures.
On the paper's own feature file and split (like-for-like with seed 000):

    nice -n 10 python benchmarks/train_fsdd_crnn.py \
        --features-file PATH/TO/fsdd_mfcc_23x20.npz

(the paper code's MFCC features, docs/training.md "Spoken-digit features vs the paper's own file"; not part of this
repository)

or on our MFCC maps of the FSDD recordings: --data-dir FOLDER (holding fsdd/recordings).

Benchmarks run as several invocations (one per recipe / method, at the same time) are merged into one file:

    python benchmarks/train_fsdd_crnn.py --merge OUT.json [--plot FIGURE.png] RUN_FOLDER|RESULTS.json [...]

which keeps each invocation's arguments, adds every run's validation / test curves and its pair flips after the
initial prune (the paper code's unit, docs/training.md "Programming budget"), and plots the seed spread (to
FIGURE.png; default OUT with the suffix .png, beside it: a merge never writes over a figure of docs/ unless
``--plot`` names it). A sweep of
settings, each with its own run folders, goes into one file with the validation figures that decide:

    python benchmarks/train_fsdd_crnn.py --sweep OUT.json LABEL=FOLDER[,FOLDER...] [LABEL=...]

(a setting may be one ``--merge`` results file kept earlier: LABEL=RESULTS.json; docs/training.md)
"""

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from harness import RunFolderError, main, merge_parts, sweep_cli, table

INITIAL_PRUNE = 34_240  # half of the CRNN's 68,480 pairs, pruned by the first mask sync
PAPER_PAIR_FLIPS = 349_000  # seed 000 Fig. 4: TO's count over 60 epochs; the code counts mask switches per weight


def merge(out: Path, folders: list[Path], plot: Path | None = None) -> dict[str, Any]:
    """One results file from the harness's ``results.json`` in ``folders`` (or results files merged before: their
    records as they are; the plot shows the runs of the folders)."""
    from rramctl.fileio import atomic_write_text
    from rramctl.training import plots

    res = merge_parts("fsdd-crnn", folders)
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for rec in res["runs"]:
        if "results_file" in rec:  # from a results file merged before: its figures are in the record already
            continue
        metrics = json.loads((Path(rec["run_folder"]) / "metrics.json").read_text())
        curves.setdefault(f"{rec['recipe']}/{rec['method']}", []).append(metrics)
        if rec["method"] == "to":
            after = rec["pair_flips"] - INITIAL_PRUNE
            rec["pair_flips_per_epoch_curve"] = [m["pair_flips_epoch"] for m in metrics]
            rec["pair_flips_after_initial_prune"] = after
            rec["pair_flips_after_initial_prune_per_epoch"] = after / rec["epochs"]
            rec["pair_flips_after_initial_prune_per_step"] = after / rec["steps"]
    for name, d in res["summary"].items():
        rs = [r for r in res["runs"] if f"{r['recipe']}/{r['method']}" == name]
        d["epochs"] = sorted({r["epochs"] for r in rs})
        for k in ("pair_flips_after_initial_prune_per_epoch", "pair_flips_after_initial_prune_per_step"):
            vals = [r[k] for r in rs if k in r]
            if vals:
                d[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    res["paper_programming_budget"] = {
        "pair_flips_after_initial_prune": PAPER_PAIR_FLIPS, "epochs": 60, "steps_per_epoch": 70,
        "per_epoch": PAPER_PAIR_FLIPS / 60, "per_step": PAPER_PAIR_FLIPS / 60 / 70,
        "note": "Spoken_digit_hardware_TO.py counts mask switches per weight (one differential pair) and subtracts "
                "sparsity x weights (the initial prune); the Fig. 4 caption calls the 349 thousand per-cell updates",
    }  # fmt: skip
    atomic_write_text(out, json.dumps(res, indent=2))
    if plot is not None:
        plots.seed_spread(curves, plot, "fsdd-crnn")
    print(table("fsdd-crnn", res["summary"]))
    return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--merge"]:  # --merge OUT.json [--plot FIGURE.png] RUN_FOLDER ...
        rest = sys.argv[3:]
        # default: beside OUT, never a figure of docs/
        figure = Path(sys.argv[2]).with_suffix(".png") if len(sys.argv) > 2 else Path()
        if rest[:1] == ["--plot"]:
            figure, rest = Path(rest[1]) if len(rest) > 1 else figure, rest[2:]
        if len(sys.argv) < 3 or not rest:
            sys.exit("usage: train_fsdd_crnn.py --merge OUT.json [--plot FIGURE.png] RUN_FOLDER|RESULTS.json [...]")
        try:
            merge(Path(sys.argv[2]), [Path(p) for p in rest], figure)
        except RunFolderError as e:
            sys.exit(f"error: {e}")
    elif sys.argv[1:2] == ["--sweep"]:  # --sweep OUT.json LABEL=FOLDER[,FOLDER...] ...
        sweep_cli("fsdd-crnn", sys.argv[2:], INITIAL_PRUNE)
    else:
        main("fsdd-crnn", sys.argv[1:])
