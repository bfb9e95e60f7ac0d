"""The CLI's one error path, --json for every command, --version, outputs checked before the chip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rramctl import __version__
from rramctl.chip import Chip
from rramctl.cli.main import app
from rramsim import state as sim_state
from typer.testing import CliRunner


def invoke(*args: str, **kw: object):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), **kw)  # type: ignore[arg-type]


def emulator(tmp_path: Path) -> list[str]:
    return ["--backend", "emulator", "--state", str(tmp_path / "chip.npz"), "--seed", "1"]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_version_and_json_before_or_after_the_command(tmp_path: Path) -> None:
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"rramctl {__version__}"
    for args in (["--json", "info"], ["info", "--json"]):
        r = invoke(*emulator(tmp_path), *args)
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["backend"] == "emulator"


def test_a_rejected_configuration_is_one_error_line_and_one_line_per_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[form]\nvoltage_v = 9\nbogus = 1\n")
    r = invoke(*emulator(tmp_path), "--config", str(bad), "info")
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert error_lines(r.output) == [lines[0]] and "bad.toml" in lines[0]
    assert all(line.startswith("  ") for line in lines[1:]) and any("form.bogus" in line for line in lines)
    assert "input_value" not in r.output and "https://" not in r.output
    r = invoke(*emulator(tmp_path), "form", "--voltage", "9")
    assert r.exit_code == 2 and "exceeds the absolute maximum rating" in r.output
    assert "form: --voltage 9 refused" in r.output and "BoardConfig" not in r.output  # the option, not the model
    assert not (tmp_path / "chip.npz").exists()  # refused before the chip was opened


def test_outputs_are_checked_before_the_chip_is_touched(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for cmd in (["read", "--out", str(blocker / "g.npy")],
                ["read", "--out", str(tmp_path / "g.npy"), "--png", str(blocker / "g.png")],
                ["multiply", "--random", "2", "--out", str(blocker / "p.npz")],
                ["read", "--out", str(tmp_path)]):  # fmt: skip
        r = invoke(*emulator(tmp_path), *cmd)
        assert r.exit_code == 2 and len(error_lines(r.output)) == 1, r.output
        assert not (tmp_path / "chip.npz").exists(), cmd  # the chip was never opened
    r = invoke(*emulator(tmp_path), "multiply", "--random", "2", "--region", "0:4,250:10")
    assert r.exit_code == 2 and "pair" in r.output and not (tmp_path / "chip.npz").exists()


def test_a_bug_keeps_its_traceback_and_debug_shows_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Chip, *a: object, **k: object) -> None:
        raise ZeroDivisionError("a programming error")

    monkeypatch.setattr(Chip, "read", broken)
    r = invoke(*emulator(tmp_path), "read", "--out", str(tmp_path / "g.npy"), "--png", str(tmp_path / "g.png"))
    assert r.exit_code == 1 and isinstance(r.exception, ZeroDivisionError)
    monkeypatch.undo()
    (tmp_path / "junk.npz").write_bytes(b"junk")
    args = ["--backend", "emulator", "--state", str(tmp_path / "junk.npz"), "info"]
    r = invoke(*args)
    assert r.exit_code == 2 and "junk.npz" in error_lines(r.output)[0]
    for r in (invoke("--debug", *args), invoke(*args, env={"RRAMCTL_DEBUG": "1"})):  # the traceback, then the line
        assert r.exit_code == 2 and "Traceback" in r.output and "StateError" in r.output, r.output
        assert "junk.npz" in error_lines(r.output)[0]


def test_ctrl_c_is_one_error_line_and_the_chip_keeps_what_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke(*emulator(tmp_path), "form", "--region", "0:4,0:4").exit_code == 0
    done = sim_state.load(tmp_path / "chip.npz").counters.op_count

    def interrupted(self: Chip, *a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Chip, "reset", interrupted)
    r = invoke(*emulator(tmp_path), "reset", "--cell", "0,0")
    assert r.exit_code == 130 and error_lines(r.output)[0].startswith("error: interrupted")
    assert sim_state.load(tmp_path / "chip.npz").counters.op_count == done  # still a whole state file


def test_prune_and_infer_json_outputs_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training_fixtures import write_fmnist

    write_fmnist(tmp_path / "fm", n_train=48, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    run = tmp_path / "run"
    prune = ["--backend", "software", "prune", "--task", "fmnist-cnn", "--run-dir", str(run), "--no-progress"]
    r = invoke(*prune, "--data-dir", str(tmp_path / "nowhere"), "--no-download")
    assert r.exit_code == 2 and "nowhere" in error_lines(r.output)[0]
    assert not (run / "config.json").exists()
    from rramctl.cli.train_cmds import _load_data, build_config
    from rramctl.training.runner import Run

    cfg = build_config({"task": "fmnist-cnn", "backend": "software", "epochs": 1}, None, [], {})
    Run.open(cfg, run, _load_data(cfg, download=False)).close()  # formed and checkpointed, not trained
    r = invoke("infer", "--run", str(run))
    assert r.exit_code == 2 and "--allow-untrained" in r.output
    r = invoke("infer", "--run", str(run), "--forward", "gpu")
    assert r.exit_code == 2 and "chip or host" in r.output
    r = invoke("infer", "--run", str(run), "--test-subset", "-5")  # named as the user wrote it
    assert r.exit_code == 2 and error_lines(r.output) == ["error: --test-subset must be at least 1 sample, got -5"]
    r = invoke("--json", *prune, "--epochs", "1")  # resumes the untrained run and trains it
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["epochs_done"] == 1  # notes went to stderr: stdout is one JSON object
    before = (run / "summary.json").read_bytes()
    r = invoke("infer", "--run", str(run), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["epochs_done"] == 1
    assert (run / "summary.json").read_bytes() == before and (run / "infer" / "summary.json").exists()
    assert "chip_disagreement" in json.loads(r.stdout)  # the chip as saved, checked and not reprogrammed


def test_user_errors_keep_status_2_with_debug_and_bad_seeds_models_ports_are_one_line(tmp_path: Path) -> None:
    """--debug adds the traceback and keeps exit status 2; a seed out of range, a model file with a bad field, --port
    with another backend: one clear error, not a traceback."""
    r = invoke(*emulator(tmp_path), "--debug", "form", "--voltage", "9")
    assert r.exit_code == 2 and "exceeds the absolute maximum rating" in r.output
    for seed in ("-3", str(2**64)):
        r = invoke("--backend", "emulator", "--state", str(tmp_path / "s.npz"), "--seed", seed, "info")
        assert r.exit_code == 2 and "Traceback" not in r.output and "--seed" in r.output, r.output
    model = tmp_path / "m.toml"
    model.write_text("x = 1\n")
    r = invoke("--backend", "emulator", "--state", str(tmp_path / "m.npz"), "--model", str(model), "info")
    assert r.exit_code == 2 and error_lines(r.output) == [f"error: chip model {model} is invalid:"], r.output
    assert "  x: Extra inputs are not permitted" in r.output and "https://" not in r.output
    r = invoke("--backend", "emulator", "--port", "/dev/ttyUSB0", "--state", str(tmp_path / "p.npz"), "info")
    assert r.exit_code == 2 and "--port /dev/ttyUSB0 is for the serial backend" in r.output
    assert not any((tmp_path / n).exists() for n in ("s.npz", "m.npz", "p.npz"))


def test_rramctl_warnings_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from rramctl.chip import SaturationWarning
    from rramctl.cli.main import _show_warning

    _show_warning(SaturationWarning("multiply: 3 ADC samples clipped"), SaturationWarning, "x.py", 1)
    assert capsys.readouterr().err == "warning: multiply: 3 ADC samples clipped\n"


def test_the_software_backend_keeps_its_chip_in_a_file_of_its_own(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """--backend software: the chip persists between commands in software.npz (never the emulator's file), and
    info / selftest work without overlay registers."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RRAMCTL_STATE", raising=False)
    r = invoke("--backend", "software", "form", "--region", "0:8,0:8")
    assert r.exit_code == 0, r.output
    r = invoke("--backend", "software", "--json", "read", "--region", "0:8,0:8", "--out", str(tmp_path / "g.npy"),
               "--png", str(tmp_path / "g.png"))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["formed_fraction"] > 0.2  # the formed cells of the previous command
    assert (tmp_path / "xdg" / "rramctl" / "software.npz").exists()
    assert not (tmp_path / "xdg" / "rramctl" / "emulator.npz").exists()
    r = invoke("--backend", "software", "--json", "info")
    assert r.exit_code == 0 and json.loads(r.output)["overlay_version"] is None, r.output
    r = invoke("--backend", "software", "selftest")
    assert r.exit_code == 0 and "FAIL" not in r.output, r.output


