"""Run figures (matplotlib, Agg): accuracy curves, weight histograms before/after like Fig. 3b / 4b of
seed 000, and the confusion matrix like Fig. 3e / 4e."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _pyplot():  # noqa: ANN202 - imported lazily, headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_curves(metrics: list[dict[str, Any]], path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    ep = [m["epoch"] for m in metrics]
    a1.plot(ep, [100 * m["train_accuracy"] for m in metrics], label="train")
    a1.plot(ep, [100 * m["test_accuracy"] for m in metrics], label="test")
    a1.set(xlabel="epoch", ylabel="accuracy (%)", title=title)
    a1.legend()
    a2.plot(ep, [m["programming_ops_total"] for m in metrics])
    a2.set(xlabel="epoch", ylabel="cell programming operations (cumulative)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def seed_spread(
    curves: dict[str, list[list[dict[str, Any]]]],
    path: Path,
    title: str,
    keys: tuple[str, ...] = ("val_accuracy", "test_accuracy"),
) -> Path:
    """Validation and test accuracy per epoch (``keys``: the panels), mean over seeds with a +-1 std band, one
    colour per curve name (recipe/method); ``curves`` maps a name to each seed's metrics."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for name, all_runs in sorted(curves.items()):
            runs = [m for m in all_runs if m and m[0].get(key) is not None]  # a run without validation: no curve
            if not runs:
                continue
            n = min(len(m) for m in runs)
            acc = 100 * np.array([[m[k][key] for k in range(n)] for m in runs])
            ep = np.arange(1, n + 1)
            mean, std = acc.mean(axis=0), acc.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(n)
            ax.plot(ep, mean, marker="o", markersize=3, label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(ep, mean - std, mean + std, alpha=0.25)
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: {key.split('_')[0]}")
        if ax.lines:
            ax.legend(fontsize=8)
        else:  # every run trained without a validation split
            ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def weight_histograms(before: NDArray[np.float64], after: NDArray[np.float64], path: Path) -> Path:
    """Differential weights G+ - G- (uS) of all layers after forming and now."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    bins = np.linspace(min(before.min(), after.min()), max(before.max(), after.max()), 121)
    for ax, w, name in ((axes[0], before, "after electroforming"), (axes[1], after, "after training")):
        ax.hist(w, bins=bins, color="tab:blue")
        ax.set(xlabel="G+ - G- (uS)", ylabel="pairs", title=name, yscale="log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def confusion(conf: NDArray[np.int64], path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if v > conf.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title, xticks=range(10), yticks=range(10))
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
