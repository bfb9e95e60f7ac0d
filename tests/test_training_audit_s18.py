"""Bad inputs to `rramctl prune` found by a re-implementation of the training rules from the docs (session 18):
each is one error line and leaves nothing written; the options win over the config file and --set."""

import json

import numpy as np
import pytest
import torch
import typer
from pydantic import ValidationError
from rramctl.arguments import as_seed
from rramctl.chip import Chip
from rramctl.cli import train_cmds
from rramctl.errors import UsageError
from rramctl.seeds import SEED_MAX
from rramctl.training.config import ConfigFileError, TrainConfig, apply_assignments
from rramctl.training.layers import DivergedError, topk_mask
from training_fixtures import write_fmnist
from typer.testing import CliRunner


@pytest.fixture()
def app():
    a = typer.Typer()
    train_cmds.register(a)
    return a


@pytest.fixture()
def fm(tmp_path, monkeypatch):
    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))


def prune(app, run, *args):
    return CliRunner().invoke(app, ["prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "1",
                                    "--run-dir", str(run), "--no-progress", *args])  # fmt: skip


@pytest.mark.parametrize(
    "args, says",
    [
        (["--seed", "-1"], "seed"),
        (["--seed", str(SEED_MAX + 1)], "seed"),
        (["--chip-seed", "-1"], "chip_seed"),
        (["--validation-seed", "-1"], "validation_seed"),
        (["--set", f"chip_seed={SEED_MAX}", "--set", "n_arrays=2"], "the last array's seed"),
        (["--set", "to=5", "--set", "to.lr=1"], "to is a section of settings"),
        (["--set", "data.source=paper-features", "--set", "data.features_file=x.npz"], "takes data.source = standard"),
        (["--set", "data.features_file=x.npz"], "read only with data.source = paper-features"),
    ],
)
def test_bad_settings_are_one_error_and_write_nothing(app, fm, tmp_path, args, says):
    run = tmp_path / "run"
    r = prune(app, run, *args)
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert not run.exists()


def test_the_largest_seeds_are_taken(fm, tmp_path):
    cfg = TrainConfig(task="fmnist-cnn", seed=SEED_MAX, chip_seed=SEED_MAX, data={"validation_seed": SEED_MAX})
    assert cfg.seed == cfg.chip_seed == cfg.data.validation_seed == SEED_MAX
    with pytest.raises(ValidationError):
        TrainConfig(task="fmnist-cnn", seed=-1)


def test_a_section_given_a_scalar_in_a_file_then_set_into():
    with pytest.raises(ConfigFileError, match="to is a section"):
        apply_assignments({"to": 5}, ["to.lr=1"])
    assert apply_assignments({"to": {"lr": 2}}, ["to.lr=1"]) == {"to": {"lr": 1}}


def test_options_win_over_the_config_file_and_set(app, fm, tmp_path):
    f = tmp_path / "f.toml"
    f.write_text('recipe = "rramctl"\nmethod = "wo"\ntask = "fsdd-crnn"\n')
    run = tmp_path / "run"
    r = prune(app, run, "--recipe", "paper", "--method", "to", "--config-file", str(f), "--set", "method=wo",
              "--subset", "32")  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["task"], cfg["recipe"], cfg["method"]) == ("fmnist-cnn", "paper", "to")
    # without the options the file and --set decide
    run2 = tmp_path / "run2"
    r = CliRunner().invoke(app, ["prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "1",
                                 "--config-file", str(f), "--set", "method=to", "--subset", "32", "--run-dir",
                                 str(run2), "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = json.loads((run2 / "config.json").read_text())
    assert (cfg["task"], cfg["recipe"], cfg["method"]) == ("fmnist-cnn", "rramctl", "to")


def test_fewer_epochs_than_the_run_is_refused_and_changes_nothing(app, fm, tmp_path):
    run = tmp_path / "run"
    assert prune(app, run, "--epochs", "2").exit_code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = prune(app, run, "--epochs", "1")
    assert r.exit_code == 2 and "may grow, not shrink" in r.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 1.5, True, "3"])
def test_chip_open_seed_range(seed):
    with pytest.raises(UsageError, match="seed"):
        as_seed(seed)
    with pytest.raises(UsageError, match="seed"):
        Chip.open("software", seed=seed)


def test_chip_open_takes_the_largest_seed():
    assert as_seed(np.uint64(SEED_MAX)) == SEED_MAX
    Chip.open("software", seed=SEED_MAX).close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_nan_score_is_one_error_not_a_smaller_mask(dtype):
    """A NaN score has no rank: kthvalue's mask kept fewer than k; now the run stops with one error line."""
    s = torch.rand(100, dtype=dtype)
    assert int(topk_mask(s, 40).sum()) == 40
    s[7] = float("nan")
    with pytest.raises(DivergedError, match="diverged"):
        topk_mask(s, 40)
