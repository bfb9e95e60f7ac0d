"""The fused activation quantiser (layers.FusedQuantise, one compiled pass each way) against the torch rule it
replaces, ``q = clamp(act * (levels / clip), 0, levels)`` valued ``q + (round(q) - q).detach()``: the same bits
forward (sign of zero included) and the same gradient, on random activations and on the edges (0, -0, the clip,
half-way codes, above the clip, negative), with a fixed clip and a per-batch tensor clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rramctl.training import layers
from rramctl.training.layers import quantise

pytestmark = pytest.mark.skipif(layers._quantise_kernels is None, reason="the fused quantiser needs numba")


def _reference(act: torch.Tensor, bits: int, clip: float | torch.Tensor) -> torch.Tensor:
    levels = 2**bits - 1
    q = torch.clamp(act * (levels / clip), 0, levels)
    return q + (torch.round(q) - q).detach()


def _activations(seed: int, bits: int, clip: float) -> torch.Tensor:
    g = np.random.default_rng(seed)
    a = g.normal(0.5 * clip, clip, size=(7, 5, 11, 13)).astype(np.float32)
    step = clip / (2**bits - 1)
    edges = np.array([0.0, -0.0, clip, clip * 1.0001, -1e-9, 0.5 * step, 1.5 * step, 2.5 * step, 1e30, -1e30])
    a.reshape(-1)[: edges.size] = edges.astype(np.float32)
    a.reshape(-1)[edges.size : 200] = np.round(a.reshape(-1)[edges.size : 200] / step * 2) / 2 * step  # half codes
    return torch.from_numpy(a)


@pytest.mark.parametrize(("bits", "clip", "tensor_clip"), [(4, 3.0, False), (3, 2.9, False), (4, 0.0, True),
                                                          (8, 3.3, False), (3, 0.0, True)])  # fmt: skip
@pytest.mark.parametrize("seed", range(4))
def test_the_fused_quantiser_is_the_torch_rule(bits: int, clip: float, tensor_clip: bool, seed: int) -> None:
    base = _activations(seed, bits, clip or 1.7)
    if seed % 2:  # as the networks use it, after a ReLU (zeros, no negatives); else negatives too
        base = torch.relu(base)
    outs, grads = [], []
    for fused in (True, False):
        act = base.clone().requires_grad_(True)
        c: float | torch.Tensor = act.detach().max().clamp_min(1e-12) if tensor_clip else clip
        y = quantise(act, bits, c) if fused else _reference(act, bits, c)
        y.backward(torch.from_numpy(np.random.default_rng(seed + 9).normal(size=y.shape).astype(np.float32)))
        outs.append(y.detach())
        assert act.grad is not None
        grads.append(act.grad)
    assert outs[0].numpy().tobytes() == outs[1].numpy().tobytes()  # every bit, the sign of zero too
    assert grads[0].numpy().tobytes() == grads[1].numpy().tobytes()
    assert 0 < int((outs[0] == 2**bits - 1).sum()) < outs[0].numel()  # the clip is reached, not everywhere


def test_the_fused_quantiser_runs_where_it_applies() -> None:
    act = torch.rand(4, 6, requires_grad=True)
    assert quantise(act, 4, 3.0).grad_fn.__class__.__name__.startswith("FusedQuantise")
    assert not quantise(act.double(), 4, 3.0).grad_fn.__class__.__name__.startswith("FusedQuantise")
    assert not quantise(act.t(), 4, 3.0).grad_fn.__class__.__name__.startswith("FusedQuantise")  # not contiguous
