"""An audit of the CLI's promise: every bad input is one clear error (no traceback, exit status 2) and changes nothing;
no operation loses data; the help shows what the code says. Each test failed on the code before the audit."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from rramctl.cli.main import app
from typer.testing import CliRunner

BINARY = bytes(range(256))[::-1]  # not UTF-8 text (0xff first)


def invoke(*args: str, **kw: object):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), **kw)  # type: ignore[arg-type]


def emulator(state: Path) -> list[str]:
    return ["--backend", "emulator", "--state", str(state), "--seed", "1"]


def one_error(r, *names: str) -> str:  # noqa: ANN001 - click's Result
    """The result is one error line (no traceback) with status 2, naming each of ``names``; its line."""
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert all(n in lines[0] for n in names), lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state file with a formed corner, copied by each test that changes it."""
    state = tmp_path_factory.mktemp("chip") / "chip.npz"
    assert invoke(*emulator(state), "form", "--region", "0:8,0:8").exit_code == 0
    return state


def copy_of(chip: Path, tmp_path: Path) -> Path:
    state = tmp_path / "chip.npz"
    state.write_bytes(chip.read_bytes())
    return state


def test_a_cell_beyond_any_integer_is_outside_the_array(chip: Path, tmp_path: Path) -> None:
    state = copy_of(chip, tmp_path)
    before = digest(state)
    for cell in ("99999999999999999999999,1", "1,-99999999999999999999999"):
        r = invoke(*emulator(state), "reset", "--cell", cell)
        one_error(r, "outside the 512x512 array")  # was an OverflowError traceback, exit 1
    assert digest(state) == before


def test_an_output_that_is_not_a_regular_file_is_refused_and_kept(tmp_path: Path) -> None:
    """An atomic write renames a new file over the output: over a FIFO or a device (as root: /dev/null) it replaced
    the special file by a regular one. Refused before the chip is opened."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    state = tmp_path / "chip.npz"
    for cmd in (["read", "--out", str(fifo), "--png", str(tmp_path / "g.png")],
                ["read", "--out", str(tmp_path / "g.npy"), "--png", str(fifo)],
                ["multiply", "--random", "1", "--out", str(fifo)]):  # fmt: skip
        r = invoke(*emulator(state), *cmd)
        one_error(r, str(fifo), "not a regular file")
        assert stat.S_ISFIFO(fifo.lstat().st_mode), cmd  # still the FIFO
        assert not state.exists(), cmd  # the chip was never opened


def test_multiply_refuses_a_negative_input_seed_an_empty_batch_and_a_batch_past_memory(
    chip: Path, tmp_path: Path
) -> None:
    state = copy_of(chip, tmp_path)
    before = digest(state)
    out = tmp_path / "p.npz"
    r = invoke(*emulator(state), "multiply", "--random", "2", "--input-seed", "-1", "--out", str(out))
    assert r.exit_code == 2 and "Traceback" not in r.output and "--input-seed" in r.output, r.output  # was exit 1
    empty = tmp_path / "none.npy"
    np.save(empty, np.zeros((0, 512), dtype=np.int64))
    r = invoke(*emulator(state), "multiply", "--inputs", str(empty), "--out", str(out))
    one_error(r, str(empty), "no input vectors")  # was an IndexError after products.npz had been written
    r = invoke(*emulator(state), "multiply", "--random", str(10**11), "--out", str(out))
    one_error(r, "not enough memory")  # was a MemoryError traceback
    assert not out.exists() and digest(state) == before


def test_binary_files_read_as_text_are_one_error_naming_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chip model, a calibration plan, a --from-csv file that is not UTF-8 text (a .npy given by mistake): one error
    naming it (each was a UnicodeDecodeError traceback)."""
    blob = tmp_path / "blob.toml"
    blob.write_bytes(BINARY)
    state = tmp_path / "chip.npz"
    one_error(invoke(*emulator(state), "--model", str(blob), "info"), "chip model", str(blob), "UTF-8")
    cal = ["calibrate", "--out", str(tmp_path / "cal"), "--no-plots"]
    one_error(invoke(*emulator(state), *cal, "--plan", str(blob)), str(blob), "UTF-8")
    one_error(invoke(*emulator(state), *cal, "--from-csv", str(blob)), str(blob), "UTF-8")
    csv = tmp_path / "m.csv"
    csv.write_text("stage,row,col,index,sub,time_s,voltage_v,value\n")
    one_error(invoke(*emulator(state), *cal, "--base-model", str(blob), "--from-csv", str(csv)), str(blob), "UTF-8")
    assert not state.exists()
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "no-data"))
    run = tmp_path / "run"
    r = invoke("--backend", "emulator", "prune", "--task", "fmnist-cnn", "--chip-model", str(blob), "--no-download",
               "--no-progress", "--run-dir", str(run))  # fmt: skip
    one_error(r, str(blob), "UTF-8")
    assert not run.exists()


