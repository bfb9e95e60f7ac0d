"""The paper's networks (seed 000 Methods "CNN backbone", "CRNN backbone") as layers whose matrix
products run on a crossbar, with batch-norm, ReLU, pooling and activation quantisation on the host.

Every crossbar layer is a (n_out, n_in) matrix; a convolution's kernel is one matrix column of
C_in*kh*kw rows. Inputs to every crossbar layer are unsigned ``bits``-bit integers, as the chip applies
them bit-serially (seed 000 Methods "Multi-Bit vector-matrix multiplications"). The layer type (what is
trained) comes from the training method through a layer factory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rramctl.training.config import NetworkConfig
from rramctl.training.layers import CrossbarLayer, Executor, LayerFactory, quantise, relu_pool_quantise


def times(y: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
    """``y * s``, skipped where ``s`` is the number 1.0 (``fixed`` codes' step), which leaves every bit as it is,
    forward and back (x * 1.0 == x, a gradient times 1.0 likewise)."""
    return y if isinstance(s, float) and s == 1.0 else y * s


class CrossbarNet(nn.Module):
    """Base: crossbar layers in order, host-side normalisation, input and activation quantisation."""

    bits: int
    conv_layers: tuple[str, ...] = ("c1", "c2")  # the layers the paper's code follows with batch-norm

    def __init__(self, cfg: NetworkConfig, bits: int) -> None:
        super().__init__()
        self.cfg, self.bits = cfg, bits
        self.norms = nn.ModuleDict()

    def _set_noise(self) -> None:
        """network.weight_noise on every crossbar layer (subclasses call it once their layers exist)."""
        for layer in self.crossbar_layers():
            layer.noise = self.cfg.weight_noise

    def crossbar_layers(self) -> list[CrossbarLayer]:
        return [m for m in self.modules() if isinstance(m, CrossbarLayer)]

    def set_executor(self, executor: Executor | None) -> None:
        for layer in self.crossbar_layers():
            layer.executor = executor

    def q(self, act: torch.Tensor, relu: bool = False) -> tuple[torch.Tensor, float | torch.Tensor]:
        """Unsigned codes of (post-ReLU) activations and the value of one code: ``fixed`` (ours) clips to
        [0, act_clip] and keeps the products in code units (step 1); ``minmax`` (the paper's hardware code) maps the
        batch's own maximum to the top code, and the host multiplies the next layer's products by the step.
        ``relu``: the codes of ``F.relu(act)`` (with ``fixed``, ReLU runs inside the quantiser's passes)."""
        if self.cfg.act_quant == "fixed":
            return quantise(act, self.bits, self.cfg.act_clip, relu=relu), 1.0
        if relu:
            act = F.relu(act)
        top = act.detach().max().clamp_min(1e-12)
        return quantise(act, self.bits, top), top / (2**self.bits - 1)

    def q_relu_pool(self, act: torch.Tensor) -> tuple[torch.Tensor, float | torch.Tensor]:
        """``self.q(F.max_pool2d(F.relu(act), 2))``; with ``fixed`` codes in one compiled pass each way."""
        if self.cfg.act_quant == "fixed":
            return relu_pool_quantise(act, self.bits, self.cfg.act_clip), 1.0
        return self.q(F.max_pool2d(F.relu(act), 2))

    def drop(self, x: torch.Tensor, s: float | torch.Tensor) -> tuple[torch.Tensor, float | torch.Tensor]:
        """network.dropout while training: a random fraction of the codes set to 0 (the rest stay integer codes, as
        the chip takes them) and the step of one code divided by 1 - dropout (inverted dropout, applied on the host
        to the next products)."""
        p = self.cfg.dropout
        if not self.training or p == 0:
            return x, s
        return x * (torch.rand_like(x) >= p).to(x.dtype), s / (1 - p)

    def _bn(self, key: str, features: int, dims: int) -> None:
        """Batch-norm after layer ``key`` (every layer, or the convolutions only: network.batch_norm)."""
        if self.cfg.batch_norm == "every-layer" or key.split(".")[0] in self.conv_layers:
            bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
            self.norms[key.replace(".", "_")] = bn(features, affine=self.cfg.bn_affine)

    def norm(self, key: str, layer: CrossbarLayer, y: torch.Tensor) -> torch.Tensor:
        """Batch-norm where there is one, else the layer's fixed output scale (network.batch_norm = conv-only)."""
        k = key.replace(".", "_")
        if k in self.norms:
            out: torch.Tensor = self.norms[k](y)
            return out
        return y / layer.fixed_scale(real_inputs=self.cfg.act_quant == "minmax")

    def quantise_input(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes: ``fixed`` inputs already are; ``minmax`` / ``quantile`` scale each batch of features in
        [0, 1] by its own min..max or 1st..99th percentile to the input bits (the paper's code)."""
        if self.cfg.input_quant == "fixed":
            return x
        levels = 2**self.bits - 1
        if self.cfg.input_quant == "minmax":
            lo, hi = x.min(), x.max()
        else:
            qs = torch.quantile(x.flatten().float(), torch.tensor([0.01, 0.99]))
            lo, hi = qs[0], qs[1]
        return torch.round(torch.clamp((x - lo) / (hi - lo).clamp_min(1e-12), 0, 1) * levels)


class FmnistCNN(CrossbarNet):
    """seed 000 Methods "CNN backbone": C1 64x1x3x3 -> 64x12x12, C2 16x64x3x3 -> 16x10x10, 2x2 max-pool
    -> 400, F1 128x400, F2 10x128; inputs 14x14, 4-bit (m = 4 for the CNN). C2's max-pool after its ReLU (ours)
    or before its batch-norm (the paper's code): ``network.pool_order``."""

    input_shape = (1, 14, 14)

    def __init__(self, cfg: NetworkConfig, make: LayerFactory) -> None:
        super().__init__(cfg, bits=4)
        self.c1, self.c2 = make("C1", 9, 64, 4), make("C2", 576, 16, 4)
        self.f1, self.f2 = make("F1", 400, 128, 4), make("F2", 128, 10, 4)
        for key, n, dims in (("c1", 64, 2), ("c2", 16, 2), ("f1", 128, 1), ("f2", 10, 1)):
            self._bn(key, n, dims)
        self._set_noise()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantise_input(x)  # C1 is followed by batch-norm: the input's scale needs no step
        x, s = self.q(self.norm("c1", self.c1, self.c1.conv(x, (3, 3))), relu=True)
        y = times(self.c2.conv(x, (3, 3)), s)
        if self.cfg.pool_order == "before-norm":  # the paper's code: max-pool, then batch-norm and ReLU
            x, s = self.drop(*self.q(self.norm("c2", self.c2, F.max_pool2d(y, 2)), relu=True))
        else:
            x, s = self.drop(*self.q_relu_pool(self.norm("c2", self.c2, y)))
        x, s = self.drop(*self.q(self.norm("f1", self.f1, times(self.f1(x.flatten(1)), s)), relu=True))
        return self.norm("f2", self.f2, times(self.f2(x), s))


class FsddCRNN(CrossbarNet):
    """seed 000 Methods "CRNN backbone": 23x15 MFCC maps, 3-bit; C1 64x1x3x2, max-pool -> 64x11x14,
    C2 32x64x3x2, max-pool -> 32x2x8, R1 (W_ih 128x32, W_hh 128x128, 4 time steps), F1 256x128, F2 10x256.

    (ours, the Methods leave them open) pools: (2,1) with ceil mode after C1, adaptive max to 2x8 after
    C2 (so the paper's 23x20 feature maps fit too); the 32x2x8 maps become 4 time steps of 32 inputs by a
    further 2x2 max-pool; the recurrence is h(t) = q(ReLU(BN(W_ih x(t) + W_hh h(t-1)))) with h(0) = 0, since
    the chip takes unsigned inputs; the R1 output is h(4) or the mean over the steps (network.time_aggregation,
    re-quantised); batch-norm statistics per time step. Without batch-norm after R1 (``network.batch_norm =
    conv-only``) each of W_ih x(t) and W_hh h(t-1) is divided by its own matrix's fixed scale, as the paper's code
    divides each matrix by its own. ``network.conv_layout = strided`` takes the paper code's
    front end instead (convolutions of stride (2, 1), max-pools, then batch-norm)."""

    input_shape = (1, 23, 15)
    steps = 4

    def __init__(self, cfg: NetworkConfig, make: LayerFactory) -> None:
        super().__init__(cfg, bits=3)
        self.c1, self.c2 = make("C1", 6, 64, 3), make("C2", 384, 32, 3)
        self.r_ih, self.r_hh = make("R1ih", 32, 128, 3), make("R1hh", 128, 128, 3)
        self.f1, self.f2 = make("F1", 128, 256, 3), make("F2", 256, 10, 3)
        # one batch-norm per time step (ours, as in recurrent batch normalisation, Cooijmans et al. 2017):
        # step 0 has no W_hh term, so one shared set of running statistics would misnormalise at test time
        bns = [("c1", 64, 2), ("c2", 32, 2), *((f"r.{t}", 128, 1) for t in range(self.steps))]
        for key, n, dims in (*bns, ("f1", 256, 1), ("f2", 10, 1)):
            self._bn(key, n, dims)
        self._set_noise()

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, float | torch.Tensor]:
        """The convolutional front end (network.conv_layout): codes of the (N, 32, 1, 4) map whose 4 columns are
        the time steps, and the value of one code."""
        x = self.quantise_input(x)  # C1 is followed by batch-norm: the input's scale needs no step
        if self.cfg.conv_layout == "strided":  # the paper's code: conv stride (2, 1) -> max-pool -> BN -> ReLU
            x = F.max_pool2d(self.c1.conv(x, (3, 2), stride=(2, 1)), 2)
            x, s = self.q(F.relu(self.norm("c1", self.c1, x)))  # (N, 64, 5, 9) on 23x20 maps
            x = F.adaptive_max_pool2d(self.c2.conv(x, (3, 2), stride=(2, 1)) * s, (1, self.steps))
            return self.q(F.relu(self.norm("c2", self.c2, x)))  # (N, 32, 1, 4)
        x = F.max_pool2d(F.relu(self.norm("c1", self.c1, self.c1.conv(x, (3, 2)))), (2, 1), ceil_mode=True)
        x, s = self.q(x)  # (N, 64, 11, 14)
        x = F.adaptive_max_pool2d(F.relu(self.norm("c2", self.c2, self.c2.conv(x, (3, 2)) * s)), (2, 8))
        return self.q(F.max_pool2d(x, 2))  # (N, 32, 1, 4)

    def recurrent_norm(self, t: int, a_ih: torch.Tensor, a_hh: torch.Tensor | None) -> torch.Tensor:
        """R1's pre-activation at step t from its two products: the batch-norm of step t of their sum where there
        is one, else each product divided by its own matrix's fixed scale (the paper's code divides W_ih and W_hh by
        their own scales; W_hh's, over 128 inputs, is twice W_ih's over 32)."""
        if f"r_{t}" in self.norms:
            return self.norm(f"r.{t}", self.r_ih, a_ih if a_hh is None else a_ih + a_hh)
        a = self.norm(f"r.{t}", self.r_ih, a_ih)
        return a if a_hh is None else a + self.norm(f"r.{t}", self.r_hh, a_hh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, s_in = self.features(x)
        seq = seq.flatten(2)  # (N, 32, 4)
        h, s_h = torch.zeros(seq.shape[0], 128, dtype=seq.dtype), s_in
        acts = []
        for t in range(self.steps):
            a = self.r_ih(seq[:, :, t]) * s_in
            b = self.r_hh(h) * s_h if t > 0 else None  # h(0) = 0 contributes nothing; skip the multiply
            acts.append(F.relu(self.recurrent_norm(t, a, b)))
            h, s_h = self.q(acts[-1])
        if self.cfg.time_aggregation == "mean":
            h, s_h = self.q(torch.stack(acts).mean(0))
        h, s_h = self.drop(h, s_h)
        x, s = self.drop(*self.q(F.relu(self.norm("f1", self.f1, self.f1(h) * s_h))))
        return self.norm("f2", self.f2, self.f2(x) * s)


TASKS: dict[str, type[FmnistCNN] | type[FsddCRNN]] = {"fmnist-cnn": FmnistCNN, "fsdd-crnn": FsddCRNN}


def build_network(task: str, cfg: NetworkConfig, make: LayerFactory) -> CrossbarNet:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return TASKS[task](cfg, make)
