"""`rramctl COMMAND --help` shows no type beside a flag: typer's Rich help wrote `<bool>` beside every option that
takes no value (`--pairs`, `--download/--no-download`, `--json`, `--help`), as if it took one."""

from __future__ import annotations

import re

import pytest
import typer
from rramctl.cli.main import app
from typer.testing import CliRunner

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def help_of(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], terminal_width=250, env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    return r.output


def test_every_command_is_walked() -> None:
    assert {"form", "read", "multiply", "prune", "infer", "calibrate", "selftest"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_no_help_shows_a_type_beside_a_flag(command: str) -> None:
    text = help_of(*([command] if command else []))
    assert "<bool>" not in text, text
    assert re.search(r"--help\s+Show this message", text), text  # the flag's help follows its name


def test_options_that_take_a_value_keep_their_type() -> None:
    text = help_of("form")
    assert re.search(r"--voltage\s+<float>", text) and re.search(r"--region\s+<str>", text), text
    assert re.search(r"--pairs\s+differential pairs", text), text
    text = help_of("prune")
    assert re.search(r"--download\s+--no-download\s+download Fashion-MNIST", text), text
    assert re.search(r"--batch-size\s+<int>", text), text
