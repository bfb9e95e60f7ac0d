"""Ratings below the host (issue 14, class 10): DAC code limits locked into the overlay (emulated here; the
RTL has its bench in hdl/tb) and the serial agent's own check.  A FORM, SET, RESET or READ above the ratings,
sent as raw register writes, never reaches the DAC."""

from __future__ import annotations

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.config import Ratings
from rramctl.driver import Driver, OverlayError
from rramctl.hw import dac80508
from rramctl.protocol import DAC80508_REG_BRDCAST, DacChannel, Opcode, OverlayErrorCode, dac_frame_over_limit
from rramctl.transport import serial_link as L
from rramctl.transport.emulator import EmulatorTransport
from rramctl_agent.agent import Agent
from rramsim.config import ChipModelConfig

LIMITS = Ratings().dac_code_limits()
# Raw register programs a board user could send: (opcode, parameters, the channel the bad level is on).
RAW_OPS = [
    (Opcode.FORM, {R.ROW_START: 0, R.ROW_COUNT: 8, R.COL_START: 0, R.COL_COUNT: 8, R.PULSE_CYCLES: 2_000_000},
     DacChannel.V_SL),
    (Opcode.SET, {R.CELL_COUNT: 0, R.PULSE_CYCLES: 30}, DacChannel.V_BL),
    (Opcode.RESET, {R.CELL_COUNT: 0, R.PULSE_CYCLES: 40}, DacChannel.V_WL),
    (Opcode.READ, {R.ROW_START: 0, R.ROW_COUNT: 1, R.COL_START: 0, R.COL_COUNT: 1, R.TIA_GAIN: 1},
     DacChannel.V_READ),
]  # fmt: skip
FIVE_VOLTS = dac80508.FULL_SCALE_CODES - 1


def test_rating_codes_are_the_highest_codes_inside_the_ratings() -> None:
    r = Ratings()
    volts = {DacChannel.V_SL: r.max_sl_voltage_v, DacChannel.V_BL: r.max_bl_voltage_v,
             DacChannel.V_WL: r.max_wl_voltage_v, DacChannel.V_READ: r.max_read_voltage_v}  # fmt: skip
    for ch, v in volts.items():
        code = LIMITS[ch]
        assert dac80508.code_to_volts(code) <= v < dac80508.code_to_volts(code + 1)


def test_frame_check() -> None:
    frame = dac80508.channel_frame
    assert not dac_frame_over_limit(frame(DacChannel.V_SL, LIMITS[DacChannel.V_SL]), LIMITS)
    assert dac_frame_over_limit(frame(DacChannel.V_SL, LIMITS[DacChannel.V_SL] + 1), LIMITS)
    assert not dac_frame_over_limit(frame(5, FIVE_VOLTS), LIMITS)  # an unused channel
    assert not dac_frame_over_limit(dac80508.build_frame(0x8, FIVE_VOLTS, read=True), LIMITS)  # a read
    low = min(LIMITS.values())
    assert dac_frame_over_limit(dac80508.build_frame(DAC80508_REG_BRDCAST, low + 1), LIMITS)
    assert not dac_frame_over_limit(dac80508.build_frame(DAC80508_REG_BRDCAST, low), LIMITS)


def locked_emulator() -> tuple[EmulatorTransport, Driver]:
    t = EmulatorTransport(ChipModelConfig(seed=3))
    d = Driver(t)
    d.init_dac()
    assert d.lock_ratings(LIMITS) == LIMITS
    return t, d


@pytest.mark.parametrize(("op", "params", "channel"), RAW_OPS, ids=lambda v: getattr(v, "name", ""))
def test_emulated_overlay_refuses_over_rating_raw_writes(op: Opcode, params: dict[int, int], channel: int) -> None:
    t, _ = locked_emulator()
    dac = t.overlay.dac
    g0 = t.overlay.crossbar.g.copy()
    t.write_reg(R.DAC_FRAME, dac80508.channel_frame(channel, FIVE_VOLTS))
    assert R.DAC_RDATA_REFUSED.get(t.read_reg(R.DAC_RDATA)) == 1
    status = t.read_reg(R.STATUS)
    assert R.STATUS_ERROR.get(status) and R.STATUS_ERR_CODE.get(status) == OverlayErrorCode.OVER_RATING
    assert dac.output_code(channel) == 0  # the frame never reached the DAC
    t.write_reg(R.OPCODE, op)
    for off, val in params.items():
        t.write_reg(off, val)
    t.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert dac.output_code(channel) == 0
    assert np.array_equal(t.overlay.crossbar.g, g0)  # FORM ran at 0 V: no cell formed
    t.write_reg(R.DAC_FRAME, dac80508.channel_frame(channel, LIMITS[channel]))  # at the limit: accepted
    assert dac.output_code(channel) == LIMITS[channel]
    assert R.DAC_RDATA_REFUSED.get(t.read_reg(R.DAC_RDATA)) == 0


def test_limits_lock_until_reset() -> None:
    t, d = locked_emulator()
    t.write_reg(R.DAC_LIMIT_V_SL, 0xFFFF)
    t.write_reg(R.RATINGS_LOCK, 0)
    assert t.read_reg(R.DAC_LIMIT_V_SL) == LIMITS[DacChannel.V_SL]
    assert R.RATINGS_LOCK_LOCKED.get(t.read_reg(R.RATINGS_LOCK)) == 1
    with pytest.raises(OverlayError, match="looser"):
        d.lock_ratings({DacChannel.V_SL: LIMITS[DacChannel.V_SL] - 1})
    assert d.lock_ratings(LIMITS) == LIMITS  # the same limits again (a second open): fine
    fresh = EmulatorTransport(ChipModelConfig(seed=3))  # a new emulated PL: reset values, unlocked
    assert fresh.read_reg(R.DAC_LIMIT_V_SL) == R.DAC_LIMIT_V_SL_CODE.reset
    assert R.RATINGS_LOCK_LOCKED.get(fresh.read_reg(R.RATINGS_LOCK)) == 0


