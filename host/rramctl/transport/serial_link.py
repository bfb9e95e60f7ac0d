"""The serial link protocol (docs/serial-protocol.md): frames, CRC, commands, payload codecs.

One implementation, imported by the host (``rramctl.transport.serial``) and by the board agent
(``firmware/agent/rramctl_agent``).  Everything here is a design choice of rramctl (ours).

A frame is a 20-byte header (magic, command, flags, session id, sequence number, payload length,
CRC-32 of the first 16 header bytes), the payload, and a CRC-32 over header + payload.  The header has its
own CRC so a receiver trusts the length before it waits for a payload (a corrupted length never
makes it wait for megabytes that are not coming); CRC-32 rather than CRC-16 because payloads reach
1 MiB (a 4096-frame MULTIPLY or a full READ): CRC-16/CCITT misses some 2-bit errors above 32,751
bits, CRC-32 detects every 1- and 2-bit error up to ~4 Gbit, every 3-bit error up to 91,607 bits and
every burst up to 32 bits (Koopman's CRC tables); and zlib's CRC-32 runs in C (~1 GB/s), far above
any UART rate.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rramctl import errors

PROTOCOL_VERSION = 2  # 2: HELLO carries the session token
MAGIC = b"\xa5\x5a"  # (ours) alternating bits, rare in register data
HEADER = struct.Struct("<2sBBIII")  # magic, cmd, flags, session, seq, length (CRC-32 follows)
HEADER_BYTES = HEADER.size + 4  # 20
TRAILER_BYTES = 4
OVERHEAD_BYTES = HEADER_BYTES + TRAILER_BYTES
# (ours) twice the largest payload the driver produces: 4096 chain frames (1 MiB) of MULTIPLY input
# or a full 512x512 READ (1 MiB of output), plus the TRANSACT header.
MAX_PAYLOAD = 2 * 1024 * 1024
MAX_SEQ = 0xFFFF_FFFF
BITS_PER_BYTE = 10  # 8N1 UART character: start + 8 data + stop
POLL_S = 0.02  # (ours) how long one link read waits before the reader checks its deadline
READ_CHUNK = 1 << 16  # (ours) largest single link read
DEFAULT_STALL_S = 0.5  # (ours) a partial frame that gets no byte for this long is abandoned
DEFAULT_BAUD = 115_200  # (ours) the PS UART console rate every PYNQ image has; host and agent start at it
MAX_BAUD = 12_000_000  # FT2232H maximum (12 Mbaud); 3 Mbaud works with the bridge


class Cmd(enum.IntEnum):
    HELLO = 1  # version handshake; opens or resumes a session
    READ_REG = 2
    WRITE_REG = 3
    TRANSACT = 4
    REPLAY = 5  # the cached reply of an already completed sequence number


class Flag(enum.IntFlag):
    REPLY = 0x01
    ERROR = 0x02
    PENDING = 0x04  # keepalive: the request is executing, keep waiting


class ErrorCode(enum.IntEnum):
    BAD_COMMAND = 1  # unknown command
    BAD_LENGTH = 2  # payload length wrong for the command
    BAD_OFFSET = 3  # no register at that offset
    TOO_LONG = 4  # payload or requested reply above MAX_PAYLOAD
    BAD_VERSION = 5  # handshake with an unsupported protocol version
    NO_SESSION = 6  # a data command before HELLO
    STALE_SEQ = 7  # sequence number already completed and its reply no longer cached
    TRANSPORT = 8  # the overlay transport failed (the message says how)
    BAD_SEQ = 9  # sequence number 0 on a data command
    INTERNAL = 10  # the agent failed unexpectedly (bug); it keeps serving
    OVER_RATING = 11  # a DAC frame above the agent's own ratings: refused, never sent to the overlay
    SESSION_OWNED = 12  # HELLO for a live session with another host's token: refused, the session untouched


class LinkError(errors.LinkError):
    """A frame or payload that does not decode."""


def wire_seconds(n_bytes: int, baudrate: int) -> float:
    """Time ``n_bytes`` take on an 8N1 UART at ``baudrate``."""
    return n_bytes * BITS_PER_BYTE / baudrate


@dataclass(frozen=True)
class Frame:
    cmd: int
    flags: int
    session: int
    seq: int
    payload: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & Flag.REPLY)

    def encode(self) -> bytes:
        return encode_frame(self.cmd, self.flags, self.session, self.seq, self.payload)


@dataclass(frozen=True)
class Oversize:
    """A frame whose (CRC-valid) header announces more than MAX_PAYLOAD; its payload is skipped."""

    cmd: int
    flags: int
    session: int
    seq: int
    length: int


def encode_frame(cmd: int, flags: int, session: int, seq: int, payload: bytes = b"") -> bytes:
    if not (0 <= seq <= MAX_SEQ and 0 <= session <= MAX_SEQ):
        raise ValueError(f"session {session} / sequence number {seq} is not a 32-bit value")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is above the {MAX_PAYLOAD}-byte limit")
    head = HEADER.pack(MAGIC, cmd, flags, session, seq, len(payload))
    head_crc = zlib.crc32(head)
    head += head_crc.to_bytes(4, "little")
    return b"".join((head, payload, zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little")))


def decode_frame(data: bytes) -> Frame:
    """One complete frame (exactly ``data``), CRCs checked."""
    if len(data) < OVERHEAD_BYTES or data[: len(MAGIC)] != MAGIC:
        raise LinkError("not a frame")
    head = data[: HEADER.size]
    if zlib.crc32(head) != int.from_bytes(data[HEADER.size : HEADER_BYTES], "little"):
        raise LinkError("bad header CRC")
    _, cmd, flags, session, seq, length = HEADER.unpack(head)
    if len(data) != OVERHEAD_BYTES + length:
        raise LinkError(f"frame of {len(data)} bytes announces a {length}-byte payload")
    payload = data[HEADER_BYTES : HEADER_BYTES + length]
    if zlib.crc32(payload, zlib.crc32(data[:HEADER_BYTES])) != int.from_bytes(data[-TRAILER_BYTES:], "little"):
        raise LinkError("bad frame CRC")
    return Frame(cmd, flags, session, seq, payload)


# ---- the byte link ---------------------------------------------------------------------------
class ByteLink(Protocol):
    """What the framing needs of a serial port (pyserial's Serial has it).

    ``read(n)`` returns at most ``n`` bytes and returns (possibly empty) after a short poll time."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class FdLink:
    """A ByteLink on a raw file descriptor (a pty master), with bounded reads and writes."""

    def __init__(self, fd: int, *, poll_s: float = POLL_S, write_timeout_s: float = 5.0) -> None:
        self.fd = fd
        self.poll_s = poll_s
        self.write_timeout_s = write_timeout_s
        os.set_blocking(fd, False)

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.poll_s)
        if not ready:
            return b""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return b""
        except OSError:  # EIO: the other side of the pty is closed
            time.sleep(self.poll_s)
            return b""

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"write of {len(data)} bytes did not finish within {self.write_timeout_s} s")
            _, ready, _ = select.select([], [self.fd], [], min(left, self.poll_s))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(self.fd, view) :]
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class FrameReader:
    """Finds frames in a byte stream: hunt for MAGIC, check the header CRC, read the payload,
    check the frame CRC.  A bad header CRC or frame CRC drops one byte and hunts again (so a real
    frame that started inside the bad one is still found); a partial frame that stalls is dropped
    the same way.  Nothing bad is ever returned: callers see only whole, CRC-valid frames."""

    def __init__(
        self,
        link: ByteLink,
        *,
        max_payload: int = MAX_PAYLOAD,
        stall_s: float = DEFAULT_STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is what deadlines and stalls are measured on (tests inject one: no wall time)."""
        self.link = link
        self.clock = clock
        self.max_payload = max_payload
        self.stall_s = stall_s
        self.buf = bytearray()
        self.discard = 0  # payload bytes of an oversize frame still to skip
        self.bad_frames = 0
        self._last_byte_t = self.clock()

    def _fill(self, want: int, deadline: float) -> bool:
        """Read until the buffer holds ``want`` bytes; False when the deadline or a stall comes first."""
        while len(self.buf) < want:
            now = self.clock()
            if now >= deadline:
                return False
            # a stall ends a partial frame, and the skip of an oversize frame's payload (whose buffer is empty
            # between chunks): the announced payload may never come, and the frames after it must be found
            if (self.buf or self.discard) and now - self._last_byte_t > self.stall_s:
                return False
            waiting = getattr(self.link, "in_waiting", 0)  # pyserial: read() blocks for all it is asked
            chunk = self.link.read(min(max(want - len(self.buf), waiting), READ_CHUNK))
            if chunk:
                self.buf += chunk
                self._last_byte_t = self.clock()
        return True

    def _drop(self, n: int) -> None:
        del self.buf[:n]

    def _skip_discard(self) -> None:
        n = min(self.discard, len(self.buf))
        del self.buf[:n]
        self.discard -= n

    def read_frame(self, deadline: float) -> Frame | Oversize | None:
        """The next valid frame, or None when ``deadline`` (on ``clock``) passes first."""
        while True:
            if self.discard:
                self._skip_discard()
                if self.discard:
                    if not self._fill(min(self.discard, READ_CHUNK), deadline):
                        if self.clock() >= deadline:
                            return None
                        self.discard = 0  # the oversize payload stalled: hunt from here
                    continue
            if not self._fill(len(MAGIC), deadline):
                if self.clock() >= deadline:
                    return None
                self._drop(1)
                continue
            at = self.buf.find(MAGIC)
            if at < 0:
                keep = 1 if self.buf[-1:] == MAGIC[:1] else 0
                self._drop(len(self.buf) - keep)
                continue
            if at:
                self._drop(at)
            if not self._fill(HEADER_BYTES, deadline):
                if self.clock() >= deadline:
                    return None
                self._drop(1)
                continue
            head = bytes(self.buf[: HEADER.size])
            if zlib.crc32(head) != int.from_bytes(self.buf[HEADER.size : HEADER_BYTES], "little"):
                self.bad_frames += 1
                self._drop(1)
                continue
            _, cmd, flags, session, seq, length = HEADER.unpack(head)
            if length > self.max_payload:
                self._drop(HEADER_BYTES)
                self.discard = length + TRAILER_BYTES
                return Oversize(cmd, flags, session, seq, length)
            total = HEADER_BYTES + length + TRAILER_BYTES
            if not self._fill(total, deadline):
                if self.clock() >= deadline:
                    return None
                self.bad_frames += 1
                self._drop(1)
                continue
            payload = bytes(self.buf[HEADER_BYTES : HEADER_BYTES + length])
            crc = zlib.crc32(payload, zlib.crc32(self.buf[:HEADER_BYTES]))
            if crc != int.from_bytes(self.buf[total - TRAILER_BYTES : total], "little"):
                self.bad_frames += 1
                self._drop(1)
                continue
            del self.buf[:total]
            return Frame(cmd, flags, session, seq, payload)


# ---- payloads --------------------------------------------------------------------------------
HELLO_REQ = struct.Struct("<HQ")  # protocol version, session token (the session id is in the header)
HELLO_VERSION = struct.Struct("<H")  # the version alone: what every protocol version's HELLO starts with
# protocol version, resumed (0/1), last completed seq, OP_COUNT, max payload, cache depth
HELLO_REPLY = struct.Struct("<HBIIIH")
U32 = struct.Struct("<I")
REG_WRITE = struct.Struct("<II")  # offset, value
TRANSACT_HEAD = struct.Struct("<III")  # recv_words, trigger offset, trigger value; send words follow
ERROR_HEAD = struct.Struct("<H")  # error code; a UTF-8 message follows
REPLAY_HEAD = struct.Struct("<BB")  # the cached reply's cmd and flags; its payload follows


@dataclass(frozen=True)
class Hello:
    version: int
    resumed: bool
    last_completed_seq: int
    op_count: int
    max_payload: int
    cache_depth: int

    def encode(self) -> bytes:
        return HELLO_REPLY.pack(self.version, int(self.resumed), self.last_completed_seq, self.op_count,
                                self.max_payload, self.cache_depth)  # fmt: skip

    @classmethod
    def decode(cls, payload: bytes) -> Hello:
        if len(payload) != HELLO_REPLY.size:
            raise LinkError(f"HELLO reply of {len(payload)} bytes, expected {HELLO_REPLY.size}")
        v, resumed, last, ops, max_payload, depth = HELLO_REPLY.unpack(payload)
        return cls(v, bool(resumed), last, ops, max_payload, depth)


def hello_request(token: int, version: int = PROTOCOL_VERSION) -> bytes:
    """A HELLO payload: the protocol version and the session token of the host that owns the session."""
    return HELLO_REQ.pack(version, token)


def encode_error(code: ErrorCode, message: str) -> bytes:
    return ERROR_HEAD.pack(code) + message.encode("utf-8", "replace")[:1024]


def decode_error(payload: bytes) -> tuple[int, str]:
    if len(payload) < ERROR_HEAD.size:
        return 0, "malformed error reply"
    (code,) = ERROR_HEAD.unpack_from(payload)
    return code, payload[ERROR_HEAD.size :].decode("utf-8", "replace")


def encode_transact(send: NDArray[np.uint32], recv_words: int, offset: int, value: int) -> bytes:
    return TRANSACT_HEAD.pack(recv_words, offset, value) + np.ascontiguousarray(send, dtype="<u4").tobytes()


def decode_words(payload: bytes) -> NDArray[np.uint32]:
    if len(payload) % 4:
        raise LinkError(f"a word payload of {len(payload)} bytes is not a whole number of words")
    return np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"
