import json

import numpy as np
import pytest
from pydantic import ValidationError
from rramctl.training import weightopt
from rramctl.training.config import TrainConfig
from rramctl.training.runner import Run, RunError, finish, load_run
from safetensors.torch import load_file, save_file
from training_fixtures import easy_images


@pytest.fixture(scope="module")
def easy():
    return easy_images()


def cfg(**kw):
    base = dict(
        task="fmnist-cnn", backend="software", epochs=2, optimiser={"batch_size": kw.pop("batch_size", 64)}, seed=1
    )
    return TrainConfig(**(base | kw))


def test_to_lifts_accuracy_far_above_the_random_subnetwork(tmp_path, easy):
    run = Run.open(cfg(epochs=3), tmp_path / "r", easy)
    start, _, _ = run.evaluate(run.test_split)
    run.train()
    end = run.metrics[-1]["test_accuracy"]
    assert start < 0.35 and end > 0.8, (start, end)
    # the conducting weights never change by software: only masks do
    initial = load_file(tmp_path / "r" / "initial.safetensors")
    for la in run.net.crossbar_layers():
        unchanged = la.mask.numpy() & (initial[la.name].numpy() == la.weight.numpy())
        flips = run.progress.flips[la.name]
        assert la.mask.sum() == la.keep
        assert run.mapped.counts.resets.get(la.name, 0) + run.mapped.counts.sets.get(la.name, 0) == 2 * flips
        assert unchanged.sum() >= la.keep - run.mapped.counts.sets.get(la.name, 0) // 2
    s = finish(run)
    assert s["programming_ops_total"] == 2 * sum(run.progress.flips.values())
    for f in ("summary.json", "accuracy.png", "weights_hist.png", "confusion.png", "metrics.json", "placement.txt"):
        assert (tmp_path / "r" / f).exists()
    assert np.array(s["confusion"]).sum() == len(easy.test)


def test_validation_0_trains_on_every_training_sample_and_reports_no_validation(tmp_path, easy):
    c = cfg(epochs=3, data={"validation": 0}, threshold={"t_epochs": [2]})
    run = Run.open(c, tmp_path / "r", easy)
    assert len(run.train_split) == len(easy.train) == 600 and len(run.val_split) == 0
    record = {"validation_fraction": 0.0, "validation_seed": 0, "train": 600, "validation": 0, "test": 300}
    assert run.split_record() == record == json.loads((tmp_path / "r" / "split.json").read_text())
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["validation"] == 0
    run.train()
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [(e["val_accuracy"], e["val_loss"], e["new_best"]) for e in m] == [(None, None, None)] * 3
    assert all(e["test_accuracy"] > 0 for e in m)
    # t advances after the epochs of threshold.t_epochs, not at a validation accuracy
    assert run.progress.threshold_t == 1
    assert [e["threshold"] for e in m] == pytest.approx([c.threshold.at(t, run.schedule(k)) for k, t in
                                                         enumerate((0, 1, 1))])  # fmt: skip
    assert run.best_on_validation() == {"best_val_epoch": None, "best_val_accuracy": None, "test_at_best_val": None}
    assert finish(run)["best_epoch_accuracy"] is None
    run.close()
    # a run that validates keeps its best-on-validation epoch, and holds its split out of training
    val = Run.open(cfg(epochs=1), tmp_path / "v", easy)
    val.train()
    assert len(val.train_split) == 550 and val.best_on_validation()["best_val_epoch"] == 1
    val.close()


# bn_affine True: a second optimiser group (batch-norm scale/shift); paper: the relative rule's held mask bits;
# weight noise and dropout: torch's generator
@pytest.mark.parametrize(
    ("recipe", "network"),
    [("rramctl", {"bn_affine": False}), ("rramctl", {"bn_affine": True}), ("paper", {}),
     ("rramctl", {"weight_noise": 0.1, "dropout": 0.1})],
)  # fmt: skip
def test_interrupted_run_resumes_to_the_same_result(tmp_path, easy, recipe, network):
    c = cfg(epochs=3, subset=300, test_subset=100, recipe=recipe, network=network)
    full = Run.open(c, tmp_path / "full", easy)
    full.train()
    part = Run.open(c, tmp_path / "part", easy)
    part.train(stop_after_steps=7)  # epoch 1 saved, interrupted inside epoch 2
    del part
    resumed = Run.open(c, tmp_path / "part", easy)
    assert resumed.progress.epoch == 1 and resumed.resume_agreement.ok
    resumed.train()

    def comparable(metrics):
        return json.dumps([{k: v for k, v in m.items() if k != "seconds_per_step"} for m in metrics], sort_keys=True)

    assert comparable(resumed.metrics) == comparable(full.metrics)
    for a, b in zip(full.net.crossbar_layers(), resumed.net.crossbar_layers(), strict=True):
        assert np.array_equal(a.scores.detach().numpy(), b.scores.detach().numpy())
        assert np.array_equal(a.mask.numpy(), b.mask.numpy())
    assert np.array_equal(full.mapped.chips[0].g, resumed.mapped.chips[0].g)


