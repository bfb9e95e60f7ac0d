"""The stream and SPI word layouts ([word.*] of firmware/regmap/protocol.toml) and the register fields are the
one source of every bit position: Python and Verilog take them from the generated modules, and the driver
checks each parameter against its register field before it writes anything."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rramctl import protocol as P
from rramctl import regmap as R
from rramctl.driver import Driver, program_reply
from rramctl.errors import UsageError
from rramctl.hw import adc, dac80508, linedrive
from test_config_and_driver import RecordingTransport
from test_hdl_generated import _gen_regmap

ROOT = Path(__file__).resolve().parents[1]
WORDS = {name: getattr(P, name) for name in dir(P) if isinstance(getattr(P, name), P.BitField)}
FIELDS = WORDS | {name: getattr(R, name) for name in dir(R) if isinstance(getattr(R, name), P.BitField)}


def test_fields_round_trip_ints_and_arrays() -> None:
    """Register fields (regmap) and word fields (protocol) are one class: get inverts put; put refuses what
    does not fit (an int or any element of an array) instead of wrapping it."""
    rng = np.random.default_rng(0)
    words = {name.rsplit("_", 1)[0] for name in WORDS}  # <WORD>_<FIELD>
    assert words >= {"CELL", "PROGRAM_TARGET", "PROGRAM_RESULT", "READ_RESULT", "MULTIPLY_RESULT", "CHAIN_NIBBLE"}
    assert {"CELL_ROW", "PROGRAM_RESULT_CODE", "DAC_FRAME_DATA", "CHAIN_NIBBLE_INH"} <= set(WORDS)
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


def _rtl_code(path: Path) -> str:
    return "\n".join(line.split("//")[0] for line in path.read_text().splitlines())


def test_handwritten_rtl_takes_widths_and_layouts_from_the_generated_headers() -> None:
    """No hand-written RTL re-types the ADC code width, the array size or a word layout (rram_defines.vh): the
    cell, result and target words, and the chain nibble (its width, INH and SELECT, 8 nibbles a word)."""
    literal = re.compile(
        r"\[13:0\]|\b511\b|16'd512|\b14'|\[31:16\]|\[19:16\]|frame\[23\]|4'd4\b|MUX_INHIBIT_BIT|\[3:0\] *nib"
        r"|\b4 \* *\w+ *[+-]|-: *4\b|\{8\{|16'\(\$signed|32'\(\$signed\(code|32'\(acc_sum|\$signed\(in_word\)"
        r"|\{1'b0, *SRC_|ROWS */ *8\b|ROWS *% *8\b|32'\(code\)|wire \[15:0\] cell_"
        r"|\[\d+:0\] *(opcode|row_start|row_count|col_start|col_count|pulse_cycles|bits|batch|cell_count|verify_tol"
        r"|max_pulses|settle_cycles|guard_cycles|guard|settle|width|err_code|op_count|pulse_count|out_words|sat_count"
        r"|dac_frame|dac_rdata|lim_\w+|frame_data|frame_addr)\b"
    )
    for path in sorted((ROOT / "hdl" / "rtl").glob("*.v")):
        code = _rtl_code(path)
        assert not literal.search(code), (path.name, literal.search(code))
        if "`RRAM_" in code:
            assert '`include "rram_defines.vh"' in code, path.name


@pytest.mark.parametrize(
    ("module", "macros"),
    [
        ("rram_seq", ["`RRAM_CELL_ROW]", "`RRAM_CELL_ROW_WIDTH-1:0] cell_row", "`RRAM_CELL_COL_WIDTH-1:0] cell_col",
                      "[`RRAM_PROGRAM_RESULT_PULSES]", "[`RRAM_PROGRAM_RESULT_CODE]", "[`RRAM_PROGRAM_TARGET_CODE]",
                      "[`RRAM_PROGRAM_TARGET_CODE_WIDTH-1:0] target", "[`RRAM_READ_RESULT_CODE]",
                      "[`RRAM_MULTIPLY_RESULT_SUM]", "push_d <= read_result", "push_d <= multiply_result",
                      "`RRAM_CHAIN_NIBBLE_BITS", "`RRAM_CHAIN_NIBBLE_INH_LSB", "`RRAM_CHAIN_NIBBLE_SELECT_LSB",
                      "`RRAM_CHAIN_NIBBLE_SELECT_WIDTH", "[`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_count",
                      "[`RRAM_OPCODE_OP_WIDTH-1:0] opcode"]),
        ("rram_chain_frame", ["[`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_in", "`RRAM_CHAIN_NIBBLE_INH_LSB"]),
        ("rram_pattern", ["[`RRAM_CHAIN_NIBBLE_BITS-1:0] nib_in", "`RRAM_CHAIN_NIBBLE_BITS;"]),
        ("rram_overlay_top", ["`RRAM_CHAIN_NIBBLE_BITS", "[`RRAM_VERIFY_TOL_PPM_WIDTH-1:0] verify_tol",
                              "`RRAM_DAC_FRAME_DATA_WIDTH;"]),
        ("rram_pulse", ["[`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard", "[`RRAM_PULSE_CYCLES_CYCLES_WIDTH-1:0] width"]),
        ("rram_sample", ["[`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] settle"]),
        ("rram_status", ["[`RRAM_STATUS_ERR_CODE_WIDTH-1:0] err_code", "[`RRAM_SAT_COUNT_COUNT_WIDTH-1:0] sat_count"]),
    ],
)  # fmt: skip
def test_rtl_reads_the_word_layouts_from_the_generated_macros(module: str, macros: list[str]) -> None:
    """The RTL that packs or splits a cell, result or target word or a chain nibble does it through the generated
    `RRAM_<WORD>_<FIELD> macros (and their _LSB / _WIDTH), and the ports that carry a register field's value take
    its width from `RRAM_<REG>_<FIELD>_WIDTH, so a change of protocol.toml or rram_ctrl.rdl reaches them."""
    code = _rtl_code(ROOT / "hdl" / "rtl" / f"{module}.v")
    for macro in macros:
        assert macro in code, (module, macro)


def _python_code(text: str) -> str:
    """``text`` without its comments and string literals (docstrings explain layouts with numbers)."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return " ".join(t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.STRING))


