"""Serial link framing (rramctl.transport.serial_link), the agent's session cache, the backend spec."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rramctl.transport import serial_link as L
from rramctl.transport.serial import parse_serial_spec
from rramctl_agent.sessions import Session, SessionOwned, SessionTable


class FakeClock:
    """Test time: it moves only when a link read finds nothing (one poll), never with the wall clock."""

    def __init__(self, poll_s: float = 0.001) -> None:
        self.now = 0.0
        self.poll_s = poll_s

    def __call__(self) -> float:
        return self.now

    def poll(self) -> None:
        self.now += self.poll_s


class ChunkLink:
    """A ByteLink over bytes already queued, handed out in chunks of at most ``chunk`` bytes; an
    empty read is one poll of ``clock``."""

    def __init__(self, data: bytes = b"", chunk: int = 1 << 16, clock: FakeClock | None = None) -> None:
        self.data = bytearray(data)
        self.chunk = chunk
        self.clock = clock or FakeClock()

    def read(self, size: int = 1) -> bytes:
        if not self.data:
            self.clock.poll()
            return b""
        n = min(size, self.chunk, len(self.data))
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def close(self) -> None:
        pass


def frames_from(data: bytes, chunk: int = 1 << 16, *, wait_s: float = 0.005) -> list[L.Frame | L.Oversize]:
    link = ChunkLink(data, chunk)
    reader = L.FrameReader(link, stall_s=0.02, clock=link.clock)
    out = []
    while (item := reader.read_frame(link.clock() + wait_s)) is not None:
        out.append(item)
    return out


frames_st = st.builds(
    L.Frame,
    cmd=st.integers(0, 255),
    flags=st.integers(0, 255),
    session=st.integers(0, L.MAX_SEQ),
    seq=st.integers(0, L.MAX_SEQ),
    payload=st.binary(max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(frames=st.lists(frames_st, min_size=1, max_size=4), garbage=st.binary(max_size=40), chunk=st.integers(1, 64))
def test_frames_survive_garbage_and_any_chunking(frames: list[L.Frame], garbage: bytes, chunk: int) -> None:
    data = garbage + b"".join(f.encode() for f in frames)
    assert frames_from(data, chunk) == frames


@settings(max_examples=60, deadline=None)
@given(frame=frames_st, bit=st.integers(0, 10_000))
def test_any_single_bit_error_drops_the_frame_and_the_next_frame_still_arrives(frame: L.Frame, bit: int) -> None:
    wire = bytearray(frame.encode())
    bit %= len(wire) * 8
    wire[bit // 8] ^= 1 << (bit % 8)
    follower = L.Frame(L.Cmd.READ_REG, 0, 7, 9, b"\x08\x00\x00\x00")
    got = frames_from(bytes(wire) + follower.encode())
    assert got[-1] == follower
    assert frame not in got


def test_decode_frame_checks_both_crcs() -> None:
    f = L.Frame(L.Cmd.TRANSACT, L.Flag.REPLY, 1, 2, bytes(range(40)))
    assert L.decode_frame(f.encode()) == f
    wire = bytearray(f.encode())
    for pos, what in ((5, "header CRC"), (L.HEADER_BYTES + 3, "frame CRC")):
        bad = bytearray(wire)
        bad[pos] ^= 0x10
        with pytest.raises(L.LinkError, match=what):
            L.decode_frame(bytes(bad))


def test_header_crc_and_frame_crc_are_crc32() -> None:
    wire = L.encode_frame(L.Cmd.HELLO, 0, 5, 1, b"\x01\x00")
    assert int.from_bytes(wire[16:20], "little") == zlib.crc32(wire[:16])
    assert int.from_bytes(wire[-4:], "little") == zlib.crc32(wire[:-4])
    assert len(wire) == L.OVERHEAD_BYTES + 2


def test_oversize_frame_is_reported_and_its_payload_skipped() -> None:
    big = 64
    wire = L.encode_frame(L.Cmd.TRANSACT, 0, 3, 4, bytes(big))
    follower = L.Frame(L.Cmd.READ_REG, 0, 3, 5, b"\x00" * 4)
    link = ChunkLink(wire + follower.encode(), 7)
    reader = L.FrameReader(link, max_payload=big - 1, clock=link.clock)
    first = reader.read_frame(link.clock() + 1)
    assert first == L.Oversize(L.Cmd.TRANSACT, 0, 3, 4, big)
    assert reader.read_frame(link.clock() + 1) == follower


def test_stalled_partial_frame_is_abandoned_and_a_later_frame_found() -> None:
    link = ChunkLink()
    reader = L.FrameReader(link, stall_s=0.05, clock=link.clock)
    whole = L.Frame(L.Cmd.WRITE_REG, 0, 1, 1, bytes(8)).encode()
    link.write(whole[:-3])  # the tail was lost on the wire
    t0 = link.clock()
    assert reader.read_frame(t0 + 0.2) is None
    assert t0 + 0.2 <= link.clock() < t0 + 0.2 + 2 * link.clock.poll_s  # bounded: returns at the deadline
    good = L.Frame(L.Cmd.READ_REG, 0, 1, 2, bytes(4))
    link.write(good.encode())
    assert reader.read_frame(link.clock() + 1) == good


def test_an_oversize_header_whose_payload_never_comes_stalls_and_a_later_frame_is_found() -> None:
    """A valid header announcing more than the limit, then nothing: the skip of its payload stalls like a partial
    frame, so a later frame (a host's retry) is found, not swallowed as payload.  The agent polls with deadlines
    shorter than the stall; before the fix each poll skipped what the last one had read, and the link stayed dead
    until the announced megabytes had passed."""
    link = ChunkLink()
    reader = L.FrameReader(link, max_payload=64, stall_s=0.05, clock=link.clock)
    wire = L.encode_frame(L.Cmd.TRANSACT, 0, 3, 4, bytes(1 << 20))
    link.write(wire[: L.HEADER_BYTES])  # the header alone: the payload never comes
    assert reader.read_frame(link.clock() + 0.01) == L.Oversize(L.Cmd.TRANSACT, 0, 3, 4, 1 << 20)
    for _ in range(10):  # 0.1 s of polls, twice the stall: nothing whole arrives
        assert reader.read_frame(link.clock() + 0.01) is None
    retry = L.Frame(L.Cmd.READ_REG, 0, 3, 5, b"\x00" * 4)
    link.write(retry.encode())
    got = [reader.read_frame(link.clock() + 0.01) for _ in range(10)]
    assert [f for f in got if f is not None] == [retry]


def test_encode_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="32-bit"):
        L.encode_frame(1, 0, 0, 1 << 32)
    with pytest.raises(ValueError, match="limit"):
        L.encode_frame(1, 0, 0, 1, bytes(L.MAX_PAYLOAD + 1))


def test_payload_codecs() -> None:
    hello = L.Hello(1, True, 41, 7, L.MAX_PAYLOAD, 32)
    assert L.Hello.decode(hello.encode()) == hello
    with pytest.raises(L.LinkError):
        L.Hello.decode(b"\x01")
    code, msg = L.decode_error(L.encode_error(L.ErrorCode.BAD_OFFSET, "no register at 0x99"))
    assert (code, msg) == (L.ErrorCode.BAD_OFFSET, "no register at 0x99")
    words = np.array([0, 1, 0xFFFFFFFF], np.uint32)
    payload = L.encode_transact(words, 5, 0x8, 1)
    assert L.TRANSACT_HEAD.unpack_from(payload) == (5, 0x8, 1)
    np.testing.assert_array_equal(L.decode_words(payload[L.TRANSACT_HEAD.size :]), words)
    with pytest.raises(L.LinkError):
        L.decode_words(b"\x00" * 5)


def test_wire_time_is_ten_bits_per_byte() -> None:
    assert L.wire_seconds(11_520, 115_200) == pytest.approx(1.0)


def test_session_cache_keeps_the_newest_replies_and_refuses_going_back() -> None:
    s = Session(1, depth=3, max_bytes=100)
    for seq in range(1, 6):
        s.record(seq, bytes(10), 2, bytes([seq]))
    assert list(s.replies) == [3, 4, 5] and s.last_seq == 5
    assert s.seen(2) and s.cached(2) is None and not s.seen(6)
    assert s.answered(4, 2, bytes([4])) and not s.answered(4, 3, bytes([4])) and not s.answered(4, 2, bytes([5]))
    with pytest.raises(ValueError, match="not above"):
        s.record(5, b"", 2, b"")
    s.record(6, bytes(250), 2, b"")  # over the byte bound alone: still kept (the newest always is)
    assert list(s.replies) == [6]
    s.record(9, bytes(1), 2, b"")  # gaps are allowed (a request the host gave up on)
    assert s.last_seq == 9


def test_session_table_resumes_and_forgets_the_oldest() -> None:
    t = SessionTable(max_sessions=2)
    a, resumed = t.open(10, 7)
    assert not resumed
    assert t.open(10, 7) == (a, True)
    t.open(11, 7)
    t.open(12, 7)
    assert t.get(10) is None and len(t) == 2


def test_a_session_in_use_outlives_sessions_opened_between_its_requests() -> None:
    t = SessionTable(max_sessions=4)
    live, _ = t.open(1, 42)
    for intruder in range(100, 110):  # e.g. another writer on the tty sending HELLOs
        t.open(intruder, 9)
        assert t.get(1) is live  # the live host's next request


def test_a_live_session_belongs_to_the_host_that_opened_it() -> None:
    t = SessionTable()
    live, _ = t.open(1, 42)
    live.record(1, b"reply", 2, b"")
    with pytest.raises(SessionOwned):
        t.open(1, 43)  # another host naming the same session id with another token
    assert t.get(1) is live and live.last_seq == 1  # untouched
    assert t.open(1, 42) == (live, True)


@pytest.mark.parametrize(
    ("spec", "port", "baud"),
    [
        ("serial:/dev/ttyUSB0", "/dev/ttyUSB0", 115_200),
        ("serial:/dev/ttyUSB1@3000000", "/dev/ttyUSB1", 3_000_000),
        ("serial:COM3@9600", "COM3", 9600),
    ],  # fmt: skip
)
def test_parse_serial_spec(spec: str, port: str, baud: int) -> None:
    cfg = parse_serial_spec(spec)
    assert (cfg.port, cfg.baudrate) == (port, baud)


@pytest.mark.parametrize("spec", ["/dev/ttyUSB0", "serial:", "serial:/dev/x@fast", "serial:/dev/x@0", "serial:@9600",
                                  "serial:/dev/x@99000000"])  # fmt: skip
def test_parse_serial_spec_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_serial_spec(spec)


class ScriptedAgent:
    """A ByteLink that plays an agent on a FakeClock: HELLO is answered at once; a data request gets
    PENDING keepalives every ``keepalive_s`` (none when None) and its reply after ``op_s``."""

    def __init__(self, op_s: float, keepalive_s: float | None) -> None:
        self.clock = FakeClock(poll_s=0.01)
        self.op_s, self.keepalive_s = op_s, keepalive_s
        self.queue: list[tuple[float, bytes]] = []
        self.executed = 0

    def write(self, data: bytes) -> int:
        f = L.decode_frame(data)
        now = self.clock()
        if f.cmd == L.Cmd.HELLO:
            hello = L.Hello(L.PROTOCOL_VERSION, False, 0, 0, L.MAX_PAYLOAD, 32)
            self.queue.append((now, L.encode_frame(f.cmd, L.Flag.REPLY, f.session, f.seq, hello.encode())))
            return len(data)
        self.executed += 1
        if self.keepalive_s is not None:
            k = 1
            while k * self.keepalive_s < self.op_s:
                pending = L.encode_frame(f.cmd, L.Flag.REPLY | L.Flag.PENDING, f.session, f.seq)
                self.queue.append((now + k * self.keepalive_s, pending))
                k += 1
        self.queue.append((now + self.op_s, L.encode_frame(f.cmd, L.Flag.REPLY, f.session, f.seq)))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if self.queue and self.queue[0][0] <= self.clock():
            return self.queue.pop(0)[1]
        self.clock.poll()
        return b""

    def close(self) -> None:
        pass


def test_keepalives_carry_an_operation_longer_than_the_timeout() -> None:
    from rramctl.transport.base import RegWrite, TransportError
    from rramctl.transport.serial import SerialTransport

    agent = ScriptedAgent(op_s=1.0, keepalive_s=0.1)
    st = SerialTransport(agent, timeout=0.3, retries=0, clock=agent.clock)
    assert st.transact(None, 0, RegWrite(8, 1)).size == 0
    assert st.retransmissions == 0 and agent.executed == 1 and agent.clock() >= 1.0
    silent = ScriptedAgent(op_s=1.0, keepalive_s=None)  # the same operation without keepalives times out
    st = SerialTransport(silent, timeout=0.3, retries=0, clock=silent.clock)
    with pytest.raises(TransportError, match="no reply"):
        st.transact(None, 0, RegWrite(8, 1))


def _journal_writer(path: str, port: int) -> None:
    from rramctl.transport.serial_journal import SessionJournal

    journal = SessionJournal(path, lock_wait_s=60)
    for k in range(15):
        journal.record(f"/dev/tty{port}", 1 + k, 1000 + k, open_=bool(k % 2))


def test_concurrent_journal_writers_lose_nothing_and_leave_no_temp_files(tmp_path: Path) -> None:
    import json
    import multiprocessing

    path = tmp_path / "serial-sessions.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_journal_writer, args=(str(path), p)) for p in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    data = json.loads(path.read_text())
    assert data == {f"/dev/tty{p}": {"session": 15, "token": 1014, "open": False} for p in range(6)}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
