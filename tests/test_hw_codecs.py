"""Datasheet vectors for the board's bit-level encodings (DAC80508, SN74HC595 + CD4051B, ADS8324)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rramctl.hw import adc, dac80508, linedrive
from rramctl.protocol import MuxSource


# ---- DAC80508 (datasheet: 24-bit frame, bit 23 R/W, 19:16 address, 15:0 data) -------------
@pytest.mark.parametrize(
    ("address", "data", "read", "frame"),
    [
        (dac80508.DAC0, 0x8000, False, 0x088000),  # DAC0 mid-scale
        (dac80508.DAC0 + 7, 0xFFFF, False, 0x0FFFFF),  # DAC7 full scale
        (dac80508.DEVICE_ID, 0x0000, True, 0x810000),  # read DEVICE_ID
        (dac80508.TRIGGER, 0x000A, False, 0x05000A),  # soft reset
        (dac80508.GAIN, 0x00FF, False, 0x0400FF),  # BUFF-GAIN x2 on all channels
    ],
)
def test_dac_frames_match_datasheet_layout(address: int, data: int, read: bool, frame: int) -> None:
    assert dac80508.build_frame(address, data, read=read) == frame
    parsed = dac80508.parse_frame(frame)
    assert (parsed.read, parsed.address, parsed.data) == (read, address, data)


def test_dac_rejects_bad_fields() -> None:
    with pytest.raises(dac80508.DacFrameError):
        dac80508.build_frame(0x10, 0)
    with pytest.raises(dac80508.DacFrameError):
        dac80508.build_frame(1, 0x10000)
    with pytest.raises(dac80508.DacFrameError):
        dac80508.parse_frame(0x700000)  # reserved bits 22:20
    with pytest.raises(dac80508.DacFrameError):
        dac80508.channel_frame(8, 0)
    with pytest.raises(dac80508.DacFrameError):
        dac80508.volts_to_code(5.5)
    with pytest.raises(dac80508.DacFrameError):
        dac80508.volts_to_code(-0.1)


def test_dac_voltage_codes() -> None:
    # VOUT = code / 65536 * 2.5 V * 2 (internal reference, gain x2)
    assert dac80508.volts_to_code(0.1) == 1311
    assert dac80508.code_to_volts(1311) == Fraction(1311 * 5, 65536)
    assert dac80508.volts_to_code(2.5) == 32768
    assert dac80508.volts_to_code(5.0) == 65535  # clamps to the top code
    assert abs(float(dac80508.code_to_volts(dac80508.volts_to_code(3.4))) - 3.4) < 5 / 65536


# ---- SN74HC595 chain + CD4051B selects ----------------------------------------------------
def shift_chain(stream_bits: np.ndarray, n_regs: int) -> np.ndarray:
    """Pin-level SN74HC595 chain: SER into QA of register 0 on each rising SRCLK, QH' feeds the
    next register's SER; RCLK after the last bit copies the shift registers to the outputs.
    Returns the latched outputs, shape (n_regs, 8) with columns QA..QH."""
    regs = np.zeros((n_regs, 8), dtype=np.uint8)
    for bit in stream_bits:
        carry = regs[:, 7].copy()  # QH' of every register
        regs[:, 1:] = regs[:, :-1]
        regs[0, 0] = bit
        regs[1:, 0] = carry[:-1]
    return regs.copy()


def test_first_bit_shifted_ends_at_far_end() -> None:
    select = np.zeros((1, 512), np.uint8)
    inhibit = np.zeros((1, 512), bool)
    inhibit[0, 511] = True  # INH of the last BL = QH of the last 595
    frame = linedrive.encode_frames(select, inhibit)[0]
    assert frame[0] == 0x8000_0000 and not frame[1:].any()
    inhibit[0, 511] = False
    select[0, 0] = 1  # A of BL 0 = QA of the first 595 = the last bit shifted
    frame = linedrive.encode_frames(select, inhibit)[0]
    assert frame[63] == 1 and not frame[:63].any()


def test_chain_frame_through_pin_level_595_model() -> None:
    rng = np.random.default_rng(1)
    select = rng.integers(0, 8, size=(1, 512)).astype(np.uint8)
    inhibit = rng.integers(0, 2, size=(1, 512)).astype(bool)
    frame = linedrive.encode_frames(select, inhibit)[0]
    stream = np.unpackbits(frame.astype(">u4").view(np.uint8))  # word 0 MSB first
    outputs = shift_chain(stream, 256)  # (256, 8)
    for r in (0, 1, 2, 255, 510, 511):
        nib = outputs[r // 2, 4 * (r % 2) : 4 * (r % 2) + 4]  # A, B, C, INH
        assert 4 * nib[2] + 2 * nib[1] + nib[0] == select[0, r]  # CD4051B: channel = 4C + 2B + A
        assert bool(nib[3]) == inhibit[0, r]


@given(
    hnp.arrays(np.uint8, (3, 512), elements=st.integers(0, 7)),
    hnp.arrays(np.bool_, (3, 512)),
)
def test_chain_round_trip(select: np.ndarray, inhibit: np.ndarray) -> None:
    s2, i2 = linedrive.decode_frames(linedrive.encode_frames(select, inhibit))
    assert np.array_equal(s2, select) and np.array_equal(i2, inhibit)


def test_bitplane_frames_drive_read_or_ground() -> None:
    bits = np.array([[1, 0, 1, 1]])
    select, inhibit = linedrive.decode_frames(linedrive.bitplane_frames(bits, row_start=10))
    assert select[0, 10:14].tolist() == [MuxSource.READ, MuxSource.GND, MuxSource.READ, MuxSource.READ]
    assert not select[0, :10].any() and not select[0, 14:].any() and not inhibit.any()
    with pytest.raises(linedrive.LineDriveError):
        linedrive.bitplane_frames(bits, row_start=510)
    with pytest.raises(linedrive.LineDriveError):
        linedrive.encode_frames(np.full((1, 512), 8), np.zeros((1, 512), bool))


def test_idle_frame_floats_every_line() -> None:
    select, inhibit = linedrive.decode_frames(linedrive.idle_frame()[None, :])
    assert inhibit.all()


# ---- ADS8324 (14-bit two's complement over +-Vref) + TIA ----------------------------------
def test_adc_gain_fractions() -> None:
    assert adc.code_gain(0) == Fraction(1, 800_000)  # 2.5 kOhm multiply range
    assert adc.code_gain(1) == Fraction(1, 20_000)  # 100 kOhm read range


@pytest.mark.parametrize(
    ("drive_sum", "gain", "code"),
    [
        (0, 1, 0),
        (10_000, 1, 1),  # 0.5 LSB rounds half up
        (9_999, 1, 0),
        (-10_000, 1, 0),  # -0.5 rounds up to 0
        (-10_001, 1, -1),
        (8191 * 20_000, 1, 8191),
        (10**12, 1, 8191),  # saturates high
        (-(10**12), 1, -8192),  # saturates low
        (1311 * 27_000, 0, 44),  # one 27 uS cell at 0.1 V in the multiply range: 44.24 codes
    ],
)
def test_adc_transfer(drive_sum: int, gain: int, code: int) -> None:
    assert int(adc.drive_sum_to_code(drive_sum, gain)) == code


def test_adc_transfer_matches_volts() -> None:
    # code = V / Vref * 8192 with V = I * R_f, I = v_code * 5/65536 V * G
    g_ns, v_code = 27_000, 1311
    volts = Fraction(v_code * 5, 65536) * Fraction(g_ns, 10**9) * 100_000
    assert int(adc.drive_sum_to_code(v_code * g_ns, 1)) == round(volts / Fraction(5, 4) * 8192)


@pytest.mark.parametrize(("code", "raw"), [(0, 0x0000), (1, 0x0001), (-1, 0x3FFF), (8191, 0x1FFF), (-8192, 0x2000)])
def test_adc_serial_frame(code: int, raw: int) -> None:
    bits = adc.serial_bits(code)
    assert len(bits) == adc.FRAME_CLOCKS
    data = bits[adc.SAMPLE_CLOCKS + 1 : adc.SAMPLE_CLOCKS + 15]
    assert int("".join(map(str, data)), 2) == raw  # MSB first, two's complement
    assert adc.decode_serial(bits) == code


def test_adc_words_sign_extend() -> None:
    words = adc.to_word(np.array([-8192, -1, 0, 8191]))
    assert words.tolist() == [0xFFFFE000, 0xFFFFFFFF, 0, 0x1FFF]
    assert adc.from_word(words).tolist() == [-8192, -1, 0, 8191]
