import numpy as np
import pytest
import torch
from rramctl.software import SoftwareChip
from rramctl.training.chips import open_chips
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.placement import LayerShape, place
from rramctl.training.topology import init_from_chip, sync_masks, threshold_updates, verify_chip
from training_fixtures import to_net


def mapped(backend: str, layers: list[LayerShape], seed: int = 0) -> MappedNetwork:
    p = place(layers)
    m = MappedNetwork(open_chips(backend, p.arrays_used, seed), p)
    m.electroform()
    return m


def test_float_matmul_equals_read_back_weights_and_dedup_changes_nothing():
    m = mapped("software", [LayerShape("A", 600, 20), LayerShape("B", 30, 200)])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, (50, 600))
    x[5] = 0
    x[7] = x[3]
    w = m.read_weights("A")
    assert np.allclose(m.matmul("A", x, 4), x @ w.T)
    m.dedup = False
    assert np.allclose(m.matmul("A", x, 4), x @ w.T)
    xb = rng.integers(0, 8, (4, 30))
    assert np.allclose(m.matmul("B", xb, 3), xb @ m.read_weights("B").T)
    with pytest.raises(ValueError, match="inputs must be"):
        m.matmul("A", x[:, :10], 4)


@pytest.mark.parametrize("zero_rows", [0, 1, 17, 60])
def test_dedup_gives_each_row_its_distinct_rows_products_and_zero_rows_zero(zero_rows: int) -> None:
    """The products of the distinct rows spread back to every row (0.0 for an all-zero row, not sent), exactly:
    a tile's product rule replaced by a deterministic row-wise one."""
    m = mapped("software", [LayerShape("A", 40, 12)])
    g = np.random.default_rng(zero_rows)
    x = g.integers(0, 16, (60, 40)).astype(np.uint8)
    x[g.permutation(60)[:zero_rows]] = 0
    x[3] = x[50] if x[50].any() else x[3]
    w = g.normal(size=(40, 12))
    sent = []

    def rule(t: object, v: np.ndarray, bits: int) -> np.ndarray:
        sent.append(len(v))
        assert v.any(axis=1).all()  # no all-zero row is sent
        return v.astype(np.float64) @ w

    m._multiply = rule  # type: ignore[method-assign]
    want = np.where(x.any(axis=1)[:, None], x.astype(np.float64) @ w, 0.0)
    got = m.matmul("A", x, 4)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float64 and sent == ([len(np.unique(x[x.any(axis=1)], axis=0))] if zero_rows < 60 else [])


def test_emulator_products_track_read_back_weights():
    m = mapped("emulator", [LayerShape("A", 40, 12)])
    w = m.read_weights("A")
    x = np.random.default_rng(1).integers(0, 16, (16, 40))
    y = m.matmul("A", x, 4)
    ref = x @ w.T
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()  # ADC quantisation and read noise only
    assert m.counts.multiplies["A"] == 16


@pytest.mark.parametrize("backend", ["software", "emulator"])
def test_mask_sync_is_diff_only_and_counts_equal_flips(backend):
    net = to_net()
    p = place([la.shape for la in net.crossbar_layers()])
    m = MappedNetwork(open_chips(backend, 1, 3), p)
    m.electroform()
    init_from_chip(net, m)
    flips = sync_masks(net, m)
    assert flips == {la.name: la.n_in * la.n_out - la.keep for la in net.crossbar_layers()}
    assert m.counts.resets == {k: 2 * v for k, v in flips.items()} and not m.counts.sets
    assert verify_chip(net, m, repair=False).ok
    assert sum(sync_masks(net, m).values()) == 0  # nothing changed -> nothing issued
    # swap a few scores across the threshold: exactly those pairs are reset / set
    f2 = net.f2
    on, off = f2.mask.nonzero()[:3], (~f2.mask).nonzero()[:3]
    with torch.no_grad():
        f2.scores[on[:, 0], on[:, 1]] = -1.0
        f2.scores[off[:, 0], off[:, 1]] = 2.0
    before = m.counts.programming_ops()
    flips = sync_masks(net, m)
    after = m.counts.programming_ops()
    assert flips["F2"] == 6 and sum(flips.values()) == 6
    assert after["F2"] - before["F2"] == 2 * 6 and m.counts.sets["F2"] == 6
    assert verify_chip(net, m, repair=False).ok
    g = m.read_weights("F2")
    assert np.all(np.abs(g[on[:, 0], on[:, 1]]) < 0.5)  # pruned pairs read near zero