def test_python_takes_word_layouts_from_the_protocol() -> None:
    """The host, emulator and bench modules that build or split stream, DAC and chain words use the protocol's
    BitFields (or, on a hot path, the shifts and masks taken from them)."""
    shift = re.compile(r"[a-z_\])] (<<|>>) (16|20|23)\b|& 0xFFFF\b")
    nibble = re.compile(r"& 0x7\b|& 0xF\b|uint8\(7\)|(<<|>>) [34]\b|range\(8\)|zeros\(8\b|view\(np\.int32\)|MUX_INHIB")
    for rel in ("host/rramctl/driver.py", "host/rramctl/hw/dac80508.py", "sim_backend/rramsim/overlay.py",
                "sim_backend/rramsim/dac.py", "host/rramctl/protocol.py", "host/rramctl/hw/linedrive.py",
                "hdl/tb/bench_util.py", "hdl/tb/board_model.py", "hdl/tb/pin_checker.py", "hdl/tb/tb_board_time.py",
                "tests/test_board_time.py"):  # fmt: skip
        code = _python_code((ROOT / rel).read_text())
        assert not shift.search(code), (rel, shift.search(code))
        if rel != "sim_backend/rramsim/dac.py":  # the DAC80508's own TRIGGER nibble
            assert not nibble.search(code), (rel, nibble.search(code))


