"""The overlay's board clocks (SPI, shift-register and ADC serial timing in PL clocks) have one source, the
[clock.*] entries of firmware/regmap/protocol.toml: the RTL parameter defaults are their macros, the emulator's
board clock and energy ledger take the Python constants, and the generator refuses a value that breaks its
part's datasheet bound at PL_CLOCK_HZ (so a change of the PL clock that the timings no longer meet stops there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rramctl import protocol as P
from rramsim import energy, timing
from test_hdl_generated import _gen_regmap

ROOT = Path(__file__).resolve().parents[1]
CLOCKS = ("DAC_HALF", "DAC_READ_HALF", "DAC_SYNC_HIGH", "SR_HALF", "ADC_HALF", "ADC_MIN_CYCLES", "ADC_CS_HIGH")


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = _gen_regmap().PROTOCOL.read_text()
    assert text.count(old) == 1, old
    bad = tmp_path / "protocol.toml"
    bad.write_text(text.replace(old, new))
    return bad


def test_todays_clocks_meet_their_bounds() -> None:
    gen = _gen_regmap()
    proto = gen.load_protocol()
    assert tuple(c.name for c in proto.clocks) == CLOCKS
    gen.check_clocks(proto.clocks, P.PL_CLOCK_HZ)
    assert all(c.min_ns or c.max_hz for c in proto.clocks if c.name != "ADC_CS_HIGH")  # every bound the docs give


@pytest.mark.parametrize(
    ("name", "bad_value", "needle"),
    [
        ("DAC_HALF", 1, "10 ns at 100000000 Hz, below the 13 ns"),  # SCLK low >= 13 ns
        ("DAC_READ_HALF", 3, "below the 35 ns"),  # read SCLK high >= 35 ns
        ("DAC_SYNC_HIGH", 1, "below the 15 ns"),
        ("SR_HALF", 2, "below the 25 ns"),  # SER setup >= 25 ns
        ("ADC_HALF", 41, "above the 1.2e+06 Hz"),  # DCLK <= 1.2 MHz
        ("ADC_MIN_CYCLES", 1999, "above the 50000 Hz"),  # 50 kSPS
    ],
)
def test_a_clock_past_its_datasheet_bound_is_refused(tmp_path: Path, name: str, bad_value: int, needle: str) -> None:
    gen = _gen_regmap()
    value = getattr(P, name)
    bad = _with(tmp_path, f"[clock.{name}]\nvalue = {value}\n", f"[clock.{name}]\nvalue = {bad_value}\n")
    with pytest.raises(SystemExit, match=f"clock {name} = {bad_value} .*{re.escape(needle)}"):
        gen.check_consistency(gen.load(), gen.load_protocol(bad))


def test_a_faster_pl_clock_the_timings_do_not_meet_is_refused(tmp_path: Path) -> None:
    """The bounds are in time, the values in clocks: doubling PL_CLOCK_HZ halves every interval."""
    gen = _gen_regmap()
    bad = _with(tmp_path, "value = 100000000\n", "value = 200000000\n")
    with pytest.raises(SystemExit, match="clock DAC_HALF = 2 is 10 ns at 200000000 Hz"):
        gen.check_consistency(gen.load(), gen.load_protocol(bad))


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("[clock.SR_HALF]\nvalue = 3\n", "[clock.SR_HALF]\nvalue = 0\n", "clock SR_HALF: value and per_period"),
        ("[clock.SR_HALF]\nvalue = 3\n", "[clock.SR_HALF]\nvalue = 3.5\n", "clock SR_HALF: value and per_period"),
        ("[clock.ADC_HALF]\nvalue = 42\nper_period = 2\nmin_ns = 200\n",
         "[clock.ADC_HALF]\nvalue = 42\nper_period = 2\nmin_ns = -1\n", "clock ADC_HALF: min_ns and max_hz"),
        ("[clock.ADC_CS_HIGH]", "[clock.ADC_BITS]", "a constant and a clock share a name"),
    ],
)  # fmt: skip
def test_a_malformed_clock_entry_is_refused(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(SystemExit, match=re.escape(needle)):
        _gen_regmap().load_protocol(_with(tmp_path, old, new))


def test_rtl_clock_defaults_are_the_protocol_macros() -> None:
    """No RTL module re-types a board-clock default: each clock parameter's default is its `RRAM_ macro."""
    wanted = {
        "rram_overlay_top": {"DAC_HALF": "DAC_HALF", "DAC_READ_HALF": "DAC_READ_HALF", "SR_HALF": "SR_HALF",
                             "ADC_HALF": "ADC_HALF", "ADC_MIN_CYCLES": "ADC_MIN_CYCLES"},
        "dac80508_spi": {"HALF": "DAC_HALF", "READ_HALF": "DAC_READ_HALF", "SYNC_HIGH": "DAC_SYNC_HIGH"},
        "hc595_chain": {"HALF": "SR_HALF"},
        "ads8324_rx": {"HALF": "ADC_HALF", "CS_HIGH": "ADC_CS_HIGH", "MIN_CYCLES": "ADC_MIN_CYCLES"},
    }  # fmt: skip
    for module, params in wanted.items():
        text = (ROOT / "hdl" / "rtl" / f"{module}.v").read_text()
        found = dict(re.findall(r"parameter integer (\w+) = ([`\w]+)", text))
        assert {k: found[k] for k in params} == {k: f"`RRAM_{v}" for k, v in params.items()}, module
        assert '`include "rram_defines.vh"' in text, module
    defines = (ROOT / "hdl" / "generated" / "rram_defines.vh").read_text()
    for name in CLOCKS:
        assert f"`define RRAM_{name} {getattr(P, name)}\n" in defines


