"""The CLI's dealings with the user's files and with errors: cell lists and input vectors (.npy or
.csv) read with clear errors, output paths checked before the chip is touched, and the one
rendering of a user-facing error."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from rramctl.cli.entry import INTERRUPTED_BEFORE as INTERRUPTED_BEFORE  # re-exported: the CLI's interrupt texts
from rramctl.cli.entry import INTERRUPTED_STATUS as INTERRUPTED_STATUS
from rramctl.errors import RramctlError, UsageError
from rramctl.geometry import COLS, ROWS, GeometryError, Region, check_cells
from rramctl.paths import FILE_WHERE_FOLDER, READ_ERRORS

INT_LIMIT = 1 << 62  # (ours) larger "integers" in a user's file are refused, not wrapped
NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (NumPy's format)


class InputFileError(UsageError):
    """A file the user gave that is missing or malformed."""


#: What an interrupt during a command says: what the chip and the run folder keep, and what to do.
INTERRUPTED_DURING = ("interrupted (Ctrl-C); operations that completed are kept (the emulator's state is saved, a run "
                      "folder resumes from its last checkpoint): run the command again to continue")  # fmt: skip
#: ... after the command ended (its outputs written, the chip's state saved), as rramctl exited.
INTERRUPTED_AFTER = ("interrupted (Ctrl-C) as rramctl exited, after the command had ended: what it completed is "
                     "saved (its outputs and the chip's state file are whole)")  # fmt: skip


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that a command explains itself (e.g. how to finish what it cut off): its message replaces
    :data:`INTERRUPTED_DURING`; the exit status is :data:`INTERRUPTED_STATUS` as for every interrupt."""


def _first_bad_line(path: Path) -> str:
    """Where a comma-separated table stops parsing, for the error: the 1-based line of the first row that is not
    comma-separated numbers, or that has another count of them than the first row ('' where none is found)."""
    width = None
    with contextlib.suppress(*READ_ERRORS, UnicodeDecodeError):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                values = [float(v) for v in text.split(",")]
            except ValueError:
                return f" (line {n}: {line.strip()[:60]!r})"
            if width is not None and len(values) != width:
                return f" (line {n}: {len(values)} values, line 1 of the table has {width})"
            width = len(values)
    return ""