def test_form_pairs_resume_needs_an_interrupted_run_and_the_hint_names_the_chip(tmp_path: Path, mocker) -> None:  # noqa: ANN001
    r = invoke(*emulator(tmp_path), "form", "--pairs", "--region", "0:8,0:8", "--resume")
    assert r.exit_code == 2 and "nothing to resume" in r.output, r.output
    mocker.patch.object(Chip, "electroform_pairs", side_effect=KeyboardInterrupt)
    r = invoke(*emulator(tmp_path), "form", "--pairs", "--region", "0:8,0:8")
    assert r.exit_code == 130
    assert f"--backend emulator --state {tmp_path / 'chip.npz'} form --pairs --region 0:8,0:8 --resume" in r.output


def test_json_errors_are_one_json_object_on_stdout(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, [*emulator(tmp_path), "--json", "reset", "--cell", "600,1"])
    assert r.exit_code == 2
    assert json.loads(r.stdout) == {"error": "1 cell(s) lie outside the 512x512 array, first: row 600, col 1",
                                    "exit_status": 2}  # fmt: skip
    assert "error: 1 cell(s)" in r.stderr


def test_seed_and_model_that_a_state_file_overrides_are_noted(tmp_path: Path) -> None:
    state = ["--backend", "emulator", "--state", str(tmp_path / "c.npz")]
    assert invoke(*state, "--seed", "3", "info").exit_code == 0
    r = CliRunner().invoke(app, [*state, "--seed", "3", "info"])
    assert r.exit_code == 0 and "ignored" not in r.stderr  # the chip was made with seed 3: nothing to say
    r = CliRunner().invoke(app, [*state, "--seed", "4", "--model", "ideal", "info"])
    assert r.exit_code == 0 and "note: --seed and --model ignored" in r.stderr, r.stderr