def _edited_protocol(gen: Any, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of protocol.toml with its one ``old`` replaced by ``new``."""
    text = gen.PROTOCOL.read_text()
    assert text.count(old) == 1, old
    bad = tmp_path / "protocol.toml"
    bad.write_text(text.replace(old, new))
    return bad


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('prefix = "OP"\nwidth = 4', 'prefix = "OP"\nwidth = 5', "OPCODE.op width"),
        ("V_READ = 3 }", "V_READ = 5 }", "DacChannel values"),
        ("MULTIPLY = 6, IDLE = 7 }", "MULTIPLY = 6, IDLE = 9 }", "Opcode values"),
        ("[constant.FRAME_WORDS]\nvalue = 64", "[constant.FRAME_WORDS]\nvalue = 63", "FRAME_WORDS"),
        ("DATA = [15, 0]", "DATA = [14, 0]", "DAC_LIMIT_V_SL.code width"),
        ("SELECT = [2, 0], INH = [3, 3]", "SELECT = [1, 0], INH = [3, 3]", "CHAIN_NIBBLE.SELECT width"),
        ("bits = 4\nfields = { SELECT", "bits = 8\nfields = { SELECT", "FRAME_WORDS * 32"),
        ("fields = { SUM = [31, 0] }", "fields = { SUM = [20, 0] }", "MULTIPLY_RESULT.SUM width"),
        ('32 bits."\nfields = { CODE = [31, 0] }', '32 bits."\nfields = { CODE = [12, 0] }', "READ_RESULT.CODE width"),
        ('- 1)."\nfields = { CODE = [31, 0] }', '- 1)."\nfields = { CODE = [12, 0] }', "PROGRAM_TARGET.CODE width"),
        ("PULSES = [31, 16], CODE = [15, 0]", "PULSES = [31, 17], CODE = [12, 0]", "PROGRAM_RESULT.CODE width"),
        ("PULSES = [31, 16], CODE = [15, 0]", "PULSES = [31, 17], CODE = [15, 0]", "PROGRAM_RESULT.PULSES width"),
        ("ROW = [31, 16], COL = [15, 0]", "ROW = [31, 24], COL = [15, 0]", "CELL.ROW width"),
    ],
)
def test_the_generator_refuses_sources_that_disagree(tmp_path: Path, old: str, new: str, needle: str) -> None:
    """What the register map and protocol.toml both state (or what follows one from another) must agree: an
    edit to one that leaves the other stale stops the generator (the RTL's DAC limit slots assume channels 0..3)."""
    gen = _gen_regmap()
    bad = _edited_protocol(gen, tmp_path, old, new)
    gen.check_consistency(gen.load(), gen.load_protocol())  # today's sources agree
    with pytest.raises(SystemExit, match=f"protocol sources disagree: {re.escape(needle)}"):
        gen.check_consistency(gen.load(), gen.load_protocol(bad))


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("COL = [15, 0]", "COL = [16, 0]", "CELL.COL = [16, 0] is not a free range of a 32-bit word"),  # overlaps ROW
        ("bits = 4\n", "bits = 0\n", "bits = 0 is not a width of 1 to 32"),
        ("bits = 4\n", "bits = 33\n", "bits = 33 is not a width of 1 to 32"),
        ("bits = 4\n", 'bits = "4"\n', "is not a width of 1 to 32"),
        ("INH = [3, 3]", "INH = [4, 4]", "CHAIN_NIBBLE.INH = [4, 4] is not a free range of a 4-bit word"),
        ("INH = [3, 3]", "INH = [3]", "CHAIN_NIBBLE.INH = [3] is not [msb, lsb]"),
        ("INH = [3, 3]", "INH = [3.0, 3]", "is not [msb, lsb]"),
        ("fields = { SUM = [31, 0] }", "fields = {}", "MULTIPLY_RESULT takes doc, fields (at least one) and bits"),
        ("fields = { SUM = [31, 0] }", "fields = { SUM = [31, 0] }\nsigned = true", "MULTIPLY_RESULT takes doc"),
    ],
)
def test_generator_refuses_malformed_words(tmp_path: Path, old: str, new: str, needle: str) -> None:
    """A [word.*] entry is doc, fields of [msb, lsb] inside the word, and an optional bits (1..32): anything else
    stops the generator before it writes a file."""
    gen = _gen_regmap()
    bad = _edited_protocol(gen, tmp_path, old, new)
    with pytest.raises(SystemExit, match=re.escape(needle)):
        gen.load_protocol(bad)


