"""Atomic file writes: the one helper every writer in rramctl uses.

A reader sees either the old file or the complete new one, never a part: the data goes to a
temporary file with a unique name in the target folder, is flushed and fsynced, then renamed over
the target, and the folder is fsynced so the rename survives a power cut. On any failure
(including KeyboardInterrupt) the temporary file is removed and the target is untouched. A target that exists and
is not a regular file (a folder, /dev/null, a FIFO) is refused before anything is written: the rename would replace
it by a file. :func:`interrupts_held` lets a write that must complete (the chip's state file at the end of a command)
finish before a Ctrl-C acts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from rramctl.errors import UsageError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse a directory fsync
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), not {mode!r}")
    target = Path(path)
    if target.is_symlink():  # write the file the link names; the link stays (a rename would replace the link)
        target = target.resolve()
    if target.exists() and not target.is_file():  # the rename would replace a device or pipe by a file
        raise UsageError(f"{target} exists and is not a regular file (a folder, device or pipe); give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _mode_for(target))  # mkstemp makes 0600: the file gets the mode a plain open would give
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _mode_for(target: Path) -> int:
    """The permission bits of the file that replaces ``target``: its own where it exists (an overwrite keeps them),
    else 0666 less the process's umask, as ``open(path, "w")`` gives (ours: outputs a user shares stay shareable)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: read from /proc where Linux has it (reading it otherwise means setting it, for a moment,
    which another thread's open would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Atomically write ``path`` with ``write(file)`` (e.g. ``lambda f: np.savez(f, **arrays)``)."""
    with atomic_open(path, "wb") as f:
        write(f)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while the block runs, then act on it: a write that must complete (the chip's state file,
    which holds the cells a command changed: cut off, the atomic write would leave the file of before the command)
    completes, and a SIGINT that arrived meanwhile is raised as ``KeyboardInterrupt`` when the block ends (an
    exception of the block's own wins). Only where Python's default SIGINT handler is installed and in the main
    thread (the one that receives signals); elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_with", "interrupts_held"]
