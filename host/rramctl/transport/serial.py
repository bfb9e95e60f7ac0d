"""SerialTransport: the Transport of docs/protocol.md over a serial link to the board agent.

Stop-and-wait with retransmission (docs/serial-protocol.md): every data request carries the
session id and the next sequence number; a request that gets no valid reply within its timeout is
sent again with the same number (the agent answers a number it has executed from its cache, so a
write or a pulse is never applied twice), up to ``retries`` times, then TransportError.  A reply
arrives whole or not at all (CRC), replies to other numbers are ignored, and PENDING keepalives
from the agent keep a long operation alive without retransmitting.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from rramctl.errors import UsageError
from rramctl.transport import serial_link as L
from rramctl.transport.base import RegWrite, Transport, TransportError
from rramctl.transport.serial_journal import Recovery, SessionJournal

DEFAULT_BAUD = L.DEFAULT_BAUD  # the link's (serial_link), as the agent's
DEFAULT_TIMEOUT_S = 1.0  # (ours) reply wait per attempt, on top of the wire time of both frames
DEFAULT_RETRIES = 5  # (ours)
MAX_WAIT_S = 3600.0  # (ours) a request kept alive by PENDING keepalives still ends after this


class SerialLinkConfig(BaseModel):
    """The user-facing serial settings (``--backend serial:PORT[@BAUD]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(DEFAULT_BAUD, gt=0, le=L.MAX_BAUD, description="UART rate (FT2232H max 12 Mbaud)")
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=600, description="reply wait per attempt")
    retries: int = Field(DEFAULT_RETRIES, ge=0, le=100, description="retransmissions before giving up")


