"""Network and run options of the spoken-digit sweep (docs/training.md): the paper code's strided CRNN front end,
dropout on the codes entering the fully connected layers, weight noise in the manner of read noise, and the
emulator's device model as a run setting (``chip_model``)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rramctl.training.config import NetworkConfig, TrainConfig
from rramctl.training.layers import im2col_codes
from rramctl.training.runner import Run, RunError
from training_fixtures import easy_images, formed, to_net


def test_option_defaults_leave_the_network_as_it_was():
    """The options' own defaults are the former network; the recipes choose otherwise per task and data source."""
    n = NetworkConfig()
    assert (n.conv_layout, n.dropout, n.weight_noise) == ("pooled", 0.0, 0.0)
    assert TrainConfig(task="fsdd-crnn").chip_model is None
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig(task="fsdd-crnn", network={"dropout": 1.0})


@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (2, 2)])
def test_strided_patches_are_unfolds(stride):
    x = torch.randint(0, 8, (2, 3, 11, 19)).float()
    want = F.unfold(x, (3, 2), stride=stride).transpose(1, 2).reshape(-1, 18).round().long()
    np.testing.assert_array_equal(im2col_codes(x, (3, 2), stride).astype(np.int64), want.numpy())


@pytest.mark.parametrize("shape", [(23, 20), (23, 15)])  # the paper's feature maps and ours
def test_strided_front_end_has_the_paper_codes_shapes(shape):
    """Spoken_digit_hardware_TO.py: conv stride (2, 1) -> 2x2 max-pool -> batch-norm, twice; 23x20 maps give
    64x11x19 -> 64x5x9 and 32x2x8 -> 32x1x4 (4 time steps of 32 inputs for R1)."""
    net = formed(to_net("fsdd-crnn", network={"conv_layout": "strided"}))
    seen = []
    net.r_ih.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    x = torch.randint(0, 8, (6, 1, *shape)).float()
    net.train()
    seq, _ = net.features(x)
    assert seq.shape == (6, 32, 1, 4)
    if shape == (23, 20):
        c1 = net.c1.conv(x, (3, 2), stride=(2, 1))
        assert c1.shape[1:] == (64, 11, 19) and F.max_pool2d(c1, 2).shape[1:] == (64, 5, 9)
    logits = net(x)
    assert logits.shape == (6, 10) and seen == [(6, 32)] * 4


def test_strided_convolution_on_the_chip_path_equals_the_host_one():
    """The executor receives the strided patches only: its products, put back in place, equal F.conv2d's."""
    net = formed(to_net("fsdd-crnn"))
    layer = net.c1
    w = layer.effective_weight().detach()
    layer.executor = lambda name, codes, bits: codes.astype(np.float64) @ w.double().numpy().T
    x = torch.randint(0, 8, (3, 1, 23, 20)).float()
    chip = layer.conv(x, (3, 2), stride=(2, 1))
    layer.executor = None
    host = layer.conv(x, (3, 2), stride=(2, 1))
    assert chip.shape == (3, 64, 11, 19)
    assert torch.allclose(chip, host, rtol=1e-5, atol=1e-3)


def test_dropout_zeroes_codes_only_while_training():
    net = formed(to_net("fsdd-crnn", network={"dropout": 0.5}))
    seen = []
    net.f2.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    torch.manual_seed(0)
    x = torch.randint(0, 8, (64, 1, 23, 15)).float()
    net.train()
    net(x)
    net.eval()
    net(x)
    net(x)
    train_codes, eval_codes, again = seen
    assert torch.equal(train_codes, train_codes.round())  # the chip still sees integer codes
    zero_train, zero_eval = float((train_codes == 0).float().mean()), float((eval_codes == 0).float().mean())
    assert zero_train > zero_eval + 0.2, (zero_train, zero_eval)
    assert torch.equal(eval_codes, again)  # evaluation draws nothing
    s = torch.tensor(2.0)
    assert net.drop(torch.ones(4), s)[1] == s  # eval: the step unchanged
    net.train()
    assert net.drop(torch.ones(4), s)[1] == pytest.approx(4.0)  # training: 1 / (1 - p) on the next products


def test_weight_noise_draws_a_fresh_factor_each_training_step_and_none_in_evaluation():
    net = formed(to_net("fsdd-crnn", network={"weight_noise": 0.1}))
    assert {la.noise for la in net.crossbar_layers()} == {0.1}
    x = torch.randint(0, 8, (16, 1, 23, 15)).float()
    net.train()
    a, b = net(x), net(x)
    assert not torch.allclose(a, b)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    net(x).sum().backward()
    assert all(la.scores.grad is not None and la.scores.grad.abs().sum() > 0 for la in net.crossbar_layers())
    la = net.f1
    la.train()
    rel = (la.noisy_weight() / la.effective_weight()).detach()[la.mask]
    assert float(rel.std()) == pytest.approx(0.1, rel=0.2)


