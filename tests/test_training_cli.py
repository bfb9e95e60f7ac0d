import json

import pytest
import typer
from rramctl.cli import train_cmds
from rramctl.training import data
from training_fixtures import write_fmnist
from typer.testing import CliRunner


@pytest.fixture()
def app():
    a = typer.Typer()
    train_cmds.register(a)
    return a


def invoke(app, *args):
    return CliRunner().invoke(app, list(args))


def test_unknown_task_and_bad_sparsity(app, tmp_path):
    r = invoke(app, "prune", "--task", "cifar-cnn", "--run-dir", str(tmp_path / "r"))
    assert r.exit_code == 2 and "unknown task 'cifar-cnn'" in r.output
    r = invoke(app, "prune", "--task", "fmnist-cnn", "--sparsity", "1.2", "--run-dir", str(tmp_path / "r"))
    assert r.exit_code == 2 and "sparsity must lie in (0, 1)" in r.output
    assert not (tmp_path / "r").exists()


def test_missing_data(app, tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    r = invoke(app, "prune", "--task", "fmnist-cnn", "--no-download", "--run-dir", str(tmp_path / "r"))
    assert r.exit_code == 2 and "Fashion-MNIST IDX files not found" in r.output
    r = invoke(app, "prune", "--task", "fsdd-crnn", "--run-dir", str(tmp_path / "r"))
    assert r.exit_code == 2 and "no FSDD recordings" in r.output
    r = invoke(app, "infer", "--run", str(tmp_path / "none"))
    assert r.exit_code == 2 and "no config.json" in r.output


def test_prune_then_infer(app, tmp_path, monkeypatch):
    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    run = tmp_path / "run"
    r = invoke(app, "prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "1", "--run-dir", str(run),
               "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "utilisation" in r.output and "test accuracy" in r.output and "cell programming operations" in r.output
    r = invoke(app, "infer", "--run", str(run), "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["epochs_done"] == 1 and s["test_samples"] == 16 and s["programming_ops_total"] > 0
    # resuming with more epochs continues the same run
    r = invoke(app, "prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "2", "--run-dir", str(run),
               "--no-progress")  # fmt: skip
    assert r.exit_code == 0 and "resuming" in r.output and "2 epochs" in r.output


def test_prune_with_validation_0_trains_on_every_sample_and_refuses_the_counter(app, tmp_path, monkeypatch):
    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    base = ("prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "1", "--no-progress")
    r = invoke(app, *base, "--validation", "0", "--run-dir", str(tmp_path / "counter"))
    assert r.exit_code == 2 and r.output.count("error:") == 1, r.output
    assert "data.validation = 0 holds out no validation set" in r.output and "threshold.t_epochs" in r.output
    assert not (tmp_path / "counter").exists()
    for bad in ("-0.1", "1"):
        r = invoke(app, *base, "--set", f"data.validation={bad}", "--run-dir", str(tmp_path / "bad"))
        assert r.exit_code == 2 and r.output.count("error:") == 1 and "data.validation" in r.output, r.output
    assert not (tmp_path / "bad").exists()
    for how in (("--validation", "0", "--t-epochs", "1"), ("--set", "data.validation=0", "--set",
                                                           "threshold.t_epochs=[1]")):  # fmt: skip
        run = tmp_path / how[0].strip("-")
        r = invoke(app, *base, *how, "--run-dir", str(run))
        assert r.exit_code == 0, r.output
        split = json.loads((run / "split.json").read_text())
        assert (split["validation_fraction"], split["validation"], split["train"]) == (0, 0, 64)
        assert json.loads((run / "config.json").read_text())["threshold"]["t_epochs"] == [1]
        assert json.loads((run / "summary.json").read_text())["best_epoch_accuracy"] is None
    saved = (run / "summary.json").read_bytes()  # the same command again on the finished run: its saved results
    r = invoke(app, *base, *how, "--run-dir", str(run))
    assert r.exit_code == 0 and "the run is complete (1 epochs)" in r.output, r.output
    assert (run / "summary.json").read_bytes() == saved  # not evaluated again, nothing overwritten


def test_prune_follows_the_global_backend(tmp_path, monkeypatch):
    """`rramctl --backend serial:PORT prune` trains on that board, not silently on the emulator."""
    from rramctl.cli.main import app as main_app

    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    run = tmp_path / "run"
    r = CliRunner().invoke(main_app, ["--backend", "serial:/nonexistent/tty", "prune", "--task", "fmnist-cnn",
                                      "--epochs", "1", "--run-dir", str(run), "--no-progress"])  # fmt: skip
    assert r.exit_code == 2 and "/nonexistent/tty" in r.output, r.output
    assert not (run / "config.json").exists()
    r = invoke(main_app, "--backend", "emulator", "prune", "--task", "fmnist-cnn", "--backend",
               "software", "--epochs", "1", "--run-dir", str(run), "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["backend"] == "software"


def test_prune_help_shows_the_recipe_and_derived_settings(app):
    r = invoke(app, "prune", "--help")
    assert r.exit_code == 0
    for opt in ("--recipe", "--config-file", "--set", "--batch-size", "--to-lr", "--validation", "--features-file"):
        assert opt in r.output


def test_prune_paper_recipe_on_a_feature_file_with_config_file_and_set(app, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    feats = tmp_path / "feats.npz"
    np.savez(feats, X_train=rng.random((80, 23, 20)).astype(np.float32), y_train=rng.integers(0, 10, 80),
             X_test=rng.random((20, 23, 20)).astype(np.float32), y_test=rng.integers(0, 10, 20))  # fmt: skip
    toml = tmp_path / "run.toml"
    toml.write_text('[optimiser]\nbatch_size = 40\n[data]\nsource = "paper-features"\n')
    run = tmp_path / "run"
    r = invoke(app, "prune", "--task", "fsdd-crnn", "--recipe", "paper", "--backend", "software", "--epochs", "1",
               "--config-file", str(toml), "--set", "optimiser.batch_size=20", "--features-file", str(feats),
               "--validation", "0.25", "--run-dir", str(run), "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["recipe"] == "paper" and cfg["optimiser"]["batch_size"] == 20  # --set wins over the file
    assert cfg["data"]["validation"] == 0.25 and cfg["network"]["time_aggregation"] == "mean"
    assert json.loads((run / "split.json").read_text()) == {
        "validation_fraction": 0.25,
        "validation_seed": 0,
        "train": 60,
        "validation": 20,
        "test": 20,
    }
    r = invoke(app, "prune", "--task", "fsdd-crnn", "--set", "nosuch=1", "--run-dir", str(tmp_path / "x"))
    assert r.exit_code == 2 and "nosuch" in r.output


def test_prune_follows_the_global_model_and_device(tmp_path, monkeypatch):
    """`rramctl --model ideal --device numpy prune` records and uses them (they were ignored before); a device that
    does not exist is one error line and writes no run."""
    from rramctl.cli.main import app as main_app

    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    run = tmp_path / "run"
    r = invoke(main_app, "--model", "ideal", "--device", "numpy", "--seed", "3", "prune", "--task", "fmnist-cnn",
               "--backend", "software", "--epochs", "1", "--run-dir", str(run), "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["chip_model"] == "ideal" and cfg["device"] == "numpy"
    assert cfg["chip_seed"] == 3  # the global --seed is the seed of the run's chips (it was ignored before)
    bad = tmp_path / "bad"
    r = invoke(main_app, "--device", "tpu", "prune", "--task", "fmnist-cnn", "--epochs", "1", "--run-dir", str(bad),
               "--no-progress")  # fmt: skip
    assert r.exit_code == 2 and "tpu" in r.output and "Traceback" not in r.output, r.output
    assert not (bad / "config.json").exists()


def test_prune_progress_bar_says_evaluating_and_counts_saved_epochs(app, tmp_path, monkeypatch):
    write_fmnist(tmp_path / "fm", n_train=64, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    r = invoke(app, "prune", "--task", "fmnist-cnn", "--backend", "software", "--epochs", "2", "--run-dir",
               str(tmp_path / "run"))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "epoch 1: evaluating" in r.output and "epoch 2: evaluating" in r.output
    assert "2/2" in r.output and "epoch 2 saved, val " in r.output and "%, test " in r.output