@pytest.mark.parametrize("text", ["", "\n", "# no cells\n"])
def test_an_empty_cells_table_is_an_empty_cell_list(tmp_path: Path, text: str) -> None:
    """docs/cli.md: an empty cells file is an empty cell list (a .csv with no rows was refused as shape (0, 1))."""
    cells = tmp_path / "cells.csv"
    cells.write_text(text)
    for cmd in ("reset", "set"):
        r = invoke(*emulator(tmp_path), cmd, "--cells", str(cells))
        assert r.exit_code == 0, r.output
        assert "0 cell(s)" in r.output


def test_a_text_file_named_npy_is_one_clear_error(tmp_path: Path) -> None:
    """Not numpy's "Cannot load file containing pickled data" but what is wrong with the file."""
    bad = tmp_path / "cells.npy"
    bad.write_text("1,2\n")
    r = invoke(*emulator(tmp_path), "reset", "--cells", str(bad))
    assert r.exit_code == 2
    assert error_lines(r.output) == [f"error: --cells: {bad} is not a .npy file: it lacks the .npy header (a "
                                     "comma-separated table is read from a .csv)"]  # fmt: skip
    assert not (tmp_path / "chip.npz").exists()


def test_form_pairs_resume_on_a_region_never_formed_is_refused_despite_its_stuck_cells(tmp_path: Path) -> None:
    """A fresh emulated chip reads a few stuck-on cells in any large region (0.04 %): a resume there is refused
    (it formed every G- cell before: a one-sided network, for ever), and no cell changes."""
    from rramctl.chip import FORMED_THRESHOLD_US, MIN_RESUME_FORMED_FRACTION
    from rramctl.geometry import Region

    state = tmp_path / "chip.npz"
    with Chip.open(backend="emulator", state=state, seed=1) as chip:
        g = chip.read(Region.parse("0:64,0:512"))
        plus = g[:, 0:256]
        assert 0 < (plus > FORMED_THRESHOLD_US).mean() < MIN_RESUME_FORMED_FRACTION  # the stuck-on cells
    r = invoke(*emulator(tmp_path), "form", "--pairs", "--region", "0:64,0:256", "--resume")
    assert r.exit_code == 2 and "nothing to resume" in r.output and "formed" in r.output, r.output
    with Chip.open(backend="emulator", state=state, seed=1) as chip:
        after = chip.read(Region.parse("0:64,0:512"))
    assert ((after > FORMED_THRESHOLD_US) == (g > FORMED_THRESHOLD_US)).all()  # no cell formed


def test_infer_names_a_run_that_is_a_file_and_a_busy_run_folder_is_a_folder(tmp_path: Path) -> None:
    """From the CLI audit: ``infer --run afile`` said "--out afile/infer: afile is a file" (the option the user did
    not give), and a locked run folder said "use another file"."""
    from rramctl.paths import FileLock

    afile = tmp_path / "afile"
    afile.write_text("x")
    r = invoke("infer", "--run", str(afile))
    assert r.exit_code == 2
    assert error_lines(r.output) == [f"error: --run {afile}: a file, not a run folder written by rramctl prune"]
    folder = tmp_path / "run"
    folder.mkdir()
    with FileLock(folder, "run folder", wait_s=0).acquire(), pytest.raises(Exception, match="another folder"):
        FileLock(folder, "run folder", wait_s=0).acquire()


def test_a_state_path_under_a_file_says_the_file_is_no_folder(tmp_path: Path) -> None:
    """``--state good.npz/x.npz`` said "good.npz: File exists; check the path and the device" (CLI audit)."""
    good = tmp_path / "good.npz"
    good.write_text("x")
    r = invoke("--backend", "emulator", "--state", str(good / "x.npz"), "info")
    assert r.exit_code == 2 and error_lines(r.output) == [
        f"error: {good}: File exists; it is a file where the path needs a folder; choose another path"
    ], r.output
    assert good.read_text() == "x"


def test_a_saturated_pair_multiply_names_each_half_in_its_warning(tmp_path: Path) -> None:
    """The same "multiply: N ADC samples clipped" line came twice for a pair multiply (CLI audit): each names its
    half."""
    import warnings as w

    import numpy as np
    from rramctl.chip import SaturationWarning
    from rramctl.geometry import Region

    with Chip.open(backend="emulator", state=tmp_path / "chip.npz", seed=1) as chip:
        region = Region.parse("0:512,0:8")
        chip.electroform_pairs(region)
        with w.catch_warnings(record=True) as caught:
            w.simplefilter("always")
            chip.multiply_pairs(np.full((2, 512), 15), region, 4)
    texts = [str(c.message) for c in caught if issubclass(c.category, SaturationWarning)]
    assert texts and all(t.startswith(("multiply, G+ half:", "multiply, G- half:")) for t in texts), texts
