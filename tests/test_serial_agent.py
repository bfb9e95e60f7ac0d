"""Host SerialTransport <-> board agent over a pseudo-terminal pair, the real emulator behind the agent."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.chip import Chip
from rramctl.config import BoardConfig, Pulse
from rramctl.driver import MULTIPLY, RESET, Driver
from rramctl.errors import StateError
from rramctl.geometry import Region
from rramctl.transport import serial_link as L
from rramctl.transport.base import RegWrite, Transport, TransportError
from rramctl.transport.emulator import EmulatorTransport
from rramctl.transport.serial import AgentError, SerialTransport, open_port, open_serial_transport
from rramctl_agent.agent import Agent  # noqa: E402
from rramctl_agent.loopback import PtyAgent  # noqa: E402
from rramsim.config import ChipModelConfig

SEED = 11
FAST = {"timeout": 5.0, "retries": 2}  # a test link answers in milliseconds; a loaded machine may take longer


def emulator(seed: int = SEED) -> EmulatorTransport:
    return EmulatorTransport(ChipModelConfig(seed=seed))


def run_scenario(transport: Transport, seed: int = SEED) -> dict[str, np.ndarray]:
    """Every operation kind through the chip API; every result and the overlay counters."""
    chip = Chip.from_transport(transport, BoardConfig())
    out: dict[str, np.ndarray] = {}
    out["formed_us"] = chip.electroform(
        Region(0, 16, 0, 24), Pulse(voltage_v=3.7, width_s=10e-3, gate_v=1.2)
    ).conductance_us
    cells = np.array([[0, 0], [1, 2], [3, 3], [5, 7], [9, 20]])
    out["reset_pulses"] = np.array(chip.reset(cells))
    out["after_reset_us"] = chip.read(Region(0, 10, 0, 24))
    out["set_pulses"] = np.array(chip.set(cells[:3]))
    prog = chip.program(np.array([[2, 2], [4, 4], [6, 6]]), np.array([20.0, 10.0, 30.0]))
    out["prog_final_us"], out["prog_pulses"] = prog.final_us, prog.pulses
    x = np.random.default_rng(seed).integers(0, 16, (3, 16))
    out["mult_codes"] = chip.multiply(x, Region(0, 16, 0, 24), 4).codes
    out["counters"] = np.array([chip.counters()["op_count"], chip.counters()["pulse_count"]])
    return out


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture
def served() -> Iterator[PtyAgent]:
    with PtyAgent(emulator(), keepalive_s=0.1) as pa:
        yield pa


def test_chip_results_over_serial_equal_the_direct_emulator(served: PtyAgent) -> None:
    direct = run_scenario(emulator())
    with SerialTransport(served.path, 3_000_000, **FAST) as st:
        remote = run_scenario(st)
        assert served.agent.executed == st.last_seq  # every request executed exactly once
    assert_same(remote, direct)
    assert remote["counters"][0] > 5 and remote["counters"][1] > 0  # the scenario really pulsed


def test_raw_operations_equal_the_direct_emulator(served: PtyAgent) -> None:
    direct = emulator()
    cells = (np.array([1, 2, 3], np.uint32) << 16) | np.array([4, 5, 6], np.uint32)
    with open_serial_transport(f"serial:{served.path}@115200") as st:
        for t in (direct, st):
            t.write_reg(R.OPCODE, RESET)
            t.write_reg(R.CELL_COUNT, 3)
            t.write_reg(R.PULSE_CYCLES, 40)
        outs = [t.transact(cells, 0, RegWrite(R.CTRL, 1)) for t in (direct, st)]
        regs = [[t.read_reg(off) for off in R.REGISTERS.values()] for t in (direct, st)]
    assert outs[0].size == outs[1].size == 0
    assert regs[0] == regs[1]
    assert regs[1][list(R.REGISTERS).index("PULSE_COUNT")] == 3


def test_host_refuses_bad_input_before_sending(served: PtyAgent) -> None:
    with SerialTransport(served.path, **FAST) as st:
        sent = st.last_seq
        with pytest.raises(ValueError, match="no register"):
            st.read_reg(0x99)
        with pytest.raises(ValueError, match="32-bit"):
            st.write_reg(R.OPCODE, 1 << 32)
        with pytest.raises(ValueError, match="recv_words"):
            st.transact(None, -1, RegWrite(R.CTRL, 1))
        with pytest.raises(ValueError, match="no register"):
            st.transact(None, 0, RegWrite(0x3, 1))
        assert st.last_seq == sent and served.agent.executed == 0


# ---- the agent's refusals (each an error reply with its code; nothing executed) ------------------
class CountingTransport(EmulatorTransport):
    def __init__(self) -> None:
        super().__init__(ChipModelConfig(seed=SEED))
        self.calls = 0

    def read_reg(self, offset: int) -> int:
        self.calls += 1
        return super().read_reg(offset)

    def write_reg(self, offset: int, value: int) -> None:
        self.calls += 1
        super().write_reg(offset, value)

    def transact(self, send, recv_words, trigger):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().transact(send, recv_words, trigger)


class NullLink:
    def read(self, size: int = 1) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


@pytest.fixture
def agent() -> Agent:
    a = Agent(CountingTransport(), NullLink())
    hello = L.decode_frame(a.handle(L.Frame(L.Cmd.HELLO, 0, 77, 1, L.hello_request(1))))
    assert not hello.flags & L.Flag.ERROR
    a.transport.calls = 0  # type: ignore[attr-defined]
    return a


def refusal(agent: Agent, frame: L.Frame) -> int:
    reply = agent.handle(frame)
    assert reply is not None
    f = L.decode_frame(reply)
    assert f.flags == L.Flag.REPLY | L.Flag.ERROR and (f.cmd, f.session, f.seq) == (frame.cmd, frame.session, frame.seq)
    return L.decode_error(f.payload)[0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (L.Frame(99, 0, 77, 1, b""), L.ErrorCode.BAD_COMMAND),
        (L.Frame(L.Cmd.READ_REG, 0, 77, 1, b"\x00" * 5), L.ErrorCode.BAD_LENGTH),
        (L.Frame(L.Cmd.WRITE_REG, 0, 77, 1, b"\x00" * 4), L.ErrorCode.BAD_LENGTH),
        (L.Frame(L.Cmd.TRANSACT, 0, 77, 1, b"\x00" * 14), L.ErrorCode.BAD_LENGTH),
        (L.Frame(L.Cmd.HELLO, 0, 77, 1, b"\x00"), L.ErrorCode.BAD_LENGTH),
        (L.Frame(L.Cmd.REPLAY, 0, 77, 1, b""), L.ErrorCode.BAD_LENGTH),
        (L.Frame(L.Cmd.READ_REG, 0, 77, 1, L.U32.pack(0x74)), L.ErrorCode.BAD_OFFSET),
        (L.Frame(L.Cmd.WRITE_REG, 0, 77, 1, L.REG_WRITE.pack(0x2, 1)), L.ErrorCode.BAD_OFFSET),
        (L.Frame(L.Cmd.TRANSACT, 0, 77, 1, L.TRANSACT_HEAD.pack(0, 0x1000, 1)), L.ErrorCode.BAD_OFFSET),
        (L.Frame(L.Cmd.TRANSACT, 0, 77, 1, L.TRANSACT_HEAD.pack(1 << 20, R.CTRL, 1)), L.ErrorCode.TOO_LONG),
        (L.Frame(L.Cmd.HELLO, 0, 78, 1, L.hello_request(1, L.PROTOCOL_VERSION + 1)), L.ErrorCode.BAD_VERSION),
        (L.Frame(L.Cmd.HELLO, 0, 0, 1, L.hello_request(1)), L.ErrorCode.NO_SESSION),
        (L.Frame(L.Cmd.READ_REG, 0, 78, 1, L.U32.pack(R.ID)), L.ErrorCode.NO_SESSION),
        (L.Frame(L.Cmd.READ_REG, 0, 77, 0, L.U32.pack(R.ID)), L.ErrorCode.BAD_SEQ),
        (L.Frame(L.Cmd.REPLAY, 0, 77, 1, L.U32.pack(5)), L.ErrorCode.BAD_SEQ),  # never ran: not STALE_SEQ
        (L.Frame(L.Cmd.REPLAY, 0, 77, 1, L.U32.pack(0)), L.ErrorCode.BAD_SEQ),
        (L.Frame(L.Cmd.REPLAY, 0, 78, 1, L.U32.pack(1)), L.ErrorCode.NO_SESSION),
        # a request's flags are 0: ERROR / PENDING on a request are refused, before session and seq checks
        (L.Frame(L.Cmd.READ_REG, L.Flag.PENDING, 77, 1, L.U32.pack(R.ID)), L.ErrorCode.BAD_COMMAND),
        (L.Frame(L.Cmd.WRITE_REG, L.Flag.ERROR, 78, 0, L.REG_WRITE.pack(R.OPCODE, 5)), L.ErrorCode.BAD_COMMAND),
        (L.Frame(L.Cmd.HELLO, L.Flag.ERROR, 77, 1, L.hello_request(1)), L.ErrorCode.BAD_COMMAND),
        (L.Frame(L.Cmd.REPLAY, 0x08, 77, 1, L.U32.pack(1)), L.ErrorCode.BAD_COMMAND),
    ],
)
def test_agent_refusals(agent: Agent, frame: L.Frame, code: L.ErrorCode) -> None:
    assert refusal(agent, frame) == code
    assert agent.transport.calls == 0  # type: ignore[attr-defined]


def test_replay_says_stale_only_for_a_completed_request_whose_reply_is_gone(agent: Agent) -> None:
    """STALE_SEQ means "it ran, its reply is no longer cached": a host that lost track must not read it for a
    request that never ran (BAD_SEQ) or a session the agent does not know (NO_SESSION)."""
    depth = agent.sessions.get(77).depth  # type: ignore[union-attr]
    for seq in range(1, depth + 3):
        agent.handle(L.Frame(L.Cmd.READ_REG, 0, 77, seq, L.U32.pack(R.ID)))
    assert refusal(agent, L.Frame(L.Cmd.REPLAY, 0, 77, 1, L.U32.pack(1))) == L.ErrorCode.STALE_SEQ
    newest = L.decode_frame(agent.handle(L.Frame(L.Cmd.REPLAY, 0, 77, 2, L.U32.pack(depth + 2))) or b"")
    assert not newest.flags & L.Flag.ERROR
    assert refusal(agent, L.Frame(L.Cmd.REPLAY, 0, 77, 3, L.U32.pack(depth + 3))) == L.ErrorCode.BAD_SEQ


def test_agent_executes_each_sequence_number_once(agent: Agent) -> None:
    write = L.Frame(L.Cmd.WRITE_REG, 0, 77, 1, L.REG_WRITE.pack(R.OPCODE, 5))
    first = agent.handle(write)
    assert agent.handle(write) == first  # a retransmission gets the cached reply
    assert agent.transport.calls == 1 and agent.replayed == 1  # type: ignore[attr-defined]
    pulse = L.Frame(L.Cmd.TRANSACT, 0, 77, 2, L.encode_transact(np.array([1 << 16], np.uint32), 0, R.CTRL, 1))
    agent.handle(L.Frame(L.Cmd.WRITE_REG, 0, 77, 3, L.REG_WRITE.pack(R.OPCODE, RESET)))  # nothing pulses yet
    ov = agent.transport.overlay  # type: ignore[attr-defined]
    for f in (L.Frame(L.Cmd.WRITE_REG, 0, 77, 4, L.REG_WRITE.pack(R.CELL_COUNT, 1)),
              L.Frame(L.Cmd.WRITE_REG, 0, 77, 5, L.REG_WRITE.pack(R.PULSE_CYCLES, 40))):  # fmt: skip
        agent.handle(f)
    agent.handle(L.Frame(pulse.cmd, 0, 77, 6, pulse.payload))
    pulses = ov.counters.pulse_count
    assert pulses == 1
    agent.handle(L.Frame(pulse.cmd, 0, 77, 6, pulse.payload))  # duplicate
    agent.handle(L.Frame(pulse.cmd, 0, 77, 2, pulse.payload))  # an old number never executes, even uncached
    assert ov.counters.pulse_count == pulses
    small = Agent(CountingTransport(), NullLink(), cache_depth=1)
    small.handle(L.Frame(L.Cmd.HELLO, 0, 5, 1, L.hello_request(1)))
    small.handle(L.Frame(L.Cmd.READ_REG, 0, 5, 1, L.U32.pack(R.ID)))
    small.handle(L.Frame(L.Cmd.READ_REG, 0, 5, 2, L.U32.pack(R.ID)))
    assert refusal(small, L.Frame(L.Cmd.READ_REG, 0, 5, 1, L.U32.pack(R.ID))) == L.ErrorCode.STALE_SEQ


def test_transport_failures_become_error_replies_and_the_agent_keeps_serving(served: PtyAgent) -> None:
    with SerialTransport(served.path, **FAST) as st:
        st.write_reg(R.OPCODE, MULTIPLY)
        st.write_reg(R.BATCH, 1)
        st.write_reg(R.BITS, 1)
        st.write_reg(R.COL_COUNT, 4)
        # an overlay UNDERRUN is a result, not a link failure: the status register says so
        assert st.transact(None, 4, RegWrite(R.CTRL, 1)).size == 0
        assert R.STATUS_ERR_CODE.get(st.read_reg(R.STATUS)) == 5
        served.agent.transport.close()  # the overlay transport fails from now on
        with pytest.raises(AgentError, match="TRANSPORT.*closed") as e:
            st.read_reg(R.ID)
        assert e.value.code == L.ErrorCode.TRANSPORT


def test_oversize_frame_gets_too_long_reply(served: PtyAgent) -> None:
    link = open_port(served.path, 115_200, 2.0)
    head = L.HEADER.pack(L.MAGIC, L.Cmd.TRANSACT, 0, 1, 1, L.MAX_PAYLOAD + 4)  # a valid header, too long
    link.write(head + zlib.crc32(head).to_bytes(4, "little") + bytes(L.MAX_PAYLOAD + 8))
    reader = L.FrameReader(link)
    deadline = time.monotonic() + 5
    reply = reader.read_frame(deadline)
    while reply is not None and not (isinstance(reply, L.Frame) and reply.flags & L.Flag.ERROR):
        reply = reader.read_frame(deadline)
    link.close()
    assert isinstance(reply, L.Frame) and L.decode_error(reply.payload)[0] == L.ErrorCode.TOO_LONG
    with SerialTransport(served.path, **FAST) as st:  # the agent skipped the payload and serves on
        assert st.read_reg(R.ID) == R.ID_VALUE.reset


def test_bad_crc_gets_no_reply_and_executes_nothing(served: PtyAgent) -> None:
    link = open_port(served.path, 115_200, 2.0)
    wire = bytearray(L.encode_frame(L.Cmd.HELLO, 0, 9, 1, L.hello_request(1)))
    wire[-1] ^= 1
    link.write(bytes(wire))
    assert L.FrameReader(link).read_frame(time.monotonic() + 0.3) is None
    link.close()
    assert served.agent.sessions.get(9) is None and served.agent.reader.bad_frames >= 1


# ---- reconnect, dead link, slow operations --------------------------------------------------------
def test_reconnect_learns_what_completed_and_fetches_the_lost_reply(served: PtyAgent) -> None:
    first = SerialTransport(served.path, **FAST)
    sid = first.session.session_id
    first.write_reg(R.OPCODE, MULTIPLY)
    for off, v in ((R.BATCH, 1), (R.BITS, 1), (R.COL_START, 0), (R.COL_COUNT, 8)):
        first.write_reg(off, v)
    # the host sends a MULTIPLY and dies before it reads the reply
    seq = first.last_seq + 1
    frame = L.encode_frame(L.Cmd.TRANSACT, 0, sid, seq,
                           L.encode_transact(np.zeros(64, np.uint32), 8, R.CTRL, 1))  # fmt: skip
    first.link.write(frame)
    time.sleep(0.2)
    first.close()
    ops_before = served.agent.transport.overlay.counters.op_count
    assert ops_before == 1

    with pytest.raises(AgentError, match="belongs to another host"):  # the session id alone does not resume
        SerialTransport(served.path, session_id=sid, **FAST)
    again = SerialTransport(served.path, session_id=sid, session_token=first.session_token, **FAST)
    assert again.session.resumed and again.session.last_completed_seq == seq and again.session.op_count == 1
    cmd, flags, payload = again.replay(seq)
    assert (cmd, flags) == (L.Cmd.TRANSACT, L.Flag.REPLY) and len(L.decode_words(payload)) == 8
    assert served.agent.transport.overlay.counters.op_count == ops_before  # replay executed nothing
    assert again.read_reg(R.OP_COUNT) == 1 and again.last_seq == seq + 1  # numbering continues
    assert again.query_session().last_completed_seq == seq + 1
    again.close()

    fresh = SerialTransport(served.path, session_id=0xABC, **FAST)  # e.g. the agent restarted since
    assert not fresh.session.resumed and fresh.session.last_completed_seq == 0 and fresh.session.op_count == 1
    fresh.close()


def test_dead_link_ends_in_transport_error_not_a_hang(served: PtyAgent) -> None:
    st = SerialTransport(served.path, timeout=0.2, retries=2)
    served.halt()  # the agent hangs, the cable stays
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="no reply .* after 3 attempts"):
        st.read_reg(R.ID)
    assert time.monotonic() - t0 < 3
    served.stop()  # the device goes away
    with pytest.raises(TransportError, match="failed"):
        st.read_reg(R.ID)
    st.close()
    with pytest.raises(TransportError, match="closed"):
        st.read_reg(R.ID)


def test_no_agent_at_all_fails_the_handshake_clearly() -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(TransportError, match="HELLO"):
            SerialTransport(os.ttyname(slave), timeout=0.1, retries=1)
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(TransportError, match="cannot open serial port"):
        SerialTransport("/dev/nonexistent-rramctl-tty")


class GatedTransport(EmulatorTransport):
    """An operation that runs until the test releases it (no wall-clock duration)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = threading.Event()

    def transact(self, send, recv_words, trigger):  # type: ignore[no-untyped-def]
        assert self.release.wait(60)
        return super().transact(send, recv_words, trigger)


