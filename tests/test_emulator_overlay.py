"""EmulatedOverlay through rramctl's own driver: bit-exact multiply/read against an independent
integer reference of docs/protocol.md, per-event reproduction of noisy samples, error codes,
counters, abort/BUSY, interrupt line, DAC80508 model."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rramctl import regmap as R
from rramctl.driver import Driver, OverlayError
from rramctl.geometry import Region
from rramctl.hw import dac80508, linedrive
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import ChipModelConfig
from rramsim.dac import DEVICE_ID_VALUE, Dac80508
from rramsim.overlay import EmulatedOverlay, occurrence_rounds

V = dac80508.volts_to_code
V_READ = V(0.1)
QUIET = ChipModelConfig(seed=21, read_noise_ppm=0)
Chip = tuple[Driver, EmulatorTransport]
Payload = np.ndarray | None


def reference_codes(drive_sums: np.ndarray, r_f_ohm: int) -> np.ndarray:
    """docs/protocol.md "ADC readout", written out again: code = clamp(floor((2pS + q) / 2q)),
    p/q = 5e-9 * R_f / (8 * Vref), Vref = 1.25 V."""
    g = Fraction(5, 10**9) * r_f_ohm / (8 * Fraction(5, 4))
    p, q = g.numerator, g.denominator
    out = [max(-8192, min(8191, (2 * p * int(s) + q) // (2 * q))) for s in drive_sums.ravel()]
    return np.array(out, dtype=np.int64).reshape(drive_sums.shape)


def _formed(config: ChipModelConfig) -> Chip:
    t = EmulatorTransport(config)
    d = Driver(t)
    d.identify()
    d.form(Region(), 1_000_000, V(3.4), V(1.2))
    return d, t


@pytest.fixture(scope="module")
def quiet_chip() -> Chip:
    return _formed(QUIET)


def _reference_multiply(g: np.ndarray, x: np.ndarray, bits: int, region: Region, r_f: int) -> np.ndarray:
    """Integer-only reference: per bit-plane k, S = (bit_k(x) * V_READ) @ G (int64), codes shifted and added."""
    gs = g[region.row : region.row + region.n_rows, region.col : region.col + region.n_cols].astype(np.int64)
    total = np.zeros((x.shape[0], region.n_cols), dtype=np.int64)
    for k in range(bits):
        plane = ((x >> k) & 1).astype(np.int64) * V_READ
        total += reference_codes(plane @ gs, r_f) << k
    return total


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_multiply_equals_the_integer_reference(quiet_chip: Chip, data: st.DataObject) -> None:
    d, t = quiet_chip
    bits = data.draw(st.integers(1, 8))
    r0, nr = data.draw(st.integers(0, 500)), data.draw(st.integers(1, 12))
    c0, nc = data.draw(st.integers(0, 500)), data.draw(st.integers(1, 12))
    region = Region(r0, min(nr, 512 - r0), c0, min(nc, 512 - c0))
    batch = data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).integers(0, 1 << bits, size=(batch, region.n_rows))
    tia = data.draw(st.sampled_from([0, 1]))
    got = d.multiply(x, bits, region, V_READ, tia_gain=tia)
    np.testing.assert_array_equal(
        got, _reference_multiply(t.overlay.crossbar.g, x, bits, region, [2_500, 100_000][tia])
    )


def test_full_array_batch_multiply_equals_reference(quiet_chip: Chip) -> None:
    d, t = quiet_chip
    x = np.random.default_rng(1).integers(0, 16, size=(16, 512))
    got = d.multiply(x, 4, Region(), V_READ)
    np.testing.assert_array_equal(got, _reference_multiply(t.overlay.crossbar.g, x, 4, Region(), 2_500))
    assert t.read_reg(R.OUT_WORDS) == 16 * 512
    assert t.overlay.lines_idle


def test_read_equals_the_integer_reference(quiet_chip: Chip) -> None:
    d, t = quiet_chip
    region = Region(3, 7, 250, 9)
    codes = d.read_region(region, V_READ)
    g = t.overlay.crossbar.g[3:10, 250:259].astype(np.int64)
    np.testing.assert_array_equal(codes, reference_codes(g * V_READ, 100_000))


def test_noisy_multiply_is_reproducible_seeded_and_matches_the_per_event_api() -> None:
    x = np.random.default_rng(2).integers(0, 8, size=(3, 40))
    region = Region(10, 40, 100, 6)
    results = []
    for seed in (5, 5, 6):
        d, t = _formed(ChipModelConfig(seed=seed, read_noise_ppm=5_000))
        results.append(d.multiply(x, 3, region, V_READ))
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])
    quiet = _reference_multiply(t.overlay.crossbar.g, x, 3, region, 2_500)
    assert not np.array_equal(results[2], quiet)  # the noise is there ...
    assert np.abs(results[2] - quiet).max() < 0.05 * np.abs(quiet).max()  # ... and small
    # the same samples one at a time (RTL order) through the per-event API
    xb, serial = t.overlay.crossbar, t.overlay.counters.op_serial
    g = xb.g.astype(np.int64)
    one = np.zeros((3, 6), dtype=np.int64)
    for b in range(3):
        for k in range(3):
            frame = b * 3 + k
            for j in range(6):
                s = sum(int(((x[b, i] >> k) & 1) * V_READ * g[10 + i, 100 + j]) for i in range(40))
                code = xb.sample_codes(np.array(s), 0, serial, np.array(frame * 6 + j))
                one[b, j] += int(code) << k
    np.testing.assert_array_equal(one, results[2])


def test_program_write_verify_converges_and_reports_pulses(quiet_chip: Chip) -> None:
    d, t = quiet_chip
    xb = t.overlay.crossbar
    r, c = np.nonzero(xb.g_formed[:, 300:] > 0)
    cells = np.stack([r[:50], c[:50] + 300], axis=1)
    targets = np.full(50, 1200)  # read-range codes, ~18 uS at 0.1 V
    before = t.read_reg(R.PULSE_COUNT)
    res = d.program_cells(cells, targets, pulse_cycles=50, tolerance_ppm=100_000, max_pulses=40,
                          v_prog=V(1.5), v_wl=V(1.2), v_read=V_READ)  # fmt: skip
    assert np.all(np.abs(res.final_codes - 1200) <= 120)
    assert res.pulses.max() > 0 and t.read_reg(R.PULSE_COUNT) - before == res.pulses.sum()
    g = xb.g[cells[:, 0], cells[:, 1]].astype(np.int64)
    np.testing.assert_allclose(g * V_READ / 20_000, res.final_codes, atol=1)  # final = read of the final state


def test_repeated_cells_apply_in_list_order() -> None:
    keys = np.array([4, 1, 4, 4, 2, 1])
    rounds = occurrence_rounds(keys)
    assert [r.tolist() for r in rounds] == [[0, 1, 4], [2, 5], [3]]
    cells = np.array([[0, 1], [0, 1], [0, 1]])
    d1, t1 = _formed(ChipModelConfig(seed=8))
    d2, t2 = _formed(ChipModelConfig(seed=8))
    d1.reset_cells(cells, 10, V(2.6), V(2.5))  # one op, the same cell three times
    assert t1.read_reg(R.PULSE_COUNT) - t2.read_reg(R.PULSE_COUNT) == 3
    assert t1.overlay.crossbar.g[0, 1] < t2.overlay.crossbar.g[0, 1] or t2.overlay.crossbar.g_formed[0, 1] == 0


def _status(t: EmulatorTransport) -> tuple[int, int, int, int]:
    s = t.read_reg(R.STATUS)
    return R.STATUS_BUSY.get(s), R.STATUS_DONE.get(s), R.STATUS_ERROR.get(s), R.STATUS_ERR_CODE.get(s)


def _start(t: EmulatorTransport, op: int, regs: dict[int, int], send: np.ndarray | None = None, recv: int = 0):
    t.write_reg(R.CTRL, R.CTRL_CLEAR.put(1))
    t.write_reg(R.OPCODE, op)
    for k, v in regs.items():
        t.write_reg(k, v)
    from rramctl.transport.base import RegWrite

    return t.transact(send, recv, RegWrite(R.CTRL, R.CTRL_START.put(1)))


REGION_REGS = {R.ROW_START: 0, R.ROW_COUNT: 4, R.COL_START: 0, R.COL_COUNT: 4}
ONE_FRAME = linedrive.bitplane_frames(np.ones((1, 4), np.uint8)).ravel()
_V_BL_ON_ROW_511 = np.zeros((1, 512), np.uint8)
_V_BL_ON_ROW_511[0, 511] = 2  # MuxSource.BL_PROG: a programming level on a BL (row 511: the frame's first word)
BAD_FRAME = linedrive.encode_frames(_V_BL_ON_ROW_511, np.zeros((1, 512), bool))[0]


@pytest.mark.parametrize(
    ("op", "regs", "send", "code"),
    [
        (9, {}, None, 1),
        (1, REGION_REGS | {R.ROW_COUNT: 0, R.PULSE_CYCLES: 10}, None, 2),
        (5, REGION_REGS | {R.COL_START: 510}, None, 2),
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 9, R.BATCH: 1}, ONE_FRAME, 4),
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 1, R.BATCH: 0}, ONE_FRAME, 4),
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 2, R.BATCH: 1}, ONE_FRAME, 5),
        (2, {R.CELL_COUNT: 3, R.PULSE_CYCLES: 40}, np.array([1, 2], np.uint32), 5),
        (2, {R.CELL_COUNT: 3, R.PULSE_CYCLES: 40}, np.array([1, 512 << 16, 3], np.uint32), 3),
        (3, {R.CELL_COUNT: 2, R.PULSE_CYCLES: 40}, np.array([1, 5 << 16 | 512], np.uint32), 3),
        (4, {R.CELL_COUNT: 2, R.PULSE_CYCLES: 50}, np.array([1, 100, 2], np.uint32), 5),
        (2, {R.CELL_COUNT: 1, R.PULSE_CYCLES: 0}, np.array([1], np.uint32), 7),
        (1, REGION_REGS | {R.PULSE_CYCLES: 2_000_001}, None, 7),
        (3, {R.CELL_COUNT: 1, R.PULSE_CYCLES: 40}, None, 5),  # no packet at all: end of stream
        # START's order (docs/protocol.md): the region before BITS, the region before the pulse, the pulse before
        # the cell count
        (6, {R.COL_START: 0, R.COL_COUNT: 0, R.BITS: 9, R.BATCH: 0}, ONE_FRAME, 2),
        (1, REGION_REGS | {R.COL_COUNT: 0, R.PULSE_CYCLES: 0}, None, 2),
        (2, {R.CELL_COUNT: 0, R.PULSE_CYCLES: 0}, np.zeros(0, np.uint32), 7),
        # MULTIPLY: a V_BL word that came is BAD_FRAME, also in a packet too short (the RTL checks word by word;
        # the emulator said UNDERRUN), in a whole frame and in half of one
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 1, R.BATCH: 2}, BAD_FRAME, 10),
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 1, R.BATCH: 1}, BAD_FRAME[:40], 10),
        (6, {R.COL_START: 0, R.COL_COUNT: 4, R.BITS: 1, R.BATCH: 2}, ONE_FRAME[:40], 5),
    ],
)
def test_errors_set_the_code_and_change_nothing(
    op: int, regs: dict[int, int], send: np.ndarray | None, code: int
) -> None:
    d, t = _formed(ChipModelConfig(seed=2))
    d.set_levels({0: V(3.4), 1: V(3.3), 2: V(1.2), 3: V_READ})
    ov = t.overlay
    g, counters = ov.crossbar.g.copy(), (t.read_reg(R.OP_COUNT), t.read_reg(R.PULSE_COUNT))
    serial = ov.counters.op_serial
    out = _start(t, op, regs, send, recv=16)
    assert _status(t) == (0, 0, 1, code)
    assert out.size == 0 and t.read_reg(R.OUT_WORDS) == 0
    np.testing.assert_array_equal(ov.crossbar.g, g)
    assert (t.read_reg(R.OP_COUNT), t.read_reg(R.PULSE_COUNT)) == counters
    assert ov.lines_idle
    # register-parameter errors are refused at START (not accepted); stream errors come after acceptance
    assert ov.counters.op_serial == serial + (code in (3, 5, 10))  # BAD_CELL, UNDERRUN, BAD_FRAME
    # the overlay recovers: the next operation runs
    d.read_region(Region(0, 2, 0, 2), V_READ)


def test_driver_raises_overlay_errors() -> None:
    d, _ = _formed(ChipModelConfig(seed=2))
    with pytest.raises(OverlayError, match="BAD_CELL") as e:
        d.run(2, {R.CELL_COUNT: 1, R.PULSE_CYCLES: 40}, {0: V(2.6)}, send=np.array([600 << 16], np.uint32))
    assert e.value.code == 3


def test_start_before_input_waits_busy_then_abort_and_busy_errors() -> None:
    t = EmulatorTransport(ChipModelConfig(seed=4))
    ov = t.overlay
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1))
    for k, v in {R.OPCODE: 6, R.BATCH: 1, R.BITS: 1, R.COL_START: 0, R.COL_COUNT: 4}.items():
        t.write_reg(k, v)
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    assert _status(t) == (1, 0, 0, 0) and not ov.irq and ov.waiting_for_input
    assert ov.lines_idle  # no chain frame has arrived: nothing is driven yet
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))  # START while BUSY: ignored (issue 14, class 7)
    assert _status(t) == (1, 0, 0, 0) and R.STATUS_START_REFUSED.get(t.read_reg(R.STATUS)) == 1 and not ov.irq
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_ABORT.put(1))
    assert _status(t) == (0, 0, 1, 6) and ov.irq and ov.lines_idle
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_CLEAR.put(1))
    assert _status(t) == (0, 0, 0, 0) and not ov.irq
    # START first, then the packet: the operation completes on arrival
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1) | R.CTRL_START.put(1))
    ov.push_stream(ONE_FRAME)
    assert _status(t) == (0, 1, 0, 0) and ov.irq
    assert ov.pop_stream(100).size == 4 and t.read_reg(R.OP_COUNT) == 1


def test_parameters_written_while_busy_reach_the_next_start_only() -> None:
    """An operation runs on the parameter values accepted at START (docs/protocol.md; the RTL holds them in
    rram_seq): writes while it waits for its packet are stored (they read back) and change nothing of it, a
    PULSE_CYCLES of 0 or past the cap included; the next START checks and uses them."""
    t = EmulatorTransport(ChipModelConfig(seed=4))
    ov = t.overlay
    for k, v in {R.OPCODE: 6, R.BATCH: 1, R.BITS: 1, R.COL_START: 0, R.COL_COUNT: 4, R.TIA_GAIN: 0}.items():
        t.write_reg(k, v)
    t.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert ov.waiting_for_input
    hostile = {R.OPCODE: 5, R.COL_COUNT: 1, R.COL_START: 3, R.BITS: 0, R.BATCH: 9, R.TIA_GAIN: 1, R.PULSE_CYCLES: 0}
    for k, v in hostile.items():
        t.write_reg(k, v)
    ov.push_stream(ONE_FRAME)
    assert _status(t) == (0, 1, 0, 0) and ov.pop_stream(100).size == 4  # the MULTIPLY as started: 4 columns
    assert all(t.read_reg(k) == v for k, v in hostile.items())
    t.write_reg(R.CTRL, R.CTRL_START.put(1))  # the next START takes them: a READ of (0..0, 3)
    assert _status(t) == (0, 0, 1, 2)  # ROW_COUNT 0: BAD_REGION
    for k, v in {R.OPCODE: 3, R.CELL_COUNT: 2, R.PULSE_CYCLES: 20}.items():
        t.write_reg(k, v)
    t.write_reg(R.CTRL, R.CTRL_START.put(1))  # SET, its cells still to come
    t.write_reg(R.PULSE_CYCLES, 0)  # START would refuse it (BAD_PULSE)
    t.write_reg(R.CELL_COUNT, 5)
    pulses = t.read_reg(R.PULSE_COUNT)
    ov.push_stream(np.array([1 << 16 | 2, 3 << 16 | 1], np.uint32))
    assert _status(t) == (0, 1, 0, 0) and t.read_reg(R.PULSE_COUNT) == pulses + 2
    t.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert _status(t) == (0, 0, 1, 7)  # now BAD_PULSE


def test_counters_and_registers() -> None:
    t = EmulatorTransport(ChipModelConfig(seed=4))
    d = Driver(t)
    assert d.identify() == (1, 0)
    d.form(Region(0, 8, 0, 16), 1_000_000, V(3.4), V(1.2))
    assert t.read_reg(R.PULSE_COUNT) == 128 and t.read_reg(R.OP_COUNT) == 1
    d.reset_cells(np.array([[0, 0], [1, 1]]), 40, V(2.6), V(2.5))
    assert t.read_reg(R.PULSE_COUNT) == 130 and t.read_reg(R.OP_COUNT) == 2
    d.run(0, {}, {})  # NOP
    d.run(7, {}, {})  # IDLE
    assert t.read_reg(R.OP_COUNT) == 4
    t.write_reg(R.BITS, 0xFFFF_FFFF)
    assert t.read_reg(R.BITS) == 0xF  # a field keeps its width
    t.write_reg(R.OP_COUNT, 99)  # read-only: ignored
    assert t.read_reg(R.OP_COUNT) == 4
    with pytest.raises(ValueError, match="no register"):
        t.read_reg(0x074)  # no register there (docs/registers.md)
    with pytest.raises(ValueError, match="32-bit"):
        t.write_reg(R.BITS, 1 << 32)


def test_dac80508_model() -> None:
    dac = Dac80508()
    for f in dac80508.init_frames():
        dac.transfer(f)
    dac.transfer(dac80508.channel_frame(3, V_READ))
    assert dac.output_code(3) == V_READ and dac.output_code(5) == 0  # channel 5 powered down
    dac.transfer(dac80508.build_frame(dac80508.DEVICE_ID, 0, read=True))
    echo = dac.transfer(dac80508.build_frame(dac80508.NOP, 0))
    assert echo == (0x80 | dac80508.DEVICE_ID) << 16 | DEVICE_ID_VALUE
    assert dac.transfer(dac80508.build_frame(dac80508.NOP, 0)) == 0  # only the frame after a read
    dac.transfer(1 << 20)  # reserved bits: ignored, counted
    dac.transfer(1 << 24)  # not a 24-bit frame: ignored, counted
    dac.transfer(dac80508.build_frame(dac80508.STATUS, 5))  # read-only register
    assert dac.ignored_frames == 3 and dac.output_code(3) == V_READ
    dac.transfer(dac80508.build_frame(dac80508.GAIN, 0x00F7))  # channel 3 back to x1
    assert dac.output_code(3) == V_READ // 2
    dac.transfer(dac80508.build_frame(dac80508.SYNC, 0xFF08))  # channel 3 synchronous
    dac.transfer(dac80508.channel_frame(3, 1000))
    assert dac.active[3] == V_READ
    dac.transfer(dac80508.build_frame(dac80508.TRIGGER, 0x0010))  # LDAC
    assert dac.active[3] == 1000
    dac.transfer(dac80508.build_frame(dac80508.TRIGGER, dac80508.SOFT_RESET_CODE))
    assert dac.active == [0] * 8 and dac.sync == 0xFF00 and dac.ignored_frames == 3


def test_dac_through_the_overlay_registers() -> None:
    t = EmulatorTransport(ChipModelConfig(seed=1))
    d = Driver(t)
    d.init_dac()
    assert d.read_dac_register(dac80508.DEVICE_ID) == DEVICE_ID_VALUE
    d.set_levels({2: V(1.2)})
    assert t.overlay.dac.output_code(2) == V(1.2)
    d.safe_idle()
    assert all(t.overlay.dac.output_code(ch) == 0 for ch in range(8))


def test_multiply_memory_and_work_are_vectorised() -> None:
    """A batch-256, 4-bit, 512x512 multiply: no Python loop over cells/samples (it runs in well under
    the time a per-sample loop would need) and no GB-sized temporaries."""
    import time
    import tracemalloc

    ov = EmulatedOverlay(ChipModelConfig(seed=9))
    x = np.random.default_rng(0).integers(0, 16, size=(256, 512))
    planes = ((x[:, None, :] >> np.arange(4)[None, :, None]) & 1).reshape(-1, 512)
    frames = linedrive.bitplane_frames(planes).ravel()
    ov.dac.transfer(dac80508.channel_frame(3, V_READ))
    for k, v in {R.OPCODE: 6, R.BATCH: 256, R.BITS: 4, R.COL_START: 0, R.COL_COUNT: 512}.items():
        ov.write_reg(k, v)
    ov.push_stream(frames)
    tracemalloc.start()
    t0 = time.perf_counter()
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ov.done and ov.pop_stream(256 * 512).size == 256 * 512
    assert peak < 200 * 2**20
    assert elapsed < 20.0  # 524,288 samples: a per-sample Python loop would take minutes


def test_a_smaller_configured_array() -> None:
    """rows/cols below 512: regions and cells beyond the configured array are refused; rows beyond it
    in a chain frame drive nothing."""
    t = EmulatorTransport(ChipModelConfig(seed=3, rows=64, cols=32, read_noise_ppm=0))
    d = Driver(t)
    d.form(Region(0, 64, 0, 32), 1_000_000, V(3.4), V(1.2))
    with pytest.raises(OverlayError, match="BAD_REGION"):
        d.read_region(Region(0, 65, 0, 4), V_READ)
    with pytest.raises(OverlayError, match="BAD_CELL"):
        d.reset_cells(np.array([[0, 32]]), 40, V(2.6), V(2.5))
    x = np.random.default_rng(4).integers(0, 4, size=(2, 100))
    got = d.multiply(x, 2, Region(0, 100, 0, 32), V_READ)
    want = _reference_multiply(t.overlay.crossbar.g, x[:, :64], 2, Region(0, 64, 0, 32), 2_500)
    np.testing.assert_array_equal(got, want)