def test_generator_refuses_a_missing_word_the_code_needs(tmp_path: Path) -> None:
    gen = _gen_regmap()
    bad = _edited_protocol(gen, tmp_path, "[word.MULTIPLY_RESULT]", "[word.MULTIPLY_RESULT_OLD]")
    with pytest.raises(SystemExit, match=re.escape("needs [word.MULTIPLY_RESULT] with the fields SUM")):
        gen.check_consistency(gen.load(), gen.load_protocol(bad))


def test_generated_verilog_word_macros_are_the_python_fields() -> None:
    """rram_defines.vh states every word field as msb:lsb, _LSB and _WIDTH, a packed word's BITS and every register
    field's _WIDTH, equal to the Python BitFields (from the same protocol.toml and rram_ctrl.rdl)."""
    text = (ROOT / "hdl" / "generated" / "rram_defines.vh").read_text()
    macros = dict(re.findall(r"^`define RRAM_(\w+) (\S+)$", text, re.M))
    for name, f in WORDS.items():
        assert macros[name] == f"{f.lsb + f.width - 1}:{f.lsb}", name
        assert (int(macros[f"{name}_LSB"]), int(macros[f"{name}_WIDTH"])) == (f.lsb, f.width), name
    for name in dir(R):
        if isinstance(getattr(R, name), P.BitField):  # register fields: their widths, for port lists
            assert int(macros[f"{name}_WIDTH"]) == getattr(R, name).width, name
    assert int(macros["CHAIN_NIBBLE_BITS"]) == P.CHAIN_NIBBLE_BITS
    assert "MUX_INHIBIT_BIT" not in macros and not hasattr(P, "MUX_INHIBIT_BIT")  # the INH field is the one source


# ---- the chain nibble, the result words and PROGRAM's target word in the Python that builds or reads them ----
def _frame_from_fields(select: np.ndarray, inhibit: np.ndarray) -> np.ndarray:
    """Chain frames built one line at a time from the protocol's fields: line m's CHAIN_NIBBLE at bits
    31 - NB i .. 32 - NB (i + 1) of word w, m = ARRAY_LINES - 1 - (32 / NB) w - i (docs/protocol.md)."""
    nb = P.CHAIN_NIBBLE_BITS
    per = 32 // nb
    out = np.zeros((select.shape[0], P.FRAME_WORDS), dtype=np.uint32)
    for n in range(select.shape[0]):
        for w in range(P.FRAME_WORDS):
            word = 0
            for i in range(per):
                m = P.ARRAY_LINES - 1 - per * w - i
                nib = P.CHAIN_NIBBLE_SELECT.put(int(select[n, m])) | P.CHAIN_NIBBLE_INH.put(int(inhibit[n, m]))
                word |= nib << (32 - nb * (i + 1))
            out[n, w] = word
    return out


def test_linedrive_frames_follow_the_chain_nibble_word() -> None:
    """linedrive's vectorised pack and unpack (bytes of two nibbles, shifts and masks from the fields) give the
    frames built field by field from [word.CHAIN_NIBBLE]; the emulator's nibble per CD4051B channel is SELECT."""
    from rramsim import overlay

    g = np.random.default_rng(3)
    select = g.integers(0, 1 << P.CHAIN_NIBBLE_SELECT.width, size=(3, P.ARRAY_LINES))
    inhibit = g.random((3, P.ARRAY_LINES)) < 0.3
    frames = linedrive.encode_frames(select, inhibit)
    np.testing.assert_array_equal(frames, _frame_from_fields(select, inhibit))
    s2, i2 = linedrive.decode_frames(frames)
    np.testing.assert_array_equal(s2, select)
    np.testing.assert_array_equal(i2, inhibit)
    nib = linedrive.decode_nibbles(frames)
    np.testing.assert_array_equal(P.CHAIN_NIBBLE_SELECT.get(nib), select)
    np.testing.assert_array_equal(P.CHAIN_NIBBLE_INH.get(nib), inhibit)
    bits = g.integers(0, 2, size=(2, 30))
    want = np.zeros((2, P.ARRAY_LINES), np.int64)
    want[:, 200:230] = bits * P.MuxSource.READ
    np.testing.assert_array_equal(linedrive.bitplane_frames(bits, 200), _frame_from_fields(want, want < 0))
    idle = np.zeros((1, P.ARRAY_LINES), np.int64)
    np.testing.assert_array_equal(linedrive.idle_frame(), _frame_from_fields(idle, idle == 0)[0])
    selects = tuple(P.CHAIN_NIBBLE_SELECT.put(ch) for ch in range(1 << P.CHAIN_NIBBLE_SELECT.width))
    assert selects == overlay._SELECTS
    assert len(overlay.source_codes(overlay.Dac80508())) == 1 << P.CHAIN_NIBBLE_SELECT.width