def test_calibrate_refuses_outputs_it_cannot_write_before_the_chip_and_csv_with_a_chip_plan(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    state = tmp_path / "chip.npz"
    # --out through a file failed after the chip's first reads; an --export-csv folder after all of them
    for extra in (["--out", str(blocker / "cal")],
                  ["--out", str(tmp_path / "cal"), "--export-csv", str(tmp_path)]):  # fmt: skip
        r = invoke(*emulator(state), "calibrate", "--region", "0:4,0:8", "--no-plots", *extra)
        one_error(r, extra[-1].split("/")[-1])
        assert not state.exists(), extra  # the chip was never opened
    csv = tmp_path / "m.csv"
    csv.write_text("stage,row,col,index,sub,time_s,voltage_v,value\n")
    for extra in (["--region", "0:4,0:8"], ["--plan", str(tmp_path / "plan.toml")]):  # silently ignored before
        r = invoke(*emulator(state), "calibrate", "--from-csv", str(csv), "--out", str(tmp_path / "c2"), *extra)
        one_error(r, "--from-csv", extra[0], "one or the other")


def _trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from training_fixtures import write_fmnist

    write_fmnist(tmp_path / "fm", n_train=48, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path / "fm"))
    run = tmp_path / "run"
    r = invoke("--backend", "software", "prune", "--task", "fmnist-cnn", "--epochs", "1", "--run-dir", str(run),
               "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    return run


def test_prune_and_infer_errors_are_json_with_json_and_infer_never_overwrites_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = invoke("--json", "prune", "--task", "nope", "--run-dir", str(tmp_path / "r"))
    assert r.exit_code == 2 and json.loads(r.stdout) == {"error": r.stderr.strip().removeprefix("error: "),
                                                         "exit_status": 2}, r.output  # fmt: skip
    r = invoke("--json", "infer", "--run", str(tmp_path / "nowhere"))
    assert r.exit_code == 2 and json.loads(r.stdout)["exit_status"] == 2, r.output
    run = _trained_run(tmp_path, monkeypatch)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "summary.json", "confusion.png"):  # another run's outputs
        (other / name).write_text(name)
    r = invoke("infer", "--run", str(run), "--out", str(other))
    one_error(r, str(other), "holds a run")
    assert all((other / n).read_text() == n for n in ("config.json", "summary.json", "confusion.png"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = invoke("infer", "--run", str(run), "--out", str(blocker / "inf"))
    one_error(r, str(blocker / "inf"))


def test_help_shows_bracketed_text_as_written() -> None:
    """Rich took serial:PORT[@BAUD] and each setting's [section.key] for markup and dropped them."""
    r = invoke("--help", terminal_width=250, env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "serial:PORT[@BAUD]" in r.output, r.output
    r = invoke("prune", "--help", terminal_width=250, env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "[network.sparsity]" in r.output and "[optimiser.batch_size]" in r.output, r.output


def test_a_plain_npy_given_as_the_state_file_is_one_error_and_kept(tmp_path: Path) -> None:
    """A conductance map (.npy) given as --state by mistake: one error naming it, the file unchanged (it was a
    TypeError traceback: numpy's array is no archive to open)."""
    state = tmp_path / "conductance.npy"
    np.save(state, np.zeros((4, 4)))
    before = digest(state)
    one_error(invoke(*emulator(state), "read", "--region", "0:2,0:2"), str(state), "single array")
    assert digest(state) == before
