"""Bench of ads8324_rx (hdl/rtl/ads8324_rx.v): the ADS8324 reader, checked on its pins against a model of the
ADC written from the ADS8324 datasheet facts (docs/hardware.md, "Interface and switching times" and "Reading
currents"; docs/protocol.md, "ADC readout"), not from the RTL.

The chip (``Ads8324``, event driven on CS/DCLK): a falling CS starts sampling and readout; DOUT is high-Z
while CS is high and X (undriven) during sampling; sampling lasts about 4.5-5 DCLKs, so the first bit, the
null bit (low), is launched on the 5th falling DCLK edge (both readings of 4.5-5 give that edge: sampling
ending at the 5th rise or at the 5th fall), then the 14 data bits MSB first, two's complement
(-8192..+8191), then 2 zero bits, then the data again LSB first; DOUT changes on the falling DCLK edge:
X from the edge until half the low phase later (the datasheet's output delay is not in the repo's facts;
half the low phase is the bench's), so a reader that samples anywhere but on the rising edge reads X or a
neighbouring bit; CS high ends the frame (DOUT back to high-Z).

A clock-by-clock checker (``AdcChecker``, pins sampled on every falling PL clock): DCLK low at every CS fall
(and in the clock before it) and when CS rises (the last DCLK fall may come with the CS rise: the facts
name no DCLK-to-CS-rise time), no DCLK edge with CS high; exactly 22 DCLK rises per frame (5 sampling +
1 null + 14 data + 2 zero); DCLK high and low >= HALF clocks (CS fall to the first rise too); CS high
>= CS_HIGH clocks between frames; CS fall to CS fall >= MIN_CYCLES clocks (the 50 kSPS bound) between
conversions of one reset epoch.  Across a reset of the FPGA logic, which cuts a conversion short, the bench
does not apply it: out of reset the reader may lower CS at once (its rate counter comes out of reset
saturated, so the first conversion after power-up is not delayed), so a conversion cut by rst_n can be
followed by a CS fall under 20 us later (about 10 us in the reset test at the defaults).  The facts give 50
kSPS as the part's throughput, which the DCLK count and rate of each whole conversion already bound; whether
an aborted conversion counts towards it is not in the facts, so this is left as a question, not a failure.
With TB_NS = 1 (the default parameters, inside the datasheet at 100 MHz) also the datasheet figures: DCLK
<= 1.2 MHz (period >= 833.3 ns), high and low >= 200 ns, CS fall to CS fall >= 20 us (50 kSPS).

Transactions: conversions started with random idle gaps (often none: `start` on the first clock `busy` is
low, so the rate gap is the reader's), random codes with the extremes -8192, -1, 0, 8191 among them.
Checked: `code` after each conversion equals the code the ADC shifted out (sign included).  Reset: idle
levels (CS high, DCLK low, busy low, code 0) out of reset and at once when rst_n falls mid-conversion;
conversions after it are whole and right.  The pytest matrix runs over HALF, CS_HIGH and MIN_CYCLES (MIN_CYCLES
above and below the frame length)."""

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
BITS = 14  # ADS8324: 14-bit two's complement
SAMPLE_FALLS = 5  # the null bit is launched on this falling DCLK edge (4.5-5 DCLKs of sampling)
DCLKS = 5 + 1 + BITS + 2  # DCLKs per conversion: sampling, null bit, data, 2 zero bits
DCLK_PERIOD_NS = 1e9 / 1.2e6  # DCLK <= 1.2 MHz
DCLK_PULSE_NS = 200.0  # DCLK high and low >= 200 ns
CS_PERIOD_NS = 20_000.0  # 50 kSPS
EXTREMES = (-(1 << (BITS - 1)), -1, 0, (1 << (BITS - 1)) - 1)


