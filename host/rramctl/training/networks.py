"""The paper's networks (seed 000 Methods "CNN backbone", "CRNN backbone") as layers whose matrix
products run on a crossbar, with batch-norm, ReLU, pooling and activation quantisation on the host.

Every crossbar layer is a (n_out, n_in) matrix; convolutions are unrolled (im2col) so one kernel is one
matrix column of C_in*kh*kw rows. Inputs to every crossbar layer are unsigned ``bits``-bit integers,
as the chip applies them bit-serially (seed 000 Methods "Multi-Bit vector-matrix multiplications").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from rramctl.training.placement import LayerShape

# (layer, integer inputs (N, n_in), bits) -> products (N, n_out) in uS x LSB, computed on the chip
Executor = Callable[[str, NDArray[np.int64], int], NDArray[np.float64]]
Mode = Literal["to", "wo"]


def quantise(act: torch.Tensor, bits: int, clip: float) -> torch.Tensor:
    """Unsigned ``bits``-bit codes of ``act`` clipped to [0, clip] (integer-valued floats), with a
    straight-through gradient inside the clip range (ours: uniform quantiser, fixed clip)."""
    levels = 2**bits - 1
    q = torch.clamp(act * (levels / clip), 0, levels)
    return q + (torch.round(q) - q).detach()


def topk_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` largest scores (ties broken by lower flat index)."""
    flat = scores.flatten()
    order = torch.argsort(-flat, stable=True)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.view_as(scores)


