"""Ctrl-C (SIGINT) wherever it arrives: one ``error:`` line on stderr that says what was kept, exit status 130, and a
whole state file holding what completed. A Ctrl-C at a command's end (as rramctl exited, after the work) used to exit
130 with no message; one during the state save lost the command's work (the atomic write left the file of before);
one during the command exited 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rramctl.cli import main as cli_main
from rramctl.cli.io import INTERRUPTED_AFTER, INTERRUPTED_BEFORE, INTERRUPTED_DURING
from rramctl.cli.main import GuardedGroup, app
from rramctl.fileio import interrupts_held
from rramsim import state as sim_state
from typer.testing import CliRunner


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler, as a shell gives rramctl (a test run in the background may have SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def emulator(tmp_path: Path) -> list[str]:
    return ["--backend", "emulator", "--state", str(tmp_path / "chip.npz"), "--seed", "1"]


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def pulses(tmp_path: Path) -> int:
    return int(sim_state.load(tmp_path / "chip.npz").counters.pulse_count)


def test_ctrl_c_as_rramctl_exits_after_the_command_is_one_line_and_130(tmp_path: Path, mocker: Any) -> None:
    """The SIGINT arrives after the command's work, as typer closes its context and exits (outside the command)."""
    context_class = typer.main.get_command(app).context_class
    original = context_class.close

    def close_then_ctrl_c(ctx: Any) -> None:
        original(ctx)
        if ctx.parent is None:  # the main command's context: closed as rramctl exits
            raise KeyboardInterrupt

    mocker.patch.object(context_class, "close", close_then_ctrl_c)
    r = invoke(*emulator(tmp_path), "reset", "--cell", "0,0")
    assert r.exit_code == 130, r.output
    assert errors(r.stderr) == [f"error: {INTERRUPTED_AFTER}"], r.stderr
    assert "reset: 1 cell(s)" in r.stdout  # the command had ended
    assert pulses(tmp_path) == 1  # and its state was saved


def test_ctrl_c_right_after_the_command_returned(tmp_path: Path, mocker: Any) -> None:
    original = GuardedGroup.invoke

    def invoke_then_ctrl_c(self: GuardedGroup, ctx: Any) -> Any:
        original(self, ctx)
        raise KeyboardInterrupt

    mocker.patch.object(GuardedGroup, "invoke", invoke_then_ctrl_c)
    r = invoke(*emulator(tmp_path), "reset", "--cell", "0,0")
    assert r.exit_code == 130 and errors(r.stderr) == [f"error: {INTERRUPTED_AFTER}"], r.stderr
    assert pulses(tmp_path) == 1
    group = typer.main.get_command(app)  # a caller that takes the status back (standalone_mode=False)
    status = group.main([*emulator(tmp_path), "reset", "--cell", "0,1"], standalone_mode=False)
    assert status == 130 and pulses(tmp_path) == 2


