"""SIGKILL at random points (seeded): chip commands on one emulator state file, and `rramctl prune`.

After every kill: the files are whole (the state file loads, a run folder's LATEST names a complete
checkpoint), a chip command either happened completely or not at all (the state file is saved once, at
the end of a command), and the next command continues and removes any temporary file the killed one
left mid-write. The killed `prune` is
resumed until it finishes; the finished run agrees with a run that was never interrupted, and its
masks agree with the chip.

Slow (minutes: every attempt starts a Python process): ``python -m pytest -m slow tests/test_crash_kill.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rramsim import state as sim_state

pytestmark = pytest.mark.slow

KILLS = 30  # at least this many processes killed in each test
MAX_ATTEMPTS = 120


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rramctl.cli.main", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _kill_after(proc: subprocess.Popen[bytes], delay_s: float) -> bool:
    """SIGKILL ``proc`` after ``delay_s`` unless it ended first; True when it was killed."""
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _run(args: list[str], env: dict[str, str]) -> None:
    proc = _start(args, env)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


def _no_temporary_files(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".probe")]
    assert not left, f"temporary files left behind: {left}"


def _op_count(path: Path) -> int:
    return sim_state.load(path).counters.op_count if path.exists() else 0


def test_killed_chip_commands_leave_the_state_whole_and_all_or_nothing(tmp_path: Path) -> None:
    state, out = tmp_path / "chip.npz", tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, RRAMCTL_STATE=str(state))
    base = ["--backend", "emulator", "--seed", "2"]
    commands = [
        ["form", "--region", "0:32,0:64"],
        ["form", "--pairs", "--region", "32:16,0:32"],
        ["reset", "--region", "0:8,0:16"],
        ["set", "--region", "0:4,0:16"],
        ["multiply", "--random", "16", "--region", "0:64,0:32", "--out", str(out / "p.npz")],
        ["read", "--region", "0:64,0:96", "--out", str(out / "g.npy"), "--png", str(out / "g.png")],
    ]
    rng = np.random.default_rng(2026)
    kills = attempts = 0
    while kills < KILLS and attempts < MAX_ATTEMPTS:
        cmd = commands[attempts % len(commands)]
        attempts += 1
        before = _op_count(state)
        # the work the command does when nothing interrupts it, from this same state (on a copy): the
        # emulator is deterministic, and a command's work depends on the state (form --pairs ramps only
        # the G- cells still unformed), so a rerun on the real state does not measure it
        reference = out / "reference.npz"
        reference.unlink(missing_ok=True)
        if state.exists():
            shutil.copyfile(state, reference)
        _run([*base, *cmd], dict(env, RRAMCTL_STATE=str(reference)))
        full = _op_count(reference) - before
        killed = _kill_after(_start([*base, *cmd], env), float(rng.uniform(0.3, 4.0)))
        kills += killed
        cut = _op_count(state)  # loads the state file: it is whole
        _run([*base, *cmd], env)  # the same command again, to the end
        _no_temporary_files(tmp_path)
        assert cut - before in (0, full), f"{cmd}: a killed command left part of its work ({cut - before} of {full})"
        if (out / "p.npz").exists():
            with np.load(out / "p.npz") as p:
                assert p["codes"].shape == (16, 32)
        if (out / "g.npy").exists():
            assert np.load(out / "g.npy").shape == (64, 96)
    assert kills >= KILLS, f"only {kills} of {attempts} commands were still running when killed"


PRUNE = ["--backend", "software", "prune", "--task", "fmnist-cnn", "--epochs", "4", "--subset", "96",
         "--test-subset", "16", "--no-progress"]  # fmt: skip


def _check_run_folder(run: Path) -> None:
    """Whatever a kill left: JSON files parse; LATEST names a complete checkpoint."""
    if not run.exists():
        return
    for name in ("config.json", "split.json", "metrics.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    latest = run / "checkpoints" / "LATEST"
    if latest.exists():
        from rramctl.software import SoftwareChip
        from safetensors.torch import load_file

        ck = run / "checkpoints" / latest.read_text().strip()
        assert ck.parent == run / "checkpoints" and ck.is_dir()
        load_file(ck / "model.safetensors")
        json.loads((ck / "state.json").read_text())
        SoftwareChip.load(ck / "array0.npz")


def _finished(run: Path, data: Path) -> tuple[dict[str, float], dict[str, np.ndarray], bool]:
    from rramctl.cli.train_cmds import _load_data
    from rramctl.training.runner import load_run
    from rramctl.training.topology import verify_chip

    os.environ["RRAMCTL_DATA"] = str(data)
    r = load_run(run, lambda cfg: _load_data(cfg, download=False))
    try:
        assert r.progress.epoch == 4
        metrics = {f"{m['epoch']}": m["test_accuracy"] for m in r.metrics}
        masks = {name: t.detach().numpy().copy() for name, t in r.net.state_dict().items() if name.endswith("scores")}
        agree = verify_chip(r.net, r.mapped, repair=False).ok
    finally:
        r.close()
    return metrics, masks, agree


def test_killed_prune_resumes_to_the_uninterrupted_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training_fixtures import write_fmnist

    data = tmp_path / "fm"
    write_fmnist(data, n_train=160, n_test=16)
    monkeypatch.setenv("RRAMCTL_DATA", str(data))
    env = dict(os.environ, RRAMCTL_DATA=str(data))
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    _run([*PRUNE, "--run-dir", str(clean)], env)
    rng = np.random.default_rng(15)
    kills = attempts = 0
    t0 = time.monotonic()
    while kills < KILLS and attempts < MAX_ATTEMPTS:
        attempts += 1
        killed = _kill_after(_start([*PRUNE, "--run-dir", str(cut)], env), float(rng.uniform(1.0, 9.0)))
        kills += killed
        _check_run_folder(cut)
        if not killed:  # it finished: start over in a fresh folder so the kills keep landing in training
            cut.rename(tmp_path / f"done-{attempts}")
    assert kills >= KILLS, f"only {kills} kills in {attempts} attempts ({time.monotonic() - t0:.0f} s)"
    _run([*PRUNE, "--run-dir", str(cut)], env)  # resume to the end
    _check_run_folder(cut)
    _no_temporary_files(cut)  # the resumed run removed what killed writes left
    got, want = _finished(cut, data), _finished(clean, data)
    assert got[2] and want[2], "a run's masks disagree with its chip"
    assert got[0] == want[0], "the resumed run's test accuracies differ from the uninterrupted run's"
    for name, scores in want[1].items():
        np.testing.assert_array_equal(got[1][name], scores, err_msg=name)
