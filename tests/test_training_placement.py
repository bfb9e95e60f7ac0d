import numpy as np
import pytest
from rramctl.geometry import PAIR_OFFSET, ROWS
from rramctl.training.placement import LayerShape, PlacementError, place
from training_fixtures import to_net


@pytest.mark.parametrize("task,pairs", [("fmnist-cnn", 62272), ("fsdd-crnn", 68480)])
def test_paper_networks_fit_one_array(task, pairs):
    net = to_net(task)
    p = place([la.shape for la in net.crossbar_layers()])
    assert p.arrays_used == 1
    occupied = np.zeros((ROWS, PAIR_OFFSET), dtype=int)
    for t in p.tiles:
        occupied[t.row : t.row + t.n_rows, t.col : t.col + t.n_cols] += 1
    assert occupied.max() == 1 and occupied.sum() == pairs
    for la in p.layers:  # every weight covered exactly once
        cover = np.zeros((la.n_out, la.n_in), dtype=int)
        for t in p.tiles_of(la.name):
            cover[t.out0 : t.out0 + t.n_cols, t.in0 : t.in0 + t.n_rows] += 1
        assert (cover == 1).all()
    assert "utilisation" in p.report() and "C1" in p.report()


def test_wide_inputs_split_into_row_blocks():
    p = place([LayerShape("C2", 576, 16)])
    assert [(t.in0, t.n_rows) for t in p.tiles] == [(0, 512), (512, 64)]


def test_too_big_says_by_how_much_and_more_arrays_fit():
    layers = [LayerShape("big", 1024, 300)]
    with pytest.raises(PlacementError, match="176128 pairs too many"):
        place(layers)
    assert place(layers, n_arrays=3).arrays_used == 3


def test_bad_shapes():
    with pytest.raises(PlacementError):
        LayerShape("x", 0, 3)
    with pytest.raises(PlacementError, match="unique"):
        place([LayerShape("a", 2, 2), LayerShape("a", 3, 3)])
    with pytest.raises(PlacementError, match="n_arrays"):
        place([LayerShape("a", 2, 2)], n_arrays=0)
