"""The stream and SPI word layouts ([word.*] of firmware/regmap/protocol.toml) and the register fields are the
one source of every bit position: Python and Verilog take them from the generated modules, and the driver
checks each parameter against its register field before it writes anything."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from rramctl import protocol as P
from rramctl import regmap as R
from rramctl.driver import Driver, program_reply
from rramctl.errors import UsageError
from rramctl.hw import dac80508
from test_config_and_driver import RecordingTransport
from test_hdl_generated import _gen_regmap

ROOT = Path(__file__).resolve().parents[1]
WORDS = {name: getattr(P, name) for name in dir(P) if isinstance(getattr(P, name), P.BitField)}
FIELDS = WORDS | {name: getattr(R, name) for name in dir(R) if isinstance(getattr(R, name), P.BitField)}


def test_fields_round_trip_ints_and_arrays() -> None:
    """Register fields (regmap) and word fields (protocol) are one class: get inverts put; put refuses what
    does not fit (an int or any element of an array) instead of wrapping it."""
    rng = np.random.default_rng(0)
    assert {"CELL_ROW", "CELL_COL", "PROGRAM_RESULT_PULSES", "PROGRAM_RESULT_CODE", "DAC_FRAME_DATA"} <= set(WORDS)
    assert {"CTRL_START", "VERIFY_TOL_PPM", "STATUS_ERR_CODE"} <= set(FIELDS)
    for name, f in FIELDS.items():
        values = rng.integers(0, 1 << f.width, 64)
        assert np.array_equal(f.get(f.put(values)), values), name
        assert all(f.get(f.put(int(v))) == v for v in values[:8]), name
        assert f.put((1 << f.width) - 1) == f.mask, name
        assert f.get(~f.mask & 0xFFFF_FFFF) == 0, name  # the field reads nothing outside its bits
        for bad in (-1, 1 << f.width):
            with pytest.raises(ValueError, match=f"{f.width}-bit field"):
                f.put(bad)
            with pytest.raises(ValueError, match=f"{f.width}-bit field"):
                f.put(np.array([0, bad]))


def test_signed_field_is_twos_complement() -> None:
    codes = np.array([-8192, -1, 0, 1, 8191], dtype=np.int64)
    pulses = np.array([0, 3, 65535, 7, 1], dtype=np.int64)
    words = (P.PROGRAM_RESULT_PULSES.put(pulses) | P.PROGRAM_RESULT_CODE.put_signed(codes)).astype(np.uint32)
    got_pulses, got_codes = program_reply(words)
    assert np.array_equal(got_pulses, pulses) and np.array_equal(got_codes, codes)
    assert P.PROGRAM_RESULT_CODE.get_signed(0xFFFF) == -1 and P.PROGRAM_RESULT_CODE.get_signed(0x7FFF) == 32767
    with pytest.raises(ValueError):
        P.PROGRAM_RESULT_CODE.put_signed(1 << 15)


def test_dac_frame_layout_matches_the_datasheet_frame() -> None:
    """DAC80508 serial frame: R/W at bit 23, address 19:16, data 15:0 (the datasheet's layout, typed here)."""
    assert dac80508.build_frame(0x9, 0x1234) == 0x091234
    assert dac80508.build_frame(0x2, 0, read=True) == 0x820000
    assert dac80508.parse_frame(0x8F00FF) == dac80508.DacFrame(read=True, address=0xF, data=0x00FF)
    with pytest.raises(dac80508.DacFrameError, match="reserved"):
        dac80508.parse_frame(0x100000)


def test_generator_refuses_overlapping_word_fields(tmp_path: Path) -> None:
    gen = _gen_regmap()
    text = gen.PROTOCOL.read_text().replace("COL = [15, 0]", "COL = [16, 0]")
    bad = tmp_path / "protocol.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit, match="CELL.COL"):
        gen.load_protocol(bad)


def test_a_parameter_wider_than_its_field_is_refused_before_any_write() -> None:
    """VERIFY_TOL has 20 bits: 2,000,000 ppm was written as a 32-bit word and kept as 951,424 by the overlay."""
    t = RecordingTransport()
    d = Driver(t)
    t.log.clear()
    with pytest.raises(UsageError, match="VERIFY_TOL = 2000000 does not fit its 20-bit"):
        d.program_cells(np.array([[0, 0]]), np.array([100]), pulse_cycles=10, tolerance_ppm=2_000_000,
                        max_pulses=5, v_prog=1000, v_wl=1000, v_read=1000)  # fmt: skip
    assert t.writes() == []
    assert set(R.VALUE_FIELD) >= {R.ROW_START, R.CELL_COUNT, R.VERIFY_TOL, R.MAX_PULSES, R.BITS, R.OPCODE}


def test_handwritten_rtl_takes_widths_and_layouts_from_the_generated_headers() -> None:
    """No hand-written RTL re-types the ADC code width, the array size or a word layout (rram_defines.vh)."""
    literal = re.compile(r"\[13:0\]|\b511\b|16'd512|\b14'|\[31:16\]|\[19:16\]|frame\[23\]|4'd4\b")
    for path in sorted((ROOT / "hdl" / "rtl").glob("*.v")):
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
        assert not literal.search(code), (path.name, literal.search(code))
        if "`RRAM_" in code:
            assert '`include "rram_defines.vh"' in code, path.name


def test_python_takes_word_layouts_from_the_protocol() -> None:
    """The host and emulator modules that build or split stream and DAC words use the protocol's BitFields."""
    shift = re.compile(r"[a-z_\])] (<<|>>) (16|20|23)\b|& 0xFFFF\b")
    for rel in ("host/rramctl/driver.py", "host/rramctl/hw/dac80508.py", "sim_backend/rramsim/overlay.py",
                "sim_backend/rramsim/dac.py", "host/rramctl/protocol.py"):  # fmt: skip
        assert not shift.search((ROOT / rel).read_text()), rel


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('prefix = "OP"\nwidth = 4', 'prefix = "OP"\nwidth = 5', "OPCODE.op width"),
        ("V_READ = 3 }", "V_READ = 5 }", "DacChannel values"),
        ("MULTIPLY = 6, IDLE = 7 }", "MULTIPLY = 6, IDLE = 9 }", "Opcode values"),
        ("[constant.FRAME_WORDS]\nvalue = 64", "[constant.FRAME_WORDS]\nvalue = 63", "FRAME_WORDS"),
        ("DATA = [15, 0]", "DATA = [14, 0]", "DAC_LIMIT_V_SL.code width"),
    ],
)
def test_the_generator_refuses_sources_that_disagree(tmp_path: Path, old: str, new: str, needle: str) -> None:
    """What the register map and protocol.toml both state (or what follows one from another) must agree: an
    edit to one that leaves the other stale stops the generator (the RTL's DAC limit slots assume channels 0..3)."""
    gen = _gen_regmap()
    text = gen.PROTOCOL.read_text()
    assert old in text
    bad = tmp_path / "protocol.toml"
    bad.write_text(text.replace(old, new))
    gen.check_consistency(gen.load(), gen.load_protocol())  # today's sources agree
    with pytest.raises(SystemExit, match=f"protocol sources disagree: {re.escape(needle)}"):
        gen.check_consistency(gen.load(), gen.load_protocol(bad))