def test_result_words_are_the_protocols_signed_fields() -> None:
    """adc.to_word / from_word (the READ and MULTIPLY words of the emulator and the driver: an int32 view on the hot
    path) put and get exactly READ_RESULT.CODE and MULTIPLY_RESULT.SUM as two's complement."""
    codes = np.array([adc.CODE_MIN, -1, 0, 1, adc.CODE_MAX], dtype=np.int64)
    sums = np.array([adc.CODE_MIN * 255, -(1 << 20), -1, 0, adc.CODE_MAX * 255], dtype=np.int64)
    for field, values in ((P.READ_RESULT_CODE, codes), (P.MULTIPLY_RESULT_SUM, sums)):
        words = field.put_signed(values).astype(np.uint32)
        np.testing.assert_array_equal(adc.to_word(values), words)
        np.testing.assert_array_equal(adc.from_word(words), values)
        np.testing.assert_array_equal(field.get_signed(adc.to_word(values).astype(np.int64)), values)
    assert adc.WHOLE_WORD == P.READ_RESULT_CODE == P.MULTIPLY_RESULT_SUM


def test_program_sends_target_words_of_the_protocol() -> None:
    """PROGRAM's packet is (CELL, PROGRAM_TARGET) word pairs; the emulator reads the target back through the field."""
    t = RecordingTransport()
    d = Driver(t)
    cells, targets = np.array([[1, 2], [511, 0]]), np.array([1, 8191])
    d.program_cells(cells, targets, pulse_cycles=10, tolerance_ppm=0, max_pulses=0, v_prog=0, v_wl=0, v_read=0)
    d.read_cells(cells, v_read=0)
    sent = [e[1] for e in t.log if e[0] == "transact"]
    for packet, want in zip(sent, (targets, np.ones(2, np.int64)), strict=True):
        assert len(packet) == P.PROGRAM_WORDS_PER_CELL * len(cells)
        np.testing.assert_array_equal(packet[0 :: P.PROGRAM_WORDS_PER_CELL], Driver.cell_words(cells))
        got = P.PROGRAM_TARGET_CODE.get_signed(packet[1 :: P.PROGRAM_WORDS_PER_CELL].astype(np.int64))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("module", "field", "changed"),
    [
        ("rramctl.hw.adc", "READ_RESULT_CODE", "P.BitField(0, 16)"),
        ("rramctl.hw.adc", "MULTIPLY_RESULT_SUM", "P.BitField(4, 28)"),
        ("rramctl.hw.linedrive", "CHAIN_NIBBLE_BITS", "8"),
    ],
)
def test_hot_paths_refuse_a_layout_they_do_not_follow(module: str, field: str, changed: str) -> None:
    """The int32 view of the result words and the byte-wise chain packing hold for today's layouts only: with
    another one in rramctl.protocol, importing them fails (RuntimeError) instead of coding the old layout."""
    code = f"import rramctl.protocol as P; P.{field} = {changed}; import {module}"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "RuntimeError" in run.stderr and "protocol.toml" in run.stderr, run.stderr
