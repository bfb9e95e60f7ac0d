"""docs/protocol.md is written by hand around the facts of firmware/regmap/protocol.toml and rram_ctrl.rdl (opcode
numbers, error codes, DAC channels, mux sources, limits, the array and frame sizes, the ADC range and gains, the
register span and field widths). protocol.toml and the .rdl are their one source: these tests hold every number of
the page's tables and prose that restates one to it, so a change there that the page does not follow fails here with
the line to change (as tests/test_rdl_descriptions.py does for the register descriptions)."""

import re
from fractions import Fraction
from pathlib import Path

import pytest
from rramctl import protocol as P
from rramctl import regmap as R
from rramctl.hw import adc, dac80508

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
TEXT = DOC.read_text()
PROSE = " ".join(TEXT.split())  # line breaks as spaces, for sentences that wrap


def section(title: str) -> str:
    """The text of ``## title`` up to the next ``##`` heading."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", TEXT, re.M | re.S)
    assert m, f"{DOC}: no section {title!r}"
    return m.group(1)


def table_rows(title: str) -> list[list[str]]:
    """The body rows of the first table of a section, cells stripped (an escaped \\| stays in its cell)."""
    rows = [ln for ln in section(title).splitlines() if ln.startswith("|")]
    assert len(rows) > 2, f"{DOC}: no table in {title!r}"
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[2:]]


def sentence(pattern: str) -> re.Match[str]:
    m = re.search(pattern, PROSE)
    assert m, f"{DOC}: no text matching {pattern!r} (changed on the page, or the fact it states changed?)"
    return m


def test_operations_table_is_the_opcode_enum():
    listed = [(int(r[0]), r[1]) for r in table_rows("Operations")]
    assert listed == [(int(v), k) for k, v in P.Opcode.__members__.items()], f"{DOC}: Operations table"


def test_error_code_table_is_the_error_enum():
    listed = [(int(r[0]), r[1]) for r in table_rows("Error codes (STATUS.err_code)")]
    expected = [(int(v), k) for k, v in P.OverlayErrorCode.__members__.items() if v != P.OverlayErrorCode.NONE]
    assert listed == expected, f"{DOC}: Error codes table"


def test_error_code_descriptions_state_the_limits():
    rows = {r[1]: r[2] for r in table_rows("Error codes (STATUS.err_code)")}
    lo, hi = re.search(r"OPCODE is not (\d+)-(\d+)", rows["BAD_OPCODE"]).groups()
    assert (int(lo), int(hi)) == (min(P.Opcode), max(P.Opcode))
    assert re.search(r"BITS not in 1\.\.(\d+)", rows["BAD_BITS"]).group(1) == str(P.MAX_BITS)
    cycles, ms = re.search(r"cap of ([\d,]+) \((\d+) ms\)", rows["BAD_PULSE"]).groups()
    assert int(cycles.replace(",", "")) == P.MAX_PULSE_CYCLES
    assert Fraction(int(ms), 1000) == Fraction(P.MAX_PULSE_CYCLES, P.PL_CLOCK_HZ)


def test_dac_channel_table_is_the_channel_enum():
    rows = table_rows("DAC channels (DAC80508, VOUT = code / 65536 * 2.5 V * 2)")
    listed = {int(r[0]): r[1].split(":")[0] for r in rows if r[0].isdigit()}
    assert listed == {int(v): k for k, v in P.DacChannel.__members__.items()}, f"{DOC}: DAC channels table"
    unused = [r[0] for r in rows if not r[0].isdigit()]
    assert unused == [f"{len(P.DacChannel)}-7"], f"{DOC}: the unused DAC channels"


def test_dac_transfer_function_in_the_heading():
    codes, vref, gain = re.search(r"VOUT = code / (\d+) \* ([\d.]+) V \* (\d+)", TEXT).groups()
    assert int(codes) == dac80508.FULL_SCALE_CODES
    assert Fraction(vref) == dac80508.VREF_V and int(gain) == dac80508.BUFF_GAIN


def test_mux_sources_are_the_source_enum():
    m = sentence(r"channel 0 = GND, 1 = V_READ \(DAC ch (\d)\), 2 = V_BL \(DAC ch (\d)\), 3-7 = GND")
    assert (P.MuxSource.GND, P.MuxSource.READ, P.MuxSource.BL_PROG) == (0, 1, 2) and len(P.MuxSource) == 3
    assert (int(m.group(1)), int(m.group(2))) == (P.DacChannel.V_READ, P.DacChannel.V_BL)


def test_chain_frame_size_and_nibble_layout():
    bits, words = sentence(r"A chain frame is (\d+) bits = (\d+) words").groups()
    assert int(words) == P.FRAME_WORDS and int(bits) == 32 * P.FRAME_WORDS
    assert int(bits) == P.ARRAY_LINES * P.CHAIN_NIBBLE_BITS
    chips = int(sentence(r"a chain of (\d+) cascaded SN74HC595").group(1))
    assert chips * 8 == int(bits)
    sel_hi, sel_lo, inh = sentence(r"SELECT = bits (\d+):(\d+) = C B A, INH = bit (\d+)").groups()
    assert P.BitField(int(sel_lo), int(sel_hi) - int(sel_lo) + 1) == P.CHAIN_NIBBLE_SELECT
    assert P.BitField(int(inh), 1) == P.CHAIN_NIBBLE_INH


def test_array_geometry():
    rows, cols = sentence(r"(\d+) rows = bit lines \(BL\), (\d+) columns = source lines").groups()
    assert int(rows) == int(cols) == P.ARRAY_LINES
    half = P.ARRAY_LINES // 2
    sentence(rf"k <= {half}\)")
    sentence(rf"G\+ half \(columns 0-{half - 1}\)")
    sentence(rf"G- half \(columns {half}-{P.ARRAY_LINES - 1}\)")
    sentence(rf"G\[i, {half} \+ c0 \+ j\]")


def test_adc_range_and_gains():
    full, lo, hi = sentence(r"Vref \* (\d+)\), (-\d+), (\d+)\)").groups()
    assert (int(lo), int(hi)) == (adc.CODE_MIN, adc.CODE_MAX) and int(full) == 1 << (P.ADC_BITS - 1)
    assert Fraction(sentence(r"Vref = ([\d.]+) V").group(1)) == adc.ADC_VREF_V
    rf = sentence(r"R_f = ([\d.]+) kOhm in the multiply range, (\d+) kOhm in the read range").groups()
    assert [Fraction(x) * 1000 for x in rf] == [adc.TIA_RF_OHM[P.TiaGain.MULTIPLY], adc.TIA_RF_OHM[P.TiaGain.READ]]
    fractions = sentence(r"\((1/\d+) in the multiply range, (1/\d+) in the read range\)").groups()
    assert [Fraction(f) for f in fractions] == [adc.code_gain(P.TiaGain.MULTIPLY), adc.code_gain(P.TiaGain.READ)]
    rails = sentence(r"sat on a rail \((-\d+) or (\d+)\)").groups()
    assert tuple(map(int, rails)) == (adc.CODE_MIN, adc.CODE_MAX)


def test_word_layouts():
    sentence(rf"CELL: `row << {P.CELL_ROW.lsb} \| col`")
    pulses, code = P.PROGRAM_RESULT_PULSES.lsb, P.PROGRAM_RESULT_CODE.mask
    sentence(rf"PROGRAM_RESULT: `pulses << {pulses} \| \(final_code & 0x{code:X}\)`")
    read, write_bit, addr_hi, addr_lo, data_hi, data_lo = sentence(
        r"DAC_FRAME: (R/W) bit (\d+), address (\d+):(\d+), data (\d+):(\d+)"
    ).groups()
    assert read == "R/W" and P.BitField(int(write_bit), 1) == P.DAC_FRAME_READ
    assert P.BitField(int(addr_lo), int(addr_hi) - int(addr_lo) + 1) == P.DAC_FRAME_ADDRESS
    assert P.BitField(int(data_lo), int(data_hi) - int(data_lo) + 1) == P.DAC_FRAME_DATA
    for op in ("RESET", "SET", "PROGRAM"):
        row = next(r for r in table_rows("Operations") if r[1] == op)
        assert f"`row << {P.CELL_ROW.lsb} \\| col`" in row[3], f"{DOC}: {op}'s stream in"


def test_register_field_widths_in_the_prose():
    tol, pulses = sentence(r"VERIFY_TOL has (\d+) bits, MAX_PULSES (\d+)").groups()
    assert (int(tol), int(pulses)) == (R.VERIFY_TOL_PPM.width, R.MAX_PULSES_VALUE.width)


def test_axi_lite_address_span():
    span = max(R.REGISTERS.values()) + 4
    bits = (span - 1).bit_length() if span & (span - 1) else span.bit_length() - 1
    m = sentence(r"(\d+) address bits \(byte addresses 0x000-0x([0-9A-F]+); registers 0x000-0x([0-9A-F]+)")
    n, top, last = int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16)
    defines = (DOC.parents[1] / "hdl" / "generated" / "rram_defines.vh").read_text()
    assert n == int(re.search(r"`define RRAM_ADDR_BITS (\d+)", defines).group(1)) == bits
    assert top == (1 << n) - 1 and last == max(R.REGISTERS.values())
    holes = sentence(r"An address with no register \(0x([0-9A-F]+)-0x([0-9A-F]+)\)").groups()
    assert (int(holes[0], 16), int(holes[1], 16)) == (last + 4, top - 3)


@pytest.mark.parametrize("name", ["DAC_LIMIT_V_SL", "DAC_LIMIT_V_BL", "DAC_LIMIT_V_WL", "DAC_LIMIT_V_READ"])
def test_rating_limits_reset_value(name):
    assert f"reset 0x{getattr(R, name + '_CODE').reset:X}" in PROSE