def test_verify_repairs_a_disturbed_chip():
    net = to_net()
    p = place([la.shape for la in net.crossbar_layers()])
    chip = SoftwareChip(0)
    m = MappedNetwork([chip], p)
    m.electroform()
    init_from_chip(net, m)
    sync_masks(net, m)
    strong = (net.f2.mask & (net.f2.weight.abs() > 5)).nonzero()[:1].numpy()
    m.prune("F2", strong)  # the chip loses a kept, conducting pair
    a = verify_chip(net, m, repair=True)
    assert a.kept_wrong == {"C1": 0, "C2": 0, "F1": 0, "F2": 1} and not any(a.pruned_wrong.values())
    assert abs(float(net.f2.weight[strong[0, 0], strong[0, 1]])) > 3  # set again and re-read
    assert verify_chip(net, m, repair=False).ok


def test_threshold_rule_drops_small_updates():
    net = to_net()
    layer = net.f2
    before = {layer.name: layer.scores.detach().clone()}
    with torch.no_grad():
        layer.scores[0, 0] += 0.1
        layer.scores[0, 1] += 1e-4
    assert threshold_updates([layer], before, 1e-3) == layer.n_in * layer.n_out - 1
    s = layer.scores.detach()
    assert float(s[0, 0]) == pytest.approx(0.1) and float(s[0, 1]) == 0.0


@pytest.mark.parametrize("backend", ["software", "emulator"])
def test_complementary_forming_gives_plus_minus_weights(backend):
    p = place([LayerShape("A", 40, 30)])
    comp = MappedNetwork(open_chips(backend, 1, 2), p)
    comp.electroform(complementary=True)
    w = comp.read_weights("A")
    assert (np.abs(w) > 3.33).mean() > 0.98  # every pair holds one conducting cell (bar unformable ones)
    assert 0.4 < (w > 0).mean() < 0.6
    indep = MappedNetwork(open_chips(backend, 1, 2), p)
    indep.electroform(complementary=False)
    assert (np.abs(indep.read_weights("A")) < 3.33).mean() > 0.2  # both or neither formed in about half


def test_host_products_include_cells_that_do_not_reset():
    """A stuck-on cell keeps conducting after its pair is pruned: the host's products (training with
    --forward host) must include it, as the chip's do."""
    net = to_net()
    p = place([la.shape for la in net.crossbar_layers()])
    chip = SoftwareChip(0)
    m = MappedNetwork([chip], p)
    m.electroform()
    init_from_chip(net, m)
    f2 = net.f2
    victim = (f2.weight.abs() > 5).nonzero()[0].numpy()
    with torch.no_grad():
        f2.scores[victim[0], victim[1]] = -1.0  # it will be pruned
    r, c = (int(m._cell_maps["F2"][k][victim[0], victim[1]]) for k in (1, 2))
    real_reset = chip.reset

    def reset_but_stuck(cells):
        n = real_reset(cells)
        stuck = (cells[:, 0] == r) & (cells[:, 1] == c)  # the G+ cell
        chip.g[cells[stuck, 0], cells[stuck, 1]] = 80.0  # stuck on: the reset did nothing
        return n

    chip.reset = reset_but_stuck
    sync_masks(net, m)
    assert not f2.mask[victim[0], victim[1]]
    x = np.random.default_rng(0).integers(0, 16, (4, f2.n_in))
    host = x @ f2.effective_weight().detach().numpy().T
    assert np.allclose(host, m.matmul("F2", x, 4), atol=1e-3)
    assert abs(float(f2.residual[victim[0], victim[1]])) > 50
    assert not verify_chip(net, m, repair=True).ok  # the stuck pair is reported (and the reset tried again)
    assert np.allclose(x @ f2.effective_weight().detach().numpy().T, m.matmul("F2", x, 4), atol=1e-3)


def test_keep_margin_swaps_a_pair_only_when_its_lead_exceeds_the_margin():
    """to.keep_margin: exactly k pairs kept; a pruned pair replaces the weakest kept one only when it outscores it
    by more than the margin."""
    from rramctl.training.layers import TOLayer

    layer = TOLayer("A", 4, 1, 4, sparsity=0.5, by_magnitude=False, margin=0.1)
    with torch.no_grad():
        layer.scores.copy_(torch.tensor([[0.9, 0.5, 0.45, 0.1]]))
    layer.mask.copy_(layer.wanted_mask())  # the first sync (all kept: the margin ranks every pair alike)
    assert layer.mask.tolist() == [[True, True, False, False]]
    with torch.no_grad():
        layer.scores[0, 2] = 0.58  # leads the weakest kept pair by 0.08 < 0.1: nothing changes
    assert layer.wanted_mask().tolist() == [[True, True, False, False]]
    with torch.no_grad():
        layer.scores[0, 2] = 0.62  # leads by 0.12 > 0.1: the two swap
    assert layer.wanted_mask().tolist() == [[True, False, True, False]]
    layer.margin = 0.0  # the plain top-k swaps at any lead
    with torch.no_grad():
        layer.scores[0, 2] = 0.51
    assert layer.wanted_mask().tolist() == [[True, False, True, False]]
    assert int(layer.wanted_mask().sum()) == layer.keep == 2
