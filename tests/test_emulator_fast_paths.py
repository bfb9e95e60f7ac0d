"""The fast read-out paths give the codes of the plain frame path, bit for bit, on random cases:
chain frames (vectorised encode/decode vs a bit-level reference), the chunked int64 noise hash vs
rng.normal_int, the MULTIPLY fast path (driven rows only, cached float32/float64 blocks, one read-out
function) vs decode-everything + float64 sums over all rows + the per-sample reference, and the
torch backend (CPU; CUDA where present) vs numpy."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.hw import adc, dac80508, linedrive
from rramctl.protocol import Opcode, OverlayErrorCode
from rramsim import arraymath, device, energy, kernels, rng, state, timing, workers
from rramsim.config import ChipModelConfig
from rramsim.overlay import DAC_V_BL, DAC_V_READ, DAC_V_WL, EmulatedOverlay

MULTIPLY = 6


# ---- chain frames -------------------------------------------------------------------------------
def _stream_pos() -> np.ndarray:
    """Stream bit of (line r, nibble bit b) from the chain layout written out bit by bit."""
    lines = np.arange(512)
    chain = (8 * (lines // 2) + 4 * (lines % 2))[:, None] + np.arange(4)[None, :]
    return 2047 - chain


def reference_encode(select: np.ndarray, inhibit: np.ndarray) -> np.ndarray:
    nib = np.stack([(select >> 0) & 1, (select >> 1) & 1, (select >> 2) & 1, inhibit], axis=-1).astype(np.uint8)
    stream = np.zeros((select.shape[0], 2048), dtype=np.uint8)
    stream[:, _stream_pos().ravel()] = nib.reshape(select.shape[0], -1)
    packed = np.packbits(stream, axis=1, bitorder="big").reshape(select.shape[0], 64, 4).astype(np.uint64)
    return ((packed[..., 0] << 24) | (packed[..., 1] << 16) | (packed[..., 2] << 8) | packed[..., 3]).astype(np.uint32)


def reference_decode(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    as_bytes = frames.astype(">u4").view(np.uint8).reshape(frames.shape[0], 256)
    nib = np.unpackbits(as_bytes, axis=1, bitorder="big")[:, _stream_pos()]
    return nib[..., 0] | (nib[..., 1] << 1) | (nib[..., 2] << 2), nib[..., 3].astype(bool)


@pytest.mark.parametrize("seed", range(4))
def test_chain_frames_match_the_bit_level_reference(seed: int) -> None:
    g = np.random.default_rng(seed)
    select = g.integers(0, 8, size=(7, 512)).astype(np.uint8)
    inhibit = g.random((7, 512)) < 0.3
    frames = linedrive.encode_frames(select, inhibit)
    np.testing.assert_array_equal(frames, reference_encode(select, inhibit))
    s2, i2 = reference_decode(frames)
    s3, i3 = linedrive.decode_frames(frames)
    np.testing.assert_array_equal(s3, s2)
    np.testing.assert_array_equal(i3, i2)
    bits = g.integers(0, 2, size=(5, 40))
    sel = np.zeros((5, 512), np.uint8)
    sel[:, 100:140] = bits
    np.testing.assert_array_equal(linedrive.bitplane_frames(bits, 100), reference_encode(sel, np.zeros_like(sel, bool)))


def test_driven_lines_are_the_lines_with_a_nonzero_nibble() -> None:
    g = np.random.default_rng(5)
    select = np.zeros((6, 512), np.uint8)
    select[:, 37:90] = g.integers(0, 3, size=(6, 53))
    inhibit = np.zeros((6, 512), bool)
    inhibit[2, 300] = True
    nib, lines = linedrive.driven_lines(linedrive.encode_frames(select, inhibit))
    assert np.all(np.diff(lines) > 0)
    full = linedrive.decode_nibbles(linedrive.encode_frames(select, inhibit))
    np.testing.assert_array_equal(nib, full[:, lines])
    outside = np.setdiff1d(np.arange(512), lines)
    assert not full[:, outside].any()
    assert {37, 89, 300} <= set(lines.tolist()) and len(lines) <= 8 * 9


# ---- the noise hash -----------------------------------------------------------------------------
@pytest.mark.parametrize("device", arraymath.available_devices())
def test_normal_keyed_is_rng_normal_int(device: str) -> None:
    xm = arraymath.array_module(device)
    g = np.random.default_rng(1)
    idx = np.concatenate([np.arange(70_000), g.integers(0, 1 << 62, size=5_000)]).reshape(-1, 5)
    for seed, stream, serial in ((0, 8, 1), ((1 << 64) - 1, 11, 123_456), (77, 14, 0)):
        want = rng.normal_int(seed, stream, serial, idx)
        got = xm.to_numpy(arraymath.normal_keyed(xm, seed, stream, serial, xm.asarray(idx)))
        np.testing.assert_array_equal(got, want)


# ---- MULTIPLY: fast path vs the plain frame path ------------------------------------------------
def _config(seed: int, chain: bool) -> ChipModelConfig:
    data: dict[str, object] = {"seed": seed}
    if chain:
        data["read"] = {"noise_ppm": 5_000, "noise_floor_pa": 20_000}
        data["readout"] = {"offset_sigma_pa": 50_000, "gain_sigma_ppm": 20_000, "adc_noise_mlsb": 700}
    return ChipModelConfig.model_validate(data)


def _overlay(seed: int, chain: bool = False, device: str = "cpu") -> EmulatedOverlay:
    ov = EmulatedOverlay(_config(seed, chain), device=device)
    g = np.random.default_rng(seed)
    shape = ov.crossbar.g.shape
    ov.crossbar.g = g.integers(1, 60_000, size=shape).astype(np.int32)  # some column sums pass 2**24
    ov.crossbar.g[:, :40] = g.integers(1, 3_000, size=(shape[0], 40)).astype(np.int32)  # some stay below
    ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, int(g.integers(500, 6_000))))
    ov.dac.transfer(dac80508.channel_frame(DAC_V_BL, int(g.integers(0, 3_000))))
    ov.dac.transfer(dac80508.channel_frame(DAC_V_WL, dac80508.volts_to_code(1.2)))
    return ov


def _random_frames(g: np.random.Generator, n: int, rows: tuple[int, int]) -> np.ndarray:
    select = np.zeros((n, 512), np.uint8)
    inhibit = np.zeros((n, 512), bool)
    r0, r1 = rows
    select[:, r0:r1] = g.choice([0, 1, 1, 1, 3, 5, 7], size=(n, r1 - r0))  # no V_BL (BAD_FRAME)
    inhibit[:, r0:r1] = g.random((n, r1 - r0)) < 0.1
    select[n // 2] = 0  # one frame drives nothing
    inhibit[n // 2] = False
    return linedrive.encode_frames(select, inhibit)


def _run_multiply(
    ov: EmulatedOverlay, frames: np.ndarray, batch: int, bits: int, c0: int, nc: int, tia: int
) -> np.ndarray:
    for k, v in {R.OPCODE: MULTIPLY, R.BATCH: batch, R.BITS: bits, R.COL_START: c0, R.COL_COUNT: nc,
                 R.TIA_GAIN: tia}.items():  # fmt: skip
        ov.write_reg(k, v)
    ov.push_stream(frames.ravel())
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert ov.done and not ov.error
    return adc.from_word(ov.pop_stream(batch * nc)).astype(np.int64).reshape(batch, nc)


def reference_chain(
    ov: EmulatedOverlay, s: np.ndarray, tia: int, serial: int, sample: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """The read-out chain of docs/emulator.md written out per sample with rng.normal_int: clip, column
    offset, noise floor, column gain error, ADC input noise (drive-sum units)."""
    cfg, ro = ov.config, ov.crossbar.readout
    if not ro.active:
        return s
    gain = adc.code_gain(tia)
    limit = 4 * (adc.CODE_MAX + 2) * gain.denominator // gain.numerator
    col = np.broadcast_to(cols, s.shape)
    x = np.clip(s, -limit, limit) + ro.offset_du[col]
    if cfg.read.noise_floor_pa:
        z = rng.normal_int(cfg.seed, rng.Stream.NOISE_FLOOR, serial, sample)
        x = x + np.floor_divide(int(device.du_from_pa(cfg.read.noise_floor_pa)) * z, rng.NORMAL_SIGMA)
    x = x + np.floor_divide(x * ro.gain_ppm[col], rng.PPM)
    if cfg.readout.adc_noise_mlsb:
        z = rng.normal_int(cfg.seed, rng.Stream.ADC_NOISE, serial, sample)
        x = x + np.floor_divide(
            cfg.readout.adc_noise_mlsb * gain.denominator * z, 1000 * gain.numerator * rng.NORMAL_SIGMA
        )
    return x


def read_noise_reference(ov: EmulatedOverlay, s: np.ndarray, serial: int, sample: np.ndarray) -> np.ndarray:
    """Proportional read noise per sample with rng.normal_int: floor(S * z * ppm / (2**16 * 1e6)) in float64."""
    z = rng.normal_int(ov.config.seed, rng.Stream.READ_NOISE, serial, sample)
    ppm = float(ov.config.read.noise_ppm)
    noise = np.floor(s.astype(np.float64) * z.astype(np.float64) * ppm / float(rng.NORMAL_SIGMA * rng.PPM))
    return noise.astype(np.int64)


def frame_path_reference(
    ov: EmulatedOverlay, frames: np.ndarray, batch: int, bits: int, c0: int, nc: int, tia: int
) -> np.ndarray:
    """The plain path: decode every line, drive codes, float64 sums over all rows, per-sample noise from
    rng.normal_int, the device read-out chain, rramctl.hw.adc, shift and add."""
    xb, cfg, serial = ov.crossbar, ov.config, ov.counters.op_serial
    select, inhibit = reference_decode(frames)
    v = np.where(inhibit, 0, ov.source_codes()[select])[:, : cfg.rows]
    s = xb.drive_sums(v, c0, nc, ov.dac.output_uv(DAC_V_WL))
    sample = np.arange(s.size, dtype=np.int64).reshape(s.shape)
    s = s + read_noise_reference(ov, s, serial, sample)
    x = reference_chain(ov, s, tia, serial, sample, np.arange(c0, c0 + nc))
    codes = adc.drive_sum_to_code(x, tia)
    return (codes.reshape(batch, bits, nc) << np.arange(bits)[None, :, None]).sum(axis=1)


@pytest.mark.parametrize("case", range(6))
def test_multiply_fast_path_equals_the_frame_path(case: int) -> None:
    g = np.random.default_rng(100 + case)
    ov = _overlay(case, chain=case % 2 == 1)
    for _ in range(2):
        batch, bits = int(g.integers(1, 5)), int(g.integers(1, 9))
        r0 = int(g.integers(0, 480))
        rows = (r0, int(g.integers(r0 + 1, 513)))
        c0 = int(g.integers(0, 500))
        nc = int(g.integers(1, 513 - c0))
        tia = int(g.integers(0, 2))
        frames = _random_frames(g, batch * bits, rows)
        got = _run_multiply(ov, frames, batch, bits, c0, nc, tia)
        np.testing.assert_array_equal(got, frame_path_reference(ov, frames, batch, bits, c0, nc, tia))


def test_the_conductance_cache_follows_every_change() -> None:
    ov = _overlay(3)
    frames = linedrive.bitplane_frames(np.ones((2, 64), np.uint8), 0)
    first = _run_multiply(ov, frames, 2, 1, 0, 16, 0)
    np.testing.assert_array_equal(first, frame_path_reference(ov, frames, 2, 1, 0, 16, 0))
    ov.crossbar.g[:64, :16] //= 3  # an in-place write through the attribute
    second = _run_multiply(ov, frames, 2, 1, 0, 16, 0)
    np.testing.assert_array_equal(second, frame_path_reference(ov, frames, 2, 1, 0, 16, 0))
    assert not np.array_equal(first, second)
    ov.crossbar.g = ov.crossbar.g // 2  # a new array
    np.testing.assert_array_equal(
        _run_multiply(ov, frames, 2, 1, 0, 16, 0), frame_path_reference(ov, frames, 2, 1, 0, 16, 0)
    )


def test_a_smaller_configured_array_ignores_lines_beyond_it() -> None:
    ov = EmulatedOverlay(ChipModelConfig(seed=2, rows=64, cols=32))
    ov.crossbar.g = np.random.default_rng(2).integers(1, 40_000, size=(64, 32)).astype(np.int32)
    ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, 1_311))
    frames = _random_frames(np.random.default_rng(3), 6, (0, 200))
    np.testing.assert_array_equal(
        _run_multiply(ov, frames, 3, 2, 0, 32, 0), frame_path_reference(ov, frames, 3, 2, 0, 32, 0)
    )


@pytest.mark.parametrize("device", [d for d in arraymath.available_devices() if d != "cpu"])
@pytest.mark.parametrize("chain", [False, True])
def test_every_device_gives_the_codes_of_cpu(device: str, chain: bool) -> None:
    """torch (CPU, CUDA) and plain numpy against ``cpu`` (numpy with the compiled read-out where numba
    is installed)."""
    g = np.random.default_rng(9)
    frames = _random_frames(g, 3 * 4, (0, 512))
    got, saturated = {}, {}
    for dev in ("cpu", device):
        ov = _overlay(4, chain=chain, device=dev)
        ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, 20_000))  # some samples past the ADC's range
        got[dev] = _run_multiply(ov, frames, 3, 4, 7, 300, 0)
        saturated[dev] = ov.counters.sat_count
    np.testing.assert_array_equal(got["cpu"], got[device])
    assert saturated["cpu"] == saturated[device] > 0  # the tally of samples at the ADC's rails, too


def _torch_modules() -> list[tuple[str, bool]]:
    """(device, fused) of every torch read-out this machine runs: eager and ``torch.compile``-d, on the CPU and
    on CUDA where torch sees a GPU; the compiled one on the CPU only where a C++ compiler is present."""
    devices = [d for d in arraymath.available_devices() if d.startswith(("torch", "cuda"))]
    out = []
    for dev in devices:
        for fused in (False, True):
            if fused and dev == "torch-cpu" and shutil.which("g++") is None:
                continue
            out.append((dev, fused))
    return out


@pytest.mark.parametrize(("device", "fused"), _torch_modules())
def test_the_fused_multiply_tail_gives_the_codes_of_cpu(device: str, fused: bool) -> None:
    """arraymath.multiply_tail, eager and compiled by torch.compile (CUDA's default), against ``cpu``: the
    products, the ADC-rail tally and the ledger's sum of S; with and without the read-out chain, a chip with
    read noise, and batch shapes that change from one multiply to the next (one compile serves them)."""
    g = np.random.default_rng(13)
    for chain, batch, bits, c0, nc in ((True, 3, 4, 7, 300), (False, 5, 2, 0, 64), (True, 1, 8, 100, 33)):
        frames = _random_frames(g, batch * bits, (0, 512))
        got, tally, energy_j = {}, {}, {}
        for dev in ("cpu", device):
            ov = _overlay(5, chain=chain, device=dev)
            if dev == device:
                ov.xm = arraymath.TorchModule("cpu" if dev == "torch-cpu" else dev, fused=fused)
            ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, 20_000))  # some samples past the ADC's range
            got[dev] = _run_multiply(ov, frames, batch, bits, c0, nc, 0)
            tally[dev], energy_j[dev] = ov.counters.sat_count, ov.ledger.array_read_j
        np.testing.assert_array_equal(got["cpu"], got[device])
        assert tally["cpu"] == tally[device] > 0
        assert energy_j["cpu"] == energy_j[device] > 0


def test_a_fused_tail_that_cannot_compile_falls_back_to_the_eager_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where torch.compile fails (no Triton for its GPU, no C++ compiler) gets one warning and the eager
    tail's codes, not a failed multiply; the module stops trying."""
    pytest.importorskip("torch")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(arraymath, "_FUSED_TAIL", broken)
    xm = arraymath.TorchModule("cpu", fused=True)
    op = arraymath.ReadOp(seed=3, serial=4, read_noise_ppm=5_000, gain_p=3, gain_q=7, code_min=-8192, code_max=8191)
    s = np.random.default_rng(2).integers(0, 10**5, size=(8, 5))
    with pytest.warns(RuntimeWarning, match="could not be compiled"):
        got = arraymath.multiply_tail(xm, xm.asarray(s), np.arange(5), op, 4)
    assert not xm.fused
    want = arraymath.multiply_tail(arraymath.NumpyModule(compiled=False), s, np.arange(5), op, 4)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]


