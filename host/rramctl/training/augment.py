"""Training-set augmentation of the network's input maps (ours; Fashion-MNIST only): a random horizontal flip and a
random translation, drawn per epoch from the run's seed, applied to each training batch on the host before the
chip sees it. Validation, test and the batch-norm re-estimation see the maps as they are.

Both act on the maps the network takes (14 x 14 max-pooled 4-bit codes, or their float pixels with
``network.input_quant`` other than fixed), so an augmented map is still a map of valid codes: a flip reverses each
row, a shift by (dy, dx) moves the map down and right by dy and dx (negative: up and left) and fills the lines it
uncovers with 0 (black). The draws of epoch e (0-based) come from ``numpy.random.default_rng((seed, e,
AUGMENT_STREAM))`` in this order: a flip bit per training sample (``integers(0, 2, n)``), then a shift per sample
(``integers(-shift, shift + 1, (n, 2))``, columns dy, dx), indexed by the sample's position in the training split,
so a resumed run draws the same as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

AUGMENT_STREAM = 0xA06  # (ours) the augmentation's own stream of the run's seed


@dataclass(frozen=True)
class EpochAugmentation:
    """One epoch's draws for every training sample: ``flip`` (n,) bools, ``shift`` (n, 2) ints (dy, dx)."""

    flip: NDArray[np.bool_]
    shift: NDArray[np.int64]

    @classmethod
    def draw(cls, seed: int, epoch: int, n: int, flip: bool, shift: int) -> EpochAugmentation:
        rng = np.random.default_rng((seed, epoch, AUGMENT_STREAM))
        flips = rng.integers(0, 2, n).astype(bool) if flip else np.zeros(n, dtype=bool)
        shifts = rng.integers(-shift, shift + 1, (n, 2)) if shift > 0 else np.zeros((n, 2), dtype=np.int64)
        return cls(flips, shifts.astype(np.int64))

    def apply(self, x: NDArray[Any], idx: NDArray[np.integer]) -> NDArray[Any]:
        """The batch ``x`` (B, C, H, W) of the training samples ``idx``, flipped and shifted as drawn."""
        return augment_maps(x, self.flip[idx], self.shift[idx])


def augment_maps(x: NDArray[Any], flip: NDArray[np.bool_], shift: NDArray[np.int64]) -> NDArray[Any]:
    """Each map x[i] (C, H, W) reversed along W where ``flip[i]``, then moved by ``shift[i]`` = (dy, dx) with zeros
    filled in; a new array of x's dtype."""
    if x.ndim != 4:
        raise ValueError(f"augmentation takes (batch, channels, height, width) maps, got shape {x.shape}")
    out = np.where(flip[:, None, None, None], x[..., ::-1], x)
    s = int(np.abs(shift).max()) if len(shift) else 0
    if s == 0:
        return np.ascontiguousarray(out)
    b, _, h, w = out.shape
    padded = np.zeros((b, out.shape[1], h + 2 * s, w + 2 * s), dtype=x.dtype)
    padded[:, :, s : s + h, s : s + w] = out
    rows = (s - shift[:, 0])[:, None] + np.arange(h)[None, :]  # (B, H): source row of each output row
    cols = (s - shift[:, 1])[:, None] + np.arange(w)[None, :]
    bi = np.arange(b)[:, None, None]
    return np.ascontiguousarray(padded[bi, :, rows[:, :, None], cols[:, None, :]].transpose(0, 3, 1, 2))
