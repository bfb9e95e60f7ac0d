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
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from rramctl.errors import RramctlError
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


class DivergedError(RramctlError, ArithmeticError):
    """Training produced a non-number where the chip needs a decision (a NaN score has no top-k rank)."""


def topk_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` largest scores, ties broken by lower flat index (kthvalue, no sort).

    On float32 CPU scores the keep-th largest value is found by a compiled radix select (numba; three counting
    passes over the scores' order-preserving integer keys) instead of ``kthvalue``: the same value, so the same mask
    (tests/test_training_host_speed.py)."""
    n = scores.numel()
    if keep >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    if _host_kernels is not None and keep >= 1 and scores.dtype == torch.float32 and scores.device.type == "cpu":
        f = scores.detach().contiguous().numpy().reshape(-1)
        out = np.empty(scores.shape, dtype=np.bool_)
        if _host_kernels.topk(f, f.view(np.uint32), keep, out.reshape(-1)):  # False at a NaN score: kthvalue decides
            return torch.from_numpy(out)
    flat = scores.flatten()
    if torch.isnan(flat).any():  # (the compiled select declines NaN and comes here) a NaN has no rank: keep < k
        raise DivergedError("a layer's scores are NaN: training diverged (a score learning rate too large for this "
                            "run, to.lr); the run's last checkpoint is as it was")  # fmt: skip
    cut = torch.kthvalue(flat, n - keep + 1).values  # the keep-th largest score
    mask = flat > cut
    ties = (flat == cut).nonzero().flatten()
    mask[ties[: keep - int(mask.sum())]] = True
    return mask.view_as(scores)


def quantise(act: torch.Tensor, bits: int, clip: float | torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Unsigned ``bits``-bit codes of ``act`` clipped to [0, clip] (integer-valued floats), with a
    straight-through gradient inside the clip range (ours: uniform quantiser, fixed clip). ``relu``: the codes of
    ``F.relu(act)``, with ReLU's gradient too.

    The rule is ``q = clamp(act * (levels / clip), 0, levels)``, value ``q + (round(q) - q).detach()``. On a
    contiguous float32 CPU tensor (and a clip that takes no gradient) it runs as :class:`FusedQuantise`: one
    compiled pass forward and one backward instead of ten tensor passes, the same bits forward and back
    (tests/test_speed_quantise.py); with ``relu`` the ReLU runs in the same passes (forward: the clamp at 0 already
    gives ReLU's codes; backward: ReLU's gate ``act > 0`` joins the clamp's), the same bits as ``F.relu`` then the
    quantiser (tests/test_training_host_speed.py)."""
    levels = 2**bits - 1
    scale = levels / clip
    if _fusable(act, scale) and (not relu or _host_kernels is not None):
        out: torch.Tensor = FusedQuantise.apply(act, float(scale), float(levels), relu)
        return out
    if relu:
        act = F.relu(act)
        if _fusable(act, scale):
            fused: torch.Tensor = FusedQuantise.apply(act, float(scale), float(levels), False)
            return fused
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
    def forward(ctx: Any, act: torch.Tensor, scale: float, levels: float, relu: bool = False) -> torch.Tensor:
        assert _quantise_kernels is not None
        ctx.save_for_backward(act)
        ctx.scale, ctx.levels, ctx.relu = scale, levels, relu
        out = torch.empty_like(act)
        _quantise_kernels[0](act.detach().numpy().reshape(-1), np.float32(scale), np.float32(levels),
                             out.numpy().reshape(-1))  # fmt: skip
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        assert _quantise_kernels is not None
        (act,) = ctx.saved_tensors
        grad = grad.contiguous()
        out = torch.empty_like(act)
        if ctx.relu:  # ReLU's backward too: F.relu passes the gradient where its output is > 0, i.e. act > 0
            assert _host_kernels is not None
            kernel = _host_kernels.quantise_relu_backward
        else:
            kernel = _quantise_kernels[1]
        kernel(act.detach().numpy().reshape(-1), grad.numpy().reshape(-1), np.float32(ctx.scale),
               np.float32(ctx.levels), out.numpy().reshape(-1))  # fmt: skip
        return out, None, None, None


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


def relu_pool_quantise(act: torch.Tensor, bits: int, clip: float) -> torch.Tensor:
    """``quantise(F.max_pool2d(F.relu(act), 2), bits, clip)`` of an (N, C, H, W) map: on a contiguous float32 CPU
    tensor in one compiled pass each way (:class:`FusedReluPoolQuantise`), else those three steps."""
    levels = 2**bits - 1
    scale = levels / clip
    if _host_kernels is not None and act.dim() == 4 and _fusable(act, scale):
        out: torch.Tensor = FusedReluPoolQuantise.apply(act, float(scale), float(levels))
        return out
    return quantise(F.max_pool2d(F.relu(act), 2), bits, clip)


class FusedReluPoolQuantise(torch.autograd.Function):
    """ReLU, 2x2 max-pool (stride 2, floor) and :func:`quantise`'s rule in one compiled pass each way, as torch's
    CPU kernels do them one after another. Pool: each window scanned row by row, an element taken when it is
    larger than the maximum so far or NaN (``max_pool2d``'s rule: ties go to the first), its index kept.
    Backward: the quantiser's gradient of each pooled code added to a zeroed input gradient at that index
    (``max_pool2d``'s backward adds, so a -0 gradient lands as +0), then ReLU's gate (zero where the ReLU output is
    <= 0). The same bits as the three torch steps (tests/test_training_host_speed.py)."""

    @staticmethod
    def forward(ctx: Any, act: torch.Tensor, scale: float, levels: float) -> torch.Tensor:
        assert _host_kernels is not None
        n, c, h, w = act.shape
        out = torch.empty((n, c, h // 2, w // 2), dtype=act.dtype)
        pooled = np.empty((n * c, (h // 2) * (w // 2)), dtype=np.float32)  # what the quantiser sees
        index = np.empty((n * c, (h // 2) * (w // 2)), dtype=np.int64)
        _host_kernels.relu_pool_quantise(act.detach().numpy().reshape(n * c, h, w), np.float32(scale),
                                         np.float32(levels), out.numpy().reshape(n * c, -1), pooled, index)  # fmt: skip
        ctx.save_for_backward(act)
        ctx.pooled, ctx.index, ctx.scale, ctx.levels = pooled, index, scale, levels
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        assert _host_kernels is not None
        (act,) = ctx.saved_tensors
        n, c = act.shape[:2]
        grad = grad.contiguous()
        g_in = torch.empty_like(act)
        _host_kernels.relu_pool_quantise_backward(act.detach().numpy().reshape(n * c, -1), ctx.pooled,
                                                  grad.numpy().reshape(n * c, -1), ctx.index, np.float32(ctx.scale),
                                                  np.float32(ctx.levels), g_in.numpy().reshape(n * c, -1))  # fmt: skip
        return g_in, None, None


class MaskedWeight(torch.autograd.Function):
    """:meth:`TOLayer.effective_weight` in one compiled pass: forward ``weight * m + residual * (1 - m)`` with m the
    mask as 0/1 floats (the same float32 operations, element by element, as the tensor expression); backward
    ``grad * weight`` to the ranked scores (the product's gradient through :class:`ChipMask`'s straight-through)."""

    @staticmethod
    def forward(ctx: Any, ranked: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor
                ) -> torch.Tensor:  # fmt: skip
        assert _host_kernels is not None
        out = torch.empty_like(weight)
        _host_kernels.masked_weight(weight.numpy().reshape(-1), mask.numpy().reshape(-1),
                                    residual.numpy().reshape(-1), out.numpy().reshape(-1))  # fmt: skip
        ctx.save_for_backward(weight)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (weight,) = ctx.saved_tensors
        return grad * weight, None, None, None


class _HostKernels(NamedTuple):
    topk: Callable[..., bool]
    quantise_relu_backward: Callable[..., None]
    relu_pool_quantise: Callable[..., None]
    relu_pool_quantise_backward: Callable[..., None]
    masked_weight: Callable[..., None]


def _compile_host_kernels() -> _HostKernels | None:
    """The host step's other compiled loops (numba; None where it is absent: the torch expressions run)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - exercised where numba is absent
        return None

    @numba.njit(cache=True, nogil=True)
    def topk(f: Any, bits: Any, keep: Any, out: Any) -> bool:
        # the (n - keep + 1)-th smallest value by radix select (11, 11, 10 bits) on order-preserving keys: negative
        # floats' bits inverted, positive floats' sign bit set (so -0 < +0 as keys, equal as values: the value is
        # kthvalue's). Candidates are compacted without branches (real scores crowd a few buckets: a branch there
        # mispredicts half the time)
        n = f.shape[0]
        keys = np.empty(n, np.uint32)
        cand = np.empty(n, np.uint32)
        hist = np.zeros(2048, np.int64)
        nan = False
        for i in range(n):
            b = np.int64(bits[i])
            if (b & 0x7FFFFFFF) > 0x7F800000:
                nan = True
            k = 0xFFFFFFFF - b if b >= 0x80000000 else b + 0x80000000
            keys[i] = k
            hist[k >> 21] += 1
        if nan:
            return False
        rank = n - keep  # 0-based, ascending
        h = 0
        while rank >= hist[h]:
            rank -= hist[h]
            h += 1
        prefix = np.int64(h)
        m = 0
        for i in range(n):
            k = keys[i]
            cand[m] = k
            m += np.int64(k >> 21) == prefix
        for level in range(2):
            shift = 10 if level == 0 else 0
            width = 2047 if level == 0 else 1023
            hist[:] = 0
            for j in range(m):
                hist[(np.int64(cand[j]) >> shift) & width] += 1
            h = 0
            while rank >= hist[h]:
                rank -= hist[h]
                h += 1
            prefix = (prefix << (11 if level == 0 else 10)) | h
            m2 = 0
            for j in range(m):
                k = cand[j]
                cand[m2] = k
                m2 += ((np.int64(k) >> shift) & width) == h
            m = m2
        cut = f[0]
        for i in range(n):
            if np.int64(keys[i]) == prefix:
                cut = f[i]
                break
        above = 0
        for i in range(n):
            big = f[i] > cut
            out[i] = big
            above += big
        need = keep - above  # ties at the cut, lowest index first
        for i in range(n):
            if need == 0:
                break
            if f[i] == cut:
                out[i] = True
                need -= 1
        return True

    @numba.njit(cache=True, nogil=True)
    def quantise_relu_backward(x: Any, g: Any, s: Any, top: Any, out: Any) -> None:
        zero = np.float32(0.0)
        for i in range(x.shape[0]):
            t = x[i] * s
            out[i] = g[i] * s if (x[i] > zero and t >= zero and t <= top) else zero

    @numba.njit(cache=True, nogil=True)
    def relu_pool_quantise(x: Any, s: Any, top: Any, out: Any, pooled: Any, index: Any) -> None:
        # x (planes, H, W); out, pooled, index (planes, H // 2 * W // 2); each window's four elements in max_pool2d's
        # scan order, taken by selects (no branches: a window's maximum is where random data mispredicts)
        zero = np.float32(0.0)
        planes, h, w = x.shape
        wo = w // 2
        for p in range(planes):
            for oh in range(h // 2):
                for ow in range(wo):
                    a = 2 * oh * w + 2 * ow
                    v0, v1, v2, v3 = (
                        x[p, 2 * oh, 2 * ow],
                        x[p, 2 * oh, 2 * ow + 1],
                        x[p, 2 * oh + 1, 2 * ow],
                        x[p, 2 * oh + 1, 2 * ow + 1],
                    )
                    r0 = max(v0, zero) if v0 == v0 else v0  # F.relu (NaN stays NaN)
                    r1 = max(v1, zero) if v1 == v1 else v1
                    r2 = max(v2, zero) if v2 == v2 else v2
                    r3 = max(v3, zero) if v3 == v3 else v3
                    best, at = r0, a  # the first element beats the pool's -inf start whatever it is
                    take = (r1 > best) | (r1 != r1)
                    best, at = (r1, a + 1) if take else (best, at)
                    take = (r2 > best) | (r2 != r2)
                    best, at = (r2, a + w) if take else (best, at)
                    take = (r3 > best) | (r3 != r3)
                    best, at = (r3, a + w + 1) if take else (best, at)
                    o = oh * wo + ow
                    index[p, o] = at
                    pooled[p, o] = best
                    t = best * s
                    out[p, o] = t if t != t else np.rint(min(max(t, zero), top)) + zero

    @numba.njit(cache=True, nogil=True)
    def relu_pool_quantise_backward(x: Any, pooled: Any, g: Any, index: Any, s: Any, top: Any, out: Any) -> None:
        # out (planes, H * W), every element written: +0, and at each window's chosen index its gradient
        zero = np.float32(0.0)
        for p in range(out.shape[0]):
            for i in range(out.shape[1]):
                out[p, i] = zero
            for o in range(g.shape[1]):
                t = pooled[p, o] * s
                gq = g[p, o] * s if (t >= zero and t <= top) else zero  # the quantiser's gradient
                at = index[p, o]
                v = x[p, at]
                r = max(v, zero) if v == v else v
                out[p, at] = zero if r <= zero else zero + gq  # the pool adds to +0; ReLU's gate

    @numba.njit(cache=True, nogil=True)
    def masked_weight(w: Any, mask: Any, r: Any, out: Any) -> None:
        one = np.float32(1.0)
        for i in range(w.shape[0]):
            m = one if mask[i] else np.float32(0.0)
            out[i] = w[i] * m + r[i] * (one - m)

    return _HostKernels(topk, quantise_relu_backward, relu_pool_quantise, relu_pool_quantise_backward, masked_weight)


_host_kernels = _compile_host_kernels()


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
        nchw = torch.empty(y.shape, dtype=y.dtype).numpy()  # (N, C, H', W') in y's dtype, written in one pass:
        nchw.reshape(n, -1, ho * wo)[...] = products.reshape(n, ho * wo, -1).transpose(0, 2, 1)  # rounded as .to()
        hw = torch.from_numpy(nchw)
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
    n, c, h, w = a.shape
    (kh, kw), (sh, sw) = kernel, stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    nhwc = np.ascontiguousarray(a.transpose(0, 2, 3, 1))  # channels innermost: each copy below reads runs of them
    out = np.empty((n, ho, wo, c, kh, kw), dtype=a.dtype)
    for i in range(kh):  # one strided copy per kernel place (all channels at once)
        for j in range(kw):
            place = nhwc[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]  # (N, H', W', C)
            out[:, :, :, :, i, j] = place
    return out.reshape(-1, c * kh * kw)


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
        # pairs whose mask bit is held this step (the relative threshold rule); saved with a checkpoint, so that the
        # first sync of a resumed run holds what the uninterrupted run's does
        self.register_buffer("hold", torch.zeros(n_out, n_in, dtype=torch.bool))
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
        top = topk_mask(ranked, self.keep)
        return torch.where(self.hold, self.mask, top) if self.hold.numpy().any() else top

    def kept_inputs(self) -> float:
        return self.keep / self.n_out

    def _mean_g(self) -> float:
        """mean|G| of the kept pairs, or (``scale_over_all``) of every pair's ``weight``: a pruned pair keeps there
        the magnitude it conducts at when kept (its formed or last reinstated conductance)."""
        pairs = self.weight.abs() if self.scale_over_all else self.weight[self.mask].abs()
        return max(float(pairs.mean()) if pairs.numel() else 0.0, 1e-6)

    def effective_weight(self) -> torch.Tensor:
        ranked = self.scores.abs() if self.by_magnitude else self.scores  # the gradient follows the ranking
        if _host_kernels is not None and self._fusable_weight(ranked):
            out: torch.Tensor = MaskedWeight.apply(ranked, self.weight, self.mask, self.residual)
            return out
        on = self.mask.to(self.weight.dtype)
        return self.weight * ChipMask.apply(ranked, self.mask) + self.residual * (1 - on)

    def _fusable_weight(self, ranked: torch.Tensor) -> bool:
        """Whether :class:`MaskedWeight` computes the effective weight (float32 CPU tensors in memory order)."""
        tensors = (ranked, self.weight, self.residual, self.mask)
        return (
            ranked.dtype == self.weight.dtype == self.residual.dtype == torch.float32
            and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)
            and not (self.weight.requires_grad or self.residual.requires_grad)
        )


class WOLayer(CrossbarLayer):
    """Weight optimisation: ``master`` trained on the host, the chip holds ``weight`` as last programmed."""

    def __init__(self, name: str, n_in: int, n_out: int, bits: int) -> None:
        super().__init__(name, n_in, n_out, bits)
        self.master = nn.Parameter(torch.zeros(n_out, n_in))

    def effective_weight(self) -> torch.Tensor:
        out: torch.Tensor = ChipWeight.apply(self.master, self.weight)
        return out


LayerFactory = Callable[[str, int, int, int], CrossbarLayer]
