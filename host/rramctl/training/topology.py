"""Edge-pruning topology optimisation on the chip (seed 000 Methods "Edge pruning topology optimization
algorithm", "Threshold learning rule"; seed 004 Methods, pop-up scores eq. 3-4).

The weights are the conductances read back after forming and are never written; each pair has a score,
the top (1 - sparsity) of each layer's scores stay connected, and every mask change reaches the chip as
a batched, diff-only reset (prune) or set (reinstate) of both cells of the pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from rramctl.chip import FORMED_THRESHOLD_US
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.layers import TOLayer
from rramctl.training.networks import CrossbarNet

Readback = Literal["layer", "pairs"]  # to.readback
OFF_US = FORMED_THRESHOLD_US  # seed 000 (docs/hardware.md): a cell is conducting above 3.33 uS (below 300 kOhm)


def init_from_chip(net: CrossbarNet, mapped: MappedNetwork) -> None:
    """Weights read back after forming; TO scores start as |w| scaled to [0, 1] per layer (seed 000 Methods:
    "each weight value also serves as the score"; magnitude and scaling ours); the chip has every pair
    conducting, so the mask starts all-on and the first sync prunes."""
    for layer in net.crossbar_layers():
        w = torch.from_numpy(mapped.read_weights(layer.name)).float()
        layer.weight.copy_(w)
        if isinstance(layer, TOLayer):
            layer.mask.fill_(True)
            with torch.no_grad():
                layer.scores.copy_(w.abs() / w.abs().max().clamp_min(1e-12))


def _to_layers(net: CrossbarNet) -> list[TOLayer]:
    return [la for la in net.crossbar_layers() if isinstance(la, TOLayer)]


def sync_masks(net: CrossbarNet, mapped: MappedNetwork, readback: Readback = "pairs") -> dict[str, int]:
    """Issue the diff between each layer's chip mask and its top-k mask; returns pairs flipped per layer.
    Reinstated pairs come back at a fresh conductance, which is read back into ``weight``; pruned ones leave
    what a reset leaves in ``residual``. ``readback`` (``to.readback``): ``layer`` reads every cell of a changed
    layer, ``pairs`` only the flipped pairs' cells (the same weights where reads are exact)."""
    flips = {}
    for layer in _to_layers(net):
        want = layer.wanted_mask()
        prune, reinstate = _mask_changes(layer.mask, want)
        if len(prune):
            mapped.prune(layer.name, prune)
        if len(reinstate):
            mapped.reinstate(layer.name, reinstate)
        if len(prune) or len(reinstate):
            weight, residual = layer.weight.numpy(), layer.residual.numpy()  # (views of the buffers)
            # float64 reads; numpy's assignment rounds to float32 as torch's .float()
            if readback == "pairs":
                w_set, w_reset = np.split(mapped.read_weights_at(layer.name, np.concatenate([reinstate, prune])),
                                          [len(reinstate)])  # fmt: skip
            else:
                w = mapped.read_weights(layer.name)
                w_set, w_reset = w[reinstate[:, 0], reinstate[:, 1]], w[prune[:, 0], prune[:, 1]]
            r, c = reinstate[:, 0], reinstate[:, 1]
            weight[r, c] = w_set
            residual[r, c] = 0.0
            r, c = prune[:, 0], prune[:, 1]
            residual[r, c] = w_reset  # ~0, unless a cell is stuck on
        layer.mask.copy_(want)
        flips[layer.name] = len(prune) + len(reinstate)
    return flips


def _mask_changes(mask: torch.Tensor, want: torch.Tensor) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(pairs to prune, pairs to reinstate) as (K, 2) [out, in] indices in row-major order: ``(mask & ~want)`` and
    ``(~mask & want)``'s ``nonzero()``, by one compiled loop where numba is installed."""
    if _kernels is None or mask.dim() != 2 or not (mask.is_contiguous() and want.is_contiguous()):
        return (mask & ~want).nonzero().numpy(), (~mask & want).nonzero().numpy()
    changes: tuple[NDArray[np.int64], NDArray[np.int64]] = _kernels.changes(
        mask.numpy().reshape(-1), want.numpy().reshape(-1), mask.shape[1]
    )
    return changes


def threshold_updates(layers: list[TOLayer], before: dict[str, torch.Tensor], ts: float) -> int:
    """Threshold learning rule: score changes with |ds| < T_s are dropped (the score keeps its old value);
    returns how many were dropped. On float32 CPU scores one compiled pass per layer (numba): ``|s - s_old| < T_s``
    in float32 as torch compares a float32 tensor with a number, the old score restored there."""
    dropped = 0
    with torch.no_grad():
        for layer in layers:
            old = before[layer.name]
            if _kernels is not None and _fusable_scores(layer.scores, old):
                scores = layer.scores.detach().numpy().reshape(-1)  # (a view: the kernel writes the parameter)
                dropped += _kernels.drop_small(scores, old.detach().numpy().reshape(-1), np.float32(ts))
                continue
            small = (layer.scores - old).abs() < ts
            layer.scores.copy_(torch.where(small, old, layer.scores))  # (a masked copy: no index lists)
            dropped += int(small.sum())
    return dropped


