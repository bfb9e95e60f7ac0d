"""Test accuracy per epoch from merged results files (``--merge`` of train_fmnist_cnn.py / train_fsdd_crnn.py): for
each LABEL=RESULTS.json, the mean over its seeds of each run's ``test_accuracy_curve`` with a +-1 std band (one curve
per recipe/method in the file; the label names it when the file holds one). Reads only the results files, so runs
whose folders are gone still plot.

    python benchmarks/plot_results.py OUT.png [--title TITLE] LABEL=RESULTS.json [LABEL=RESULTS.json ...]

e.g. the Fashion-MNIST refit with the chip in the loop against host products (docs/training.md):
    python benchmarks/plot_results.py docs/img/fmnist_chip_refit_spread.png --title "Fashion-MNIST refit" \\
        "chip in the loop=benchmarks/results/fmnist-cnn-65ep-chip-in-the-loop.json" \\
        "host products=benchmarks/results/fmnist-cnn-65ep-refit.json"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rramctl.training import plots


def curves_of(specs: list[str]) -> dict[str, list[list[dict[str, Any]]]]:
    """Curve name -> each seed's per-epoch ``test_accuracy`` records, from LABEL=RESULTS.json specs."""
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for spec in specs:
        label, sep, file = spec.partition("=")
        if not sep or not label or not file:
            raise SystemExit(f"error: {spec!r} is not LABEL=RESULTS.json")
        try:
            runs = json.loads(Path(file).read_text())["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"error: {file}: not a merged results file ({type(e).__name__}: {e})") from None
        groups = sorted({f"{r['recipe']}/{r['method']}" for r in runs})
        for r in runs:
            if "test_accuracy_curve" not in r:
                raise SystemExit(f"error: {file}: seed {r.get('seed')} has no test_accuracy_curve")
            group = f"{r['recipe']}/{r['method']}"
            name = label if len(groups) == 1 else f"{label}, {group}"
            curves.setdefault(name, []).append([{"test_accuracy": a} for a in r["test_accuracy_curve"]])
    return curves


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    out, rest = Path(argv[0]), argv[1:]
    title = "test accuracy"
    if rest[:1] == ["--title"]:
        if len(rest) < 3:
            raise SystemExit(__doc__)
        title, rest = rest[1], rest[2:]
    plots.seed_spread(curves_of(rest), out, title, keys=("test_accuracy",))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