class CrossbarLayer(nn.Module):
    """One weight matrix on the crossbar.

    ``weight`` holds the conducting weights (G+ - G-, uS) read back from the chip; in TO mode the
    chip holds ``weight * mask`` (pruned pairs reset) and ``scores`` are trained; in WO mode ``master``
    is trained and the chip holds ``weight`` as last programmed.
    """

    def __init__(self, name: str, n_in: int, n_out: int, bits: int, sparsity: float, mode: Mode) -> None:
        super().__init__()
        self.name, self.n_in, self.n_out, self.bits, self.mode = name, n_in, n_out, bits, mode
        self.keep = max(1, round((1 - sparsity) * n_in * n_out))
        self.register_buffer("weight", torch.zeros(n_out, n_in))
        self.register_buffer("mask", torch.ones(n_out, n_in, dtype=torch.bool))
        # what the chip still reads where a pair is pruned: off-state leakage, and stuck-on cells that no
        # reset can turn off; the host's products must include it to equal the chip's
        self.register_buffer("residual", torch.zeros(n_out, n_in))
        self.scores = nn.Parameter(torch.zeros(n_out, n_in), requires_grad=mode == "to")
        self.master = nn.Parameter(torch.zeros(n_out, n_in), requires_grad=mode == "wo")
        self.executor: Executor | None = None

    @property
    def shape(self) -> LayerShape:
        return LayerShape(self.name, self.n_in, self.n_out)

    def wanted_mask(self) -> torch.Tensor:
        return topk_mask(self.scores.detach(), self.keep)

    def effective_weight(self) -> torch.Tensor:
        if self.mode == "to":
            # the mask on the chip, with a straight-through gradient to the scores (edge-popup, seed 004 eq. 3-4)
            on = self.mask.to(self.weight.dtype)
            return self.weight * (on + self.scores - self.scores.detach()) + self.residual * (1 - on)
        return self.weight + (self.master - self.master.detach())  # value on chip, gradient to master

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, n_in) integer-valued codes; returns (N, n_out) products in uS x LSB."""
        y = x @ self.effective_weight().T
        if self.executor is not None:
            codes = x.detach().round().to(torch.int64).numpy()
            hw = torch.from_numpy(self.executor(self.name, codes, self.bits)).to(y.dtype)
            y = y + (hw - y).detach()  # forward value from the chip, gradient from the float path
        return y


class CrossbarNet(nn.Module):
    """Base: crossbar layers in order, host-side batch-norm (affine optional, ours) and quantisation."""

    bits: int
    act_clip: float

    def crossbar_layers(self) -> list[CrossbarLayer]:
        return [m for m in self.modules() if isinstance(m, CrossbarLayer)]

    def set_executor(self, executor: Executor | None) -> None:
        for layer in self.crossbar_layers():
            layer.executor = executor

    def q(self, act: torch.Tensor) -> torch.Tensor:
        return quantise(act, self.bits, self.act_clip)

    def conv(self, layer: CrossbarLayer, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        """Unrolled convolution: (N, C, H, W) codes -> (N, out, H', W') products."""
        n, _, h, w = x.shape
        ho, wo = h - kernel[0] + 1, w - kernel[1] + 1
        cols = F.unfold(x, kernel)  # (N, C*kh*kw, L)
        y = layer(cols.transpose(1, 2).reshape(n * ho * wo, -1))
        return y.reshape(n, ho * wo, -1).transpose(1, 2).reshape(n, -1, ho, wo)


class FmnistCNN(CrossbarNet):
    """seed 000 Methods "CNN backbone": C1 64x1x3x3 -> 64x12x12, C2 16x64x3x3 -> 16x10x10, 2x2 max-pool
    -> 400, F1 128x400, F2 10x128; inputs 14x14, 4-bit (m = 4 for the CNN)."""

    input_shape = (1, 14, 14)

    def __init__(self, sparsity: float, mode: Mode, act_clip: float = 3.0, bn_affine: bool = False) -> None:
        super().__init__()
        self.bits, self.act_clip = 4, act_clip
        self.c1 = CrossbarLayer("C1", 9, 64, 4, sparsity, mode)
        self.c2 = CrossbarLayer("C2", 576, 16, 4, sparsity, mode)
        self.f1 = CrossbarLayer("F1", 400, 128, 4, sparsity, mode)
        self.f2 = CrossbarLayer("F2", 128, 10, 4, sparsity, mode)
        self.bn1, self.bn2 = nn.BatchNorm2d(64, affine=bn_affine), nn.BatchNorm2d(16, affine=bn_affine)
        self.bn3, self.bn4 = nn.BatchNorm1d(128, affine=bn_affine), nn.BatchNorm1d(10, affine=bn_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.q(F.relu(self.bn1(self.conv(self.c1, x, (3, 3)))))
        x = F.max_pool2d(F.relu(self.bn2(self.conv(self.c2, x, (3, 3)))), 2)
        x = self.q(x).flatten(1)
        x = self.q(F.relu(self.bn3(self.f1(x))))
        return self.bn4(self.f2(x))


class FsddCRNN(CrossbarNet):
    """seed 000 Methods "CRNN backbone": 23x15 MFCC maps, 3-bit; C1 64x1x3x2, max-pool -> 64x11x14,
    C2 32x64x3x2, max-pool -> 32x2x8, R1 (W_ih 128x32, W_hh 128x128, 4 time steps), F1 256x128, F2 10x256.

    (ours, the Methods leave them open) pools: (2,1) with ceil mode after C1, adaptive max to 2x8 after
    C2; the 32x2x8 maps become 4 time steps of 32 inputs by a further 2x2 max-pool; the recurrence is
    h(t) = q(ReLU(BN(W_ih x(t) + W_hh h(t-1)))) with h(0) = 0, since the chip takes unsigned inputs;
    the R1 output is h(4); batch-norm statistics per time step."""

    input_shape = (1, 23, 15)
    steps = 4

    def __init__(self, sparsity: float, mode: Mode, act_clip: float = 3.0, bn_affine: bool = False) -> None:
        super().__init__()
        self.bits, self.act_clip = 3, act_clip
        self.c1 = CrossbarLayer("C1", 6, 64, 3, sparsity, mode)
        self.c2 = CrossbarLayer("C2", 384, 32, 3, sparsity, mode)
        self.r_ih = CrossbarLayer("R1ih", 32, 128, 3, sparsity, mode)
        self.r_hh = CrossbarLayer("R1hh", 128, 128, 3, sparsity, mode)
        self.f1 = CrossbarLayer("F1", 128, 256, 3, sparsity, mode)
        self.f2 = CrossbarLayer("F2", 256, 10, 3, sparsity, mode)
        self.bn1, self.bn2 = nn.BatchNorm2d(64, affine=bn_affine), nn.BatchNorm2d(32, affine=bn_affine)
        # one batch-norm per time step (ours, as in recurrent batch normalisation, Cooijmans et al. 2017):
        # step 0 has no W_hh term, so one shared set of running statistics would misnormalise at test time
        self.bn_r = nn.ModuleList(nn.BatchNorm1d(128, affine=bn_affine) for _ in range(self.steps))
        self.bn3, self.bn4 = nn.BatchNorm1d(256, affine=bn_affine), nn.BatchNorm1d(10, affine=bn_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv(self.c1, x, (3, 2)))), (2, 1), ceil_mode=True)
        x = self.q(x)  # (N, 64, 11, 14)
        x = F.adaptive_max_pool2d(F.relu(self.bn2(self.conv(self.c2, x, (3, 2)))), (2, 8))  # (N, 32, 2, 8)
        seq = self.q(F.max_pool2d(x, 2)).flatten(2)  # (N, 32, 4)
        h = torch.zeros(x.shape[0], 128, dtype=x.dtype)
        for t in range(self.steps):
            a = self.r_ih(seq[:, :, t])
            if t > 0:  # h(0) = 0 contributes nothing; skip the multiply
                a = a + self.r_hh(h)
            h = self.q(F.relu(self.bn_r[t](a)))
        x = self.q(F.relu(self.bn3(self.f1(h))))
        return self.bn4(self.f2(x))


TASKS: dict[str, type[CrossbarNet]] = {"fmnist-cnn": FmnistCNN, "fsdd-crnn": FsddCRNN}


def build_network(
    task: str, sparsity: float, mode: Mode, act_clip: float = 3.0, bn_affine: bool = False
) -> CrossbarNet:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return TASKS[task](sparsity, mode, act_clip, bn_affine)
