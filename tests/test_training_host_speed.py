"""The host step's compiled shortcuts (numba) against the torch expressions they replace, bit for bit forward and
back: the top-k mask's radix select (layers.topk_mask), ReLU inside the activation quantiser, ReLU + 2x2 max-pool +
quantiser in one pass (layers.relu_pool_quantise), the effective weight of a TO layer (layers.MaskedWeight), the
threshold rule (topology.threshold_updates) and the mask diff (topology._mask_changes); then whole training steps
with the shortcuts and without them (the torch expressions), every weight, score, mask, momentum and chip state alike.
Edges included: ties, -0, NaN, inf, subnormals, -0 gradients, values at the clip and at the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rramctl.training import layers, topology
from rramctl.training.config import TrainConfig
from rramctl.training.layers import TOLayer, quantise, relu_pool_quantise, topk_mask
from rramctl.training.runner import Run
from training_fixtures import easy_images

pytestmark = pytest.mark.skipif(layers._host_kernels is None, reason="the compiled host shortcuts need numba")

EDGES = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1e-39, 3.0, 3.0001, 0.1, 0.3, 0.5], dtype=np.float32)


def _bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().numpy().tobytes()


def _kthvalue_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """topk_mask's rule as torch ran it before (kthvalue, then ties by lower flat index)."""
    flat = scores.flatten()
    n = flat.numel()
    if keep >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    cut = torch.kthvalue(flat, n - keep + 1).values
    mask = flat > cut
    ties = (flat == cut).nonzero().flatten()
    mask[ties[: keep - int(mask.sum())]] = True
    return mask.view_as(scores)