def test_the_agent_sends_keepalives_while_an_operation_runs() -> None:
    """The agent's half of a long operation: PENDING frames until the reply (the host's half, that a
    keepalive extends the reply timeout, is tested on an injected clock in test_serial_link.py)."""
    gated = GatedTransport(ChipModelConfig(seed=SEED))
    with PtyAgent(gated, keepalive_s=0.02) as pa:
        link = open_port(pa.path, 115_200, 2.0)
        reader = L.FrameReader(link)
        link.write(L.encode_frame(L.Cmd.HELLO, 0, 77, 1, L.hello_request(1)))
        assert reader.read_frame(time.monotonic() + 30) is not None
        link.write(L.encode_frame(L.Cmd.TRANSACT, 0, 77, 1, L.encode_transact(np.zeros(0, np.uint32), 0, R.CTRL, 1)))
        flags = []
        while len(flags) < 3:  # keepalives keep coming while the operation runs
            frame = reader.read_frame(time.monotonic() + 30)
            assert isinstance(frame, L.Frame) and frame.seq == 1
            flags.append(frame.flags)
        assert all(f & L.Flag.PENDING for f in flags)
        gated.release.set()
        frame = reader.read_frame(time.monotonic() + 30)
        while isinstance(frame, L.Frame) and frame.flags & L.Flag.PENDING:
            frame = reader.read_frame(time.monotonic() + 30)
        link.close()
    assert isinstance(frame, L.Frame) and not frame.flags & (L.Flag.PENDING | L.Flag.ERROR)
    assert gated.overlay.counters.op_count == 1