def test_ctrl_c_while_the_state_file_is_saved_keeps_the_work(tmp_path: Path, mocker: Any, python_sigint: None) -> None:
    """A real SIGINT in the middle of the save at the command's end: the save completes, then the Ctrl-C acts."""
    assert invoke(*emulator(tmp_path), "reset", "--cell", "0,0").exit_code == 0
    original = sim_state.dump

    def sigint_during_dump(*a: Any, **k: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return original(*a, **k)

    mocker.patch.object(sim_state, "dump", sigint_during_dump)
    r = invoke(*emulator(tmp_path), "reset", "--cell", "0,1", "--cell", "0,2")
    mocker.stopall()
    assert r.exit_code == 130, r.output
    assert errors(r.stderr) == [f"error: {INTERRUPTED_DURING}"], r.stderr
    assert "the emulator's state is saved" in r.stderr
    assert pulses(tmp_path) == 3  # the interrupted command's two pulses are in the file
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not list(tmp_path.glob(".chip.npz.*.tmp"))


def test_ctrl_c_while_the_output_is_written_with_json(tmp_path: Path, mocker: Any) -> None:
    mocker.patch.object(cli_main, "emit", side_effect=KeyboardInterrupt)
    r = invoke(*emulator(tmp_path), "--json", "reset", "--cell", "0,0")
    assert r.exit_code == 130
    assert json.loads(r.stdout) == {"error": INTERRUPTED_DURING, "exit_status": 130}
    assert errors(r.stderr) == [f"error: {INTERRUPTED_DURING}"]
    assert pulses(tmp_path) == 1  # the work before the output is kept


def test_ctrl_c_before_the_command_starts_changes_nothing(tmp_path: Path, mocker: Any) -> None:
    mocker.patch.object(GuardedGroup, "parse_args", side_effect=KeyboardInterrupt)
    r = invoke(*emulator(tmp_path), "reset", "--cell", "0,0")
    assert r.exit_code == 130 and errors(r.stderr) == [f"error: {INTERRUPTED_BEFORE}"], r.stderr
    assert not (tmp_path / "chip.npz").exists()


def test_form_pairs_interrupted_names_the_resume_command_with_130(tmp_path: Path, mocker: Any) -> None:
    from rramctl.chip import Chip

    mocker.patch.object(Chip, "electroform_pairs", side_effect=KeyboardInterrupt)
    r = invoke(*emulator(tmp_path), "form", "--pairs", "--region", "0:8,0:8")
    assert r.exit_code == 130 and len(errors(r.stderr)) == 1, r.stderr
    assert errors(r.stderr)[0].startswith("error: interrupted (Ctrl-C): forming of the pairs")
    assert "form --pairs --region 0:8,0:8 --resume" in r.stderr


def test_interrupts_held_lets_the_block_finish_then_raises(python_sigint: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C: still one KeyboardInterrupt, after the block
        done.append(1)
    assert done == [1] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupts_held():  # no Ctrl-C: nothing raised
        done.append(2)
    assert done == [1, 2]


def test_ctrl_c_in_pythons_teardown_after_the_command_is_ignored(tmp_path: Path) -> None:
    """The rramctl program (its command line from sys.argv): a SIGINT once Python's teardown has put SIGINT back to
    its default action killed the process (status 130, no message) after a command that had completed and said so;
    it is ignored now and the process exits with the command's status."""
    import rramctl
    import rramsim

    script = tmp_path / "teardown.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, signal, sys

        class CtrlCInTeardown:  # collected in Python's teardown, after its SIGINT handler is gone
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)

        keep = CtrlCInTeardown()
        from rramctl.cli.main import app

        sys.argv = ["rramctl", "--backend", "emulator", "--state", {str(tmp_path / "chip.npz")!r}, "reset", "--cell",
                    "0,0"]
        app()
    """)
    )
    paths = {str(Path(m.__file__).parents[1]) for m in (rramctl, rramsim)}  # type: ignore[arg-type]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "reset: 1 cell(s)" in r.stdout and pulses(tmp_path) == 1


def _run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """``body`` in a fresh Python with rramctl and rramsim importable and Python's own SIGINT handler."""
    import rramctl
    import rramsim

    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    paths = {str(Path(m.__file__).parents[1]) for m in (rramctl, rramsim)}  # type: ignore[arg-type]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def test_ctrl_c_while_rramctl_loads_is_one_line_and_130(tmp_path: Path) -> None:
    """The program's entry point (pyproject's script): a real SIGINT while the command line is imported (numpy,
    pydantic, typer: tenths of a second) was Python's KeyboardInterrupt traceback; it is the one error line now and
    nothing runs. The SIGINT is sent from inside the import, so it always arrives there."""
    r = _run_script(
        tmp_path,
        f"""
        import importlib, os, signal, sys
        from rramctl.cli import entry

        real_import = importlib.import_module

        def import_then_ctrl_c(name, *args, **kwargs):
            module = real_import(name, *args, **kwargs)
            if name == "rramctl.cli.main":  # delivered before the import returns to entry.main
                os.kill(os.getpid(), signal.SIGINT)
            return module

        entry.importlib.import_module = import_then_ctrl_c
        sys.argv = ["rramctl", "--backend", "emulator", "--state", {str(tmp_path / "chip.npz")!r}, "reset", "--cell",
                    "0,0"]
        entry.main()
    """,
    )
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == [f"error: {INTERRUPTED_BEFORE}"] and r.stdout == ""
    assert not (tmp_path / "chip.npz").exists()  # nothing ran


def test_the_entry_point_loads_nothing_heavy_before_its_guard(tmp_path: Path) -> None:
    """``rramctl`` runs rramctl.cli.entry:main, and importing that module loads neither numpy nor typer (so the guard
    covers the whole load of the command line)."""
    import tomllib

    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["scripts"]["rramctl"] == "rramctl.cli.entry:main"
    r = _run_script(
        tmp_path,
        """
        import sys
        import rramctl.cli.entry
        print(sorted(m for m in ("numpy", "typer", "pydantic", "torch") if m in sys.modules))
    """,
    )
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)


def test_python_m_rramctl_is_the_program(tmp_path: Path) -> None:
    """``python -m rramctl`` runs the same entry point as the ``rramctl`` script (for a scripts folder not on PATH)."""
    r = _run_script(
        tmp_path,
        f"""
        import runpy, sys
        sys.argv = ["rramctl", "--backend", "emulator", "--state", {str(tmp_path / "chip.npz")!r}, "reset", "--cell",
                    "0,0"]
        runpy.run_module("rramctl", run_name="__main__")
    """,
    )
    assert r.returncode == 0 and "reset: 1 cell(s)" in r.stdout, (r.returncode, r.stderr)
    assert pulses(tmp_path) == 1
