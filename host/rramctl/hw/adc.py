"""Column current -> TIA -> ADS8324 code: the documented, integer-exact transfer function.

ADS8324 datasheet: 14-bit two's complement output, -8192 .. +8191 over +-Vref (bipolar).
Board values (ours): OPA4322 TIA with R_f = 2.5 kOhm (multiply range) or 100 kOhm (read
range), ADC Vref = 1.25 V, DAC full scale 5 V (see rramctl.hw.dac80508).

Units: row drive in DAC codes (v), conductance in integer nS (G).  The column "drive sum"
``S = sum_i v_i * G_i`` is an integer; the ideal code is ``S * gain`` with the exact
fraction ``gain = p / q`` below, rounded half up and clamped to the ADC range.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import numpy as np
from numpy.typing import NDArray

from rramctl.hw import dac80508
from rramctl.protocol import (
    ADC_BITS,
    ADC_FRAME_CLOCKS,
    ADC_NULL_BITS,
    ADC_SAMPLE_CLOCKS,
    ADC_TAIL_BITS,
    MULTIPLY_RESULT_SUM,
    READ_RESULT_CODE,
    BitField,
    TiaGain,
)

CODE_MIN = -(1 << (ADC_BITS - 1))  # -8192
CODE_MAX = (1 << (ADC_BITS - 1)) - 1  # +8191
ADC_VREF_V = Fraction(5, 4)  # ours: 1.25 V reference, bipolar input +-Vref

# TIA feedback (ohm) by the TIA_GAIN register's value
TIA_RF_OHM: dict[int, int] = {TiaGain.MULTIPLY: 2_500, TiaGain.READ: 100_000}
NS = Fraction(1, 10**9)


@cache  # a pure function of the setting, asked on every read
def code_gain(tia_gain: int) -> Fraction:
    """Exact ADC codes per unit of drive sum (DAC code x nS) for a TIA gain setting."""
    volts_per_dac_code = dac80508.FULL_SCALE_V / dac80508.FULL_SCALE_CODES
    tia_v_per_a = TIA_RF_OHM[tia_gain]
    return volts_per_dac_code * NS * tia_v_per_a / ADC_VREF_V * (1 << (ADC_BITS - 1))


def drive_sum_to_code(drive_sum: NDArray[np.int64] | int, tia_gain: int) -> NDArray[np.int64]:
    """Round-half-up and clamp ``drive_sum * gain`` in integers: floor((2pS + q) / 2q)."""
    g = code_gain(tia_gain)
    p, q = g.numerator, g.denominator
    s = np.asarray(drive_sum, dtype=np.int64)
    if s.size and int(np.abs(s).max()) * 2 * p > np.iinfo(np.int64).max // 2:
        raise OverflowError("drive sum too large for the integer ADC model")
    code = np.floor_divide(2 * p * s + q, 2 * q)
    return np.clip(code, CODE_MIN, CODE_MAX)


# READ's and MULTIPLY's output words (protocol.toml [word.READ_RESULT], [word.MULTIPLY_RESULT]) are one two's
# complement field filling the 32-bit word, so their codec below is a view as int32 (no shift or mask on the hot
# path of every MULTIPLY, nor in the emulator's compiled kernels, which write int32 sums); a narrower field would
# need the BitFields' put_signed / get_signed here.
WHOLE_WORD = BitField(0, 32)
if READ_RESULT_CODE != WHOLE_WORD or MULTIPLY_RESULT_SUM != WHOLE_WORD:
    raise RuntimeError(f"adc.to_word / from_word view READ_RESULT.CODE ({READ_RESULT_CODE}) and MULTIPLY_RESULT.SUM "
                       f"({MULTIPLY_RESULT_SUM}) as the whole 32-bit word; protocol.toml says otherwise")  # fmt: skip


def to_word(code: NDArray[np.integer]) -> NDArray[np.uint32]:
    """READ_RESULT / MULTIPLY_RESULT words: 14-bit codes (or int32 sums) sign-extended to 32 bits."""
    return np.asarray(code, dtype=np.int64).astype(np.int32).view(np.uint32)


def from_word(words: NDArray[np.uint32]) -> NDArray[np.int32]:
    """READ_RESULT / MULTIPLY_RESULT words back to their signed codes or sums."""
    return np.asarray(words, dtype=np.uint32).view(np.int32)


# ---- ADS8324 serial frame (datasheet timing diagram) -------------------------------------
SAMPLE_CLOCKS = ADC_SAMPLE_CLOCKS  # ours: 5 DCLKs of sampling after CS falls (datasheet: about 4.5-5)
FRAME_CLOCKS = ADC_FRAME_CLOCKS  # 22: sampling, null bit, 14 data bits MSB first, 2 zeros (protocol.toml checks it)


def serial_bits(code: int) -> list[int]:
    """DOUT value captured on each rising DCLK edge of one conversion frame.

    During sampling DOUT is high-Z (read here as 0), then one null bit (0), then 14 data bits
    MSB first (two's complement), then 2 zero bits.
    """
    if not CODE_MIN <= code <= CODE_MAX:
        raise ValueError(f"ADS8324 code {code} is outside -8192..8191")
    raw = code & ((1 << ADC_BITS) - 1)
    data = [(raw >> (ADC_BITS - 1 - i)) & 1 for i in range(ADC_BITS)]
    return [0] * (SAMPLE_CLOCKS + ADC_NULL_BITS) + data + [0] * ADC_TAIL_BITS


def decode_serial(bits: list[int]) -> int:
    """Inverse of :func:`serial_bits`: the signed code of a captured frame."""
    if len(bits) < FRAME_CLOCKS:
        raise ValueError(f"an ADS8324 frame has {FRAME_CLOCKS} clocks, got {len(bits)}")
    if any(bits[SAMPLE_CLOCKS : SAMPLE_CLOCKS + ADC_NULL_BITS]):
        raise ValueError("ADS8324 frame: the null bit is not 0")
    raw = 0
    first = SAMPLE_CLOCKS + ADC_NULL_BITS  # the data MSB
    for b in bits[first : first + ADC_BITS]:
        raw = (raw << 1) | (b & 1)
    return raw - (1 << ADC_BITS) if raw >> (ADC_BITS - 1) else raw