def test_a_seq_reused_for_another_request_is_refused_not_answered_from_the_cache(agent: Agent) -> None:
    """A completed seq answers only its own retransmission (same cmd and payload) from the cache; another
    request under it (a host bug) gets BAD_SEQ naming the seq's request, and nothing executes (it got the old
    reply as a success before: a WRITE_REG of another value "succeeded" without writing)."""
    ov = agent.transport.overlay  # type: ignore[attr-defined]
    write = L.Frame(L.Cmd.WRITE_REG, 0, 77, 1, L.REG_WRITE.pack(R.OPCODE, 5))
    first = agent.handle(write)
    calls = agent.transport.calls  # type: ignore[attr-defined]
    assert refusal(agent, L.Frame(L.Cmd.WRITE_REG, 0, 77, 1, L.REG_WRITE.pack(R.OPCODE, 6))) == L.ErrorCode.BAD_SEQ
    assert refusal(agent, L.Frame(L.Cmd.READ_REG, 0, 77, 1, L.U32.pack(R.OPCODE))) == L.ErrorCode.BAD_SEQ
    reply = L.decode_frame(agent.handle(L.Frame(L.Cmd.READ_REG, 0, 77, 1, L.U32.pack(R.OPCODE))) or b"")
    assert "seq 1 was another request (cmd 3)" in L.decode_error(reply.payload)[1]
    assert agent.transport.calls == calls and ov.read_reg(R.OPCODE) == 5  # type: ignore[attr-defined]
    assert agent.handle(write) == first and agent.replayed == 1  # the retransmission still gets its reply
    assert agent.sessions.get(77).last_seq == 1  # type: ignore[union-attr]  # a refusal uses up nothing