def test_emulator_resume_reads_back_a_chip_that_agrees_with_the_mask(tmp_path, easy):
    c = cfg(backend="emulator", forward="host", epochs=1, subset=64, test_subset=32)
    run = Run.open(c, tmp_path / "e", easy)
    run.train()
    again = load_run(tmp_path / "e", lambda _: easy)
    assert again.resume_agreement.ok
    for a, b in zip(run.net.crossbar_layers(), again.net.crossbar_layers(), strict=True):
        assert np.array_equal(a.mask.numpy(), b.mask.numpy())


def test_an_evaluation_reports_pairs_that_disagree_and_never_programs_the_chip(tmp_path, easy):
    """load_run (rramctl infer, the harness's chip test) evaluates the chip as saved: a kept pair the saved chip
    holds reset is reported (summary "chip_disagreement"), not set again; the programming counts stay the run's
    (each infer of a run re-set such pairs and counted them: its counts grew over the run's)."""
    from rramctl.training.chips import save_chips

    c = cfg(backend="emulator", forward="host", epochs=1, subset=64, test_subset=32)
    run = Run.open(c, tmp_path / "e", easy)
    run.train()
    name = run.net.crossbar_layers()[-1].name
    kept = np.argwhere(run.net.crossbar_layers()[-1].mask.numpy())[:1]
    run.mapped.prune(name, kept)  # the saved chip now disagrees with the network in one kept pair
    ck = tmp_path / "e" / "checkpoints" / (tmp_path / "e" / "checkpoints" / "LATEST").read_text().strip()
    save_chips(run.mapped.chips, ck)
    run.close()
    saved = {p.name: p.read_bytes() for p in ck.iterdir()}
    again = load_run(tmp_path / "e", lambda _: easy)
    ops_before = again.mapped.counts.programming_ops()
    s = finish(again, tmp_path / "infer")
    again.close()
    assert s["chip_disagreement"]["kept_pairs_off_their_weight"][name] == 1
    assert sum(s["chip_disagreement"]["pruned_pairs_on"].values()) == 0
    assert s["programming_ops"] == ops_before
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == saved
    resumed = Run.open(c, tmp_path / "e", easy)  # training resumes: it repairs the pair, counted as programming
    assert resumed.resume_agreement.kept_wrong[name] == 1
    assert sum(resumed.mapped.counts.programming_ops().values()) > sum(ops_before.values())
    resumed.close()


def test_wo_programs_only_pairs_over_tw(tmp_path, easy):
    run = Run.open(cfg(method="wo", epochs=1, subset=64, wo={"tw": 0.5}), tmp_path / "w", easy)
    layer = run.net.f2
    layer.master.data += 0.0
    layer.master.data[0, :5] += 2.0  # over Tw
    layer.master.data[1, :3] += 0.1  # under Tw
    before = dict(run.mapped.counts.programmed_cells)
    done = weightopt.program_updates(run.net.crossbar_layers(), run.mapped, run.cfg.wo)
    assert done == {"C1": 0, "C2": 0, "F1": 0, "F2": 5}
    assert run.mapped.counts.programmed_cells["F2"] - before.get("F2", 0) == 10
    assert np.allclose(layer.weight[0, :5].numpy(), layer.master.detach()[0, :5].numpy(), rtol=0.12, atol=1.2)


def test_bad_inputs_give_clear_errors(tmp_path, easy):
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValidationError, match="sparsity must lie in"):
            cfg(network={"sparsity": bad})
    with pytest.raises(ValidationError, match="task"):
        TrainConfig(task="cifar")
    with pytest.raises(ValidationError):
        cfg(threshold={"init": 1e-4, "end": 1e-3})
    Run.open(cfg(epochs=1, subset=64), tmp_path / "x", easy)
    with pytest.raises(RunError, match="different settings.*network"):
        Run.open(cfg(epochs=1, subset=64, network={"sparsity": 0.3}), tmp_path / "x", easy)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "f").write_text("")
    with pytest.raises(RunError, match="not empty"):
        Run.open(cfg(), tmp_path / "y", easy)
    with pytest.raises(RunError, match="no config.json"):
        load_run(tmp_path / "nothing", lambda _: easy)


