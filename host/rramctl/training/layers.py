"""Crossbar layers, one type per training method, and their straight-through estimators.

A crossbar layer is one (n_out, n_in) weight matrix living on the chip as differential pairs; its
``weight`` buffer holds the conducting weights G+ - G- (uS) read back from the chip. :class:`TOLayer`
trains a score per pair and the chip holds ``weight * mask`` (pruned pairs reset); :class:`WOLayer`
trains a host master copy and the chip holds ``weight`` as last programmed. The straight-through
estimators are named autograd functions (in the manner of edge-popup's ``GetSubnet``).

Products are computed on the host with ``F.linear`` / ``F.conv2d`` of the effective weight; where an
executor is attached (products on the chip), the forward value comes from the chip and the gradient
from the host's float path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from rramctl.training.placement import LayerShape

# (layer, integer inputs (N, n_in), bits) -> products (N, n_out) in uS x LSB, computed on the chip
Executor = Callable[[str, NDArray[np.integer[Any]], int], NDArray[np.float64]]


class ChipMask(torch.autograd.Function):
    """Forward: the mask the chip holds (1 kept, 0 pruned). Backward: the gradient passes straight to the
    scores (edge-popup's straight-through estimator, seed 004 eq. 3-4; seed 000 Methods)."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask.to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class ChipWeight(torch.autograd.Function):
    """Forward: the weight as programmed on the chip. Backward: the gradient passes straight to the host
    master copy (the weight-optimisation baseline)."""

    @staticmethod
    def forward(ctx: Any, master: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def topk_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` largest scores, ties broken by lower flat index (kthvalue, no sort)."""
    flat = scores.flatten()
    n = flat.numel()
    if keep >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    cut = torch.kthvalue(flat, n - keep + 1).values  # the keep-th largest score
    mask = flat > cut
    ties = (flat == cut).nonzero().flatten()
    mask[ties[: keep - int(mask.sum())]] = True
    return mask.view_as(scores)


def quantise(act: torch.Tensor, bits: int, clip: float | torch.Tensor) -> torch.Tensor:
    """Unsigned ``bits``-bit codes of ``act`` clipped to [0, clip] (integer-valued floats), with a
    straight-through gradient inside the clip range (ours: uniform quantiser, fixed clip).

    The rule is ``q = clamp(act * (levels / clip), 0, levels)``, value ``q + (round(q) - q).detach()``. On a
    contiguous float32 CPU tensor (and a clip that takes no gradient) it runs as :class:`FusedQuantise`: one
    compiled pass forward and one backward instead of ten tensor passes, the same bits forward and back
    (tests/test_speed_quantise.py)."""
    levels = 2**bits - 1
    scale = levels / clip
    if _fusable(act, scale):
        out: torch.Tensor = FusedQuantise.apply(act, float(scale), float(levels))
        return out
    q = torch.clamp(act * scale, 0, levels)
    return q + (torch.round(q) - q).detach()


def _fusable(act: torch.Tensor, scale: float | torch.Tensor) -> bool:
    if _quantise_kernels is None or act.dtype != torch.float32 or act.device.type != "cpu":
        return False
    if isinstance(scale, torch.Tensor) and (scale.numel() != 1 or scale.dtype != torch.float32 or scale.requires_grad):
        return False
    return act.is_contiguous()


class FusedQuantise(torch.autograd.Function):
    """:func:`quantise`'s rule in one compiled pass each way (numba). Forward: ``rint(clamp(act * s, 0, levels))``
    in float32 with ``s`` rounded to float32 (as torch multiplies a float32 tensor by a scalar), plus 0 (so a zero
    code is +0, as ``q + (round(q) - q)`` gives it; for 0 <= q <= 255 that sum is exactly ``round(q)``: the
    difference is exact). Backward: ``grad * s`` where ``0 <= act * s <= levels`` (clamp's gradient), else 0."""

    @staticmethod
    def forward(ctx: Any, act: torch.Tensor, scale: float, levels: float) -> torch.Tensor:
        assert _quantise_kernels is not None
        ctx.save_for_backward(act)
        ctx.scale, ctx.levels = scale, levels
        out = torch.empty_like(act)
        _quantise_kernels[0](act.detach().numpy().reshape(-1), np.float32(scale), np.float32(levels),
                             out.numpy().reshape(-1))  # fmt: skip
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        assert _quantise_kernels is not None
        (act,) = ctx.saved_tensors
        grad = grad.contiguous()
        out = torch.empty_like(act)
        _quantise_kernels[1](act.detach().numpy().reshape(-1), grad.numpy().reshape(-1), np.float32(ctx.scale),
                             np.float32(ctx.levels), out.numpy().reshape(-1))  # fmt: skip
        return out, None, None


def _compile_quantise() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """The two loops of FusedQuantise, compiled where numba is installed (None: the torch expression runs)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - exercised where numba is absent
        return None

    @numba.njit(cache=True, nogil=True)
    def forward(x: Any, s: Any, top: Any, out: Any) -> None:
        zero = np.float32(0.0)
        for i in range(x.shape[0]):
            t = x[i] * s
            if t != t:  # NaN: clamp and round keep it
                out[i] = t
            else:
                out[i] = np.rint(min(max(t, zero), top)) + zero

    @numba.njit(cache=True, nogil=True)
    def backward(x: Any, g: Any, s: Any, top: Any, out: Any) -> None:
        zero = np.float32(0.0)
        for i in range(x.shape[0]):
            t = x[i] * s
            out[i] = g[i] * s if (t >= zero and t <= top) else zero

    return forward, backward


_quantise_kernels = _compile_quantise()


class CrossbarLayer(nn.Module):
    """One weight matrix on the crossbar; subclasses say what is trained and what the chip holds."""

    def __init__(self, name: str, n_in: int, n_out: int, bits: int) -> None:
        super().__init__()
        self.name, self.n_in, self.n_out, self.bits = name, n_in, n_out, bits
        self.register_buffer("weight", torch.zeros(n_out, n_in))
        self.executor: Executor | None = None
        self.noise = 0.0  # network.weight_noise: relative SD of a fresh factor on every weight while training

    weight: torch.Tensor

    @property
    def shape(self) -> LayerShape:
        return LayerShape(self.name, self.n_in, self.n_out)

    def effective_weight(self) -> torch.Tensor:
        """What the chip multiplies by, with the method's gradient path."""
        raise NotImplementedError

    def kept_inputs(self) -> float:
        """Conducting pairs per output (for the fixed output scale of layers without batch-norm)."""
        return float(self.n_in)

    def fixed_scale(self, real_inputs: bool = False) -> float:
        """What the products of a layer without batch-norm are divided by. Inputs in code units (``fixed``
        activations, ours): mean|G| of the conducting pairs x sqrt(conducting pairs per output) x the largest input
        code, so products of inputs spread over the code range come out of order 1. Real-valued inputs (codes x
        their step, ``minmax`` activations): the paper's code, mean|G| / std with std = sqrt(2 / kept inputs per
        output) (kaiming gain for ReLU over fan_in x (1 - sparsity)), so the effective weights are +-std."""
        if real_inputs:
            return self._mean_g() * (self.kept_inputs() / 2) ** 0.5
        return self._mean_g() * self.kept_inputs() ** 0.5 * (2**self.bits - 1)

    def _mean_g(self) -> float:
        return float(self.weight.abs().mean().clamp_min(1e-6))

    def noisy_weight(self) -> torch.Tensor:
        """The effective weight, times a fresh factor 1 + noise x N(0, 1) per weight while training (network.
        weight_noise, in the manner of read noise; the gradient passes through the factor)."""
        w = self.effective_weight()
        if self.training and self.noise > 0:
            w = w * (1 + self.noise * torch.randn_like(w))
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_in) integer-valued codes; returns (N, n_out) products in uS x LSB."""
        y = F.linear(x, self.noisy_weight())
        if self.executor is None:
            return y
        return y + (self._chip(x) - y).detach()  # forward value from the chip, gradient from the float path

    def conv(self, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
        """Convolution of (N, C, H, W) codes with this matrix as C*kh*kw-row kernels -> (N, n_out, H', W')."""
        w = self.noisy_weight().view(self.n_out, -1, *kernel)
        y = F.conv2d(x, w, stride=stride)
        if self.executor is None:
            return y
        n, _, ho, wo = y.shape
        products = self._chip_codes(im2col_codes(x.detach(), kernel, stride))  # what the chip sees, one row per patch
        hw = torch.from_numpy(products).to(y.dtype).reshape(n, ho * wo, -1).transpose(1, 2).reshape(y.shape)
        return y + (hw - y).detach()

    def _chip(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._chip_codes(x.detach().round().to(torch.int64).numpy())).to(x.dtype)

    def _chip_codes(self, codes: NDArray[np.integer[Any]]) -> NDArray[np.floating[Any]]:
        assert self.executor is not None
        return self.executor(self.name, codes, self.bits)


def im2col_codes(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)
) -> NDArray[np.integer[Any]]:
    """The patches of (N, C, H, W) integer-valued codes as rows (N * H' * W', C * kh * kw), in
    ``F.unfold``'s order (patch row-major; within a patch channel, then kernel row, then column), rounded
    to integers: uint8 where every code fits (8x less memory than float unfold, and the executor's
    distinct-row search compares bytes), else int64. ``stride``: every patch (1, 1) or every sh-th row and
    sw-th column of patches."""
    codes = x.round()
    small = codes.numel() > 0 and float(codes.min()) >= 0 and float(codes.max()) < 256
    a = codes.to(torch.uint8 if small else torch.int64).numpy()
    win = np.lib.stride_tricks.sliding_window_view(a, (1, 1, *kernel))[..., 0, 0, :, :]  # (N, C, H', W', kh, kw)
    win = win[:, :, :: stride[0], :: stride[1]]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(-1, a.shape[1] * kernel[0] * kernel[1])


class TOLayer(CrossbarLayer):
    """Topology optimisation: ``scores`` trained, ``mask`` = the pairs the chip keeps conducting."""

    def __init__(
        self, name: str, n_in: int, n_out: int, bits: int, sparsity: float, by_magnitude: bool, margin: float = 0.0,
        scale_over_all: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(name, n_in, n_out, bits)
        self.keep = max(1, round((1 - sparsity) * n_in * n_out))
        self.by_magnitude = by_magnitude
        self.margin = margin  # to.keep_margin: a kept pair's lead in the ranking
        self.scale_over_all = scale_over_all  # to.scale_pairs == "all": mean|G| over every pair's set magnitude
        self.register_buffer("mask", torch.ones(n_out, n_in, dtype=torch.bool))
        # what the chip still reads where a pair is pruned: off-state leakage, and stuck-on cells that no
        # reset can turn off; the host's products must include it to equal the chip's
        self.register_buffer("residual", torch.zeros(n_out, n_in))
        # pairs whose mask bit is held this step (the relative threshold rule)
        self.register_buffer("hold", torch.zeros(n_out, n_in, dtype=torch.bool), persistent=False)
        self.scores = nn.Parameter(torch.zeros(n_out, n_in))

    mask: torch.Tensor
    residual: torch.Tensor
    hold: torch.Tensor

    def wanted_mask(self) -> torch.Tensor:
        """The top ``keep`` pairs by score (or |score|), each kept pair ranked ``margin`` higher than its score
        (to.keep_margin), and the bits the relative threshold rule holds."""
        s = self.scores.detach()
        ranked = s.abs() if self.by_magnitude else s
        if self.margin:
            ranked = ranked + self.margin * self.mask.to(ranked.dtype)
        return torch.where(self.hold, self.mask, topk_mask(ranked, self.keep))

    def kept_inputs(self) -> float:
        return self.keep / self.n_out

    def _mean_g(self) -> float:
        """mean|G| of the kept pairs, or (``scale_over_all``) of every pair's ``weight``: a pruned pair keeps there
        the magnitude it conducts at when kept (its formed or last reinstated conductance)."""
        pairs = self.weight.abs() if self.scale_over_all else self.weight[self.mask].abs()
        return max(float(pairs.mean()) if pairs.numel() else 0.0, 1e-6)

    def effective_weight(self) -> torch.Tensor:
        on = self.mask.to(self.weight.dtype)
        ranked = self.scores.abs() if self.by_magnitude else self.scores  # the gradient follows the ranking
        return self.weight * ChipMask.apply(ranked, self.mask) + self.residual * (1 - on)


class WOLayer(CrossbarLayer):
    """Weight optimisation: ``master`` trained on the host, the chip holds ``weight`` as last programmed."""

    def __init__(self, name: str, n_in: int, n_out: int, bits: int) -> None:
        super().__init__(name, n_in, n_out, bits)
        self.master = nn.Parameter(torch.zeros(n_out, n_in))

    def effective_weight(self) -> torch.Tensor:
        out: torch.Tensor = ChipWeight.apply(self.master, self.weight)
        return out


LayerFactory = Callable[[str, int, int, int], CrossbarLayer]