if cocotb is not None:

    class Ads8324:
        """The ADC on the pins: DOUT launched on falling DCLK edges from the 5th on, high-Z with CS high."""

        def __init__(self, dut, rng: random.Random, half: int) -> None:
            self.dut, self.rng = dut, rng
            self.delay_ns = half * CLK_NS / 2  # DOUT valid this long after the falling edge (X before)
            self.done: list[int] = []  # code of each conversion read out whole (>= 20 DCLK rises)
            self.cut: list[int] = []  # DCLK rises of each conversion cut short
            self._gen = 0
            dut.dout.value = Logic("Z")
            cocotb.start_soon(self._run())

        def _stream(self, code: int) -> list[int]:
            data = [(code >> (BITS - 1 - k)) & 1 for k in range(BITS)]  # MSB first, two's complement
            return [0, *data, 0, 0, *reversed(data)]  # null bit, data, two zeros, data LSB first

        async def _drive(self, bit: int) -> None:
            self._gen += 1
            gen = self._gen
            self.dut.dout.value = Logic("X")
            await Timer(self.delay_ns, unit="ns")
            if gen == self._gen:
                self.dut.dout.value = bit

        async def _run(self) -> None:
            d = self.dut
            while True:
                await FallingEdge(d.cs_n)
                code = self.rng.choice([*EXTREMES, *(self.rng.randrange(-8192, 8192) for _ in range(4))])
                stream = self._stream(code)
                self._gen += 1
                d.dout.value = Logic("X")  # sampling: the output is not driven with data yet
                falls = rises = 0
                while True:
                    trig = await First(FallingEdge(d.dclk), RisingEdge(d.dclk), RisingEdge(d.cs_n))
                    if trig is RisingEdge(d.cs_n):
                        break
                    if trig is RisingEdge(d.dclk):
                        rises += 1
                        continue
                    falls += 1
                    k = falls - SAMPLE_FALLS
                    if 0 <= k < len(stream):
                        cocotb.start_soon(self._drive(stream[k]))
                self._gen += 1
                d.dout.value = Logic("Z")
                if rises >= 1 + SAMPLE_FALLS + BITS:  # the LSB was captured on rise 20
                    self.done.append(code)
                else:
                    self.cut.append(rises)

    class AdcChecker(ClockedPinChecker):
        """The ADS8324 timing rules on the pins, sampled on every falling PL clock (times in clocks)."""

        def __init__(self, dut, half: int, cs_high: int, min_cycles: int, ns: bool) -> None:
            super().__init__(ns, CLK_NS)
            self.dut, self.half, self.cs_high, self.min_cycles = dut, half, cs_high, min_cycles
            self.allow_cut = False
            self.frames = 0
            self.falls: list[int] = []  # clock of each CS fall
            cocotb.start_soon(self._run())

        async def _run(self) -> None:
            d = self.dut
            far = -(10**9)
            cs, dclk = 1, 0
            cs_rise = cs_fall = last_rise = last_fall = far
            rises = 0
            reset_seen = False
            n = 0
            while True:
                await FallingEdge(d.clk)
                n += 1
                in_reset = not int(d.rst_n.value)
                reset_seen |= in_reset
                c, k = int(d.cs_n.value), int(d.dclk.value)
                if k != dclk:  # DCLK edges first: the last fall may come with the CS rise
                    if cs and c:
                        if not in_reset:
                            self._fail(n, "DCLK edge with CS high")
                    elif k:
                        if rises == 0:
                            self._min(n, "CS fall to the first DCLK rise", n - cs_fall, self.half, None)
                        else:
                            self._min(n, "DCLK low", n - last_fall, self.half, DCLK_PULSE_NS)
                            self._min(n, "DCLK period", n - last_rise, 2 * self.half, DCLK_PERIOD_NS)
                        rises += 1
                        last_rise = n
                    elif not in_reset:
                        self._min(n, "DCLK high", n - last_rise, self.half, DCLK_PULSE_NS)
                        last_fall = n
                    dclk = k
                if c != cs:
                    if c:  # CS rise: frame end
                        if k and not in_reset:
                            self._fail(n, "DCLK high when CS rises")
                        if rises != DCLKS and not (self.allow_cut and in_reset):
                            self._fail(n, f"conversion of {rises} DCLK rises, not {DCLKS}")
                        self.frames += rises == DCLKS
                        cs_rise = n
                    else:  # CS fall: a conversion starts
                        if k or dclk:
                            self._fail(n, "DCLK high at the CS fall")
                        if not reset_seen:
                            self._min(n, "CS high", n - cs_rise, self.cs_high, None)
                            self._min(n, "CS fall to CS fall", n - cs_fall, self.min_cycles, CS_PERIOD_NS)
                        reset_seen = False
                        cs_fall, rises = n, 0
                        self.falls.append(n)
                    cs = c

    async def _setup(dut) -> tuple[Ads8324, AdcChecker, random.Random]:
        rng = random.Random(env_int("TB_SEED", 1))
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.start.value = 0
        dut.rst_n.value = 0
        adc = Ads8324(dut, rng, env_int("TB_HALF"))
        await ClockCycles(dut.clk, 2)
        pins = {n: int(getattr(dut, n).value) for n in ("cs_n", "dclk", "busy", "code")}
        assert pins == {"cs_n": 1, "dclk": 0, "busy": 0, "code": 0}, f"in reset: {pins}"
        dut.rst_n.value = 1
        await FallingEdge(dut.clk)
        chk = AdcChecker(dut, env_int("TB_HALF"), env_int("TB_CS_HIGH"), env_int("TB_MIN_CYCLES"),
                         bool(env_int("TB_NS")))  # fmt: skip
        return adc, chk, rng

    async def _convert(dut, rng: random.Random, idle_max: int) -> None:
        while int(dut.busy.value):
            await FallingEdge(dut.clk)
        for _ in range(rng.choice([0, 0, rng.randint(0, idle_max)])):
            await FallingEdge(dut.clk)
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        assert int(dut.busy.value) and not int(dut.cs_n.value), "start did not begin a conversion"

    async def _wait_idle(dut) -> None:
        while int(dut.busy.value):
            await FallingEdge(dut.clk)

    @cocotb.test()
    async def conversions_read_back_the_codes(dut) -> None:
        """Random codes at random start times (often back to back): each read whole, sign and all."""
        adc, chk, rng = await _setup(dut)
        n = env_int("TB_CONVERSIONS")
        for i in range(n):
            await _convert(dut, rng, env_int("TB_MIN_CYCLES") // 2)
            await _wait_idle(dut)
            assert len(adc.done) == i + 1, f"conversion {i}: the ADC saw {len(adc.done)} whole conversions"
            got = dut.code.value
            assert got.is_resolvable, f"conversion {i}: code {got} (DOUT sampled while X or Z)"
            assert got.to_signed() == adc.done[-1], f"conversion {i}: code {got.to_signed()}, ADC sent {adc.done[-1]}"
        await ClockCycles(dut.clk, 4)
        assert chk.frames == n and not adc.cut
        assert (int(dut.cs_n.value), int(dut.dclk.value)) == (1, 0), "not idle at the end"
        chk.assert_clean()

    @cocotb.test()
    async def reset_mid_conversion_returns_pins_to_idle(dut) -> None:
        """rst_n falling at a random clock of a conversion (or of its rate gap): CS high, DCLK low, busy low at
        once; the next conversion is whole and its code right."""
        adc, chk, rng = await _setup(dut)
        chk.allow_cut = True
        half, gap = env_int("TB_HALF"), env_int("TB_MIN_CYCLES")
        for _ in range(5):
            await _convert(dut, rng, 3)
            await ClockCycles(dut.clk, rng.randint(0, max(2 * half * (DCLKS + 1), gap)))
            await FallingEdge(dut.clk)
            dut.rst_n.value = 0
            await Timer(1, unit="ns")
            pins = {n: int(getattr(dut, n).value) for n in ("cs_n", "dclk", "busy")}
            assert pins == {"cs_n": 1, "dclk": 0, "busy": 0}, f"in reset: {pins}"
            await ClockCycles(dut.clk, 2)
            dut.rst_n.value = 1
            await FallingEdge(dut.clk)
            done = len(adc.done)
            await _convert(dut, rng, 3)
            await _wait_idle(dut)
            assert len(adc.done) == done + 1
            assert dut.code.value.to_signed() == adc.done[-1], (dut.code.value, adc.done[-1])
        chk.assert_clean()


# (HALF, CS_HIGH, MIN_CYCLES, inside the datasheet at 100 MHz -> the ns checks too, conversions)
PARAMS = [(42, 4, 2000, 1, 6), (2, 1, 100, 0, 20), (3, 4, 50, 0, 20)]
SLOW_PARAMS = [(42, 4, 2000, 1, 40), (1, 2, 60, 0, 80), (7, 30, 500, 0, 60), (25, 1, 1200, 0, 30)]


@pytest.mark.hdl
@pytest.mark.parametrize(
    ("half", "cs_high", "min_cycles", "ns", "conversions"),
    PARAMS + [pytest.param(*p, marks=pytest.mark.slow) for p in SLOW_PARAMS],
)
def test_ads8324_rx(half: int, cs_high: int, min_cycles: int, ns: int, conversions: int, tmp_path: Path) -> None:
    run_module_bench(
        __file__,
        "ads8324_rx",
        ["ads8324_rx.v", "rram_prescaler.v"],
        tmp_path,
        parameters={"HALF": half, "CS_HIGH": cs_high, "MIN_CYCLES": min_cycles},
        env={
            "TB_HALF": half,
            "TB_CS_HIGH": cs_high,
            "TB_MIN_CYCLES": min_cycles,
            "TB_NS": ns,
            "TB_CONVERSIONS": conversions,
            "TB_SEED": half * 1000 + min_cycles + conversions,
        },
    )