@pytest.mark.parametrize(("device", "fused"), _torch_modules())
def test_the_fused_multiply_tail_refuses_a_drive_sum_too_large(device: str, fused: bool) -> None:
    """The compiled tail checks the widest |S| after the chain as adc_codes does: one OverflowError."""
    xm = arraymath.TorchModule("cpu" if device == "torch-cpu" else device, fused=fused)
    op = arraymath.ReadOp(seed=1, serial=2, read_noise_ppm=0, gain_p=3, gain_q=7, code_min=-8192, code_max=8191)
    s = np.zeros((4, 3), dtype=np.int64)
    s[2, 1] = op.limit + 1
    with pytest.raises(OverflowError, match="too large"):
        arraymath.multiply_tail(xm, xm.asarray(s), np.arange(3), op, 2)
    s[2, 1] = op.limit
    out, _, total = arraymath.multiply_tail(xm, xm.asarray(s), np.arange(3), op, 2)
    assert total == op.limit and out.shape == (2, 3)


def test_a_block_of_the_conductance_is_the_whole_arrays_block() -> None:
    ov = EmulatedOverlay(ChipModelConfig.model_validate({"seed": 5, "relaxation": {"sigma_ns": 2_000}}))
    xb = ov.crossbar
    xb.g = np.random.default_rng(5).integers(1, 60_000, size=xb.g.shape).astype(np.int32)
    xb.g_formed = xb.g.copy()
    xb.t_pulse_us[::3, ::2] = 10
    xb.relax_ns[::3, ::2] = 1_500
    xb.now_us = 5_000
    rows, cols = np.array([3, 9, 10, 200]), np.arange(40, 90)
    whole = xb.conductance(1_200_000)
    np.testing.assert_array_equal(xb.conductance(1_200_000, np.ix_(rows, cols)), whole[np.ix_(rows, cols)])
    np.testing.assert_array_equal(xb.conductance(1_200_000, (rows, cols[:4])), whole[rows, cols[:4]])
    assert not np.array_equal(whole, xb.g)  # relaxation acts on the pulsed cells
    for some in (rows, np.arange(7, 19)):  # MULTIPLY's block of driven rows: scattered, and a contiguous run
        block = xb.read_block(arraymath.NumpyModule(), some, 40, 50, 1_200_000)
        np.testing.assert_array_equal(block, whole[np.ix_(some, cols)])


