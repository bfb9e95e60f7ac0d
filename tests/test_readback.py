"""What is read back after a mask sync (``to.readback``): a cell-list read by a verify-only PROGRAM (MAX_PULSES = 0)
against the whole-layer READ, and saved run configurations read as the runs were made (``saved_config``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rramctl import driver as driver_module
from rramctl.chip import Chip
from rramctl.errors import DeviceError, UsageError
from rramctl.geometry import Region
from rramctl.software import SoftwareChip
from rramctl.training.config import LEGACY_VALUES, TrainConfig, saved_config
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.placement import place
from rramctl.training.topology import init_from_chip, sync_masks
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import load_model
from training_fixtures import to_net

REGION = Region(0, 12, 0, 20)


def exact_model(seed: int = 4) -> object:
    """The noise-free rules with no read noise either: every read of a cell gives the same code."""
    m = load_model("ideal")
    return m.model_copy(update={"seed": seed, "read": m.read.model_copy(update={"noise_ppm": 0})})


def emulated(model: object) -> tuple[Chip, EmulatorTransport]:
    t = EmulatorTransport(model)
    return Chip.from_transport(t), t


def test_read_cells_converts_only_the_listed_cells_and_pulses_none() -> None:
    """Chip.read_cells: one code per listed cell, in the list's order (repeats too), the codes READ gives on a
    chip whose reads are exact; no pulse, no conductance changed, one operation per transaction."""
    chip, t = emulated(exact_model())
    chip.electroform_pairs(REGION)
    full = chip.read(Region(0, 12, 0, 276))
    cells = np.array([[3, 4], [11, 19], [0, 256 + 7], [3, 4], [5, 270]])
    g_before, counters = t.overlay.crossbar.g.copy(), chip.counters()
    got = chip.read_cells(cells)
    assert np.array_equal(got, full[cells[:, 0], cells[:, 1]])
    assert np.array_equal(t.overlay.crossbar.g, g_before)
    after = chip.counters()
    assert after["pulse_count"] == counters["pulse_count"] and after["op_count"] == counters["op_count"] + 1
    pairs = np.array([[3, 4], [11, 19], [0, 0]])
    assert np.array_equal(chip.weights_of_pairs(pairs), chip.weights_us(REGION)[pairs[:, 0], pairs[:, 1]])


def test_read_cells_splits_long_lists_into_transactions(monkeypatch) -> None:
    chip, _ = emulated(exact_model())
    chip.electroform(REGION)
    monkeypatch.setattr(driver_module, "CELLS_PER_TRANSACTION", 7)
    cells = REGION.cells()
    before = chip.counters()["op_count"]
    assert np.array_equal(chip.read_cells(cells), chip.read(REGION).ravel())
    assert chip.counters()["op_count"] - before == -(-len(cells) // 7) + 1  # + the READ


def test_read_cells_refuses_a_bad_cell_before_anything_runs() -> None:
    chip, t = emulated(exact_model())
    before = chip.counters()
    with pytest.raises(UsageError, match="outside"):
        chip.read_cells(np.array([[0, 0], [512, 3]]))
    assert chip.counters() == before


def test_a_verify_only_program_that_reports_pulses_is_refused(monkeypatch) -> None:
    """The driver checks the overlay's reply: a pulse on a read is a protocol violation, not a read."""
    chip, _ = emulated(exact_model())
    drv = chip._hw
    real = drv.run

    def pulsing(*args, **kwargs):
        return real(*args, **kwargs) | np.uint32(1 << 16)

    monkeypatch.setattr(drv, "run", pulsing)
    with pytest.raises(DeviceError, match="reported pulses"):
        chip.read_cells(np.array([[1, 1]]))


def test_read_cells_on_the_software_backend() -> None:
    chip = SoftwareChip(1)
    chip.electroform(REGION)
    cells = np.array([[2, 3], [9, 9]])
    assert np.array_equal(chip.read_cells(cells), chip.read(REGION)[cells[:, 0], cells[:, 1]])


