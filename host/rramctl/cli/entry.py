"""The ``rramctl`` program's entry point: the command line (:mod:`rramctl.cli.main`, which loads numpy, pydantic and
typer: tenths of a second) is imported inside a guard, so a Ctrl-C during that import is the CLI's one ``error:`` line
and status 130 like every other interrupt, not Python's traceback. This module imports nothing heavy itself."""

from __future__ import annotations

import importlib
import sys

#: Exit status of a command cut off by Ctrl-C (SIGINT), as a shell gives a process that SIGINT ends (128 + 2).
INTERRUPTED_STATUS = 130
#: What a Ctrl-C before the command started says (while rramctl loaded, or while its options were read).
INTERRUPTED_BEFORE = "interrupted (Ctrl-C) before the command started: nothing was changed"


def main() -> None:
    """Run the ``rramctl`` command line on ``sys.argv`` (exits with its status)."""
    try:
        cli = importlib.import_module("rramctl.cli.main")
    except KeyboardInterrupt:
        sys.stderr.write(f"error: {INTERRUPTED_BEFORE}\n")
        raise SystemExit(INTERRUPTED_STATUS) from None
    cli.app()