def _fusable_scores(scores: torch.Tensor, old: torch.Tensor) -> bool:
    return all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in (scores, old)) and (
        scores.shape == old.shape
    )


class _Kernels(NamedTuple):
    drop_small: Callable[..., int]
    changes: Callable[..., tuple[NDArray[np.int64], NDArray[np.int64]]]


def _compile_kernels() -> _Kernels | None:
    """The threshold rule's and the mask diff's loops, compiled where numba is installed (None: the torch
    expressions run)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - exercised where numba is absent
        return None

    @numba.njit(cache=True, nogil=True)
    def drop_small(s: Any, old: Any, ts: Any) -> int:
        n = 0
        for i in range(s.shape[0]):
            if abs(s[i] - old[i]) < ts:  # float32 difference, float32 threshold
                s[i] = old[i]
                n += 1
        return n

    @numba.njit(cache=True, nogil=True)
    def changes(m: Any, w: Any, n_in: Any) -> tuple[Any, Any]:
        k_prune = 0
        k_set = 0
        for i in range(m.shape[0]):
            if m[i] != w[i]:
                if m[i]:
                    k_prune += 1
                else:
                    k_set += 1
        prune = np.empty((k_prune, 2), np.int64)
        reinstate = np.empty((k_set, 2), np.int64)
        k_prune = 0
        k_set = 0
        for i in range(m.shape[0]):
            if m[i] != w[i]:
                if m[i]:
                    prune[k_prune, 0], prune[k_prune, 1] = i // n_in, i % n_in
                    k_prune += 1
                else:
                    reinstate[k_set, 0], reinstate[k_set, 1] = i // n_in, i % n_in
                    k_set += 1
        return prune, reinstate

    return _Kernels(drop_small, changes)


_kernels = _compile_kernels()


def hold_small_changes(layers: list[TOLayer], before: dict[str, torch.Tensor], ts: float) -> int:
    """Relative threshold rule (the paper's code, its ``d_s``): where | |s| - |s_old| | < T_s * |s_old| (float32,
    no division: never where s_old = 0) the pair's mask bit is held at the next sync while the score keeps its
    update (the change of the magnitude the top-k ranks by: a sign flip of the same magnitude is held; a negative
    T_s holds nothing); returns how many bits are held."""
    held = 0
    with torch.no_grad():
        for layer in layers:
            old = before[layer.name].abs()
            small = (layer.scores.abs() - old).abs() < ts * old
            layer.hold.copy_(small)
            held += int(small.sum())
    return held


@dataclass(frozen=True)
class Agreement:
    """How the chip agrees with the host's masks and weights, per layer: pairs that disagree before repair."""

    kept_wrong: dict[str, int]
    pruned_wrong: dict[str, int]

    @property
    def ok(self) -> bool:
        return not any(self.kept_wrong.values()) and not any(self.pruned_wrong.values())


def verify_chip(net: CrossbarNet, mapped: MappedNetwork, repair: bool = True, rel_tol: float = 0.2) -> Agreement:
    """Read every pair back: a pruned pair must have both cells off (< 3.33 uS); a kept pair must read its
    stored weight within max(1 uS, rel_tol * |w|) (ours). With ``repair``, disagreeing pairs are reset or set
    again (counted as programming) and reinstated weights re-read."""
    kept_wrong, pruned_wrong = {}, {}
    for layer in _to_layers(net):
        gp, gm = mapped.read_pairs(layer.name)
        mask = layer.mask.numpy()
        w = layer.weight.numpy()
        on = (gp > OFF_US) | (gm > OFF_US)
        bad_pruned = ~mask & on
        bad_kept = mask & (np.abs((gp - gm) - w) > np.maximum(1.0, rel_tol * np.abs(w)))
        kept_wrong[layer.name], pruned_wrong[layer.name] = int(bad_kept.sum()), int(bad_pruned.sum())
        if repair and bad_pruned.any():
            mapped.prune(layer.name, np.argwhere(bad_pruned))
        if repair and bad_kept.any():
            mapped.reinstate(layer.name, np.argwhere(bad_kept))
        fresh = mapped.read_weights(layer.name) if repair and (bad_kept.any() or bad_pruned.any()) else gp - gm
        if repair and bad_kept.any():
            layer.weight[torch.from_numpy(bad_kept)] = torch.from_numpy(fresh[bad_kept]).float()
        # what pruned pairs read now (stuck-on cells stay on whatever the repair did)
        layer.residual.copy_(torch.from_numpy(np.where(mask, 0.0, fresh)).float())
    return Agreement(kept_wrong, pruned_wrong)
