"""A training run with every product on the emulated chip is the same run on every array-math device.

``TrainConfig.device`` only says where the emulator's array math runs (numpy with the compiled read-out,
numpy alone, torch on the CPU, CUDA where a GPU is present); the codes, and so every weight, mask bit,
operation count and accuracy of the run, must not depend on it.  CUDA joins the comparison wherever
torch sees a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rramctl.training.config import TrainConfig
from rramctl.training.runner import Run
from rramsim.arraymath import available_devices
from training_fixtures import easy_images


def _config(device: str) -> TrainConfig:
    return TrainConfig(task="fmnist-cnn", backend="emulator", forward="chip", device=device, epochs=1, seed=3,
                       chip_seed=5, optimiser={"batch_size": 8}, subset=16)  # fmt: skip


def _continue_on(formed: Path, run_dir: Path, device: str) -> dict[str, Any]:
    """The formed run (checkpoint after forming) resumed with its array math on ``device``, two TO steps with
    every product on the chip, then the test; what it leaves behind."""
    shutil.copytree(formed, run_dir)
    run = Run.open(_config(device), run_dir, DATA)
    try:
        assert run.resumed
        run.train(stop_after_steps=2)
        accuracy, loss, predictions = run.evaluate(run.test_split)
        counts = run.mapped.counts
        layers = run.net.crossbar_layers()
        return {
            "weights": {la.name: la.weight.detach().clone() for la in layers},
            "masks": {la.name: la.mask.detach().clone() for la in layers},
            "scores": {la.name: la.scores.detach().clone() for la in layers},
            "counts": (dict(counts.multiplies), dict(counts.saturated)),
            "test": (accuracy, loss, predictions),
            "recorded_device": json.loads((run_dir / "config.json").read_text())["device"],
        }
    finally:
        run.close()


DATA = easy_images(40, 8, seed=2)


def test_a_chip_forward_run_is_the_same_run_on_every_device(tmp_path: Path) -> None:
    """Formed once (forming is the slow part), then continued on each device: every weight, score, mask bit,
    count and test prediction equal; the run records the device it continued on."""
    formed = tmp_path / "formed"
    Run.open(_config("cpu"), formed, DATA).close()
    runs = {d: _continue_on(formed, tmp_path / d, d) for d in available_devices()}
    ref = runs.pop("cpu")
    assert sum(ref["counts"][0].values()) > 0  # the products did go through the chip
    for device, got in runs.items():
        assert got["recorded_device"] == device
        for part in ("weights", "masks", "scores"):
            for name, want in ref[part].items():
                assert torch.equal(got[part][name], want), f"{device}: {part} of {name} differ from cpu"
        assert got["counts"] == ref["counts"], device
        assert got["test"][:2] == ref["test"][:2], device
        np.testing.assert_array_equal(got["test"][2], ref["test"][2])


@pytest.mark.parametrize("device", ["tpu", "cuda:x"])
def test_an_unknown_device_is_refused_before_a_run_starts(tmp_path: Path, device: str) -> None:
    from rramctl.training.runner import RunError

    cfg = TrainConfig(task="fmnist-cnn", backend="emulator", forward="chip", device=device, epochs=1)
    with pytest.raises((RunError, ValueError)):
        Run.open(cfg, tmp_path / "r", DATA)
    assert not (tmp_path / "r" / "config.json").exists()


@pytest.mark.parametrize("device", ["cuda:x", "cuda:99", "cuda:", "CUDA", "cuda0", "gpu", ""])
def test_a_malformed_or_absent_device_is_one_clear_error(device: str) -> None:
    """Every device name that is not one of the forms, or names a GPU this machine lacks, is the same
    ValueError naming it (it was torch's own RuntimeError for ``cuda:x`` on a machine with a GPU)."""
    from rramsim.arraymath import array_module

    with pytest.raises(ValueError, match=repr(device)):
        array_module(device)