def load_array(path: Path, allow_bool: bool = True) -> NDArray[np.int64]:
    """An integer table from a .npy file or a comma-separated text file (``#`` comments); ``allow_bool``: a .npy of
    booleans is taken as 0 / 1 (input bits), else refused (a cell list of booleans is a mistake, not cells)."""
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise InputFileError(f"{path} is a folder; give a .npy or .csv file")
    what = f"{path} is not a .npy file or a comma-separated table of numbers"
    try:
        if path.suffix == ".npy":
            with path.open("rb") as f:
                head = f.read(len(NPY_MAGIC))
            if head != NPY_MAGIC:  # else numpy reports it as pickled data
                raise InputFileError(f"{path} is not a .npy file: it lacks the .npy header (a comma-separated table "
                                     "is read from a .csv)")  # fmt: skip
            arr = np.load(path, allow_pickle=False)
        else:
            with warnings.catch_warnings():  # an empty table is an empty cell list, not a warning
                warnings.simplefilter("ignore", UserWarning)
                arr = np.loadtxt(path, delimiter=",", ndmin=2, comments="#", dtype=np.float64)
            if arr.size == 0:  # no rows: no column count either (loadtxt gives shape (0, 1))
                arr = np.zeros(0, dtype=np.float64)
    except InputFileError:
        raise
    except READ_ERRORS as e:
        if isinstance(e, ValueError) and path.suffix != ".npy":  # numpy's row and column count from 0
            raise InputFileError(f"{what}{_first_bad_line(path)}") from e
        raise InputFileError(f"{what}: {type(e).__name__}: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in ("biuf" if allow_bool else "iuf"):
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise InputFileError(f"{what}: it holds {kind} values, not numbers")
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputFileError(f"{path} holds NaN or infinite values")
    if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise InputFileError(f"{path} holds non-integer values")
    if arr.size and np.abs(arr).max() >= INT_LIMIT:
        raise InputFileError(f"{path} holds values too large for a cell index or an input")
    return np.asarray(arr).astype(np.int64)


def parse_cell(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError as e:
        raise GeometryError(f"cell {text!r} is not ROW,COL") from e
    return r, c


def gather_cells(cells_file: Path | None, cell: list[str] | None, region: str | None) -> NDArray[np.int64]:
    """Cells from a file, from repeated --cell R,C, or every cell of a --region."""
    given = [x for x in (cells_file, cell, region) if x]
    if len(given) != 1:
        raise InputFileError("give exactly one of --cells FILE, --cell ROW,COL (repeatable) or --region")
    if cells_file:
        try:
            return check_cells(load_array(cells_file, allow_bool=False))
        except InputFileError as e:  # name the option the file came from
            raise InputFileError(f"--cells: {e}") from None
        except GeometryError as e:  # name the file the cells came from
            raise InputFileError(f"--cells {cells_file}: {e}") from None
    if cell:
        parsed = [parse_cell(c) for c in cell]
        far = [rc for rc in parsed if max(abs(rc[0]), abs(rc[1])) >= INT_LIMIT]  # beyond int64: no array holds them
        if far:
            raise GeometryError(f"{len(far)} cell(s) lie outside the {ROWS}x{COLS} array, first: row {far[0][0]}, "
                                f"col {far[0][1]}")  # fmt: skip
        return check_cells(np.array(parsed, dtype=np.int64))
    reg = Region.parse("all" if region is None else region)
    rr, cc = np.meshgrid(np.arange(reg.row, reg.row + reg.n_rows), np.arange(reg.col, reg.col + reg.n_cols),
                         indexing="ij")  # fmt: skip
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def check_writable(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before any work is done: a folder, something that is
    not a regular file (a device, a FIFO, a socket: the atomic write would replace it by a file), a missing or
    read-only parent folder (missing parents are created)."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise UsageError(f"{option} {path} is not a regular file (a device, pipe or socket: rramctl writes a file "
                         f"in its place); give a file name")  # fmt: skip
    _probe_folder(path.parent, path.name, f"{option} {path}", option)


def check_writable_folder(path: Path, option: str) -> None:
    """Refuse an output folder that cannot be written, before any work is done: a file, a path through a file,
    a read-only place. A missing folder is not made here (a refused command leaves nothing behind): its nearest
    existing parent must take it."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder; choose another {option}")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, not a folder; choose another {option}")
    _probe_folder(existing, path.name or "out", f"{option} {path}", option, make=False)


def _probe_folder(folder: Path, name: str, what: str, option: str, make: bool = True) -> None:
    try:
        if make:
            folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{name}.", suffix=".probe", dir=folder)
    except OSError as e:
        raise UsageError(f"{what}: cannot write in {folder} ({e.strerror or e}); "
                         f"choose another {option} or fix the folder's permissions") from e  # fmt: skip
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(e: ValidationError) -> str:
    """A rejected configuration as one line naming the model, then one line per field."""
    lines = [f"invalid {e.title}: {e.error_count()} value(s) refused"]
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        shown = "" if err["type"] == "missing" or not loc else f" (got {_short(err.get('input'))})"
        lines.append(f"  {loc + ': ' if loc else ''}{msg}{shown}")
    return "\n".join(lines)


_OS_HINTS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "check the path"),
    (IsADirectoryError, "give a file, not a folder"),
    (NotADirectoryError, "a part of the path is a file, not a folder"),
    # making a folder where a file is (e.g. --state FILE/x.npz): mkdir's "File exists" alone says nothing
    (FileExistsError, FILE_WHERE_FOLDER),
    (PermissionError, "check its permissions or choose another path"),
)


def user_error_message(e: BaseException) -> str | None:
    """The one-line (configuration: one line per field) message of a failure the user can fix, or
    None for anything else (a bug: it keeps its traceback)."""
    if isinstance(e, RramctlError):
        if isinstance(e.__cause__, ValidationError):  # a configuration error that carries pydantic's dump
            head = str(e).splitlines()[0].rstrip(":")
            if "validation error" in head:  # pydantic's own title: ours names the model
                return validation_message(e.__cause__)
            return head + "\n" + validation_message(e.__cause__).split("\n", 1)[1]
        return str(e)
    if isinstance(e, ValidationError):
        return validation_message(e)
    if isinstance(e, MemoryError):  # a batch or region too large for this machine
        return (f"not enough memory for this command ({str(e) or 'MemoryError'}); give a smaller batch (--random, "
                "--inputs) or region")  # fmt: skip
    if isinstance(e, KeyboardInterrupt):
        return str(e) if isinstance(e, Interrupted) and str(e) else INTERRUPTED_DURING
    if isinstance(e, OSError) and e.filename is not None:
        hint = next((h for cls, h in _OS_HINTS if isinstance(e, cls)), "check the path and the device")
        return f"{e.filename}: {e.strerror or e}; {hint}"
    return None