def test_the_pair_readback_leaves_what_a_layer_read_sees() -> None:
    """to.readback = pairs on a chip whose reads are exact: after the first sync (every layer prunes half its pairs)
    and after a second (four pairs of F2 pruned, four reinstated: a RESET, a SET and one verify-only PROGRAM),
    each flipped pair's weight (reinstated) or residual (pruned) is what a read of the whole layer gives there,
    bit for bit (the layer read-back's values; the two modes' runs differ only in the ops' serials, hence in the
    draws of later pulses)."""
    net = to_net()
    chip, _ = emulated(exact_model(7))
    m = MappedNetwork([chip], place([la.shape for la in net.crossbar_layers()]))
    m.electroform()
    init_from_chip(net, m)
    masks = {la.name: la.mask.clone() for la in net.crossbar_layers()}
    sync_masks(net, m, "pairs")
    for la in net.crossbar_layers():
        pruned = masks[la.name] & ~la.mask
        w = torch.from_numpy(m.read_weights(la.name)).float()
        assert pruned.sum() == la.n_in * la.n_out - la.keep
        assert torch.equal(la.residual[pruned], w[pruned]) and torch.equal(la.residual[la.mask], 0 * w[la.mask])
    f2 = net.f2
    on, off = f2.mask.nonzero()[:4], (~f2.mask).nonzero()[:4]
    with torch.no_grad():
        f2.scores[on[:, 0], on[:, 1]] = -1.0
        f2.scores[off[:, 0], off[:, 1]] = 2.0
    ops = chip.counters()["op_count"]
    assert sync_masks(net, m, "pairs") == {"C1": 0, "C2": 0, "F1": 0, "F2": 8}
    assert chip.counters()["op_count"] - ops == 3
    w = torch.from_numpy(m.read_weights("F2")).float()
    assert torch.equal(f2.weight[off[:, 0], off[:, 1]], w[off[:, 0], off[:, 1]])
    assert torch.equal(f2.residual[on[:, 0], on[:, 1]], w[on[:, 0], on[:, 1]])
    assert torch.equal(f2.residual[off[:, 0], off[:, 1]], torch.zeros(4))


def test_the_default_reads_back_pairs_and_a_saved_run_without_the_key_reads_back_layers() -> None:
    cfg = TrainConfig(task="fmnist-cnn")
    assert cfg.to.readback == "pairs" and LEGACY_VALUES["to"]["readback"] == "layer"
    saved = json.loads(cfg.model_dump_json())
    assert saved_config(json.dumps(saved)) == cfg
    del saved["to"]["readback"]
    assert saved_config(json.dumps(saved)).to.readback == "layer"


def test_a_saved_config_takes_the_values_its_missing_keys_had_not_todays_recipe_defaults() -> None:
    """A key added after a run was saved takes its field default (what the code did before the key existed),
    not today's recipe default: Fashion-MNIST's to.keep_margin (0.1 today) was 0, the spoken-digit front end
    (strided today on every data source) was pooled, the paper recipe's threshold floor was on."""
    fm = json.loads(TrainConfig(task="fmnist-cnn").model_dump_json())
    assert fm["to"]["keep_margin"] == 0.1
    del fm["to"]["keep_margin"]
    assert saved_config(json.dumps(fm)).to.keep_margin == 0.0
    sd = json.loads(TrainConfig(task="fsdd-crnn").model_dump_json())
    assert sd["network"]["conv_layout"] == "strided"
    del sd["network"]["conv_layout"], sd["device"]
    old = saved_config(json.dumps(sd))
    assert old.network.conv_layout == "pooled" and old.device == "cpu"
    paper = json.loads(TrainConfig(task="fmnist-cnn", recipe="paper").model_dump_json())
    del paper["threshold"]["floor"]
    assert saved_config(json.dumps(paper)).threshold.floor is True


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"task": "fmnist-cnn", "to": {"readback": "cells"}}'])
def test_a_malformed_saved_config_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        saved_config(text)


def test_a_run_saved_before_the_setting_resumes_only_with_the_layer_readback(tmp_path) -> None:
    """A run folder whose config.json predates to.readback was trained reading back whole layers: reopened, it
    says so (load_run), resuming it with today's default is refused as another run, and with
    --set to.readback=layer it resumes."""
    from rramctl.training.runner import Run, RunError, load_run
    from training_fixtures import easy_images

    easy = easy_images(n_train=200, n_test=50)
    old = TrainConfig(task="fmnist-cnn", backend="software", epochs=2, subset=64, test_subset=32, seed=1,
                      optimiser={"batch_size": 32}, to={"readback": "layer"})  # fmt: skip
    run = Run.open(old, tmp_path / "r", easy)
    run.train(stop_after_steps=3)  # epoch 1 (2 steps) saved, interrupted inside epoch 2
    run.close()
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["to"]["readback"]  # as a run saved before the setting existed
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    again = load_run(tmp_path / "r", lambda _: easy)
    assert again.cfg.to.readback == "layer"
    again.close()
    today = old.model_copy(update={"to": old.to.model_copy(update={"readback": "pairs"})})
    with pytest.raises(RunError, match=r"different settings \(to: to.readback saved .layer., given .pairs.\)"):
        Run.open(today, tmp_path / "r", easy)
    resumed = Run.open(old, tmp_path / "r", easy)
    assert resumed.progress.epoch == 1
    resumed.close()