class AgentError(TransportError):
    """The agent refused a request (an error reply); ``code`` is a serial_link.ErrorCode."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SessionInfo:
    """What the handshake told the host: the session and what of it the agent completed."""

    session_id: int
    resumed: bool  # the agent knew this session (False: new, or the agent lost it)
    last_completed_seq: int  # highest request number the agent executed in this session
    op_count: int  # the overlay's OP_COUNT at the handshake
    max_payload: int
    cache_depth: int


def new_session_id() -> int:
    """A nonzero 32-bit link identifier.  Not a model draw: it must differ between host processes,
    so it comes from the OS entropy pool, not from a seed (ours)."""
    return int.from_bytes(os.urandom(4), "little") or 1


def new_session_token() -> int:
    """The 64-bit secret that makes a session this host's: the agent resumes a session only for a HELLO
    with its token (docs/serial-protocol.md). From the OS entropy pool, like the session id (ours)."""
    return int.from_bytes(os.urandom(8), "little")


def open_port(path: str, baudrate: int, write_timeout_s: float) -> L.ByteLink:
    """Open a serial device with pyserial (imported here: pyserial is needed only for this backend)."""
    try:
        import serial
    except ImportError as e:
        raise TransportError("the serial backend needs pyserial: pip install pyserial") from e
    try:
        return serial.Serial(path, baudrate=baudrate, timeout=L.POLL_S, write_timeout=write_timeout_s, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as e:
        busy = "lock" in str(e).lower() or getattr(e, "errno", None) == errno.EBUSY
        hint = "; it is in use by another program (another rramctl or agent?): wait for it or close it" if busy else ""
        raise TransportError(f"cannot open serial port {path} at {baudrate} baud: {e}{hint}") from e


class SerialTransport(Transport):
    name = "serial"

    def __init__(
        self,
        port: str | L.ByteLink,
        baudrate: int = DEFAULT_BAUD,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        *,
        session_id: int | None = None,
        session_token: int | None = None,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open ``port`` (a device path, or an already open ByteLink) and handshake.

        ``session_id`` resumes that session (after a host restart or a re-opened link), with the
        ``session_token`` it was opened with: ``session`` then says which requests the agent completed;
        None opens a new session with a new token. ``clock`` measures
        the reply timeouts (tests inject one, so no test depends on wall time)."""
        cfg = SerialLinkConfig(port=port if isinstance(port, str) else "link", baudrate=baudrate,
                               timeout_s=timeout, retries=retries)  # fmt: skip
        if session_id is not None and not 1 <= session_id <= L.MAX_SEQ:
            raise ValueError(f"session id must be 1..{L.MAX_SEQ}, got {session_id}")
        self.config = cfg
        self.session_token = session_token if session_token is not None else new_session_token()
        self.label = cfg.port
        self.max_wait_s = max_wait_s
        write_timeout = cfg.timeout_s + L.wire_seconds(L.MAX_PAYLOAD + L.OVERHEAD_BYTES, cfg.baudrate)
        self.link: L.ByteLink = open_port(port, cfg.baudrate, write_timeout) if isinstance(port, str) else port
        self.clock = clock
        self.reader = L.FrameReader(self.link, clock=clock)
        self._lock = threading.Lock()
        self._control_seq = 0
        self.retransmissions = 0  # statistics
        self._closed = False
        self.on_close: Callable[[SerialTransport], None] | None = None  # e.g. the session journal's record
        self.recovery: Recovery | None = None  # set by open_serial_transport when it resumed a session
        try:
            self.session = self._hello(session_id or new_session_id())
        except BaseException:
            self.link.close()
            raise
        self._seq = self.session.last_completed_seq

    # ---- the exchange ------------------------------------------------------------------------
    def _wire(self, n_bytes: int) -> float:
        return L.wire_seconds(n_bytes + L.OVERHEAD_BYTES, self.config.baudrate)

    def _exchange(self, cmd: L.Cmd, session: int, seq: int, payload: bytes, reply_bytes: int) -> L.Frame:
        if self._closed:
            raise TransportError(f"the serial transport on {self.label} is closed")
        frame = L.encode_frame(cmd, 0, session, seq, payload)
        per_attempt = self.config.timeout_s + self._wire(len(payload)) + self._wire(reply_bytes)
        attempts = 1 + self.config.retries
        for attempt in range(attempts):
            if attempt:
                self.retransmissions += 1
            try:
                self.link.write(frame)
            except TimeoutError:
                continue  # nobody reads the other end (yet): that attempt failed
            except OSError as e:
                if type(e).__name__ == "SerialTimeoutException":
                    continue
                raise TransportError(f"serial port {self.label} failed: {e}") from e
            started = self.clock()
            deadline = started + per_attempt
            while True:
                try:
                    item = self.reader.read_frame(deadline)
                except OSError as e:  # pyserial's SerialException: the device went away
                    raise TransportError(f"serial port {self.label} failed: {e}") from e
                if item is None:
                    break
                if (
                    isinstance(item, L.Oversize)
                    or not item.is_reply
                    or (item.cmd, item.session, item.seq) != (cmd, session, seq)
                ):
                    continue  # a late reply to an earlier request, an echo, or garbage
                if item.flags & L.Flag.PENDING:
                    deadline = min(self.clock() + per_attempt, started + self.max_wait_s)
                    continue
                if item.flags & L.Flag.ERROR:
                    code, message = L.decode_error(item.payload)
                    raise AgentError(f"agent on {self.label} refused {cmd.name} #{seq}: "
                                     f"{L.error_name(code)}: {message}", code)  # fmt: skip
                return item
        raise TransportError(
            f"no reply from the agent on {self.label} to {cmd.name} #{seq} after {attempts} attempts "
            f"of {per_attempt:.2f} s: the link is down or the agent is not running"
        )

    def _control(self, cmd: L.Cmd, session: int, payload: bytes, reply_bytes: int) -> L.Frame:
        self._control_seq = (self._control_seq + 1) & L.MAX_SEQ
        return self._exchange(cmd, session, self._control_seq, payload, reply_bytes)

    def _hello(self, session_id: int) -> SessionInfo:
        reply = self._control(L.Cmd.HELLO, session_id, L.hello_request(self.session_token), L.HELLO_REPLY.size)
        hello = L.Hello.decode(reply.payload)
        if hello.version != L.PROTOCOL_VERSION:
            raise TransportError(f"agent on {self.label} speaks protocol v{hello.version}, host v{L.PROTOCOL_VERSION}")
        return SessionInfo(session_id, hello.resumed, hello.last_completed_seq, hello.op_count, hello.max_payload,
                           hello.cache_depth)  # fmt: skip

    def _request(self, cmd: L.Cmd, payload: bytes, reply_bytes: int) -> bytes:
        if len(payload) > self.session.max_payload or reply_bytes > self.session.max_payload:
            raise ValueError(f"a request or reply above the agent's {self.session.max_payload}-byte limit")
        with self._lock:
            if self._seq >= L.MAX_SEQ:  # sequence space used up: continue in a fresh session
                self.session = self._hello(new_session_id())
                self._seq = 0
            self._seq += 1
            return self._exchange(cmd, self.session.session_id, self._seq, payload, reply_bytes).payload

    @property
    def last_seq(self) -> int:
        """Number of the last request sent in this session."""
        return self._seq

    # ---- reconnect support -------------------------------------------------------------------
    def query_session(self) -> SessionInfo:
        """Ask the agent again where this session stands (last completed request, OP_COUNT)."""
        with self._lock:
            return self._hello(self.session.session_id)

    def replay(self, seq: int) -> tuple[int, int, bytes]:
        """The cached reply (cmd, flags, payload) of completed request ``seq`` of this session,
        without executing anything; AgentError STALE_SEQ when the agent no longer has it."""
        if not 1 <= seq <= L.MAX_SEQ:
            raise ValueError(f"request numbers are 1..{L.MAX_SEQ}, got {seq}")
        with self._lock:
            frame = self._control(L.Cmd.REPLAY, self.session.session_id, L.U32.pack(seq), L.MAX_PAYLOAD)
        cmd, flags = L.REPLAY_HEAD.unpack_from(frame.payload)
        return cmd, flags, frame.payload[L.REPLAY_HEAD.size :]

    # ---- the Transport operations ------------------------------------------------------------
    def _read_reg(self, offset: int) -> int:
        payload = self._request(L.Cmd.READ_REG, L.U32.pack(offset), L.U32.size)
        if len(payload) != L.U32.size:
            raise TransportError(f"READ_REG reply of {len(payload)} bytes from {self.label}")
        return int(L.U32.unpack(payload)[0])

    def _write_reg(self, offset: int, value: int) -> None:
        self._request(L.Cmd.WRITE_REG, L.REG_WRITE.pack(offset, value), 0)

    def _transact(self, words: NDArray[np.uint32], recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        payload = L.encode_transact(words, recv_words, trigger.offset, trigger.value)
        out = L.decode_words(self._request(L.Cmd.TRANSACT, payload, 4 * recv_words))
        if out.size > recv_words:
            raise TransportError(f"agent on {self.label} returned {out.size} words for {recv_words} requested")
        return out

    def session_note(self) -> str | None:
        return self.recovery.message() if self.recovery is not None else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.link.close()
            if self.on_close is not None:
                self.on_close(self)


def parse_serial_spec(spec: str) -> SerialLinkConfig:
    """``serial:PORT[@BAUD]`` -> SerialLinkConfig (PORT may itself contain '@' only if BAUD is given)."""
    prefix = "serial:"
    if not spec.startswith(prefix):
        raise UsageError(f"a serial backend is written serial:PORT[@BAUD], got {spec!r}")
    rest = spec[len(prefix) :]
    port, baud = rest, DEFAULT_BAUD
    head, sep, tail = rest.rpartition("@")
    if sep:
        if not tail.isdigit() or int(tail) <= 0:
            raise UsageError(f"baud rate in {spec!r} must be a positive integer, got {tail!r}")
        port, baud = head, int(tail)
    if not port:
        raise UsageError(f"no serial port in {spec!r}; e.g. serial:/dev/ttyUSB0@115200")
    return SerialLinkConfig(port=port, baudrate=baud)


def open_serial_transport(spec: str, journal: SessionJournal | None = None) -> SerialTransport:
    """The backend entry point: ``serial:/dev/ttyUSB0`` or ``serial:/dev/ttyUSB0@3000000``.

    With a ``journal``, a session that an earlier command left open on this port is resumed and
    ``recovery`` says what the agent completed of it; the session is recorded open until ``close()``."""
    cfg = parse_serial_spec(spec)
    left_open = journal.interrupted(cfg.port) if journal is not None else None
    session_id, token = left_open if left_open is not None else (None, None)
    t = SerialTransport(cfg.port, cfg.baudrate, cfg.timeout_s, cfg.retries, session_id=session_id,
                        session_token=token)  # fmt: skip
    if journal is not None:
        if left_open is not None:
            s = t.session
            t.recovery = Recovery(cfg.port, s.session_id, s.resumed, s.last_completed_seq, s.op_count)
        try:
            journal.record(cfg.port, t.session.session_id, t.session_token, open_=True)
        except BaseException:
            t.close()
            raise
        t.on_close = lambda tr: journal.record(cfg.port, tr.session.session_id, tr.session_token, open_=False)
    return t
