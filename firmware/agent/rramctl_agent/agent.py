"""The board agent: one serial link in, one overlay Transport out (docs/serial-protocol.md).

The agent reads frames (``rramctl.transport.serial_link.FrameReader``: bad CRCs are dropped
silently and left to the host's retry), answers HELLO and REPLAY itself, and executes READ_REG,
WRITE_REG and TRANSACT on the transport at most once per (session, sequence number).  Everything it
refuses gets an error reply with a code.  A long TRANSACT sends PENDING keepalives so the host
keeps waiting for a slow operation but still times out on a dead link.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rramctl import regmap as R
from rramctl.config import Ratings
from rramctl.protocol import DacChannel, dac_frame_over_limit
from rramctl.seeds import Seed
from rramctl.transport import serial_link as L
from rramctl.transport.base import RegWrite, Transport, TransportError

from rramctl_agent.sessions import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_CACHE_DEPTH,
    DEFAULT_MAX_SESSIONS,
    SessionOwned,
    SessionTable,
)

log = logging.getLogger("rramctl_agent")

VALID_OFFSETS = frozenset(R.REGISTERS.values())
DEFAULT_BAUD = L.DEFAULT_BAUD  # the link's (serial_link), as the host's


class AgentConfig(BaseModel):
    """What the person installing the agent chooses (command line / systemd unit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    port: str | None = Field(None, description="serial device, e.g. /dev/ttyPS0; None with pty=True")
    baudrate: int = Field(DEFAULT_BAUD, gt=0, le=L.MAX_BAUD, description="UART rate (FT2232H max 12 Mbaud)")
    pty: bool = Field(False, description="serve a new pseudo-terminal and print its path (demos, tests)")
    backend: Literal["auto", "emulator", "pynq"] = Field("auto", description="what drives the overlay")
    state: Path | None = Field(None, description="emulator state file (emulator backend)")
    seed: Seed = Field(0, description="emulator chip seed (emulator backend, new chip)")
    bitfile: Path | None = Field(None, description="overlay bitstream (pynq backend)")
    cache_depth: int = Field(DEFAULT_CACHE_DEPTH, ge=1, le=4096, description="replies cached per session")
    cache_bytes: int = Field(DEFAULT_CACHE_BYTES, ge=0, description="bytes of replies cached per session")
    max_sessions: int = Field(DEFAULT_MAX_SESSIONS, ge=1, le=1024, description="sessions remembered")
    keepalive_s: float = Field(0.5, gt=0, le=60, description="PENDING interval while a request executes")
    ratings: Ratings = Field(
        default_factory=Ratings, description="DAC frames above these voltages are refused here (OVER_RATING)"
    )


class Agent:
    """Serves one link.  ``serve`` until ``stop`` is set; ``handle`` is the per-frame logic."""

    def __init__(
        self,
        transport: Transport,
        link: L.ByteLink,
        *,
        cache_depth: int = DEFAULT_CACHE_DEPTH,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        keepalive_s: float = 0.5,
        max_payload: int = L.MAX_PAYLOAD,
        dac_limits: Mapping[int, int] | None = None,
    ) -> None:
        """``dac_limits``: highest DAC code per DacChannel that a DAC_FRAME write may set (default: the
        default Ratings); the agent refuses a frame above them whatever the overlay's own limits."""
        self.transport = transport
        self.dac_limits = dict(Ratings().dac_code_limits() if dac_limits is None else dac_limits)
        self.link = link
        self.reader = L.FrameReader(link, max_payload=max_payload)
        self.sessions = SessionTable(depth=cache_depth, max_bytes=cache_bytes, max_sessions=max_sessions)
        self.keepalive_s = keepalive_s
        self.max_payload = max_payload
        self.executed = 0  # data requests executed on the transport
        self.replayed = 0  # retransmissions answered from the cache
        self._write_lock = threading.Lock()

    @classmethod
    def from_config(cls, transport: Transport, link: L.ByteLink, config: AgentConfig) -> Agent:
        return cls(transport, link, cache_depth=config.cache_depth, cache_bytes=config.cache_bytes,
                   max_sessions=config.max_sessions, keepalive_s=config.keepalive_s,
                   dac_limits=config.ratings.dac_code_limits())  # fmt: skip

    # ---- the loop ----------------------------------------------------------------------------
    def serve(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info("serving %s", self.transport.name)
        while not stop.is_set():
            self.poll(0.05)

    def poll(self, wait_s: float) -> bool:
        """Handle at most one frame arriving within ``wait_s``; True if one was handled."""
        item = self.reader.read_frame(time.monotonic() + wait_s)
        if item is None:
            return False
        if isinstance(item, L.Oversize):
            if not item.flags & L.Flag.REPLY:
                msg = f"payload of {item.length} bytes is above the {self.max_payload}-byte limit"
                self._send(L.encode_frame(item.cmd, L.Flag.REPLY | L.Flag.ERROR, item.session, item.seq,
                                          L.encode_error(L.ErrorCode.TOO_LONG, msg)))  # fmt: skip
            return True
        reply = self.handle(item)
        if reply is not None:
            self._send(reply)
        return True

    def _send(self, data: bytes) -> None:
        try:
            with self._write_lock:
                self.link.write(data)
        except Exception as e:  # a lost reply is left to the host's retry
            log.warning("reply of %d bytes not sent: %s", len(data), e)

    # ---- one frame ---------------------------------------------------------------------------
    def handle(self, frame: L.Frame) -> bytes | None:
        """The encoded reply to one request frame (None for frames that get none: replies/echoes)."""
        if frame.is_reply:
            return None
        if frame.cmd == L.Cmd.HELLO:
            return self._hello(frame)
        if frame.flags:
            return self._bad_flags(frame)
        if frame.cmd == L.Cmd.REPLAY:
            return self._replay(frame)
        session = self.sessions.get(frame.session)
        if session is None:
            return self._error(frame, L.ErrorCode.NO_SESSION, f"no session {frame.session:#010x}: send HELLO first")
        if frame.seq == 0:
            return self._error(frame, L.ErrorCode.BAD_SEQ, "data requests are numbered from 1")
        if session.seen(frame.seq):
            cached = session.cached(frame.seq)
            if cached is None:
                return self._error(frame, L.ErrorCode.STALE_SEQ,
                                   f"request {frame.seq} already completed; its reply is no longer cached")  # fmt: skip
            if not session.answered(frame.seq, frame.cmd, frame.payload):
                return self._error(frame, L.ErrorCode.BAD_SEQ,
                                   f"seq {frame.seq} was another request (cmd {L.decode_frame(cached).cmd}); "
                                   f"nothing executed: a new request takes a seq above {session.last_seq}")  # fmt: skip
            self.replayed += 1
            return cached
        reply = self._execute_with_keepalive(frame)
        session.record(frame.seq, reply, frame.cmd, frame.payload)
        return reply

    @staticmethod
    def _reply(frame: L.Frame, payload: bytes = b"", flags: int = 0) -> bytes:
        return L.encode_frame(frame.cmd, L.Flag.REPLY | flags, frame.session, frame.seq, payload)

    def _error(self, frame: L.Frame, code: L.ErrorCode, message: str) -> bytes:
        log.info("request %s seq %d refused: %s (%s)", frame.cmd, frame.seq, code.name, message)
        return self._reply(frame, L.encode_error(code, message), L.Flag.ERROR)

    def _bad_flags(self, frame: L.Frame) -> bytes:
        """A request's flags are 0 (REPLY, ERROR and PENDING are a reply's): refused before any session or seq
        check, nothing executed or recorded."""
        return self._error(frame, L.ErrorCode.BAD_COMMAND, f"request flags must be 0, got {frame.flags:#04x}")

    def _hello(self, frame: L.Frame) -> bytes:
        if len(frame.payload) < L.HELLO_VERSION.size:
            return self._error(frame, L.ErrorCode.BAD_LENGTH, f"HELLO carries {L.HELLO_REQ.size} bytes")
        (version,) = L.HELLO_VERSION.unpack_from(frame.payload)
        if version != L.PROTOCOL_VERSION:
            return self._error(frame, L.ErrorCode.BAD_VERSION,
                               f"host speaks protocol v{version}, this agent v{L.PROTOCOL_VERSION}")  # fmt: skip
        if len(frame.payload) != L.HELLO_REQ.size:
            return self._error(frame, L.ErrorCode.BAD_LENGTH, f"HELLO carries {L.HELLO_REQ.size} bytes")
        if frame.flags:
            return self._bad_flags(frame)
        _, token = L.HELLO_REQ.unpack(frame.payload)
        if frame.session == 0:
            return self._error(frame, L.ErrorCode.NO_SESSION, "session id 0 is reserved")
        try:
            op_count = self.transport.read_reg(R.OP_COUNT)
        except (TransportError, ValueError) as e:
            return self._error(frame, L.ErrorCode.TRANSPORT, f"overlay not reachable: {e}")
        try:
            session, resumed = self.sessions.open(frame.session, token)
        except SessionOwned as e:
            return self._error(frame, L.ErrorCode.SESSION_OWNED, str(e))
        hello = L.Hello(L.PROTOCOL_VERSION, resumed, session.last_seq, op_count, self.max_payload, session.depth)
        return self._reply(frame, hello.encode())

    def _replay(self, frame: L.Frame) -> bytes:
        if len(frame.payload) != L.U32.size:
            return self._error(frame, L.ErrorCode.BAD_LENGTH, f"REPLAY carries {L.U32.size} bytes")
        (seq,) = L.U32.unpack(frame.payload)
        session = self.sessions.get(frame.session)
        if session is None:
            return self._error(frame, L.ErrorCode.NO_SESSION, f"no session {frame.session:#010x}: send HELLO first")
        if seq == 0 or not session.seen(seq):  # not completed: STALE_SEQ would say it ran
            return self._error(frame, L.ErrorCode.BAD_SEQ,
                               f"request {seq} has not completed (last completed: {session.last_seq})")  # fmt: skip
        cached = session.cached(seq)
        if cached is None:
            return self._error(frame, L.ErrorCode.STALE_SEQ,
                               f"request {seq} completed; its reply is no longer cached")  # fmt: skip
        original = L.decode_frame(cached)
        return self._reply(frame, L.REPLAY_HEAD.pack(original.cmd, original.flags) + original.payload)

    def _execute_with_keepalive(self, frame: L.Frame) -> bytes:
        done = threading.Event()

        def keepalive() -> None:
            while not done.wait(self.keepalive_s):
                self._send(self._reply(frame, b"", L.Flag.PENDING))

        ticker = threading.Thread(target=keepalive, name="rramctl-agent-keepalive", daemon=True)
        ticker.start()
        try:
            return self._execute(frame)
        finally:
            done.set()
            ticker.join()

    def _execute(self, frame: L.Frame) -> bytes:
        p = frame.payload
        try:
            if frame.cmd == L.Cmd.READ_REG:
                if len(p) != L.U32.size:
                    return self._error(frame, L.ErrorCode.BAD_LENGTH, f"READ_REG carries {L.U32.size} bytes")
                (offset,) = L.U32.unpack(p)
                if offset not in VALID_OFFSETS:
                    return self._error(frame, L.ErrorCode.BAD_OFFSET, f"no register at offset {offset:#x}")
                value = self.transport.read_reg(offset)
                self.executed += 1
                return self._reply(frame, L.U32.pack(value))
            if frame.cmd == L.Cmd.WRITE_REG:
                if len(p) != L.REG_WRITE.size:
                    return self._error(frame, L.ErrorCode.BAD_LENGTH, f"WRITE_REG carries {L.REG_WRITE.size} bytes")
                offset, value = L.REG_WRITE.unpack(p)
                if offset not in VALID_OFFSETS:
                    return self._error(frame, L.ErrorCode.BAD_OFFSET, f"no register at offset {offset:#x}")
                refused = self._over_rating(frame, offset, value)
                if refused is not None:
                    return refused
                self.transport.write_reg(offset, value)
                self.executed += 1
                return self._reply(frame)
            if frame.cmd == L.Cmd.TRANSACT:
                return self._transact(frame)
            return self._error(frame, L.ErrorCode.BAD_COMMAND, f"unknown command {frame.cmd}")
        except (TransportError, ValueError) as e:
            return self._error(frame, L.ErrorCode.TRANSPORT, f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - the agent must keep serving; the host gets the reason
            log.exception("request %d failed", frame.seq)
            return self._error(frame, L.ErrorCode.INTERNAL, f"{type(e).__name__}: {e}")

    def _over_rating(self, frame: L.Frame, offset: int, value: int) -> bytes | None:
        """The error reply for a DAC_FRAME write above the agent's limits (None: the write may go on)."""
        dac_frame = R.DAC_FRAME_FRAME.get(value)
        if offset != R.DAC_FRAME or not dac_frame_over_limit(dac_frame, self.dac_limits):
            return None
        limits = {DacChannel(ch).name: code for ch, code in self.dac_limits.items()}
        return self._error(frame, L.ErrorCode.OVER_RATING,
                           f"DAC frame {dac_frame:#08x} is above the agent's ratings (DAC codes {limits})")  # fmt: skip

    def _transact(self, frame: L.Frame) -> bytes:
        p = frame.payload
        head = L.TRANSACT_HEAD.size
        if len(p) < head or (len(p) - head) % 4:
            return self._error(frame, L.ErrorCode.BAD_LENGTH,
                               f"TRANSACT carries {head} bytes plus whole 32-bit words, got {len(p)}")  # fmt: skip
        recv_words, offset, value = L.TRANSACT_HEAD.unpack_from(p)
        if recv_words * 4 > self.max_payload:
            return self._error(frame, L.ErrorCode.TOO_LONG,
                               f"{recv_words} reply words exceed the {self.max_payload}-byte limit")  # fmt: skip
        if offset not in VALID_OFFSETS:
            return self._error(frame, L.ErrorCode.BAD_OFFSET, f"no register at trigger offset {offset:#x}")
        refused = self._over_rating(frame, offset, value)
        if refused is not None:
            return refused
        send = np.frombuffer(p, dtype="<u4", offset=head).astype(np.uint32)
        out = self.transport.transact(send, recv_words, RegWrite(offset, value))
        self.executed += 1
        return self._reply(frame, np.ascontiguousarray(out, dtype="<u4").tobytes())