def test_emulator_training_step_runs_every_product_on_the_chip(tmp_path, easy, mocker):
    from rramctl.chip import Chip

    spy = mocker.spy(Chip, "multiply_pairs")
    run = Run.open(cfg(backend="emulator", forward="chip", epochs=1, subset=8, batch_size=8), tmp_path / "c", easy)
    run.train(stop_after_steps=1)
    layers = {la.name for la in run.net.crossbar_layers()}
    assert set(run.mapped.counts.multiplies) == layers  # C1, C2 (both row blocks), F1, F2 on the chip
    assert spy.call_count == 5  # one call per tile: C1, C2 (2 tiles), F1, F2
    assert set(run.mapped.counts.saturated) == layers  # saturated ADC samples recorded per layer
    cost = run.mapped.board_cost()  # the emulator prices every product: conversions and array reads
    assert cost is not None and cost.adc_conversions > 0 and cost.array_read_j > 0


@pytest.mark.parametrize("backend", ["software", "emulator"])
def test_wo_forms_both_cells_of_a_pair_so_write_verify_does_not_burn_the_cap(backend):
    from rramctl.training.chips import open_chips
    from rramctl.training.crossbar import MappedNetwork
    from rramctl.training.placement import LayerShape, place

    p = place([LayerShape("A", 40, 30)])
    idx = np.argwhere(np.ones((30, 40), dtype=bool))[::7]
    pulses = {}
    for form in (False, True):
        m = MappedNetwork(open_chips(backend, 1, 2), p)
        m.electroform()
        before = m.read_weights("A")
        if form:
            assert m.form_unformed() < 0.02 * 2 * 40 * 30  # (almost) every cell of both halves formed
            assert np.abs(m.read_weights("A") - before).max() < 1.0  # the newly formed cells are reset
        m.program("A", idx, np.full(len(idx), 20.0), np.full(len(idx), 5.0), 0.1)
        pulses[form] = m.counts.program_pulses["A"]
        if form:
            assert np.abs(m.read_weights("A")[idx[:, 0], idx[:, 1]] - 15.0).mean() < 2.0
    assert pulses[True] < 0.7 * pulses[False], pulses


def test_a_checkpoint_saved_before_the_hold_bits_resumes_and_one_missing_more_is_refused(tmp_path, easy):
    """Checkpoints written before the relative rule's held bits were saved lack ``*.hold``: they resume (none held,
    as they were saved); a checkpoint lacking another tensor of the network is refused (RunError), not guessed."""
    c = cfg(epochs=2, subset=128, test_subset=32, recipe="paper")
    run = Run.open(c, tmp_path / "r", easy)
    run.train(stop_after_steps=3)  # epoch 1 saved, interrupted inside epoch 2
    del run
    model = next((tmp_path / "r" / "checkpoints").glob("epoch-*")) / "model.safetensors"
    tensors = load_file(model)
    assert any(k.endswith(".hold") for k in tensors)
    save_file({k: v for k, v in tensors.items() if not k.endswith(".hold")}, model)
    resumed = Run.open(c, tmp_path / "r", easy)
    assert resumed.progress.epoch == 1 and not any(la.hold.any() for la in resumed.net.crossbar_layers())
    resumed.close()
    save_file({k: v for k, v in tensors.items() if not k.endswith(".mask")}, model)
    with pytest.raises(RunError, match="does not match the network"):
        Run.open(c, tmp_path / "r", easy)


def test_on_epoch_comes_once_the_epoch_is_saved_after_its_steps(tmp_path, easy):
    """The progress bar counts an epoch when a resume would start after it (its checkpoint saved), not at its last
    step (the evaluation passes follow that, minutes on the chip)."""
    run = Run.open(cfg(epochs=2, batch_size=200), tmp_path / "r", easy)
    events = []

    def on_epoch(metrics):
        saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
        events.append(("epoch", metrics["epoch"], len(saved), metrics == saved[-1]))

    run.train(on_step=lambda s, n: events.append(("step", s, n)), on_epoch=on_epoch)
    n = len(run.train_split) // 200 + (len(run.train_split) % 200 > 0)
    steps = [("step", s, n) for s in range(1, n + 1)]
    assert events == steps + [("epoch", 1, 1, True)] + steps + [("epoch", 2, 2, True)]
