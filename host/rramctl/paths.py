"""Where rramctl keeps its files between commands on the user's machine, and the lock that keeps
two processes from updating one of them at the same time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import tokenize
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from rramctl.errors import StateError

#: What numpy, json and zipfile raise on a damaged file (a bit flipped in an .npy header reaches Python's
#: tokenizer, a truncated archive the zip reader): readers turn these into one error naming the file.
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, KeyError, SyntaxError,
                                               tokenize.TokenError, zipfile.BadZipFile, OverflowError)  # fmt: skip

# what to say where a folder is needed and a file stands (mkdir's bare "File exists"): the API and the CLI alike
FILE_WHERE_FOLDER = "it is a file where the path needs a folder; choose another path"

LOCK_WAIT_S = 10.0  # (ours) how long a second command waits for a file another one is using
LOCK_POLL_S = 0.05  # (ours)


def state_file(env_var: str, name: str) -> Path:
    """``$env_var`` when set, else ``$XDG_STATE_HOME/rramctl/name`` (default ``~/.local/state/rramctl/name``)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "rramctl" / name


def agent_state_path() -> Path:
    """The board agent's own emulated chip (``$RRAMCTL_AGENT_STATE``), never the user's ``rramctl`` chip."""
    return state_file("RRAMCTL_AGENT_STATE", "agent-emulator.npz")


def remove_stale_temporaries(folder: Path, name: str = "*", *, recursive: bool = False) -> None:
    """Remove the temporary files (``.NAME.XXXXXXXX.tmp``, rramctl.fileio) that a writer killed mid-write
    (SIGKILL, power loss) left in ``folder``. Call only while holding the lock of what is written there."""
    for p in (folder.rglob if recursive else folder.glob)(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            p.unlink()


class FileLock:
    """An exclusive advisory lock (``flock``) on ``<path>.lock``, held from :meth:`acquire` to
    :meth:`release`. The lock file holds the holder's PID, so a refused process can say who holds it.
    A second holder waits up to ``wait_s`` (polling; ``clock``/``sleep`` injectable), then gets a
    :class:`StateError` naming the file, the PID and what to do. The lock ends with its process,
    also on SIGKILL, so a crash never leaves a file locked. The holder removes the lock file when it
    releases; a waiter that then wins the lock on the removed file sees that the path no longer
    names it and tries again on the new one. Holding the lock, it removes the temporary files a killed
    holder left for ``path``."""

    def __init__(
        self,
        path: str | Path,
        what: str,
        *,
        wait_s: float = LOCK_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.what = what
        self.wait_s = wait_s
        self._clock, self._sleep = clock, sleep
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _holder(self) -> str:
        try:
            pid = self.lock_path.read_text().strip()
        except OSError:
            return "another process"
        return f"PID {pid}" if pid.isdigit() else "another process"

    def acquire(self) -> FileLock:
        if self._fd is not None:
            return self
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = self._clock() + self.wait_s
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:  # the folder cannot hold files (a read-only or virtual file system)
                raise StateError(f"{self.what} {self.path}: cannot create its lock file {self.lock_path.name} there "
                                 f"({e.strerror or e}); use a file in a folder you can write") from e  # fmt: skip
            try:
                if self._try_lock(fd):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                    self._fd = fd
                    remove_stale_temporaries(self.path.parent, self.path.name)
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            if self._clock() >= deadline:
                raise StateError(
                    f"{self.what} {self.path} is in use by {self._holder()} (waited {self.wait_s:g} s); "
                    f"wait for that command to finish, or use another {'folder' if self.path.is_dir() else 'file'}"
                )
            self._sleep(LOCK_POLL_S)

    def _try_lock(self, fd: int) -> bool:
        """Lock ``fd``; True when it is locked and still the file at ``lock_path``."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed it between our open and our lock: take the new file
            fcntl.flock(fd, fcntl.LOCK_UN)
        return same

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __del__(self) -> None:  # a lock nobody holds a reference to any more is released
        self.release()

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
