"""Spoken-digit CRNN: TO and WO on the emulator, both recipes, several seeds, beside the paper's figures.
On the paper's own feature file and split (like-for-like with seed 000):

    nice -n 10 python benchmarks/train_fsdd_crnn.py \
        --features-file ../shared/datasets/spoken_digit_mfcc/fsdd_mfcc_23x20.npz

or on our MFCC maps of the FSDD recordings: --data-dir FOLDER (holding fsdd/recordings).

Benchmarks run as several invocations (one per recipe / method, at the same time) are merged into one file:

    python benchmarks/train_fsdd_crnn.py --merge OUT.json RUN_FOLDER [RUN_FOLDER ...]

which keeps each invocation's arguments, adds every run's validation / test curves and its pair flips after the
initial prune (the paper code's unit, docs/training.md "Programming budget"), and plots the seed spread. A sweep of
settings, each with its own run folders, goes into one file with the validation figures that decide:

    python benchmarks/train_fsdd_crnn.py --sweep OUT.json LABEL=FOLDER[,FOLDER...] [LABEL=...]
"""

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from harness import main, merge_parts, table

INITIAL_PRUNE = 34_240  # half of the CRNN's 68,480 pairs, pruned by the first mask sync
PAPER_TO = 0.981  # seed 000 Fig. 4d: hardware TO accuracy, 60 epochs
PAPER_PAIR_FLIPS = 349_000  # seed 000 Fig. 4: TO's count over 60 epochs; the code counts mask switches per weight


def merge(out: Path, folders: list[Path], plot: Path | None = None) -> dict[str, Any]:
    """One results file from the harness's ``results.json`` in ``folders``."""
    from rramctl.fileio import atomic_write_text
    from rramctl.training import plots

    res = merge_parts("fsdd-crnn", folders)
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for rec in res["runs"]:
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


def _mean_std(vals: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


def sweep(out: Path, settings: dict[str, list[Path]], last: int = 10, method: str = "to") -> dict[str, Any]:
    """One file for a sweep of settings (docs/training.md "The sweep toward 98.1 %"): per setting (a label and the
    harness folders of its runs) every ``method`` run's record with its curves, the validation figures that decide
    (final epoch, mean over the last ``last`` epochs) and the test figures reported beside them, and their mean +-
    std. Where two folders hold the same seed, the first one's run is kept."""
    from rramctl.fileio import atomic_write_text

    res: dict[str, Any] = {"task": "fsdd-crnn", "paper": PAPER_TO, "decided_on": f"validation accuracy: final epoch "
                           f"and mean over the last {last} epochs; test reported only", "settings": {}}  # fmt: skip
    for label, folders in settings.items():
        part = merge_parts("fsdd-crnn", folders)
        res["data"] = part["data"]
        kept: dict[int, dict[str, Any]] = {}
        for rec in part["runs"]:
            if rec["method"] == method:
                kept.setdefault(rec["seed"], rec)
        part["runs"] = list(kept.values())
        for rec in part["runs"]:
            val = rec["val_accuracy_curve"]
            rec["val_final"], rec[f"val_mean_last_{last}"] = val[-1], statistics.fmean(val[-last:])
            metrics = json.loads((Path(rec["run_folder"]) / "metrics.json").read_text())
            rec["pair_flips_after_initial_prune_per_epoch"] = (rec["pair_flips"] - INITIAL_PRUNE) / rec["epochs"]
            rec["val_loss_mean_last"] = statistics.fmean(m["val_loss"] for m in metrics[-last:])
        runs = sorted(part["runs"], key=lambda r: r["seed"])
        keys = ("val_final", f"val_mean_last_{last}", "test_accuracy", "best_val_accuracy", "test_at_best_val",
                "pair_flips_after_initial_prune_per_epoch")  # fmt: skip
        summary = {"seeds": [r["seed"] for r in runs], **{k: _mean_std([float(r[k]) for r in runs]) for k in keys}}
        res["settings"][label] = {"commands": part["commands"], "runs": runs, "summary": summary}
    atomic_write_text(out, json.dumps(res, indent=2))
    for label, d in res["settings"].items():
        sm = d["summary"]
        print(f"{label}: seeds {sm['seeds']}, validation final {100 * sm['val_final']['mean']:.2f} %, last {last} "
              f"{100 * sm[f'val_mean_last_{last}']['mean']:.2f} %; test {100 * sm['test_accuracy']['mean']:.2f} +- "
              f"{100 * sm['test_accuracy']['std']:.2f} %")  # fmt: skip
    return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--merge"]:
        merge(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]], Path("docs/img/fsdd_paperfeat_spread.png"))
    elif sys.argv[1:2] == ["--sweep"]:  # --sweep OUT.json LABEL=FOLDER[,FOLDER...] ...
        pairs = [a.rpartition("=") for a in sys.argv[3:]]
        sweep(Path(sys.argv[2]), {label: [Path(f) for f in folders.split(",")] for label, _, folders in pairs})
    else:
        main("fsdd-crnn", sys.argv[1:])
