"""Pin-level datasheet checker for rram_overlay_top, written from the datasheets and independent of
board_model.py (it never models the chip; it only watches the pins and timestamps every edge).

Checked (minimums in ns; sources in docs/hardware.md):
- DAC80508 SPI, mode 1: SCLK low whenever SYNC changes, 24 falling edges per SYNC-low frame, SDIN stable for
  half the fastest SCLK period (10 ns, ours) before the latching edge; writes: SCLK period >= 20 ns (50 MHz),
  high and low >= 9 ns, SYNC fall to the first SCLK fall >= 13 ns (t_CSS), last SCLK fall to SYNC rise
  >= 10 ns (t_CSH), SYNC high >= 15 ns.  Reads (FSDO = 0, the IOVDD 1.7-2.7 V column, the stricter one: a read
  command from its second bit on and the frame after it, which brings the register out on SDO): SCLK period
  >= 83.3 ns (12 MHz), high and low >= 35 ns, t_CSS >= 32 ns, and SDO valid at the sampling (falling) edge:
  SCLK high >= t_SDODLY max 33.5 ns + 20 ns (ours: board trace and FPGA input delay).
- SN74HC595: SER stable >= 25 ns before each SRCLK rise (4.5 V), SRCLK high and low >= 20 ns, RCLK high
  >= 20 ns, RCLK rises only after the last SRCLK rise of a frame, and OE falls only after a latch
  (never with an unlatched chain).
- CD4051B behind the chain (layout of docs/protocol.md: BL r's nibble A, B, C, INH at chain bits 4r..4r+3, the
  fields of protocol.toml's [word.CHAIN_NIBBLE];
  OE high = outputs off, the board's pull-up inhibits, the address lines are undriven): a mux's INH falls only
  after its address lines have been driven and unchanged for >= 773 ns (CD4051B address-to-signal
  t_PHL/t_PLH 720 ns max at VDD = 5 V + 74HC595 RCLK/OE-to-output 53 ns max), and no address changes on a
  mux that stays selected.
- ADS8324: one chip select low at a time, exactly 22 DCLK rises per conversion, CS fall to CS fall
  >= 20 us (50 kSPS), DCLK idle low at CS edges.
- Line drivers: SL mode, WL enable and column window never change while drive_en is high
  (break-before-make at the driver level).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cocotb.handle import SimHandleBase
from cocotb.simtime import get_sim_time
from cocotb.triggers import Edge, First, RisingEdge
from rramctl.protocol import ADC_FRAME_CLOCKS, CHAIN_NIBBLE_BITS, CHAIN_NIBBLE_INH, CHAIN_NIBBLE_SELECT, DAC_FRAME_READ

DAC_SCLK_PERIOD_NS = 20.0  # DAC80508 write: f_SCLK <= 50 MHz
DAC_SCLK_PULSE_NS = 9.0  # DAC80508 write: t_SCLKHIGH, t_SCLKLOW
DAC_CSS_NS = 13.0  # DAC80508 write: SYNC fall to SCLK fall (t_CSS)
DAC_CSH_NS = 10.0  # DAC80508: SCLK fall to SYNC rise (t_CSH)
DAC_CSHIGH_NS = 15.0  # DAC80508: SYNC high time
DAC_READ_SCLK_PERIOD_NS = 1e3 / 12  # DAC80508 read, FSDO = 0, IOVDD 1.7-2.7 V: f_SCLK <= 12 MHz
DAC_READ_SCLK_PULSE_NS = 35.0  # same: t_SCLKHIGH, t_SCLKLOW
DAC_READ_CSS_NS = 32.0  # same: t_CSS
DAC_SDODLY_NS = 33.5  # DACx0504/x0508 read, FSDO = 0, IOVDD 1.7-2.7 V: SDO valid after the SCLK rise, max
DAC_SDO_MARGIN_NS = 20.0  # ours: board trace and FPGA input delay before the sampling (falling) edge
DAC_FRAME_BITS = 24  # DAC80508: 24-bit frames
HC595_SETUP_NS = 25.0  # SN74HC595 at 4.5 V: SER setup before SRCLK rise
HC595_PULSE_NS = 20.0  # SN74HC595 at 4.5 V: SRCLK / RCLK pulse width
ADS8324_CS_PERIOD_NS = 20_000.0  # ADS8324: 50 kSPS maximum
ADS8324_DCLKS = ADC_FRAME_CLOCKS  # 22, ADS8324 timing diagram: clocks per conversion (protocol.toml)
CD4051B_ADDR_NS = 720.0  # CD4051B address-to-signal-out t_PHL/t_PLH max, VDD = 5 V, VEE = VSS = 0 V
HC595_TPD_NS = 53.0  # 74HC595 RCLK / OE to output max at 4.5 V, -40..125 degC
MUX_ADDR_TO_INH_NS = CD4051B_ADDR_NS + HC595_TPD_NS  # address lines stable before INH may fall


def now() -> float:
    return float(get_sim_time("ns"))


@dataclass
class PinChecker:
    dut: SimHandleBase
    nadc: int
    rows: int  # BLs: the chain has 4 * rows bits
    violations: list[str] = field(default_factory=list)
    conversions: int = 0
    dac_frames: int = 0
    latches: int = 0

    def start(self) -> PinChecker:
        from cocotb import start_soon

        for coro in (self._dac(), self._chain(), self._muxes(), self._adc(), self._drivers()):
            start_soon(coro)
        return self

    def _fail(self, what: str) -> None:
        self.violations.append(f"{now():.0f} ns: {what}")

    async def _dac(self) -> None:
        d = self.dut
        last_rise = last_fall = last_sdin = sync_edge = -1e12
        bits = 0
        frame = 0
        read_frame = last_was_read = False  # the frame being shifted carries read data (or is a read command)
        sync, sclk, sdin = (int(x.value) for x in (d.dac_sync_n, d.dac_sclk, d.dac_sdin))
        while True:
            await First(Edge(d.dac_sclk), Edge(d.dac_sync_n), Edge(d.dac_sdin))
            t = now()
            n_sync, n_sclk, n_sdin = (int(x.value) for x in (d.dac_sync_n, d.dac_sclk, d.dac_sdin))
            if n_sdin != sdin:
                sdin, last_sdin = n_sdin, t
            if n_sync != sync:
                if n_sclk:
                    self._fail("DAC80508 SCLK high at a SYNC edge (mode 1 idles low)")
                if n_sync:  # end of a frame
                    if bits != DAC_FRAME_BITS:
                        self._fail(f"DAC80508 frame of {bits} bits")
                    if t - last_fall < DAC_CSH_NS:
                        self._fail(f"DAC80508 t_CSH {t - last_fall:.0f} ns < {DAC_CSH_NS:.0f} ns")
                    self.dac_frames += 1
                    last_was_read = bool(DAC_FRAME_READ.get(frame))
                else:
                    if t - sync_edge < DAC_CSHIGH_NS:
                        self._fail(f"DAC80508 SYNC high {t - sync_edge:.0f} ns < {DAC_CSHIGH_NS:.0f} ns")
                    read_frame = last_was_read
                bits, frame, sync, sync_edge = 0, 0, n_sync, t
            if n_sclk != sclk and not n_sync:
                # a read command (known from its first bit) or the frame after one: the read limits apply
                read = read_frame or (bits > 0 and bool(frame >> (bits - 1) & 1))
                period, pulse, css = ((DAC_READ_SCLK_PERIOD_NS, DAC_READ_SCLK_PULSE_NS, DAC_READ_CSS_NS) if read
                                      else (DAC_SCLK_PERIOD_NS, DAC_SCLK_PULSE_NS, DAC_CSS_NS))  # fmt: skip
                if n_sclk:  # rising edge: the master launches SDIN, the DAC launches SDO
                    if bits and t - last_rise < period:
                        self._fail(f"DAC80508 {'read' if read else 'write'} SCLK period {t - last_rise:.0f} ns "
                                   f"< {period:.1f} ns")  # fmt: skip
                    if bits and t - last_fall < pulse:
                        self._fail(f"DAC80508 SCLK low {t - last_fall:.0f} ns < {pulse:.0f} ns")
                    last_rise = t
                else:  # falling edge: the DAC latches SDIN, the master samples SDO
                    if t - last_sdin < DAC_SCLK_PERIOD_NS / 2:
                        self._fail("DAC80508 SDIN not stable for half an SCLK period before the latching edge")
                    if bits == 0 and t - sync_edge < css:
                        self._fail(f"DAC80508 t_CSS {t - sync_edge:.0f} ns < {css:.0f} ns")
                    if t - last_rise < pulse:
                        self._fail(f"DAC80508 SCLK high {t - last_rise:.0f} ns < {pulse:.0f} ns")
                    if read_frame and t - last_rise < DAC_SDODLY_NS + DAC_SDO_MARGIN_NS:
                        self._fail(f"DAC80508 SDO sampled {t - last_rise:.0f} ns after its launching edge "
                                   f"< {DAC_SDODLY_NS + DAC_SDO_MARGIN_NS:.1f} ns (t_SDODLY + margin)")  # fmt: skip
                    bits += 1
                    frame = (frame << 1) | n_sdin
                    last_fall = t
            sclk = n_sclk

    async def _chain(self) -> None:
        d = self.dut
        ser_change = srclk_rise = srclk_fall = rclk_rise = -1e12
        ser, srclk, rclk, oe = (int(x.value) for x in (d.sr_ser, d.sr_srclk, d.sr_rclk, d.sr_oe_n))
        shifted_since_latch = False
        while True:
            await First(Edge(d.sr_ser), Edge(d.sr_srclk), Edge(d.sr_rclk), Edge(d.sr_oe_n))
            t = now()
            n_ser, n_srclk, n_rclk, n_oe = (int(x.value) for x in (d.sr_ser, d.sr_srclk, d.sr_rclk, d.sr_oe_n))
            if n_ser != ser:
                if srclk and t - srclk_rise < 1e-9:
                    self._fail("SN74HC595 SER changed on the SRCLK rising edge (hold)")
                ser, ser_change = n_ser, t
            if n_srclk != srclk:
                if n_srclk:
                    if t - ser_change < HC595_SETUP_NS:
                        self._fail(f"SN74HC595 SER setup {t - ser_change:.0f} ns < {HC595_SETUP_NS} ns")
                    if t - srclk_fall < HC595_PULSE_NS:
                        self._fail("SN74HC595 SRCLK low pulse too short")
                    srclk_rise, shifted_since_latch = t, True
                else:
                    if t - srclk_rise < HC595_PULSE_NS:
                        self._fail("SN74HC595 SRCLK high pulse too short")
                    srclk_fall = t
                srclk = n_srclk
            if n_rclk != rclk:
                if n_rclk:
                    if t - srclk_rise < HC595_PULSE_NS:
                        self._fail("SN74HC595 RCLK rises too soon after the last SRCLK rise")
                    rclk_rise, shifted_since_latch = t, False
                    self.latches += 1
                elif t - rclk_rise < HC595_PULSE_NS:
                    self._fail("SN74HC595 RCLK high pulse too short")
                rclk = n_rclk
            if n_oe != oe:
                if not n_oe and (shifted_since_latch or self.latches == 0):
                    self._fail("SN74HC595 outputs enabled with an unlatched chain")
                oe = n_oe

    async def _muxes(self) -> None:
        """The chain's outputs as the 595s and the board present them to each CD4051B."""
        d = self.dut
        nb = CHAIN_NIBBLE_BITS
        mask = (1 << (nb * self.rows)) - 1
        shift = latched = 0
        srclk, rclk, oe = (int(x.value) for x in (d.sr_srclk, d.sr_rclk, d.sr_oe_n))
        addr: list[int | None] = [None] * self.rows  # None: the 595 outputs are off (OE high)
        inh = [1] * self.rows
        since = [0.0] * self.rows  # when each mux's address lines last changed
        while True:
            await First(Edge(d.sr_srclk), Edge(d.sr_rclk), Edge(d.sr_oe_n))
            t = now()
            n_srclk, n_rclk, n_oe = (int(x.value) for x in (d.sr_srclk, d.sr_rclk, d.sr_oe_n))
            if n_srclk and not srclk:  # SN74HC595: SER shifts in on the rising SRCLK edge
                shift = ((shift << 1) | int(d.sr_ser.value)) & mask
            outputs_change = (n_rclk and not rclk) or n_oe != oe
            if n_rclk and not rclk:  # the rising RCLK edge copies the shift register to the outputs
                latched = shift
            srclk, rclk, oe = n_srclk, n_rclk, n_oe
            if not outputs_change:
                continue
            early, moved = [], []
            for r in range(self.rows):
                nib = (latched >> (nb * r)) & ((1 << nb) - 1)
                a, i = (None, 1) if oe else (CHAIN_NIBBLE_SELECT.get(nib), CHAIN_NIBBLE_INH.get(nib))
                if a != addr[r]:
                    if addr[r] is not None and a is not None and not inh[r] and not i:
                        moved.append(r)
                    addr[r], since[r] = a, t
                if inh[r] and not i and t - since[r] < MUX_ADDR_TO_INH_NS:
                    early.append(r)
                inh[r] = i
            if early:
                self._fail(f"CD4051B INH released on BL {early} {t - max(since[r] for r in early):.0f} ns after "
                           f"the address lines settled (< {MUX_ADDR_TO_INH_NS:.0f} ns)")  # fmt: skip
            if moved:
                self._fail(f"CD4051B address changed on selected BL {moved}")

    async def _adc(self) -> None:
        d = self.dut
        all_high = (1 << self.nadc) - 1
        last_fall = -1e12
        while True:
            await Edge(d.adc_cs_n)
            cs = int(d.adc_cs_n.value)
            if cs == all_high:
                continue
            low = [a for a in range(self.nadc) if not (cs >> a) & 1]
            if len(low) != 1:
                self._fail(f"ADS8324: {len(low)} chip selects low at once")
                continue
            t = now()
            if t - last_fall < ADS8324_CS_PERIOD_NS:
                self._fail(f"ADS8324 CS to CS {t - last_fall:.0f} ns < {ADS8324_CS_PERIOD_NS:.0f} ns (50 kSPS)")
            last_fall = t
            if int(d.adc_dclk.value):
                self._fail("ADS8324 DCLK high at CS fall")
            rises = 0
            while True:
                trig = await First(RisingEdge(d.adc_dclk), Edge(d.adc_cs_n))
                if trig is not RisingEdge(d.adc_dclk) and int(d.adc_cs_n.value) != cs:
                    break
                if int(d.adc_dclk.value):
                    rises += 1
            if rises != ADS8324_DCLKS:
                self._fail(f"ADS8324 conversion of {rises} DCLKs, expected {ADS8324_DCLKS}")
            self.conversions += 1

    async def _drivers(self) -> None:
        d = self.dut
        watched = (d.sl_mode, d.wl_en, d.col_lo, d.col_hi)
        while True:
            await First(*(Edge(s) for s in watched))
            if int(d.drive_en.value):
                self._fail("SL mode / WL / column window changed while drive_en is high")
