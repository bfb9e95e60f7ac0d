"""DAC80508 SPI frames (TI DAC80508 datasheet, section "Serial interface").

24-bit frames, SPI mode 1 (CPOL 0, CPHA 1), MSB first: bit 23 = R/W (1 = read),
bits 19:16 = register address, bits 15:0 = data.  A read returns its data on the
following frame, whose first byte echoes R/W + address.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from rramctl.errors import UsageError
from rramctl.protocol import (
    DAC80508_REG_BRDCAST,
    DAC80508_REG_DAC0,
    DAC_FRAME_ADDRESS,
    DAC_FRAME_DATA,
    DAC_FRAME_READ,
    DacChannel,
)

# Register addresses (DAC80508 datasheet, register map); the two the overlay also decodes (its
# rating check) come from the protocol file.
NOP = 0x00
DEVICE_ID = 0x01
SYNC = 0x02
CONFIG = 0x03
GAIN = 0x04
TRIGGER = 0x05
BRDCAST = DAC80508_REG_BRDCAST
STATUS = 0x07
DAC0 = DAC80508_REG_DAC0  # DAC0..DAC7 at 0x08..0x0F

SOFT_RESET_CODE = 0x000A  # written to TRIGGER (datasheet: soft reset)
N_CHANNELS = 8
FULL_SCALE_CODES = 1 << 16

# Board choice (ours): internal 2.5 V reference, REFDIV off, BUFF-GAIN x2 on every channel,
# so VOUT = code / 65536 * 5 V (datasheet: VOUT = DIN / 2^N * VREF / DIV * GAIN).
VREF_V = Fraction(5, 2)
BUFF_GAIN = 2
FULL_SCALE_V = VREF_V * BUFF_GAIN


class DacFrameError(UsageError):
    """A frame or a field outside what the DAC80508 accepts."""


@dataclass(frozen=True)
class DacFrame:
    read: bool
    address: int
    data: int

    def encode(self) -> int:
        return build_frame(self.address, self.data, read=self.read)


def build_frame(address: int, data: int, *, read: bool = False) -> int:
    """Return the 24-bit frame that writes (or reads) ``address``."""
    if not 0 <= address < 1 << DAC_FRAME_ADDRESS.width:
        raise DacFrameError(f"DAC80508 register address {address:#x} is not 0x0-0xF")
    if not 0 <= data < 1 << DAC_FRAME_DATA.width:
        raise DacFrameError(f"DAC80508 data {data:#x} is not 16 bits")
    return DAC_FRAME_READ.put(int(read)) | DAC_FRAME_ADDRESS.put(address) | DAC_FRAME_DATA.put(data)


def parse_frame(frame: int) -> DacFrame:
    """Split a 24-bit frame into (read, address, data); reserved bits 22:20 must be 0."""
    if not 0 <= frame < (1 << (DAC_FRAME_READ.lsb + 1)):  # 24 bits: the R/W bit is the top one
        raise DacFrameError(f"DAC80508 frame {frame:#x} is not 24 bits")
    if frame & ~(DAC_FRAME_READ.mask | DAC_FRAME_ADDRESS.mask | DAC_FRAME_DATA.mask):
        raise DacFrameError(f"DAC80508 frame {frame:#08x} sets reserved bits 22:20")
    return DacFrame(
        read=bool(DAC_FRAME_READ.get(frame)), address=DAC_FRAME_ADDRESS.get(frame), data=DAC_FRAME_DATA.get(frame)
    )


def channel_frame(channel: int, code: int) -> int:
    """Frame that writes ``code`` to DAC channel ``channel`` (register DAC0 + channel)."""
    if not 0 <= channel < N_CHANNELS:
        raise DacFrameError(f"DAC80508 has channels 0-7, not {channel}")
    return build_frame(DAC0 + channel, code)


@functools.lru_cache(maxsize=256)  # a pure function of its value, asked again for every pulse of a training step
def volts_to_code(volts: float) -> int:
    """Nearest DAC code for an output voltage; refuses what the DAC cannot produce."""
    if not 0.0 <= volts <= float(FULL_SCALE_V):
        raise DacFrameError(f"{volts} V is outside the DAC output range 0-{float(FULL_SCALE_V)} V")
    code = int(Fraction(volts).limit_denominator(10**9) * FULL_SCALE_CODES / FULL_SCALE_V + Fraction(1, 2))
    return min(code, FULL_SCALE_CODES - 1)


def code_to_volts(code: int) -> Fraction:
    """Exact output voltage of a DAC code."""
    if not 0 <= code < FULL_SCALE_CODES:
        raise DacFrameError(f"DAC code {code} is not 16 bits")
    return Fraction(code) * FULL_SCALE_V / FULL_SCALE_CODES


def init_frames() -> list[int]:
    """Frames the driver sends once after power-up: soft reset, internal reference on,
    every channel at x2 gain, the channels no board voltage uses (4-7) powered down, synchronous update off."""
    unused = 0xFF & ~sum(1 << ch for ch in DacChannel)  # DACn-PWDWN bits (CONFIG 7:0) of the unused channels
    return [
        build_frame(TRIGGER, SOFT_RESET_CODE),
        build_frame(CONFIG, unused),  # REF-PWDWN = 0 (internal ref on); 0x00F0 with today's channels
        build_frame(GAIN, 0x00FF),  # BUFF-GAIN x2 on all channels, REFDIV off
        build_frame(SYNC, 0xFF00),  # broadcast enabled, asynchronous (immediate) update
    ]
