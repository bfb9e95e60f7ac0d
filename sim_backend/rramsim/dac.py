"""DAC80508 model fed with 24-bit SPI frames (TI DAC80508 datasheet, register map and
"Serial interface"; frame codec: rramctl.hw.dac80508).

What is modelled: the register file (DEVICE_ID, SYNC, CONFIG, GAIN, TRIGGER soft reset and LDAC,
BRDCAST, STATUS, DAC0-7 with a buffer and an active register each), reads that return their data
on the following frame (first byte echoes R/W + address), per-channel power-down, internal
reference power-down, REFDIV and BUFF-GAIN.

What the part ignores, the model ignores too, and counts in ``ignored_frames`` (ours, a
diagnostic the real part does not have): frames wider than 24 bits or with the reserved bits 22:20 set, writes to the
read-only DEVICE_ID and STATUS, and TRIGGER writes whose soft-reset nibble is neither 0 nor 0xA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import rramctl.hw.dac80508 as D
from rramctl.protocol import DAC_FRAME_ADDRESS, DAC_FRAME_DATA

DEVICE_ID_VALUE = 0x0800  # [15:12] = 0: 16-bit, bit 11 = 1: 8 channels (datasheet); version bits 0 (ours)
SYNC_RESET = 0xFF00  # datasheet reset value: broadcast enabled, asynchronous update
LDAC_BIT = 1 << 4  # TRIGGER bit 4 (datasheet)
REF_PWDWN_BIT = 1 << 8  # CONFIG bit 8 (datasheet)
REFDIV_EN_BIT = 1 << 8  # GAIN bit 8 (datasheet)
UV_PER_CODE_NUM = int(D.FULL_SCALE_V * 1_000_000)  # 5 V full scale at gain 2 (rramctl.hw.dac80508), in uV
UV_PER_CODE_DEN = D.FULL_SCALE_CODES
_PLAIN_WRITE_MAX = DAC_FRAME_ADDRESS.mask | DAC_FRAME_DATA.mask  # up to here: R/W = 0, reserved 22:20 = 0


def code_to_uv(code: int) -> int:
    """Output voltage in uV (floor) of a code in the board's units (gain 2, 5 V full scale)."""
    return code * UV_PER_CODE_NUM // UV_PER_CODE_DEN


@dataclass
class Dac80508:
    """The register state of one DAC80508."""

    sync: int = SYNC_RESET
    config: int = 0
    gain: int = 0  # datasheet reset: REFDIV off, BUFF-GAIN x1 (the driver sets x2 at init)
    brdcast: int = 0
    buffer: list[int] = field(default_factory=lambda: [0] * D.N_CHANNELS)
    active: list[int] = field(default_factory=lambda: [0] * D.N_CHANNELS)
    pending_read: int | None = None  # address of the read whose data goes out on the next frame
    ignored_frames: int = 0

    def soft_reset(self) -> None:
        fresh = Dac80508(ignored_frames=self.ignored_frames)
        self.__dict__.update(fresh.__dict__)

    def transfer(self, frame: int) -> int:
        """Shift one 24-bit frame in; return the 24 bits the DAC put on SDO during it."""
        if self.pending_read is None and 0 <= frame <= _PLAIN_WRITE_MAX:  # the common frame: no frame object
            self._write(DAC_FRAME_ADDRESS.get(frame), DAC_FRAME_DATA.get(frame))
            return 0
        return self._transfer_parsed(frame)

    def _transfer_parsed(self, frame: int) -> int:
        """``transfer`` of any frame, parsed (rramctl.hw.dac80508.parse_frame)."""
        sdo = 0
        if self.pending_read is not None:
            sdo = D.build_frame(self.pending_read, self._register(self.pending_read), read=True)  # the echo
            self.pending_read = None
        try:
            f = D.parse_frame(frame)
        except D.DacFrameError:
            self.ignored_frames += 1
            return sdo
        if f.read:
            self.pending_read = f.address
        else:
            self._write(f.address, f.data)
        return sdo

    def _register(self, address: int) -> int:
        if address >= D.DAC0:
            return self.buffer[address - D.DAC0]
        return {D.NOP: 0, D.DEVICE_ID: DEVICE_ID_VALUE, D.SYNC: self.sync, D.CONFIG: self.config, D.GAIN: self.gain,
                D.TRIGGER: 0, D.BRDCAST: self.brdcast, D.STATUS: 0}[address]  # fmt: skip

    def _write(self, address: int, data: int) -> None:
        if address >= D.DAC0:
            ch = address - D.DAC0
            self.buffer[ch] = data
            if not (self.sync >> ch) & 1:  # asynchronous channel: updates at once
                self.active[ch] = data
        elif address == D.SYNC:
            self.sync = data
        elif address == D.CONFIG:
            self.config = data & 0x3FFF
        elif address == D.GAIN:
            self.gain = data & 0x01FF
        elif address == D.BRDCAST:
            self.brdcast = data
            for ch in range(D.N_CHANNELS):
                if (self.sync >> (8 + ch)) & 1:
                    self.buffer[ch] = data
                    if not (self.sync >> ch) & 1:
                        self.active[ch] = data
        elif address == D.TRIGGER:
            nibble = data & 0xF
            if nibble == D.SOFT_RESET_CODE:
                self.soft_reset()
            elif nibble != 0:
                self.ignored_frames += 1
            elif data & LDAC_BIT:  # load every synchronous channel's buffer
                for ch in range(D.N_CHANNELS):
                    if (self.sync >> ch) & 1:
                        self.active[ch] = self.buffer[ch]
        elif address in (D.DEVICE_ID, D.STATUS):
            self.ignored_frames += 1
        # NOP: nothing

    def output_code(self, channel: int) -> int:
        """The channel's output in board units (codes of 5 V / 65536): 0 when the channel or the
        internal reference is powered down (ours: no external reference on the board), halved by
        REFDIV, halved again at BUFF-GAIN x1 (floor; the model resolves one board LSB)."""
        if (self.config >> channel) & 1 or self.config & REF_PWDWN_BIT:
            return 0
        code = self.active[channel]
        if not (self.gain >> channel) & 1:
            code //= 2
        if self.gain & REFDIV_EN_BIT:
            code //= 2
        return code

    def output_uv(self, channel: int) -> int:
        return code_to_uv(self.output_code(channel))

    # ---- state (rramsim.state) ---------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        return {"sync": self.sync, "config": self.config, "gain": self.gain, "brdcast": self.brdcast,
                "buffer": list(self.buffer), "active": list(self.active), "pending_read": self.pending_read,
                "ignored_frames": self.ignored_frames}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Dac80508:
        return cls(**d)  # type: ignore[arg-type]
