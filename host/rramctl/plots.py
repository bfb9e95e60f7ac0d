"""Figures a user wants to see: conductance heatmaps and histograms like Fig. 2 / 3b of seed 000."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rramctl.geometry import PAIR_OFFSET, Region


def _pyplot():  # noqa: ANN202 - matplotlib is imported lazily and headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def differential_weights(g_us: NDArray[np.float64], region: Region) -> NDArray[np.float64] | None:
    """G+ - G- when the region covers both halves of the same pair columns, else None."""
    if region.col != 0 or region.n_cols != 2 * PAIR_OFFSET:
        return None
    return g_us[:, :PAIR_OFFSET] - g_us[:, PAIR_OFFSET:]


def conductance_figure(g_us: NDArray[np.float64], region: Region, path: str | Path, title: str = "") -> Path:
    """Heatmap of the conductance map, its histogram, and (full-width regions) the differential weights."""
    plt = _pyplot()
    weights = differential_weights(g_us, region)
    n = 3 if weights is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4))
    im = axes[0].imshow(
        g_us, cmap="viridis", aspect="auto", interpolation="nearest",
        extent=(region.col - 0.5, region.col + region.n_cols - 0.5, region.row + region.n_rows - 0.5, region.row - 0.5),
    )  # fmt: skip
    axes[0].set_xlabel("column (source line)")
    axes[0].set_ylabel("row (bit line)")
    axes[0].set_title("conductance (uS)")
    fig.colorbar(im, ax=axes[0])
    axes[1].hist(g_us.ravel(), bins=120, color="tab:blue")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("cell conductance (uS)")
    axes[1].set_ylabel("cells")
    axes[1].set_title("cell conductance")
    if weights is not None:
        axes[2].hist(weights.ravel(), bins=160, color="tab:purple")
        axes[2].set_xlabel("differential weight G+ - G- (uS)")
        axes[2].set_ylabel("pairs")
        axes[2].set_title("differential pairs")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