def test_driver_raises_on_a_refused_frame() -> None:
    t, d = locked_emulator()
    with pytest.raises(OverlayError, match="refused") as e:
        d.set_levels({DacChannel.V_WL: LIMITS[DacChannel.V_WL] + 1})
    assert e.value.code == OverlayErrorCode.OVER_RATING
    assert t.overlay.dac.output_code(DacChannel.V_WL) == 0
    assert R.STATUS_ERROR.get(t.read_reg(R.STATUS)) == 0  # the driver cleared the refusal


def test_a_refused_frame_during_an_operation_keeps_its_status() -> None:
    t, _ = locked_emulator()
    for off, val in {R.OPCODE: Opcode.MULTIPLY, R.COL_START: 0, R.COL_COUNT: 2, R.BITS: 1, R.BATCH: 1}.items():
        t.write_reg(off, val)
    t.write_reg(R.CTRL, R.CTRL_START.put(1))  # waits for its frames
    t.write_reg(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_READ, FIVE_VOLTS))
    assert R.DAC_RDATA_REFUSED.get(t.read_reg(R.DAC_RDATA)) == 1
    status = t.read_reg(R.STATUS)
    assert R.STATUS_BUSY.get(status) == 1 and R.STATUS_ERROR.get(status) == 0


class _NullLink:
    def read(self, size: int = 1) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


def _agent() -> tuple[Agent, EmulatorTransport]:
    t = EmulatorTransport(ChipModelConfig(seed=3))  # overlay limits NOT locked: the agent alone must refuse
    a = Agent(t, _NullLink(), dac_limits=LIMITS)
    hello = L.decode_frame(a.handle(L.Frame(L.Cmd.HELLO, 0, 5, 1, L.hello_request(1))) or b"")
    assert not hello.flags & L.Flag.ERROR
    return a, t


def _reply(a: Agent, frame: L.Frame) -> L.Frame:
    raw = a.handle(frame)
    assert raw is not None
    return L.decode_frame(raw)


@pytest.mark.parametrize(("op", "params", "channel"), RAW_OPS, ids=lambda v: getattr(v, "name", ""))
def test_agent_refuses_over_rating_frames(op: Opcode, params: dict[int, int], channel: int) -> None:
    a, t = _agent()
    bad = dac80508.channel_frame(channel, LIMITS[channel] + 1)
    f = _reply(a, L.Frame(L.Cmd.WRITE_REG, 0, 5, 1, L.REG_WRITE.pack(R.DAC_FRAME, bad)))
    assert f.flags & L.Flag.ERROR and L.decode_error(f.payload)[0] == L.ErrorCode.OVER_RATING
    f = _reply(a, L.Frame(L.Cmd.TRANSACT, 0, 5, 2, L.TRANSACT_HEAD.pack(0, R.DAC_FRAME, bad)))
    assert f.flags & L.Flag.ERROR and L.decode_error(f.payload)[0] == L.ErrorCode.OVER_RATING
    assert t.overlay.dac.output_code(channel) == 0
    ok = dac80508.channel_frame(channel, LIMITS[channel])
    f = _reply(a, L.Frame(L.Cmd.WRITE_REG, 0, 5, 3, L.REG_WRITE.pack(R.DAC_FRAME, ok)))
    assert not f.flags & L.Flag.ERROR and t.overlay.dac.active[channel] == LIMITS[channel]
    assert op in Opcode and params  # the operation that would have run at the refused level


def test_a_reopened_emulator_starts_unlocked(tmp_path) -> None:
    """Opening an emulator state is the emulated bitstream load (PynqTransport.open loads the overlay): the lock
    is not saved, so the driver can lock the limits of the new configuration."""
    from rramsim import state

    t, _ = locked_emulator()
    with open(tmp_path / "chip.npz", "wb") as f:
        state.dump(t.overlay, f)
    again = state.load(tmp_path / "chip.npz")
    assert again.read_reg(R.RATINGS_LOCK) == 0
    again.write_reg(R.DAC_LIMIT_V_SL, 1234)
    assert again.read_reg(R.DAC_LIMIT_V_SL) == 1234


def test_every_chip_opened_locks_the_boards_ratings_into_the_overlay() -> None:
    """Chip.open / Chip.from_transport write BoardConfig's ratings into DAC_LIMIT_* and lock them, so a raw
    register write past the ratings (e.g. a FORM at 5 V) is refused below the host."""
    from rramctl.chip import Chip
    from rramctl.config import BoardConfig

    t = EmulatorTransport(ChipModelConfig(seed=3))
    Chip.from_transport(t, BoardConfig())
    assert R.RATINGS_LOCK_LOCKED.get(t.read_reg(R.RATINGS_LOCK)) == 1
    limits = BoardConfig().ratings.dac_code_limits()
    assert Driver(t).lock_ratings(limits) == limits  # the same limits again: accepted, nothing looser held
    t.write_reg(R.DAC_FRAME, dac80508.channel_frame(DacChannel.V_SL, dac80508.volts_to_code(5.0)))
    assert t.overlay.dac.output_code(DacChannel.V_SL) == 0  # the 5 V frame never reached the DAC