def test_the_emulator_counts_with_the_protocol_clocks() -> None:
    board = timing.Clocks()
    assert (board.sr_half, board.adc_half, board.adc_min_cycles, board.adc_cs_high) == (
        P.SR_HALF, P.ADC_HALF, P.ADC_MIN_CYCLES, P.ADC_CS_HIGH)  # fmt: skip
    assert timing.DAC_FRAME_CYCLES == 24 * 2 * P.DAC_HALF
    assert timing.DAC_READ_FRAME_CYCLES == 24 * 2 * P.DAC_READ_HALF
    assert energy.ADC_RATE_SPS * P.ADC_MIN_CYCLES == P.PL_CLOCK_HZ


def test_hand_copied_pl_clock_and_array_size_are_the_protocol_values() -> None:
    """Vivado's FCLK0 frequency and the AXI interfaces' FREQ_HZ attribute (a string, where no macro expands), and
    the build script's default array size, are copies of PL_CLOCK_HZ / ARRAY_LINES: change them with protocol.toml."""
    tcl_path = ROOT / "tools/vivado/build_overlay.tcl"
    tcl = tcl_path.read_text()
    mhz = re.findall(r"PCW_FPGA0_PERIPHERAL_FREQMHZ \{(\d+)\}", tcl)
    assert mhz == [str(P.PL_CLOCK_HZ // 1_000_000)] and P.PL_CLOCK_HZ % 1_000_000 == 0, (
        f"change PCW_FPGA0_PERIPHERAL_FREQMHZ in {tcl_path.relative_to(ROOT)} to PL_CLOCK_HZ "
        f"({P.PL_CLOCK_HZ} Hz) in MHz, found {mhz}"
    )
    for i, name in ((3, "rows"), (4, "cols")):
        default = re.findall(
            rf"set {name}\s+\[expr \{{\[llength \$argv\] > {i} \? \[lindex \$argv {i}\] : (\d+)\}}\]", tcl
        )
        assert default == [str(P.ARRAY_LINES)], (
            f"change the default {name} in {tcl_path.relative_to(ROOT)} to ARRAY_LINES ({P.ARRAY_LINES}), "
            f"found {default}"
        )
    usage = re.findall(r"^# defaults: \S+\s+\S+\s+\S+\s+(\d+) (\d+) ", tcl, re.M)
    assert usage == [(str(P.ARRAY_LINES),) * 2], f"change the '# defaults:' line of {tcl_path.relative_to(ROOT)}"
    top_path = ROOT / "hdl/rtl/rram_overlay_top.v"
    freq = re.findall(r"FREQ_HZ (\d+)", top_path.read_text())
    assert freq and set(freq) == {str(P.PL_CLOCK_HZ)}, (
        f"change the FREQ_HZ attribute in {top_path.relative_to(ROOT)} to PL_CLOCK_HZ ({P.PL_CLOCK_HZ}), found {freq}"
    )