def test_agent_notes_a_seed_its_state_file_overrides(tmp_path: Path) -> None:
    """--seed makes a new chip only: where the state file holds another seed's chip the agent says so."""
    state = tmp_path / "chip.npz"
    EmulatorTransport(ChipModelConfig(seed=3)).save_state(state)

    def start(*seed: str) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "rramctl_agent", "--pty", "--backend", "emulator",
                                 "--state", str(state), *seed], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().startswith("/dev/")
        proc.terminate()
        return proc.communicate(timeout=30)[1]

    assert f"--seed 5 ignored: {state} holds a chip of seed 3" in start("--seed", "5")
    assert "ignored" not in start("--seed", "3") + start()


def test_agent_command_line_serves_a_pty(tmp_path: Path) -> None:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "rramctl_agent", "--pty", "--backend", "emulator", "--state",
           str(tmp_path / "chip.npz"), "--seed", "3"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        with open_serial_transport(f"serial:{path}") as st:
            assert Driver(st).identify() == (1, 0)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    bad = subprocess.run([sys.executable, "-m", "rramctl_agent", "--port", "/dev/x", "--baud", "0"], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "baudrate" in bad.stderr


def test_agent_without_state_keeps_its_own_chip_not_the_users(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    env.pop("RRAMCTL_STATE", None)
    env.pop("RRAMCTL_AGENT_STATE", None)
    proc = subprocess.Popen([sys.executable, "-m", "rramctl_agent", "--pty", "--backend", "emulator"],
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None
        with SerialTransport(proc.stdout.readline().strip(), **FAST) as st:
            assert Driver(st).identify() == (1, 0)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert sorted(p.name for p in (tmp_path / "rramctl").iterdir()) == ["agent-emulator.npz"]


def test_cli_over_serial_reproduces_the_cli_on_the_emulator(tmp_path: Path) -> None:
    """Issue 5's acceptance: `rramctl --backend serial:PTY form/read/multiply` against a running agent
    gives the files `rramctl --backend emulator` gives, bit for bit."""
    from rramctl.cli.main import app
    from typer.testing import CliRunner

    env = dict(os.environ)
    cmd = [sys.executable, "-m", "rramctl_agent", "--pty", "--backend", "emulator", "--state",
           str(tmp_path / "board.npz"), "--seed", "4"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    runner = CliRunner()
    outputs: dict[str, dict[str, np.ndarray]] = {}
    try:
        assert proc.stdout is not None
        pty = proc.stdout.readline().strip()
        for name, backend in (("serial", ["--backend", f"serial:{pty}"]),
                              ("emulator", ["--backend", "emulator", "--state", str(tmp_path / "local.npz"),
                                            "--seed", "4"])):  # fmt: skip
            d = tmp_path / name
            d.mkdir()
            steps = (
                ["form", "--region", "0:64,0:64"],
                ["form", "--pairs", "--region", "64:8,0:16"],
                ["reset", "--region", "0:4,0:8"],
                ["read", "--region", "0:72,0:320", "--out", str(d / "g.npy"), "--png", str(d / "g.png")],
                ["multiply", "--random", "5", "--region", "0:72,0:32", "--out", str(d / "p.npz")],
            )
            for step in steps:
                r = runner.invoke(app, [*backend, *step])
                assert r.exit_code == 0, f"{name} {step}: {r.output}"
            with np.load(d / "p.npz") as p:
                outputs[name] = {"g": np.load(d / "g.npy"), **{k: p[k] for k in p.files}}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert outputs["serial"].keys() == outputs["emulator"].keys()
    for k, v in outputs["serial"].items():
        assert np.array_equal(v, outputs["emulator"][k]), k


def test_a_command_cut_off_is_followed_by_one_that_learns_what_completed(served: PtyAgent, tmp_path: Path) -> None:
    """Issue 5: after a reconnect the host learns which operations completed, also across rramctl invocations
    (the session journal)."""
    from rramctl.cli.main import app
    from rramctl.transport.serial_journal import SessionJournal
    from typer.testing import CliRunner

    path = tmp_path / "journal.json"
    journal, spec = SessionJournal(path), f"serial:{served.path}"
    first = open_serial_transport(spec, journal)
    assert first.recovery is None
    Driver(first).identify()
    first.write_reg(R.OPCODE, MULTIPLY)
    sid, sent = first.session.session_id, first.last_seq
    first.link.close()  # the process dies: no close(), its journal entry stays open

    second = open_serial_transport(spec, journal)
    rec = second.recovery
    assert rec is not None and rec.resumed and rec.session_id == sid and rec.last_completed_seq == sent
    assert f"up to #{sent}" in rec.message()
    assert second.read_reg(R.OPCODE) == MULTIPLY and second.last_seq == sent + 1  # the session goes on
    second.close()
    third = open_serial_transport(spec, journal)  # closed cleanly: a fresh session, nothing to report
    assert third.recovery is None and third.session.session_id != sid
    third.link.close()  # cut off again, then the CLI comes next
    r = CliRunner().invoke(app, ["--backend", spec, "info"], env={"RRAMCTL_SERIAL_JOURNAL": str(path)})
    assert r.exit_code == 0, r.output
    assert "did not close session" in r.output + (r.stderr if r.stderr_bytes is not None else "")

    path.write_text("{not json")
    with pytest.raises(StateError, match="delete it"):
        open_serial_transport(spec, journal)
    assert path.read_text() == "{not json"  # nothing changed


def test_a_second_program_cannot_open_the_port(served: PtyAgent) -> None:
    first = open_port(served.path, 115_200, 1.0)
    try:
        with pytest.raises(TransportError, match="in use by another program"):
            open_port(served.path, 115_200, 1.0)
    finally:
        first.close()
    open_port(served.path, 115_200, 1.0).close()  # free again once the first closed it