@pytest.mark.parametrize(
    ("shape", "top"),
    [((3_000, 9), 3), ((2_000, 16), 16), ((2_000, 17), 16), ((1_000, 8), 256), ((1_000, 12), 200), ((500, 300), 16),
     ((200, 6), 1_000), ((0, 4), 2), ((40, 1), 16)],
)  # fmt: skip
def test_unique_vectors_is_np_unique(shape: tuple[int, int], top: int) -> None:
    x = np.random.default_rng(shape[0]).integers(0, top, size=shape)
    if shape[0] > 8:
        x[5] = x[7]
    want_u, want_i = np.unique(x, axis=0, return_inverse=True)
    got_u, got_i = linedrive.unique_vectors(x)
    np.testing.assert_array_equal(got_u, want_u)
    np.testing.assert_array_equal(got_i, want_i.ravel())


@pytest.mark.parametrize(("shape", "top"), [((3_000, 512), 16), ((2_000, 64), 3), ((1_500, 20), 256), ((700, 400), 2),
                                           ((1, 24), 16), ((600, 9), 256)])  # fmt: skip
def test_unique_vectors_of_byte_rows_is_np_unique(shape: tuple[int, int], top: int) -> None:
    """uint8 rows (a training layer's unfolded codes), as a column slice of a wider array, many repeated and some
    differing only in their last byte or first word: the rows, order and inverse of np.unique(axis=0)."""
    g = np.random.default_rng(shape[1])
    wide = g.integers(0, top, size=(shape[0], shape[1] + 5)).astype(np.uint8)
    x = wide[:, 2 : 2 + shape[1]]  # not contiguous
    n = shape[0]
    x[n // 2 :] = x[g.integers(0, max(1, n // 2), size=n - n // 2)]  # repeats, scattered
    x[n // 3 : n // 3 + n // 10, -1] ^= 1  # neighbours in sort order that differ in the last byte only
    x[: n // 10, : min(8, shape[1])] = 0
    want_u, want_i = np.unique(x, axis=0, return_inverse=True)
    got_u, got_i = linedrive.unique_vectors(x)
    np.testing.assert_array_equal(got_u, want_u)
    np.testing.assert_array_equal(got_i, want_i.ravel())
    assert got_i.dtype == np.int64


# ---- energy ledger ------------------------------------------------------------------------------
def test_the_ledger_prices_a_multiply_as_v2_g_t_per_sampled_column() -> None:
    ov = _overlay(7)
    bits = np.random.default_rng(7).integers(0, 2, size=(3, 100))
    frames = linedrive.bitplane_frames(bits, 20)
    before = ov.ledger.copy()
    _run_multiply(ov, frames, 3, 1, 5, 30, 0)
    spent = ov.ledger.since(before)
    v = ov.dac.output_uv(DAC_V_READ) * 1e-6
    g = ov.crossbar.conductance(ov.dac.output_uv(DAC_V_WL))[20:120, 5:35] * 1e-9  # siemens
    want = sum(v * v * float(bits[f] @ g.sum(axis=1)) * energy.T_CONV_S for f in range(3))
    board_v = ov.dac.output_code(DAC_V_READ) * energy.BOARD_LSB_UV * 1e-6
    assert spent.array_read_j == pytest.approx(want * board_v / v, rel=1e-9)  # V * I with I from board codes
    assert spent.adc_conversions == 3 * 30 and spent.adc_j == pytest.approx(90 * 60e-9)
    assert ov.ledger.total_j == pytest.approx(ov.ledger.array_read_j + ov.ledger.adc_j + ov.ledger.pulse_j)


def test_the_ledger_and_board_time_survive_save_and_load(tmp_path: Path) -> None:
    ov = _overlay(8)
    _run_multiply(ov, linedrive.bitplane_frames(np.ones((2, 8), np.uint8)), 2, 1, 0, 4, 0)
    ov.ledger.pulse(2_600_000, 27_000.0, 40, 3)
    with (tmp_path / "s.npz").open("wb") as f:
        state.dump(ov, f)
    back = state.load(tmp_path / "s.npz")
    assert back.ledger == ov.ledger and back.board_time_s == ov.board_time_s > 0
    with pytest.raises(ValueError, match="unknown fields"):
        energy.EnergyLedger.from_dict({"array_read_j": 1.0, "bogus": 2})


def test_the_transport_runs_the_array_math_on_the_device_it_is_given() -> None:
    from rramctl.errors import UsageError
    from rramctl.transport.emulator import EmulatorTransport

    assert EmulatorTransport(ChipModelConfig(seed=1), device="cpu").overlay.xm.name == "numpy"
    with pytest.raises(UsageError, match="unknown emulator device"):
        EmulatorTransport(ChipModelConfig(seed=1), device="tpu")


# ---- the compiled read-out kernel vs the numpy read-out ------------------------------------------
def _random_read_op(g: np.random.Generator, n_cols: int, chain: bool) -> arraymath.ReadOp:
    p, q = int(g.integers(1, 50)), int(g.integers(1, 5_000))
    tables = chain and bool(g.integers(0, 2))
    return arraymath.ReadOp(
        seed=int(g.integers(0, 1 << 62)),
        serial=int(g.integers(0, 1 << 30)),
        read_noise_ppm=int(g.choice([0, 1, 5_000, 300_000])),
        gain_p=p,
        gain_q=q,
        code_min=-8192,
        code_max=8191,
        chain=chain,
        offset_du=g.integers(-(10**6), 10**6, size=n_cols + 7) if tables else None,
        gain_ppm=g.integers(-50_000, 50_000, size=n_cols + 7) if tables else None,
        noise_floor_du=int(g.choice([0, 3, 40_000])) if chain else 0,
        adc_noise_mlsb=int(g.choice([0, 700, 10**6])) if chain else 0,
        clip=int(g.choice([10**6, 10**12, 1 << 60])) if chain else 0,
    )


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("case", range(12))
def test_the_compiled_readout_gives_the_numpy_codes(case: int) -> None:
    """Random operations, sums of every size (near 2**50, where the kernel switches to integer
    division, and past the ADC model's limit, where both raise), sample keys and column sets."""
    g = np.random.default_rng(500 + case)
    rows, n_cols = int(g.integers(1, 40)), int(g.integers(1, 300))
    op = _random_read_op(g, n_cols, chain=case % 2 == 1)
    scale = [10**3, 10**9, 1 << 49, 1 << 50, 1 << 51, 1 << 60][case % 6]
    s = g.integers(-scale, scale, size=(rows, n_cols), dtype=np.int64)
    sample = g.integers(0, 1 << 62, size=(rows, n_cols), dtype=np.int64)
    cols = g.permutation(n_cols + 7)[:n_cols].astype(np.int64)
    index = np.arange(s.size, dtype=np.int64).reshape(s.shape)
    for col_arg, keys in ((cols, sample), (np.broadcast_to(cols, s.shape).copy(), sample), (cols, None)):
        results = []  # per column, per sample; keys given, or the flat index (None) against an explicit one
        for compiled in (True, False):
            key = index if keys is None and not compiled else keys
            try:
                results.append(arraymath.readout_codes(arraymath.NumpyModule(compiled), s, key, col_arg, op))
            except OverflowError:
                results.append(None)
        if results[1] is None:
            assert results[0] is None
        else:
            assert results[0] is not None
            np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_kernels_float_quotient_is_floor_division() -> None:
    """n = k*d - 1, k*d, k*d + 1 (where an uncorrected float estimate is off by one) up to 2**50."""
    g = np.random.default_rng(3)
    for _ in range(3_000):
        d = int(g.integers(1, 10**7))
        k = int(g.integers(-(1 << 49) // d, (1 << 49) // d))
        for n in (k * d - 1, k * d, k * d + 1):
            assert kernels._floordiv_estimate(n, d, 1.0 / d) == n // d, (n, d)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("chain", [False, True])
def test_the_compiled_readout_refuses_exactly_where_numpy_does(chain: bool) -> None:
    op = _random_read_op(np.random.default_rng(8), 3, chain)
    op = dataclasses.replace(
        op, clip=1 << 62, read_noise_ppm=0, adc_noise_mlsb=0, noise_floor_du=0, offset_du=None, gain_ppm=None
    )
    limit = (np.iinfo(np.int64).max // 2) // (2 * op.gain_p)
    for top, raises in ((limit, False), (limit + 1, True)):
        s = np.array([[0, -top, 5]], dtype=np.int64)
        for compiled in (True, False):
            xm = arraymath.NumpyModule(compiled)
            if raises:
                with pytest.raises(OverflowError):
                    arraymath.readout_codes(xm, s, np.zeros_like(s), np.arange(3), op)
            else:
                arraymath.readout_codes(xm, s, np.zeros_like(s), np.arange(3), op)


# ---- MULTIPLY's bit-planes handed to the emulator as they are vs encoded as chain frames -----------
def _frames_only_transport(config: ChipModelConfig) -> Any:
    """An emulator transport that sends a MULTIPLY's packet as chain-frame words, as a board transport does."""
    from rramctl.transport.base import Transport
    from rramctl.transport.emulator import EmulatorTransport

    class FramesOnly(EmulatorTransport):
        _transact_bitplanes = Transport._transact_bitplanes  # encode the frames, then _transact

    return FramesOnly(config)


@pytest.mark.parametrize("case", range(4))
def test_bitplanes_to_the_emulator_equal_chain_frames(case: int) -> None:
    """Driver.multiply through the shortcut and through encoded frames, on random regions, inputs,
    bit widths and chip models: the same codes, saturation counts, board time and energy."""
    from rramctl.driver import Driver
    from rramctl.geometry import Region
    from rramctl.transport.emulator import EmulatorTransport

    config = _config(case, chain=case % 2 == 1)
    fast, frames = EmulatorTransport(config), _frames_only_transport(config)
    for t in (fast, frames):
        t.overlay.crossbar.g = np.random.default_rng(case).integers(1, 60_000, size=(512, 512)).astype(np.int32)
    results = []
    for t in (fast, frames):
        d = Driver(t)
        gg = np.random.default_rng(case)  # the same cases for both
        out = []
        for _ in range(3):
            r0, c0 = int(gg.integers(0, 500)), int(gg.integers(0, 500))
            region = Region(r0, int(gg.integers(1, 513 - r0)), c0, int(gg.integers(1, 513 - c0)))
            bits = int(gg.integers(1, 9))
            x = gg.integers(0, 1 << bits, size=(int(gg.integers(1, 40)), region.n_rows))
            out.append((d.multiply(x, bits, region, int(gg.integers(500, 6_000))), d.saturated))
        results.append((out, t.board_cost()))
    (fast_out, fast_cost), (frame_out, frame_cost) = results
    for (a, sat_a), (b, sat_b) in zip(fast_out, frame_out, strict=True):
        np.testing.assert_array_equal(a, b)
        assert sat_a == sat_b
    assert fast_cost == frame_cost


def test_the_scalar_prefix_hash_is_rng_hash64() -> None:
    g = np.random.default_rng(12)
    for seed in (0, 1, (1 << 64) - 1, *map(int, g.integers(0, 1 << 63, size=20))):
        for stream in (0, 8, 14):
            keys = [int(k) for k in g.integers(0, 1 << 62, size=int(g.integers(0, 3)))]
            want = int(rng.hash64(seed, stream, *keys))
            assert arraymath.prefix_hash(seed, stream, *keys) % (1 << 64) == want


@pytest.mark.parametrize(("batch", "bits"), [(5, 2), (3, 4), (1, 8), (2, 3), (4, 4)])
def test_bitplanes_cut_otherwise_by_the_registers_are_their_frames(batch: int, bits: int) -> None:
    """A packet of bit-planes (3 vectors of 4 bits on rows 100..) run with other BATCH / BITS registers
    reads its frames as the registers cut them, exactly as the same packet sent as words; a short one
    is an UNDERRUN either way."""
    x = np.random.default_rng(bits).integers(0, 16, size=(3, 300)).astype(np.uint8)
    packet = linedrive.BitplaneStream(x, 4, 100)
    got = []
    for sent in (packet, packet.words()):
        ov = _overlay(2, chain=True)
        if batch * bits > packet.n_frames:
            for k, v in {R.OPCODE: MULTIPLY, R.BATCH: batch, R.BITS: bits, R.COL_START: 0, R.COL_COUNT: 64}.items():
                ov.write_reg(k, v)
            ov.push_stream(sent)
            ov.write_reg(R.CTRL, R.CTRL_START.put(1))
            assert ov.error and ov.err_code == OverlayErrorCode.UNDERRUN
            continue
        for k, v in {R.OPCODE: MULTIPLY, R.BATCH: batch, R.BITS: bits, R.COL_START: 0, R.COL_COUNT: 64,
                     R.TIA_GAIN: 0}.items():  # fmt: skip
            ov.write_reg(k, v)
        ov.push_stream(sent)
        ov.write_reg(R.CTRL, R.CTRL_START.put(1))
        assert ov.done and not ov.error
        got.append(ov.pop_stream(batch * 64))
    if got:
        np.testing.assert_array_equal(got[0], got[1])


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_compiled_bitplanes_are_the_plane_matrix() -> None:
    from rramsim.overlay import _plane_matrix_f32

    x = np.random.default_rng(2).integers(0, 256, size=(37, 129)).astype(np.uint8)
    for bits in (1, 3, 8):
        want = linedrive.BitplaneStream(x, bits, 0).plane_matrix(np.float32)
        np.testing.assert_array_equal(_plane_matrix_f32(x, bits), want)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_compiled_drive_sums_are_numpys() -> None:
    """Several source codes summed (the accumulating path), float32 and float64 blocks."""
    g = np.random.default_rng(21)
    for top in (3_000, 150_000):  # column sums below and above 2**24: float32 and float64 blocks
        conductance = g.integers(1, top, size=(200, 70))
        drives = [(int(c), g.random((33, 200)) < 0.4) for c in (1_300, 65_535, 7)]
        sums = []
        for compiled in (True, False):
            xm = arraymath.NumpyModule(compiled)
            block = xm.block(conductance, int(conductance.sum(axis=0).max()))
            sums.append(arraymath.drive_sums(xm, drives, block))
        want = sum(c * (m.astype(np.int64) @ conductance) for c, m in drives)
        np.testing.assert_array_equal(sums[0], want)
        np.testing.assert_array_equal(sums[1], want)


@pytest.fixture
def threads_in_parts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Threads for the compiled read-out: 1 (one part), or ``request.param`` threads with parts as small as one
    sample allows (so every split the threads can make is made)."""
    n = int(getattr(request, "param", 1))
    if n > 1:
        monkeypatch.setattr(workers, "MIN_PART_SAMPLES", 1)
    workers.set_threads(n)
    yield n
    workers.set_threads(None)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("threads_in_parts", [1, 3], indirect=True)
@pytest.mark.parametrize("case", range(24))
def test_the_compiled_multiply_is_the_readout_then_the_shift_and_add(case: int, threads_in_parts: int) -> None:
    """arraymath.multiply_codes (kernels.multiply_kernel) against the numpy read-out of S = code * product
    with the flat sample index as key, then the shift and add, the tally at the rails and the sum of S:
    float32, float64 and int64 products, with and without the chain, sums either side of the float path's
    2**50 and past the ADC model's limit (both raise); in one part and shared out among 3 threads."""
    g = np.random.default_rng(700 + case)
    bits, batch, nc = int(g.integers(1, 9)), int(g.integers(1, 12)), int(g.integers(1, 300))
    op = _random_read_op(g, nc, chain=case % 2 == 1)
    cols = g.permutation(nc + 7)[:nc].astype(np.int64)
    dtype = (np.float32, np.float64, np.int64)[case % 3]
    code = int(g.choice([1, 1_311, 65_535]))
    scale = [10**4, 1 << 40, 1 << 52, 1 << 62][case // 6]  # of S: the float path, the int64 path, too large
    top = max(2, min({np.float32: 1 << 24, np.float64: 1 << 53, np.int64: 1 << 62}[dtype], scale // code))
    product = g.integers(-top // 8, top, size=(batch * bits, nc)).astype(dtype)
    s = product.astype(np.int64) * code
    try:
        codes = arraymath.readout_codes(arraymath.NumpyModule(compiled=False), s, None, cols, op)
    except OverflowError:
        with pytest.raises(OverflowError):
            arraymath.multiply_codes(product, code, bits, cols, op)
        return
    out, at_rails, total = arraymath.multiply_codes(product, code, bits, cols, op)
    np.testing.assert_array_equal(out, (codes.reshape(batch, bits, nc) << np.arange(bits)[None, :, None]).sum(axis=1))
    assert at_rails == np.count_nonzero((codes <= op.code_min) | (codes >= op.code_max))
    assert total == int(s.sum())


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_float_readout_is_exact_at_every_adc_step() -> None:
    """The kernel's float64 path (no chain, values below 2**50) on drive sums at 2p S + q = 2q m - 1, 2q m,
    2q m + 1 (where a float estimate of the ADC's quotient is off by one), up to the path's bound, with and
    without read noise, against the numpy read-out."""
    g = np.random.default_rng(31)
    for _ in range(40):
        p, q = int(g.integers(1, 50)), 2 * int(g.integers(1, 5_000))
        op = arraymath.ReadOp(seed=int(g.integers(0, 1 << 62)), serial=int(g.integers(0, 1 << 30)),
                              read_noise_ppm=int(g.choice([0, 2_000, 300_000])), gain_p=p, gain_q=q,
                              code_min=-(1 << 62), code_max=1 << 62)  # fmt: skip
        m = g.integers(-(1 << 48) // (2 * q), (1 << 48) // (2 * q), size=300)
        n = (2 * q * m)[:, None] + np.array([-1, 0, 1])  # 2p S + q near a step, S = (n - q) / 2p rounded down
        s = ((n - q) // (2 * p)).reshape(-1, 30)
        got = arraymath.readout_codes(arraymath.NumpyModule(compiled=True), s, None, np.arange(30), op)
        np.testing.assert_array_equal(
            got, arraymath.readout_codes(arraymath.NumpyModule(compiled=False), s, None, np.arange(30), op)
        )


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("case", range(16))
def test_the_float_chain_readout_is_exact_at_every_step(case: int) -> None:
    """The kernel's float64 read-out with the chain on (kernels._chain_float: read noise, clip, offset, noise
    floor, gain error, ADC noise, ADC) against the numpy read-out, on sums where a float quotient estimate is
    off by one: gain errors whose x * ppm / 1e6 lands on, just below and just above an integer, ADC inputs
    next to a code step, with and without each term, in readout_codes and in multiply_codes.  Every case
    is one the float path takes (checked), so a difference from the int64 terms shows here."""
    g = np.random.default_rng(900 + case)
    nc = int(g.integers(1, 70))
    p, q = int(g.integers(1, 4)), 2 * [1, 3, 50, int(g.integers(1, 500_000))][case // 4]  # LSBs of 1 .. 10**6 du
    noise = case % 4  # 0: no draws; 1: read noise only; 2: noise floor and ADC noise; 3: all three
    op = arraymath.ReadOp(
        seed=int(g.integers(0, 1 << 62)), serial=int(g.integers(0, 1 << 30)),
        read_noise_ppm=2_000 if noise in (1, 3) else 0, gain_p=p, gain_q=q, code_min=-8192, code_max=8191,
        chain=True,
        offset_du=g.integers(-(10**6), 10**6, size=nc + 3) * int(case % 8 < 4) if case % 2 else None,
        gain_ppm=g.choice([-50_000, -125_000, -1, 1, 3, 500_000, 40_000], size=nc + 3),
        noise_floor_du=26_214 if noise >= 2 else 0, adc_noise_mlsb=500 if noise >= 2 else 0,
        clip=int(g.choice([10**9, 1 << 40])),
    )  # fmt: skip
    m = g.integers(-500, 500, size=(6, nc))
    s = np.concatenate([m * 10**6 + d for d in (-1, 0, 1)] + [m * q // p + d for d in (-1, 0, 1)])  # (36, nc)
    params = arraymath.kernel_args(op, np.arange(nc), s.shape)[1]
    off_max = 0.0 if op.offset_du is None else float(np.abs(op.offset_du).max())
    assert kernels._chain_fits_float(float(np.abs(s).max()), params, off_max, float(np.abs(op.gain_ppm).max()))
    want = arraymath.readout_codes(arraymath.NumpyModule(compiled=False), s, None, np.arange(nc), op)
    got = arraymath.readout_codes(arraymath.NumpyModule(compiled=True), s, None, np.arange(nc), op)
    np.testing.assert_array_equal(got, want)
    for dtype in (np.float32, np.int64):
        bits = 3
        product = (s // 7).astype(dtype)[: 36 // bits * bits]
        codes = arraymath.readout_codes(
            arraymath.NumpyModule(compiled=False), product.astype(np.int64) * 7, None, np.arange(nc), op
        )
        out, at_rails, total = arraymath.multiply_codes(product, 7, bits, np.arange(nc), op)
        np.testing.assert_array_equal(out, (codes.reshape(-1, bits, nc) << np.arange(bits)[None, :, None]).sum(axis=1))
        assert at_rails == np.count_nonzero((codes <= op.code_min) | (codes >= op.code_max))


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
def test_the_compiled_driven_rows_are_numpys() -> None:
    from rramsim.overlay import _driven_rows

    x = np.random.default_rng(2).integers(0, 256, size=(37, 129)).astype(np.uint8)
    x[:, ::3] &= 0xF0  # rows driven by high bits only
    x[:, ::5] = 0  # rows never driven
    for bits in (1, 3, 4, 8):
        used, n = _driven_rows(x, bits)
        want = (x & np.uint8((1 << bits) - 1)).any(axis=0)
        np.testing.assert_array_equal(used, want)
        assert n == int(want.sum())


def test_the_dacs_write_shortcut_is_the_parsed_frame() -> None:
    """Dac80508.transfer takes plain writes without parsing them into a frame object: the same registers,
    echoes and ignored-frame count as the parsed path, on random frames (writes, reads, reserved bits, over
    24 bits)."""
    from rramsim.dac import Dac80508

    class Parsed(Dac80508):
        transfer = Dac80508._transfer_parsed  # every frame parsed

    g = np.random.default_rng(13)
    fast, parsed = Dac80508(), Parsed()
    for _ in range(3_000):
        kind = int(g.integers(0, 4))
        data, address = int(g.integers(0, 1 << 16)), int(g.integers(0, 16))
        frame = [address << 16 | data, 1 << 23 | address << 16 | data, int(g.integers(0, 1 << 24)), 1 << 24][kind]
        assert fast.transfer(frame) == parsed.transfer(frame)
        assert fast.to_dict() == parsed.to_dict()


@pytest.mark.parametrize("chain", [False, True])
def test_read_samples_each_cell_of_the_region_at_its_own_time(chain: bool) -> None:
    """READ (a block of the arrays) against the rule written per cell: cell k of the region (row-major) is
    sampled at now + ((k // cols + 1) * row + (k + 1) * sample) cycles (rramsim.timing: a row's frame and guard,
    a sample's settle and conversion), its noise keyed by k."""
    data: dict[str, Any] = _config(6, chain).model_dump()
    data["relaxation"] = {"sigma_ns": 3_000, "tau_us": 400}  # cells relax while the read goes on
    ov = EmulatedOverlay(ChipModelConfig.model_validate(data))
    xb = ov.crossbar
    g = np.random.default_rng(6)
    xb.g = g.integers(1, 60_000, size=xb.g.shape).astype(np.int32)
    xb.g_formed = xb.g.copy()
    xb.t_pulse_us[::2, ::3] = 10
    xb.relax_ns[::2, ::3] = g.integers(-2_000, 2_000, size=xb.relax_ns[::2, ::3].shape)
    ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, 1_311))
    ov.dac.transfer(dac80508.channel_frame(DAC_V_WL, dac80508.volts_to_code(1.2)))
    r0, nr, c0, nc, settle = 3, 7, 100, 45, 50
    for k, v in {R.OPCODE: Opcode.READ, R.ROW_START: r0, R.ROW_COUNT: nr, R.COL_START: c0, R.COL_COUNT: nc,
                 R.SETTLE_CYCLES: settle, R.TIA_GAIN: 0}.items():  # fmt: skip
        ov.write_reg(k, v)
    serial, now = ov.counters.op_serial + 1, int(ov.board_time_s * 1e6)
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    assert ov.done and not ov.error
    got = adc.from_word(ov.pop_stream(nr * nc)).astype(np.int64)
    k = np.arange(nr * nc)
    r, c = r0 + k // nc, c0 + k % nc
    row = timing.read_row_cycles(ov.regs[R.GUARD_CYCLES], ov.clocks)
    sample = timing.read_sample_cycles(settle, ov.clocks)
    at = now + ((k // nc + 1) * row + (k + 1) * sample) // (timing.CLOCK_HZ // 1_000_000)
    s = ov.dac.output_code(DAC_V_READ) * xb.conductance(ov.dac.output_uv(DAC_V_WL), (r, c), at)
    want = adc.drive_sum_to_code(reference_chain(ov, s + read_noise_reference(ov, s, serial, k), 0, serial, k, c), 0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (pip install numba)")
@pytest.mark.parametrize("chain", [False, True])
def test_a_multiply_in_threads_is_the_multiply_in_one(chain: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The overlay's MULTIPLY with its vectors shared out among 1, 2, 5 threads (parts down to one vector):
    the same codes, SAT_COUNT, ledger energy and board time (rramsim.workers)."""
    monkeypatch.setattr(workers, "MIN_PART_SAMPLES", 1)
    g = np.random.default_rng(44)
    frames = _random_frames(g, 11 * 4, (0, 512))
    seen = []
    try:
        for n in (1, 2, 5):
            workers.set_threads(n)
            ov = _overlay(6, chain=chain)
            ov.dac.transfer(dac80508.channel_frame(DAC_V_READ, 20_000))  # some samples past the ADC's range
            codes = _run_multiply(ov, frames, 11, 4, 3, 257, 0)
            seen.append((codes, ov.counters.sat_count, dataclasses.asdict(ov.ledger), ov.board_time_s))
    finally:
        workers.set_threads(None)
    for codes, sat, ledger, t in seen[1:]:
        np.testing.assert_array_equal(codes, seen[0][0])
        assert (sat, ledger, t) == seen[0][1:]
    assert seen[0][1] > 0


def test_workers_parts_cover_the_vectors_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contiguous ranges of whole vectors, in order, none empty; one range where a part would be too small."""
    try:
        workers.set_threads(4)
        assert workers.parts(10, workers.MIN_PART_SAMPLES // 4) == [(0, 5), (5, 10)]  # 2.5 parts' worth: 2 parts
        assert workers.parts(10, workers.MIN_PART_SAMPLES // 6) == [(0, 10)]  # 1.7 parts' worth: 1
        monkeypatch.setattr(workers, "MIN_PART_SAMPLES", 1)
        for n_items in (1, 3, 4, 7, 1000):
            ranges = workers.parts(n_items, 5)
            assert ranges[0][0] == 0 and ranges[-1][1] == n_items and len(ranges) == min(4, n_items)
            assert all(a < b for a, b in ranges) and all(r[1] == s[0] for r, s in zip(ranges, ranges[1:], strict=False))
    finally:
        workers.set_threads(None)


def test_workers_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workers.ENV, "3")
    assert workers.threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(workers.ENV, bad)
        with pytest.raises(ValueError, match=workers.ENV):
            workers.threads()
    monkeypatch.delenv(workers.ENV)
    assert 1 <= workers.threads() <= workers.DEFAULT_MAX
    with pytest.raises(ValueError):
        workers.set_threads(0)


def test_workers_raise_a_parts_error_after_every_part_has_ended() -> None:
    ended = []

    def work(a: int, b: int) -> int:
        if a == 0:
            raise RuntimeError("part 0")
        ended.append(a)
        return a

    workers.set_threads(3)
    try:
        with pytest.raises(RuntimeError, match="part 0"):
            workers.run_parts(work, [(0, 1), (1, 2), (2, 3)])
        assert sorted(ended) == [1, 2]
        assert workers.run_parts(lambda a, b: a + b, [(0, 1), (1, 2), (2, 3)]) == [1, 3, 5]
    finally:
        workers.set_threads(None)


@pytest.mark.parametrize("device", [d for d in arraymath.available_devices() if d != "cpu"])
def test_inputs_that_drive_no_row_give_the_codes_of_cpu_on_every_device(device: str) -> None:
    """A batch whose vectors drive no row at all (all zero: calibrate_offsets sends one) is every drive sum 0:
    on numpy and torch it raised "cannot reshape" and left the overlay BUSY for every later operation."""
    from rramctl.chip import Chip
    from rramctl.geometry import Region
    from rramctl.transport.emulator import EmulatorTransport

    region = Region(0, 16, 0, 8)
    cases = [np.zeros((1, 16), np.int64), np.zeros((3, 16), np.int64),
             np.random.default_rng(4).integers(0, 16, size=(5, 16)) * (np.arange(16) < 2)]  # fmt: skip
    got: dict[str, list[np.ndarray]] = {}
    for dev in ("cpu", device):
        chip = Chip.from_transport(EmulatorTransport(ChipModelConfig(seed=5), device=dev))
        chip.electroform(region)
        got[dev] = [chip.multiply(x, region, bits=4).codes for x in cases]
        got[dev].append(chip.multiply(np.ones((2, 16), np.int64), region, bits=4).codes)  # the overlay goes on
    for a, b in zip(got["cpu"], got[device], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failure_of_the_emulator_leaves_the_overlay_idle_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside an operation that is not an overlay error code (a bug, an interrupt) reaches the
    caller; the overlay is idle again, nothing of the operation counted (OP_COUNT, board time, output words),
    and the next operation runs (it stayed BUSY for good, so every later START was refused)."""
    ov = _overlay(4, chain=True, device="cpu")
    frames = _random_frames(np.random.default_rng(2), 2, (0, 64))
    real, calls = EmulatedOverlay._execute, []

    def failing(self: EmulatedOverlay, op: int, packet: Any) -> Any:
        calls.append(op)
        if len(calls) == 1:
            raise RuntimeError("emulator failure")
        return real(self, op, packet)

    monkeypatch.setattr(EmulatedOverlay, "_execute", failing)
    before = (ov.counters.op_count, ov.board_time_s)
    with pytest.raises(RuntimeError, match="emulator failure"):
        _run_multiply(ov, frames, 2, 1, 0, 8, 0)
    status = ov.read_reg(R.STATUS)
    assert not status & (R.STATUS_BUSY.mask | R.STATUS_DONE.mask)
    assert (ov.counters.op_count, ov.board_time_s) == before and ov.counters.out_words == 0
    assert _run_multiply(ov, frames, 2, 1, 0, 8, 0).shape == (2, 8)
    assert ov.counters.op_count == before[0] + 1
