"""The serial session journal (ours): which session the last rramctl on each port used, kept between
invocations.

A command cut off mid-way (a dropped USB link, Ctrl-C, a crash) leaves its port's entry open; the next
``open_serial_transport`` with the journal resumes that session with the agent, and its ``recovery`` says
which of the interrupted command's requests the agent completed (and the overlay's OP_COUNT) before anything
new is sent. A clean ``close()`` marks the entry closed, so the next command starts a fresh session.
See docs/serial-protocol.md "Reconnecting". Every update is a read-modify-write under a lock
(``<journal>.lock``; a second process waits, then is told who holds it), written atomically through
``rramctl.fileio`` (unique temporary name, fsync, rename), so commands on several ports at once
never lose or corrupt an entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rramctl.errors import StateError
from rramctl.fileio import atomic_write_text
from rramctl.paths import LOCK_WAIT_S, FileLock, state_file


def default_journal_path() -> Path:
    """``$RRAMCTL_SERIAL_JOURNAL``, else ``$XDG_STATE_HOME/rramctl/serial-sessions.json``."""
    return state_file("RRAMCTL_SERIAL_JOURNAL", "serial-sessions.json")


@dataclass(frozen=True)
class Recovery:
    """What the agent said about the session an interrupted command left open on ``port``."""

    port: str
    session_id: int
    resumed: bool  # False: the agent no longer knows the session (it restarted), nothing can be learned
    last_completed_seq: int
    op_count: int

    def message(self) -> str:
        if not self.resumed:
            return (f"the previous rramctl on {self.port} did not close session {self.session_id:#x}, and the "
                    f"agent no longer knows it (restarted?): what it completed cannot be learned; the overlay "
                    f"has run {self.op_count} operations since it started")  # fmt: skip
        return (f"the previous rramctl on {self.port} did not close session {self.session_id:#x}: the agent "
                f"completed its requests up to #{self.last_completed_seq} (overlay operations so far: "
                f"{self.op_count}); continuing that session")  # fmt: skip


class SessionJournal:
    """A small JSON file {port: {"session": id, "token": secret, "open": bool}}, replaced atomically under
    a lock (the token lets the next command on this machine resume the session; docs/serial-protocol.md)."""

    def __init__(self, path: str | Path, *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = Path(path)
        self._lock = FileLock(self.path, "serial session journal", wait_s=lock_wait_s)

    def _load(self) -> dict[str, dict[str, int | bool]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            ok = isinstance(data, dict) and all(
                isinstance(e, dict)
                and set(e) == {"session", "token", "open"}
                and type(e["session"]) is int
                and 1 <= e["session"] <= 0xFFFF_FFFF
                and type(e["token"]) is int
                and 0 <= e["token"] <= 0xFFFF_FFFF_FFFF_FFFF
                and isinstance(e["open"], bool)
                for e in data.values()
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StateError(f"serial session journal {self.path} is unreadable ({e}); delete it to start "
                                 "afresh (only the record of interrupted sessions is lost)") from e  # fmt: skip
        if not ok:
            raise StateError(f"serial session journal {self.path} is malformed; delete it to start afresh "
                                 "(only the record of interrupted sessions is lost)")  # fmt: skip
        return data

    def _store(self, data: dict[str, dict[str, int | bool]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))

    def interrupted(self, port: str) -> tuple[int, int] | None:
        """(session id, token) of the session a command left open on ``port``, if any."""
        entry = self._load().get(port)
        return (int(entry["session"]), int(entry["token"])) if entry and entry["open"] else None

    def record(self, port: str, session_id: int, token: int, open_: bool) -> None:
        """Mark ``port``'s session open (a command started) or closed (it ended cleanly)."""
        with self._lock:
            data = self._load()
            data[port] = {"session": session_id, "token": token, "open": open_}
            self._store(data)
