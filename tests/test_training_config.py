"""Training configuration (nested sections, recipes, TOML, --set), methods as types, the fast host path."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from rramctl.training.config import (
    ConfigFileError,
    ThresholdConfig,
    TrainConfig,
    apply_assignments,
    leaf_fields,
    load_toml,
    recipe_defaults,
)
from rramctl.training.data import DataError, Split, load_paper_features
from rramctl.training.layers import ChipMask, ChipWeight, TOLayer, WOLayer, topk_mask
from rramctl.training.methods import METHODS, TopologyOptimisation, WeightOptimisation, method_for
from training_fixtures import to_net

# The paper code's feature file is not part of the repository: $RRAMCTL_PAPER_FEATURES names it, by default the copy
# in the shared folder beside the checkout (../shared/datasets/spoken_digit_mfcc, docs/training.md "Spoken-digit
# features vs the paper's own file"); the test that needs it skips when it is not there.
PAPER_FEATURES = Path(
    os.environ.get(
        "RRAMCTL_PAPER_FEATURES",
        Path(__file__).resolve().parents[2] / "shared/datasets/spoken_digit_mfcc/fsdd_mfcc_23x20.npz",
    )
)


def test_threshold_follows_the_learning_rate_schedule_when_asked():
    c = TrainConfig(task="fmnist-cnn", threshold={"init": 4e-3, "end": 1e-3, "step": 1e-3})
    assert c.threshold.at(0) == pytest.approx(4e-3) and c.threshold.at(5) == pytest.approx(1e-3)
    assert c.threshold.at(1, 0.25) == pytest.approx(0.25 * 3e-3)
    fixed = c.threshold.model_copy(update={"follows_lr": False})
    assert fixed.at(1, 0.25) == pytest.approx(3e-3)


@pytest.mark.parametrize("recipe", ["rramctl", "paper"])
@pytest.mark.parametrize("task", ["fmnist-cnn", "fsdd-crnn"])
def test_recipe_defaults_yield_to_explicit_values(task, recipe):
    c = TrainConfig(task=task, recipe=recipe)
    for section, values in recipe_defaults(recipe, task).items():
        assert {k: getattr(getattr(c, section), k) for k in values} == values
    assert TrainConfig.model_validate_json(c.model_dump_json()) == c  # a saved config.json reads back the same
    mixed = TrainConfig(task=task, recipe=recipe, network={"bn_affine": True}, optimiser={"batch_size": 7})
    assert mixed.network.bn_affine and mixed.optimiser.batch_size == 7
    assert mixed.network.batch_norm == c.network.batch_norm  # the rest of the section keeps the recipe's values


def test_recipes_differ_where_the_paper_code_does():
    ours, paper = TrainConfig(task="fmnist-cnn"), TrainConfig(task="fmnist-cnn", recipe="paper")
    assert (ours.optimiser.batch_size, paper.optimiser.batch_size) == (128, 60)
    assert (ours.to.lr, paper.to.lr) == (3.0, 0.1)
    assert paper.threshold.rule == "relative" and paper.to.score_init == "kaiming-uniform"
    assert paper.network.batch_norm == "conv-only" and paper.network.input_quant == "minmax"
    assert TrainConfig(task="fsdd-crnn", recipe="paper").network.input_quant == "minmax"
    assert TrainConfig(task="fsdd-crnn").data.validation == 0.1
    assert TrainConfig(task="fmnist-cnn").data.validation * 60000 == pytest.approx(5000)


def test_toml_file_and_set_assignments(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('task = "fsdd-crnn"\nepochs = 3\n[optimiser]\nbatch_size = 30\n[threshold]\nrule = "relative"\n'
                 'init = 0.01\nend = 0.007\n')  # fmt: skip
    data = apply_assignments(load_toml(f), ["optimiser.momentum=0.5", "network.time_aggregation=mean", "seed=4"])
    c = TrainConfig.model_validate(data)
    assert (c.task, c.epochs, c.seed) == ("fsdd-crnn", 3, 4)
    assert c.optimiser.batch_size == 30 and c.optimiser.momentum == 0.5
    assert c.threshold.rule == "relative" and c.network.time_aggregation == "mean"
    for bad in ("nosuch.key=1", "batch_size", "a.b.c=1"):
        with pytest.raises(ConfigFileError):
            apply_assignments({}, [bad])
    with pytest.raises(ValidationError):
        TrainConfig.model_validate(apply_assignments({"task": "fmnist-cnn"}, ["optimiser.nosuch=1"]))
    f.write_text("task = ")
    with pytest.raises(ConfigFileError):
        load_toml(f)


def test_every_setting_has_one_option_name():
    names = leaf_fields()
    assert len(names) == len(set(names))
    assert {"batch-size", "sparsity", "to-lr", "wo-lr", "validation", "recipe"} <= set(names)
    assert names["to-lr"][:2] == ("to", "lr") and names["batch-size"][:2] == ("optimiser", "batch_size")


def test_methods_are_types_with_their_own_layers():
    assert set(METHODS) == {"to", "wo"}
    to = method_for(TrainConfig(task="fmnist-cnn"))
    wo = method_for(TrainConfig(task="fmnist-cnn", method="wo"))
    assert isinstance(to, TopologyOptimisation) and isinstance(wo, WeightOptimisation)
    to_layers, wo_layers = to.build().crossbar_layers(), wo.build().crossbar_layers()
    assert all(isinstance(la, TOLayer) and not hasattr(la, "master") for la in to_layers)
    assert all(isinstance(la, WOLayer) and not hasattr(la, "scores") for la in wo_layers)


def _stable_argsort_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    order = torch.argsort(-scores.flatten(), stable=True)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.view_as(scores)


@pytest.mark.parametrize("seed", range(5))
def test_kthvalue_mask_equals_the_stable_sort_mask_ties_included(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (40, 30), generator=g).float()  # many ties
    for keep in (1, 17, 600, 1199, 1200):
        assert torch.equal(topk_mask(scores, keep), _stable_argsort_mask(scores, keep))
    cont = torch.rand(64, 9, generator=g)
    assert torch.equal(topk_mask(cont, 288), _stable_argsort_mask(cont, 288))


def test_named_straight_through_estimators():
    s = torch.randn(4, 3, requires_grad=True)
    mask = torch.rand(4, 3) > 0.5
    out = ChipMask.apply(s, mask)
    assert torch.equal(out, mask.float())
    (out * torch.arange(12.0).view(4, 3)).sum().backward()
    assert torch.equal(s.grad, torch.arange(12.0).view(4, 3))  # straight through
    m, w = torch.zeros(2, 2, requires_grad=True), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = ChipWeight.apply(m, w)
    assert torch.equal(y, w)
    y.sum().backward()
    assert torch.equal(m.grad, torch.ones(2, 2))


@pytest.mark.parametrize("task", ["fmnist-cnn", "fsdd-crnn"])
def test_fast_host_convolution_equals_the_unrolled_one(task):
    net = to_net(task)
    torch.manual_seed(0)
    for la in net.crossbar_layers():
        la.weight.copy_(torch.randn(la.weight.shape) * 27)
        la.mask.copy_(torch.rand(la.mask.shape) > 0.5)
    layer, kernel = net.c1, ((3, 3) if task == "fmnist-cnn" else (3, 2))
    x = torch.randint(0, 2**net.bits, (5, 1, *net.input_shape[1:])).float()
    fast = layer.conv(x, kernel)
    n, _, ho, wo = fast.shape
    cols = F.unfold(x, kernel).transpose(1, 2).reshape(n * ho * wo, -1)
    slow = (cols @ layer.effective_weight().T).reshape(n, ho * wo, -1).transpose(1, 2).reshape(fast.shape)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-3)


def test_validation_split_is_seeded_disjoint_and_recorded():
    s = Split(np.arange(120)[:, None], np.arange(120) % 10, 4, np.arange(120, dtype=np.float32)[:, None] / 120)
    rest, held = s.split_off(1 / 12, seed=3)
    assert len(held) == 10 and len(rest) == 110
    assert not set(held.x.ravel()) & set(rest.x.ravel())
    assert np.array_equal(held.raw.ravel() * 120, held.x.ravel().astype(np.float32))
    again, _ = s.split_off(1 / 12, seed=3)
    assert np.array_equal(again.x, rest.x)
    with pytest.raises(DataError):
        s.split_off(0.001, seed=0)
    everything, none = s.split_off(0, seed=3)  # no validation: every sample trains, nothing is drawn
    assert everything is s and len(none) == 0 and none.x.shape[1:] == s.x.shape[1:]


def test_validation_0_refuses_the_counter_of_new_best_validation_accuracies():
    """data.validation = 0 (a refit on the whole training set): TO's threshold counter needs validation accuracy,
    so it is one config error unless t_epochs replaces it or T_s cannot fall; WO ignores T_s."""
    no_val = {"data": {"validation": 0}}
    for kw in ({}, {"recipe": "paper"}, {"threshold": {"follows_lr": True}}):
        with pytest.raises(ValidationError, match="data.validation = 0 holds out no validation set") as e:
            TrainConfig(task="fsdd-crnn", **no_val, **kw)
        assert e.value.error_count() == 1
    assert TrainConfig(task="fsdd-crnn", method="wo", **no_val).data.validation == 0
    assert TrainConfig(task="fsdd-crnn", **no_val, threshold={"step": 0}).data.validation == 0
    c = TrainConfig(task="fsdd-crnn", **no_val, threshold={"t_epochs": [1, 2, 5]})
    assert c.threshold.t_epochs == (1, 2, 5) and not c.threshold.counts_on_validation
    assert apply_assignments({}, ["threshold.t_epochs=1,2, 5"])["threshold"]["t_epochs"] == "1,2, 5"
    assert TrainConfig(task="fsdd-crnn", threshold={"t_epochs": "1,2, 5"}).threshold.t_epochs == (1, 2, 5)
    for bad in ([2, 1], [0, 3], [3, 3]):
        with pytest.raises(ValidationError, match="increasing epoch numbers"):
            TrainConfig(task="fsdd-crnn", threshold={"t_epochs": bad})
    for bad in (-0.1, 1.0):
        with pytest.raises(ValidationError, match="data.validation") as e:
            TrainConfig(task="fsdd-crnn", data={"validation": bad}, threshold={"t_epochs": [1]})
        assert e.value.error_count() == 1


def test_paper_feature_file_loads_when_present(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, X_train=np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match="X_train"):
        load_paper_features(bad)
    if not PAPER_FEATURES.exists():
        pytest.skip(f"the paper's feature file ({PAPER_FEATURES}; set $RRAMCTL_PAPER_FEATURES) is not here")
    ds = load_paper_features(PAPER_FEATURES)
    assert (len(ds.train), len(ds.test)) == (2100, 900)
    assert ds.train.x.shape == (2100, 1, 23, 20) and ds.train.x.max() <= 7
    net = to_net("fsdd-crnn")
    assert net(torch.from_numpy(ds.train.x[:4]).float()).shape == (4, 10)


def test_threshold_steps_to_floor():
    """How many counter advances take T_s to its floor: 9 for the defaults (5e-3 -> 5e-4 by 5e-4); none without a floor
    or a step."""
    th = ThresholdConfig()
    assert th.steps_to_floor == 9 and th.at(9) == th.end and th.at(8) > th.end
    assert ThresholdConfig(floor=False).steps_to_floor is None and ThresholdConfig(step=0).steps_to_floor is None
