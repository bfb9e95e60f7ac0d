"""Bench of dac80508_spi (hdl/rtl/dac80508_spi.v): the DAC80508 SPI master, checked on its pins against a model
of the DAC written from the DAC80508 datasheet facts (docs/hardware.md, "DAC80508 channels" and "Interface and
switching times"; docs/protocol.md DAC_FRAME), not from the RTL.

The chip (``Dac80508``, event driven on SYNC/SCLK): SPI mode 1 (CPOL 0, CPHA 1): SCLK idles low, the DAC
latches SDIN on the falling (trailing) SCLK edge and launches SDO on the rising one; MSB first; a frame is
SYNC low for exactly 24 SCLK cycles: bit 23 R/W (1 = read), 19:16 the address, 15:0 the data; a frame of
any other length is ignored.  A read returns its data on the following frame, whose first byte echoes R/W
and the address (the command's bits 23:16), the register in 15:0.  SDO is X from each rising edge until
t_SDODLY = 33.5 ns (the slower, IOVDD 1.7-2.7 V column, the datasheet-conservative one) after it, so a
master that samples it too early reads X.  Frames other than a read's data frame carry random bits on SDO.

A clock-by-clock checker (``SpiChecker``, pins sampled on every falling PL clock) checks: SCLK low at every
SYNC edge and no SCLK edge with SYNC high; 24 falling edges per frame; SCLK high and low >= h clocks and the
period >= 2h, SYNC fall to the first SCLK rise >= h, the last SCLK fall to SYNC rise >= h, where h = HALF,
or READ_HALF for a read command and for the frame after it (known from the pins: SDIN at the first rising
edge is the R/W bit); SDIN set up for >= h clocks before each latching (falling) edge and never changing on
it; SYNC high >= SYNC_HIGH clocks between frames.  With TB_NS = 1 (parameter sets inside the datasheet at
100 MHz) also the datasheet's figures in ns: writes f_SCLK <= 50 MHz, SCLK high >= 9 ns, low >= 13 ns
(protocol.toml's reading of Table 7, the stricter of the two low figures in the repo), t_CSS >= 13 ns,
t_CSH >= 10 ns, SYNC high >= 15 ns; reads (FSDO = 0, IOVDD 1.7-2.7 V, the conservative column) f_SCLK
<= 12 MHz, high and low >= 35 ns, t_CSS >= 32 ns, and SDO sampled >= t_SDODLY after its launching edge.

Transactions: random writes and reads (back-to-back reads too, and read-after-write of the same register),
issued with random idle gaps (none: `start` on the first clock `busy` is low); `frame` is scrambled after
the start clock.  Checked: every frame the DAC receives equals the frame sent, in order; `rdata` after the
frame that follows a read equals what the DAC shifted out (and a read after a write of the same register
returns the written data).  Reset: idle levels (SYNC high, SCLK low, SDIN low, busy low) out of reset and
at once when rst_n falls in the middle of a frame (that frame is cut short and ignored by the DAC); frames
after it are whole.  The pytest matrix runs over HALF, READ_HALF and SYNC_HIGH."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench_util import ClockedPinChecker, env_int, run_module_bench

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
    from cocotb.types import Logic
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]

CLK_NS = 10.0  # the bench's PL clock (100 MHz)
FRAME_BITS = 24  # DAC80508: 24-bit frames
READ_BIT = 23  # R/W, 1 = read
DEVICE_ID = 0x0800  # register 0x01: 16-bit resolution (0), 8 channels (bit 11); read only
READ_ONLY = (0x01, 0x07)  # DEVICE_ID, STATUS
T_SDODLY_NS = 33.5  # SDO valid after the SCLK rise, max (FSDO = 0, IOVDD 1.7-2.7 V)
# datasheet minimums in ns (docs/hardware.md; protocol.toml [clock.DAC_*])
WRITE_NS = {"period": 20.0, "high": 9.0, "low": 13.0, "css": 13.0, "csh": 10.0}
READ_NS = {"period": 1e3 / 12, "high": 35.0, "low": 35.0, "css": 32.0, "csh": 10.0}
SYNC_HIGH_NS = 15.0


if cocotb is not None:

    class Dac80508:
        """The DAC on the pins: shifts SDIN in on falling SCLK, SDO out on rising SCLK (t_SDODLY late)."""

        def __init__(self, dut, rng: random.Random) -> None:
            self.dut, self.rng = dut, rng
            self.regs = {a: rng.getrandbits(16) for a in range(16)}
            self.regs[0x01] = DEVICE_ID
            self.frames: list[int] = []  # complete frames received
            self.short: list[int] = []  # bits of each frame cut short (ignored)
            self.sent: list[int | None] = []  # per complete frame: the read data it carried on SDO (None: junk)
            self.pending: int | None = None  # the word the next frame shifts out on SDO (a read's data)
            self.violations: list[str] = []
            self._sdo_gen = 0
            dut.sdo.value = 0
            cocotb.start_soon(self._run())

        async def _sdo(self, bit: int) -> None:
            self._sdo_gen += 1
            gen = self._sdo_gen
            self.dut.sdo.value = Logic("X")  # in transition until t_SDODLY
            await Timer(T_SDODLY_NS, unit="ns")
            if gen == self._sdo_gen:
                self.dut.sdo.value = bit

        async def _run(self) -> None:
            d = self.dut
            while True:
                await FallingEdge(d.sync_n)
                out = self.pending
                word = out if out is not None else self.rng.getrandbits(FRAME_BITS)
                bits = frame = 0
                while True:
                    trig = await First(RisingEdge(d.sclk), FallingEdge(d.sclk), RisingEdge(d.sync_n))
                    if trig is RisingEdge(d.sync_n):
                        break
                    if trig is RisingEdge(d.sclk):
                        if bits < FRAME_BITS:
                            cocotb.start_soon(self._sdo((word >> (FRAME_BITS - 1 - bits)) & 1))
                    else:  # falling edge: latch SDIN
                        frame = (frame << 1) | int(d.sdin.value)
                        bits += 1
                self._sdo_gen += 1
                d.sdo.value = 0
                if bits != FRAME_BITS:  # not a frame: ignored, the pending read data stays pending
                    self.short.append(bits)
                    continue
                self.frames.append(frame)
                self.sent.append(out)
                addr, data = (frame >> 16) & 0xF, frame & 0xFFFF
                if frame >> READ_BIT & 1:
                    self.pending = (frame & 0xFF0000) | self.regs[addr]
                else:
                    self.pending = None
                    if addr not in READ_ONLY:
                        self.regs[addr] = data

    class SpiChecker(ClockedPinChecker):
        """The DAC80508 timing rules on the pins, sampled on every falling PL clock (times in clocks)."""

        def __init__(self, dut, half: int, read_half: int, sync_high: int, ns: bool) -> None:
            super().__init__(ns, CLK_NS)
            self.dut, self.half, self.read_half, self.sync_high = dut, half, read_half, sync_high
            self.allow_short = False  # a reset may cut a frame short
            self.frames = 0
            cocotb.start_soon(self._run())

        async def _run(self) -> None:
            d = self.dut
            far = -(10**9)
            sync, sclk, sdin = 1, 0, 0
            sync_rise = far
            sync_fall = last_rise = last_fall = sdin_change = far
            bits = 0
            h, lim = self.half, WRITE_NS
            read = last_read = reset_seen = False
            n = 0
            while True:
                await FallingEdge(d.clk)
                n += 1
                in_reset = not int(d.rst_n.value)
                reset_seen |= in_reset
                s, c, i = int(d.sync_n.value), int(d.sclk.value), int(d.sdin.value)
                if i != sdin:
                    sdin, sdin_change = i, n
                    if c == 0 and sclk == 1 and not s:
                        self._fail(n, "SDIN changed on the latching (falling) SCLK edge")
                if s != sync:
                    if (c or sclk) and not in_reset:
                        self._fail(n, "SCLK high at a SYNC edge (mode 1: SCLK idles low)")
                    if s:  # frame end
                        if bits != FRAME_BITS and not (self.allow_short and in_reset):
                            self._fail(n, f"frame of {bits} SCLK cycles, not {FRAME_BITS}")
                        if bits == FRAME_BITS:
                            if not in_reset:
                                self._min(n, "last SCLK fall to SYNC rise", n - last_fall, h, lim["csh"])
                            self.frames += 1
                            last_read = read
                        sync_rise = n
                    else:  # frame start
                        if reset_seen:  # across a reset only the datasheet's SYNC high time applies
                            if self.ns and (n - sync_rise) * CLK_NS < SYNC_HIGH_NS:
                                self._fail(n, "SYNC high < 15 ns after a reset")
                        else:
                            self._min(n, "SYNC high", n - sync_rise, self.sync_high, SYNC_HIGH_NS)
                        reset_seen = False
                        sync_fall, bits, read = n, 0, False
                    sync = s
                if c != sclk:
                    if s:
                        self._fail(n, "SCLK edge with SYNC high")
                    elif c:  # rising: SDIN now carries the next bit; the first is R/W
                        if bits == 0:
                            read = bool(i)
                            h = self.read_half if (read or last_read) else self.half
                            lim = READ_NS if (read or last_read) else WRITE_NS
                            self._min(n, "SYNC fall to the first SCLK rise", n - sync_fall, h, None)
                        else:
                            self._min(n, "SCLK low", n - last_fall, h, lim["low"])
                            self._min(n, "SCLK period", n - last_rise, 2 * h, lim["period"])
                        last_rise = n
                    else:  # falling: the DAC latches SDIN (and the master samples SDO)
                        self._min(n, "SCLK high", n - last_rise, h, lim["high"])
                        self._min(n, "SDIN setup before the latching edge", n - sdin_change, h, None)
                        if bits == 0:
                            self._min(n, "t_CSS (SYNC fall to the first SCLK fall)", n - sync_fall, 2 * h, lim["css"])
                        if last_read:
                            self._min(n, "SDO launch to sampling edge", n - last_rise, 1, T_SDODLY_NS)
                        bits += 1
                        last_fall = n
                    sclk = c

    async def _setup(dut) -> tuple[Dac80508, SpiChecker, random.Random]:
        rng = random.Random(env_int("TB_SEED", 1))
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.start.value = 0
        dut.frame.value = 0
        dut.rst_n.value = 0
        dac = Dac80508(dut, rng)
        await ClockCycles(dut.clk, 2)
        for name in ("sync_n", "sclk", "sdin", "busy"):
            assert int(getattr(dut, name).value) == (name == "sync_n"), f"{name} not at its idle level in reset"
        dut.rst_n.value = 1
        await FallingEdge(dut.clk)
        chk = SpiChecker(dut, env_int("TB_HALF"), env_int("TB_READ_HALF"), env_int("TB_SYNC_HIGH"),
                         bool(env_int("TB_NS")))  # fmt: skip
        return dac, chk, rng

    def _frames(rng: random.Random, n: int) -> list[int]:
        """Random writes and reads; some reads back-to-back, some of the register just written."""
        out: list[int] = []
        while len(out) < n:
            addr, data = rng.randrange(16), rng.getrandbits(16)
            kind = rng.random()
            if kind < 0.45:
                out.append(addr << 16 | data)
            elif kind < 0.75:
                out.append(1 << READ_BIT | addr << 16 | rng.choice([0, data]))
            elif kind < 0.9:  # write then read back
                addr = rng.choice([a for a in range(16) if a not in READ_ONLY])
                out += [addr << 16 | data, 1 << READ_BIT | addr << 16]
            else:  # two reads back to back
                out += [1 << READ_BIT | addr << 16, 1 << READ_BIT | rng.randrange(16) << 16]
        return out

    async def _send(dut, rng: random.Random, frame: int, idle_max: int) -> None:
        """Wait for busy low, `idle` clocks more (often none), then one start with `frame`."""
        while int(dut.busy.value):
            await FallingEdge(dut.clk)
        for _ in range(rng.choice([0, 0, rng.randint(0, idle_max)])):
            await FallingEdge(dut.clk)
        dut.frame.value = frame
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        dut.frame.value = rng.getrandbits(FRAME_BITS)  # the module must have taken it on the start clock
        assert int(dut.busy.value), "busy not raised by start"

    async def _wait_idle(dut) -> None:
        while int(dut.busy.value):
            await FallingEdge(dut.clk)

    def _check_clean(dac: Dac80508, chk: SpiChecker) -> None:
        chk.assert_clean()
        assert not dac.violations, "\n".join(dac.violations[:10])

    @cocotb.test()
    async def random_frames_reach_the_dac(dut) -> None:
        """Random writes and reads: each frame received whole and in order, each read's data in rdata."""
        dac, chk, rng = await _setup(dut)
        frames = _frames(rng, env_int("TB_FRAMES"))
        mirror = dict(dac.regs)  # the bench's own register file, from the frames it sends
        prev_read: int | None = None
        for f in frames:
            await _send(dut, rng, f, 3 * env_int("TB_SYNC_HIGH"))
            await _wait_idle(dut)
            await FallingEdge(dut.clk)
            k = len(dac.frames) - 1
            assert dac.frames and dac.frames[-1] == f, f"frame {f:06x} received as {dac.frames[-1:]}"
            if prev_read is not None:
                want = (prev_read & 0xFF0000) | mirror[(prev_read >> 16) & 0xF]
                assert dac.sent[k] == want, f"DAC shifted {dac.sent[k]}, expected {want:06x}"
                got = dut.rdata.value
                assert got.is_resolvable and int(got) == want, f"read of {prev_read:06x}: rdata {got}, want {want:06x}"
            addr = (f >> 16) & 0xF
            if not f >> READ_BIT & 1 and addr not in READ_ONLY:
                mirror[addr] = f & 0xFFFF
            prev_read = f if f >> READ_BIT & 1 else None
        await ClockCycles(dut.clk, 2 * env_int("TB_SYNC_HIGH") + 4)
        assert dac.frames == frames and not dac.short, "frames lost, added or cut short"
        assert chk.frames == len(frames)
        assert (int(dut.sync_n.value), int(dut.sclk.value), int(dut.sdin.value)) == (1, 0, 0), "not idle at the end"
        _check_clean(dac, chk)

    @cocotb.test()
    async def reset_mid_frame_returns_pins_to_idle(dut) -> None:
        """rst_n falling at a random clock of a frame: SYNC high, SCLK and SDIN low, busy low at once; the cut
        frame is ignored by the DAC and the frames after it arrive whole."""
        dac, chk, rng = await _setup(dut)
        chk.allow_short = True
        longest = 2 * env_int("TB_HALF") * (FRAME_BITS + 1)
        for _ in range(6):
            f = rng.getrandbits(20)  # writes only: a cut frame after a read leaves its data pending
            before, short = len(dac.frames), len(dac.short)
            await _send(dut, rng, f, 4)
            await ClockCycles(dut.clk, rng.randint(0, longest))
            await FallingEdge(dut.clk)
            while int(dut.sclk.value):  # SCLK low: in the high phase a reset is a SCLK fall with the SYNC rise
                await FallingEdge(dut.clk)
            dut.rst_n.value = 0
            await Timer(1, unit="ns")
            pins = {n: int(getattr(dut, n).value) for n in ("sync_n", "sclk", "sdin", "busy")}
            assert pins == {"sync_n": 1, "sclk": 0, "sdin": 0, "busy": 0}, f"in reset: {pins}"
            await ClockCycles(dut.clk, 2)
            dut.rst_n.value = 1
            await FallingEdge(dut.clk)
            g = rng.getrandbits(20)
            await _send(dut, rng, g, 4)
            await _wait_idle(dut)
            await FallingEdge(dut.clk)
            got = dac.frames[before:]
            assert got in ([f, g], [g]), f"around a reset: {got}, sent {[f, g]}"
            assert len(dac.short) - short == (got == [g]), "a frame lost without being cut short"
        assert all(b < FRAME_BITS for b in dac.short)
        _check_clean(dac, chk)


# (HALF, READ_HALF, SYNC_HIGH, inside the datasheet at 100 MHz -> the ns checks too)
PARAMS = [(2, 10, 4, 1), (1, 4, 1, 0), (3, 5, 2, 1)]
SLOW_PARAMS = [(5, 13, 11, 1), (2, 4, 3, 0)]


@pytest.mark.hdl
@pytest.mark.parametrize(
    ("half", "read_half", "sync_high", "ns", "frames"),
    [(*p, 40) for p in PARAMS] + [pytest.param(*p, 150, marks=pytest.mark.slow) for p in SLOW_PARAMS],
)
def test_dac80508_spi(half: int, read_half: int, sync_high: int, ns: int, frames: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__,
        "dac80508_spi",
        ["dac80508_spi.v", "rram_prescaler.v"],
        tmp_path,
        parameters={"HALF": half, "READ_HALF": read_half, "SYNC_HIGH": sync_high},
        env={
            "TB_HALF": half,
            "TB_READ_HALF": read_half,
            "TB_SYNC_HIGH": sync_high,
            "TB_NS": ns,
            "TB_FRAMES": frames,
            "TB_SEED": half * 100 + read_half,
        },
    )
