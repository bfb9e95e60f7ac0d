"""The result object every benchmark here prints with ``--json`` and saves with ``--out``: its figures,
then ``setup`` (how they were measured, the machine, the library versions, the command)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rramctl.fileio import atomic_write_text


def _numba_version() -> str | None:
    """The numba the emulator's compiled read-out uses (None: the numpy path ran)."""
    try:
        import numba
    except ImportError:
        return None
    return str(numba.__version__)


def emit(
    result: dict[str, Any], setup: dict[str, Any], out: Path | None, as_json: bool, summary: list[str] | None = None
) -> None:
    """Add ``setup`` (plus machine, versions, the numba and CPU facts the timings depend on, and the
    command line) to ``result``; write it to ``out`` (atomically); print it when ``as_json``, else the
    ``summary`` lines (the figures for a reader)."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    result["setup"] = {
        **setup,
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch_version,
        "numba": _numba_version(),
        "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
    }
    text = json.dumps(result, indent=2)
    if out is not None:
        atomic_write_text(out, text + "\n")
    if as_json:
        print(text)
    else:
        print("\n".join(summary or []))