@pytest.mark.parametrize("network", [{"dropout": 0.5}, {"weight_noise": 0.3}])
def test_batch_norm_is_re_estimated_without_dropout_or_noise(tmp_path, network):
    """The statistics the evaluation uses are those of the network it evaluates: no dropout, no weight noise."""
    data = easy_images(200, 20)
    stats = []
    for name, net_cfg in (("plain", {}), ("reg", network)):
        c = TrainConfig(task="fmnist-cnn", backend="software", epochs=1, seed=2, network=net_cfg)
        run = Run(c, tmp_path / name, data)
        formed(run.net)
        torch.manual_seed(5)
        run.recalibrate_batchnorm()
        assert run.net.training  # left in training mode
        stats.append([m.running_var.clone() for m in run.net.norms.values()])
    for a, b in zip(*stats, strict=True):
        assert torch.allclose(a, b)


def test_emulator_device_model_is_a_run_setting(tmp_path):
    """``chip_model = ideal`` opens the run's arrays with the noise-free rules (no relaxation, no drift, no noise
    floor); the default is the emulator's (paper-40nm). A name that is neither a preset nor a file is one clear
    error."""
    from rramctl.training.chips import open_chips
    from rramsim.config import load_model

    data = easy_images(40, 20)
    for model, preset in (("ideal", "ideal"), (None, "paper-40nm")):
        c = TrainConfig(task="fmnist-cnn", backend="emulator", forward="host", epochs=1, chip_model=model)
        run = Run(c, tmp_path / str(model), data)
        (chip,) = open_chips(c.backend, 1, c.chip_seed, model=run.chip_model())
        got = chip._driver.transport.overlay.config
        chip.close()
        want = load_model(preset)
        assert (got.relaxation, got.drift, got.read) == (want.relaxation, want.drift, want.read)
    assert load_model("ideal").relaxation != load_model(None).relaxation
    bad = TrainConfig(task="fmnist-cnn", backend="emulator", forward="host", chip_model="no-such-model")
    with pytest.raises(RunError, match="no-such-model"):
        Run(bad, tmp_path / "bad", data).chip_model()


def test_paper_feature_defaults_differ_only_where_validation_chose():
    """On the paper's feature file the rramctl recipe takes the settings its validation sweep chose; our own MFCC maps
    take theirs (below), the paper recipe keeps its own, and an explicit value wins."""
    from rramctl.training.config import PAPER_FEATURES_DEFAULTS, DataConfig

    paper_file = {"source": "paper-features", "features_file": "f.npz"}
    ours = TrainConfig(task="fsdd-crnn")
    on_file = TrainConfig(task="fsdd-crnn", data=paper_file)
    for section, values in PAPER_FEATURES_DEFAULTS.items():
        assert {k: getattr(getattr(on_file, section), k) for k in values} == values
    assert on_file.threshold.follows_lr and not ours.threshold.follows_lr
    assert on_file.to.keep_margin == 0.03 and ours.to.keep_margin == 0.0  # the budget's choice, paper's features only
    # Fashion-MNIST: the budget's choice at 65 epochs (docs/training.md); the paper recipe keeps plain top-k
    assert TrainConfig(task="fmnist-cnn").to.keep_margin == 0.1
    assert TrainConfig(task="fmnist-cnn", recipe="paper").to.keep_margin == 0.0
    assert TrainConfig(task="fsdd-crnn", data=DataConfig(**paper_file)).threshold.follows_lr  # a section object too
    assert not TrainConfig(task="fsdd-crnn", recipe="paper", data=paper_file).threshold.follows_lr
    assert not TrainConfig(task="fsdd-crnn", data=paper_file, threshold={"follows_lr": False}).threshold.follows_lr
    assert TrainConfig.model_validate_json(on_file.model_dump_json()) == on_file


def test_our_mfcc_defaults_are_the_ones_validation_chose():
    """On our own MFCC maps (data.source = standard) the rramctl recipe takes what its validation sweep chose
    (docs/training.md "Our MFCC pipeline: the defaults on validation"): the strided front end, and nothing else (the
    lr-scaled threshold and weight noise, chosen on the paper's features, stay off). A saved config.json of an
    earlier run keeps its pooled front end, and an explicit value wins."""
    from rramctl.training.config import MFCC_DEFAULTS, DataConfig, ThresholdConfig, recipe_defaults

    assert recipe_defaults("rramctl", "fsdd-crnn") == MFCC_DEFAULTS == {"network": {"conv_layout": "strided"}}
    ours = TrainConfig(task="fsdd-crnn")
    assert ours.network == NetworkConfig(conv_layout="strided") and ours.threshold == ThresholdConfig()
    assert ours.data == DataConfig(validation=0.1)
    assert TrainConfig(task="fsdd-crnn", data={"source": "standard"}) == ours
    assert TrainConfig(task="fsdd-crnn", data=DataConfig(validation=0.1)) == ours  # a section object too
    assert TrainConfig(task="fsdd-crnn", recipe="paper").network.weight_noise == 0.0
    assert TrainConfig(task="fmnist-cnn").network.conv_layout == "pooled"  # the CNN has no such front end
    earlier = ours.model_dump(mode="json")
    earlier["network"]["conv_layout"] = "pooled"
    assert TrainConfig.model_validate(earlier).network.conv_layout == "pooled"
    assert TrainConfig.model_validate_json(ours.model_dump_json()) == ours
