"""Per-session reply cache: what makes a retransmitted request safe (docs/serial-protocol.md).

A session remembers the highest sequence number it has executed and the encoded replies of the
last ``depth`` of them (and at most ``max_bytes`` of replies, the newest always kept), each with a digest
of the request it answered.  A request whose sequence number is not above the high-water mark is never
executed again: a retransmission (same cmd and payload) gets its cached reply, another request under that
number BAD_SEQ, and either STALE_SEQ when that reply has been evicted.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

DEFAULT_CACHE_DEPTH = 32  # (ours) replies kept per session
DEFAULT_CACHE_BYTES = 8 * 1024 * 1024  # (ours) on a 512 MiB PYNQ-Z2 this stays small
DEFAULT_MAX_SESSIONS = 4  # (ours) sessions remembered (older ones are forgotten, LRU)


class SessionOwned(ValueError):
    """A HELLO named a live session with another host's token."""


@dataclass
class Session:
    session_id: int
    token: int = 0  # the secret of the host that opened it: only a HELLO with it resumes the session
    depth: int = DEFAULT_CACHE_DEPTH
    max_bytes: int = DEFAULT_CACHE_BYTES
    last_seq: int = 0
    replies: OrderedDict[int, tuple[bytes, int]] = field(default_factory=OrderedDict)  # seq -> (reply, digest)
    cached_bytes: int = 0

    def seen(self, seq: int) -> bool:
        return seq <= self.last_seq

    def cached(self, seq: int) -> bytes | None:
        entry = self.replies.get(seq)
        return entry[0] if entry is not None else None

    def answered(self, seq: int, cmd: int, payload: bytes) -> bool:
        """Whether the cached reply of ``seq`` answered this request (its cmd and payload): a retransmission."""
        entry = self.replies.get(seq)
        return entry is not None and entry[1] == request_digest(cmd, payload)

    def record(self, seq: int, reply: bytes, cmd: int, payload: bytes) -> None:
        if seq <= self.last_seq:
            raise ValueError(f"sequence number {seq} is not above the last completed {self.last_seq}")
        self.last_seq = seq
        self.replies[seq] = (reply, request_digest(cmd, payload))
        self.cached_bytes += len(reply)
        while len(self.replies) > 1 and (len(self.replies) > self.depth or self.cached_bytes > self.max_bytes):
            _, (old, _) = self.replies.popitem(last=False)
            self.cached_bytes -= len(old)


def request_digest(cmd: int, payload: bytes) -> int:
    """CRC-32 of a request's cmd and payload: tells a retransmission from another request under the same seq
    (a host bug), not an integrity check (the frame CRC is that)."""
    return zlib.crc32(payload, zlib.crc32(bytes([cmd])))


class SessionTable:
    def __init__(
        self,
        *,
        depth: int = DEFAULT_CACHE_DEPTH,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.depth = depth
        self.max_bytes = max_bytes
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[int, Session] = OrderedDict()

    def open(self, session_id: int, token: int) -> tuple[Session, bool]:
        """The session of that id, resumed (True) or new (False). A live session belongs to the host that
        opened it: a HELLO with another token raises SessionOwned and changes nothing."""
        if session_id in self._sessions:
            s = self._sessions[session_id]
            if s.token != token:
                raise SessionOwned(f"session {session_id:#010x} belongs to another host")
            self._sessions.move_to_end(session_id)
            return s, True
        s = Session(session_id, token, self.depth, self.max_bytes)
        self._sessions[session_id] = s
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return s, False

    def get(self, session_id: int) -> Session | None:
        """The session of that id; a session in use is the most recently used (the last to be forgotten),
        so new sessions opened between its requests evict idle ones, not it."""
        s = self._sessions.get(session_id)
        if s is not None:
            self._sessions.move_to_end(session_id)
        return s

    def __len__(self) -> int:
        return len(self._sessions)