def _scores(kind: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = np.random.default_rng(seed)
    if kind == "ties":
        a = g.integers(-3, 4, shape).astype(np.float32)
    elif kind == "zeros":  # +0 and -0 mixed: equal values, different bits
        a = g.choice(np.array([0.0, -0.0, 1.0, -1.0], dtype=np.float32), shape)
    elif kind == "edges":
        a = g.normal(size=shape).astype(np.float32)
        both = np.concatenate([EDGES, -EDGES])[: a.size]
        a.reshape(-1)[: both.size] = both
    elif kind == "close":  # neighbouring floats: the radix select's last bits decide
        a = np.float32(0.25) + g.integers(0, 5000, shape).astype(np.float32) * np.float32(np.finfo(np.float32).eps)
    else:
        a = g.normal(size=shape).astype(np.float32) * np.float32(10.0) ** g.integers(-30, 30, shape).astype(np.float32)
    return torch.from_numpy(a)


@pytest.mark.parametrize("kind", ["ties", "zeros", "edges", "close", "wide"])
@pytest.mark.parametrize("shape", [(1,), (7, 3), (64, 9), (16, 576), (128, 400)])
def test_radix_select_mask_is_the_kthvalue_mask(kind, shape):
    scores = _scores(kind, shape, seed=len(kind) * 7 + shape[0])
    n = scores.numel()
    for keep in sorted({1, 2, n // 3, n // 2, n - 1, n}):
        if keep >= 1:
            assert torch.equal(topk_mask(scores, keep), _kthvalue_mask(scores, keep)), (kind, shape, keep)


def test_radix_select_leaves_nan_scores_to_kthvalue():
    scores = _scores("wide", (20, 30), seed=3)
    scores[4, 7] = float("nan")
    out = np.empty(scores.numel(), dtype=np.bool_)
    flat = scores.flatten().numpy()
    assert not layers._host_kernels.topk(flat, flat.view(np.uint32), 100, out)
    with pytest.raises(layers.DivergedError):  # the fallback refuses a NaN score (a mask of fewer than k: no mask)
        topk_mask(scores, 100)


def _activations(seed: int, shape: tuple[int, ...], clip: float, bits: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    a = g.normal(0.2 * clip, clip, size=shape).astype(np.float32)
    step = clip / (2**bits - 1)
    flat = a.reshape(-1)
    edges = np.concatenate([EDGES, -EDGES, np.float32([clip, clip * 1.0001, 0.5 * step, 1.5 * step, np.nan, -np.nan])])
    flat[: edges.size] = edges
    flat[edges.size : 400] = np.round(flat[edges.size : 400] / step * 2) / 2 * step  # half codes
    flat[400:900] = np.round(flat[400:900] / step) * step  # whole codes: ties in the pool windows
    flat[900:1200] = 0.0
    return a


def _grad(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    g = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    g.reshape(-1)[:50] = -0.0  # a -0 gradient must land as torch's kernels leave it
    g.reshape(-1)[50:60] = 0.0
    return torch.from_numpy(g)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Every bit equal; NaNs only as NaN (the value of a NaN activation is meaningless, its place is not)."""
    x, y = a.detach().numpy(), b.detach().numpy()
    nan = np.isnan(x)
    return bool((nan == np.isnan(y)).all()) and x[~nan].tobytes() == y[~nan].tobytes()


@pytest.mark.parametrize(("bits", "clip"), [(4, 3.0), (3, 2.9), (8, 3.3)])
@pytest.mark.parametrize("seed", range(3))
def test_relu_inside_the_quantiser_is_relu_then_the_quantiser(bits, clip, seed):
    base = torch.from_numpy(_activations(seed, (6, 5, 9, 11), clip, bits))
    grad = _grad(seed + 1, base.shape)
    outs, grads = [], []
    for fused in (True, False):
        act = base.clone().requires_grad_(True)
        y = quantise(act, bits, clip, relu=True) if fused else quantise(F.relu(act), bits, clip)
        below = type(y.grad_fn.next_functions[0][0]).__name__  # fused: the leaf itself, else F.relu's backward
        assert type(y.grad_fn).__name__ == "FusedQuantiseBackward" and (below == "AccumulateGrad") == fused
        y.backward(grad)
        outs.append(y)
        grads.append(act.grad)
    assert _same(outs[0], outs[1])
    assert _bits(grads[0]) == _bits(grads[1])


@pytest.mark.parametrize(("bits", "clip"), [(4, 3.0), (3, 2.9)])
@pytest.mark.parametrize("shape", [(5, 16, 10, 10), (3, 4, 11, 13), (2, 3, 2, 2)])
@pytest.mark.parametrize("seed", range(3))
def test_relu_pool_quantise_is_the_three_torch_steps(bits, clip, shape, seed):
    base = torch.from_numpy(_activations(seed, shape, clip, bits)) if np.prod(shape) >= 1200 else torch.randn(shape)
    grad = _grad(seed + 5, (*shape[:2], shape[2] // 2, shape[3] // 2))
    outs, grads = [], []
    for fused in (True, False):
        act = base.clone().requires_grad_(True)
        y = relu_pool_quantise(act, bits, clip) if fused else quantise(F.max_pool2d(F.relu(act), 2), bits, clip)
        assert fused == type(y.grad_fn).__name__.startswith("FusedReluPoolQuantise")
        y.backward(grad)
        outs.append(y)
        grads.append(act.grad)
    assert outs[0].shape == outs[1].shape
    assert _same(outs[0], outs[1])
    assert _bits(grads[0]) == _bits(grads[1])
    with torch.no_grad():  # evaluation: the same codes without a graph
        assert _same(relu_pool_quantise(base, bits, clip), quantise(F.max_pool2d(F.relu(base), 2), bits, clip))


def test_relu_pool_quantise_falls_back_where_it_does_not_apply():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert "FusedReluPoolQuantise" not in type(relu_pool_quantise(x, 4, 3.0).grad_fn).__name__
    assert "FusedReluPoolQuantise" not in type(relu_pool_quantise(x.float()[:, :, :, :5], 4, 3.0).grad_fn).__name__


@pytest.mark.parametrize("by_magnitude", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_masked_weight_is_the_tensor_expression(by_magnitude, seed):
    g = torch.Generator().manual_seed(seed)
    layer = TOLayer("F1", 40, 24, 4, 0.5, by_magnitude)
    w = torch.randn(24, 40, generator=g) * 27
    w.view(-1)[:6] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-45, -1e-45])
    layer.weight.copy_(w)
    layer.mask.copy_(torch.rand(24, 40, generator=g) < 0.5)
    layer.residual.copy_(torch.randn(24, 40, generator=g) * 0.1 * ~layer.mask)
    layer.residual.view(-1)[6:10] = torch.tensor([-0.0, 0.0, 3.0, -1e-45])
    with torch.no_grad():
        layer.scores.copy_(torch.randn(24, 40, generator=g))
    grad = torch.randn(24, 40, generator=g)
    grad.view(-1)[:20] = -0.0
    outs, grads = [], []
    for fused in (True, False):
        layer.scores.grad = None
        if fused:
            y = layer.effective_weight()
            assert type(y.grad_fn).__name__.startswith("MaskedWeight")
        else:
            on = layer.mask.to(layer.weight.dtype)
            ranked = layer.scores.abs() if by_magnitude else layer.scores
            y = layer.weight * layers.ChipMask.apply(ranked, layer.mask) + layer.residual * (1 - on)
        y.backward(grad)
        outs.append(y)
        grads.append(layer.scores.grad)
    assert _same(outs[0], outs[1])
    assert _bits(grads[0]) == _bits(grads[1])


@pytest.mark.parametrize("ts", [5e-3, 5e-4, 0.0, 1e-2])
def test_compiled_threshold_rule_is_the_torch_rule(ts):
    layer = TOLayer("C2", 576, 16, 4, 0.5, False)
    g = torch.Generator().manual_seed(int(ts * 1e5))
    old = torch.randn(16, 576, generator=g)
    d = torch.randn(16, 576, generator=g) * 2 * max(ts, 1e-3)
    t32 = np.float32(ts)
    edge = torch.tensor([t32, np.nextafter(t32, np.float32(1)), np.nextafter(t32, np.float32(0)), -t32, 0.0, -0.0])
    d.view(-1)[: edge.numel()] = edge  # at the threshold, by a float either side
    d.view(-1)[10] = float("nan")
    results = []
    for fused in (True, False):
        with torch.no_grad():
            layer.scores.copy_(old + d)
        kernel = topology._kernels
        try:
            if not fused:
                topology._kernels = None
            dropped = topology.threshold_updates([layer], {"C2": old.clone()}, ts)
        finally:
            topology._kernels = kernel
        results.append((dropped, _bits(layer.scores)))
    assert results[0] == results[1]


def test_mask_changes_are_the_nonzero_lists():
    g = torch.Generator().manual_seed(0)
    for shape, flips in (((128, 400), 0.5), ((128, 400), 0.01), ((16, 576), 0.002), ((1, 5), 0.5), ((3, 3), 0.5)):
        mask = torch.rand(shape, generator=g) < 0.5
        want = mask ^ (torch.rand(shape, generator=g) < flips)
        prune, reinstate = topology._mask_changes(mask, want)
        assert np.array_equal(prune, (mask & ~want).nonzero().numpy()) and prune.dtype == np.int64
        assert np.array_equal(reinstate, (~mask & want).nonzero().numpy()) and reinstate.dtype == np.int64
        assert prune.shape[1] == reinstate.shape[1] == 2
    same = torch.ones(4, 4, dtype=torch.bool)
    assert all(a.shape == (0, 2) for a in topology._mask_changes(same, same))


def _trace(tmp_path, name: str, data, steps: int, backend: str, **settings) -> dict[str, bytes]:
    cfg = TrainConfig(task="fmnist-cnn", backend=backend, epochs=1, seed=1, **settings)
    run = Run.open(cfg, tmp_path / name, data)
    try:
        bs = cfg.optimiser.batch_size
        inputs = run.train_split.inputs(run.raw_inputs)
        out: dict[str, bytes] = {}
        for s in range(steps):
            idx = np.arange(s * bs, (s + 1) * bs) % len(run.train_split)
            loss, ok = run._step(inputs[idx], run.train_split.y[idx])
            out[f"step{s}"] = np.float64(loss).tobytes() + bytes([ok])
        out["flips"] = repr(sorted(run.progress.flips.items())).encode()
        out["dropped"] = repr(run.progress.dropped_updates).encode()
        for k, v in run.net.state_dict().items():
            out[k] = _bits(v)
        for i, p in enumerate(run._optimised()):
            buf = run.opt.state.get(p, {}).get("momentum_buffer")
            out[f"momentum{i}"] = b"" if buf is None else _bits(buf)
        out["counts"] = repr(run.mapped.counts.as_dict()).encode()
        run.recalibrate_batchnorm()
        acc, loss, conf = run.evaluate(run.test_split)
        out["eval"] = np.float64([acc, loss]).tobytes() + conf.tobytes()
        for a, chip in enumerate(run.mapped.chips):
            out[f"chip{a}"] = chip.read(None).tobytes()  # every cell's conductance after the same reads
        return out
    finally:
        run.close()


SETTINGS = [
    {"optimiser": {"batch_size": 32}},
    {"optimiser": {"batch_size": 24}, "recipe": "paper"},
    {"optimiser": {"batch_size": 16}, "to": {"keep_margin": 0.01, "rank": "magnitude"},
     "network": {"dropout": 0.2, "weight_noise": 0.1, "bn_affine": True}},
    {"optimiser": {"batch_size": 16}, "network": {"pool_order": "before-norm"}, "threshold": {"rule": "relative"}},
    {"optimiser": {"batch_size": 16}, "method": "wo"},
]  # fmt: skip


def _compare(tmp_path, monkeypatch, backend: str, settings: dict, steps: int = 3) -> None:
    easy = easy_images(n_train=96, n_test=40)
    fast = _trace(tmp_path, "fast", easy, steps, backend, **settings)
    monkeypatch.setattr(layers, "_host_kernels", None)
    monkeypatch.setattr(topology, "_kernels", None)
    slow = _trace(tmp_path, "slow", easy, steps, backend, **settings)
    assert fast.keys() == slow.keys()
    assert [k for k in fast if fast[k] != slow[k]] == []


@pytest.mark.parametrize("settings", SETTINGS)
def test_training_steps_with_and_without_the_shortcuts_are_identical(tmp_path, monkeypatch, settings):
    _compare(tmp_path, monkeypatch, "software", settings)


@pytest.mark.slow
@pytest.mark.parametrize("forward", ["host", "chip"])
def test_emulated_training_steps_with_and_without_the_shortcuts_are_identical(tmp_path, monkeypatch, forward):
    """On the emulated chip (its read noise, relaxation and every op's serial): the same chip state after the same
    steps (each run electroforms its chip: about a minute)."""
    _compare(tmp_path, monkeypatch, "emulator", {"optimiser": {"batch_size": 16}, "forward": forward}, steps=2)
