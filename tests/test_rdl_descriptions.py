"""The register descriptions of firmware/regmap/rram_ctrl.rdl reach docs/registers.md as they are written, and a
few restate protocol facts (opcode numbers, the bit-plane range, the ADC rails, the PL clock, VERIFY_TOL's scale,
the TIA gain codes). protocol.toml is their one source: these tests hold the prose to it, so a change there that the
descriptions do not follow fails here with the line to change."""

import re
from pathlib import Path

import pytest
from rramctl import protocol as P
from rramctl.hw import adc

RDL = Path(__file__).resolve().parents[1] / "firmware" / "regmap" / "rram_ctrl.rdl"


def desc(containing: str) -> str:
    found = [d for d in re.findall(r'desc = "([^"]*)"', RDL.read_text()) if containing in d]
    assert len(found) == 1, f"{RDL}: expected one description containing {containing!r}, found {len(found)}"
    return found[0]


def test_opcode_list_is_the_enum():
    text = desc("enum Opcode")
    listed = [(int(n), name) for n, name in re.findall(r"(\d+) ([A-Z]+)", text)]
    assert listed == [(int(v), k) for k, v in P.Opcode.__members__.items()], f"{RDL}: OPCODE's description"


def test_bit_plane_range_is_max_bits():
    assert re.search(r"1\.\.(\d+)", desc("bit-planes per input vector")).group(1) == str(P.MAX_BITS)


def test_rails_are_the_adc_code_range():
    lo, hi = re.search(r"\((-\d+) or (\d+)\)", desc("sat on a rail")).groups()
    assert (int(lo), int(hi)) == (adc.CODE_MIN, adc.CODE_MAX) == (-(1 << (P.ADC_BITS - 1)), (1 << (P.ADC_BITS - 1)) - 1)


def test_pulse_cycle_is_the_pl_clock():
    ns, mhz = re.search(r"\((\d+) ns at (\d+) MHz\)", desc("pulse width in PL clock cycles")).groups()
    assert int(mhz) * 1_000_000 == P.PL_CLOCK_HZ and int(ns) == 1_000_000_000 // P.PL_CLOCK_HZ


def test_verify_tolerance_scale():
    scale = re.search(r"\* (1e\d+) <=", desc("PROGRAM: accept")).group(1)
    assert float(scale) == P.VERIFY_TOL_SCALE


@pytest.mark.parametrize("name", ["MULTIPLY", "READ"])
def test_tia_gain_codes(name):
    text = desc("multiply range")
    assert re.search(rf"{int(P.TiaGain[name])}: {name.lower()} range", text), f"{RDL}: TIA_GAIN's description"
