"""The hand-written RTL writes no width as a number where a protocol fact sets it.

A register field's width, an enum's width or an array-size fact has one source (protocol.toml, rram_ctrl.rdl)
and reaches the RTL through the generated headers (`RRAM_<REG>_<FIELD>_WIDTH, `RRAM_<ENUM>_WIDTH,
`RRAM_ROW_INDEX_WIDTH, ... in rram_defines.vh; the localparams of rram_protocol.vh), so an internal register,
a cast or a compare of hdl/rtl/*.v that held such a value as ``[15:0]``, ``16'd0`` or ``17'(ROWS)`` would keep
the old width when the source changed.  The scan below finds every ``[N:0]`` range and every sized literal or
cast (``N'd``, ``N'h``, ``N'b``, ``N'sd``, ``N'(``, N > 1) and allows only the widths listed in ALLOWED, each a
design choice of the RTL, not a protocol fact.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "hdl" / "rtl"

# a declared range or part select [N:0], a sized literal or a sized cast, wider than one bit
WIDTH_LITERAL = re.compile(r"\[\d+:0\]|\b(?!1')\d+'(?:s?[bdhBDH]|\()")

_FSM2 = r"\[1:0\] ph\b|\bph (?:<=|==) 2'd\d|^\s*2'd\d(?:, 2'd\d)*:|\b[PC]_\w+ = 2'd\d|localparam \[1:0\](?= [PC]_)"
_WORD = r"\[31:0\] *(?:word|put_word|ch_word|host_words|gen_word|step2_word|INH_ALL|s_tdata|m_tdata|in_word|push_d" \
        r"|program_result|read_result|multiply_result|data|hold_d|[sm]_axis_tdata|sh)\b"  # fmt: skip

# (file, pattern, why the number is not a protocol fact): a width the pattern matches may stay a number
ALLOWED: list[tuple[str, str, str]] = [
    ("*", _FSM2, "a 2-bit phase register (ph) of a peripheral's state machine and its codes: a design choice"),
    ("rram_seq.v", r"localparam \[5:0\]$|\bS_\w+ = 6'd\d+|reg \[5:0\] state\b",
     "the sequencer's state register and state codes: 43 states, 6 bits, a design choice"),
    ("*", _WORD, "a 32-bit chain, stream or output word: the AXI4-Stream data width (32 = 8 nibbles a chain word)"),
    ("rram_overlay_top.v", r"\[(?:31|3|2|1):0\] +s_axil_(?:wdata|rdata|wstrb|awprot|arprot|bresp|rresp)\b",
     "AXI4-Lite port widths (data 32, strobe 4, prot 3, resp 2): the bus standard"),
    ("hc595_chain.v", r"reg \[5:0\] nbit\b|\bnbit <= 6'd32\b|\b(?:word|sh)\[30:0\]",
     "bits left of the 32-bit chain word (0 .. 32) and its shift: the AXI-stream chain word"),
    ("*", r"\b32'\([A-Z_]+\)", "a sized protocol localparam read as a 32-bit integer (Verilog's integer width)"),
]  # fmt: skip


def _code_lines(path: Path) -> list[str]:
    """The lines of ``path`` without their // comments."""
    return [line.split("//")[0].rstrip() for line in path.read_text().splitlines()]


def _handwritten_widths(name: str, lines: list[str]) -> list[str]:
    allowed = [re.compile(pat) for f, pat, _ in ALLOWED if f in ("*", name)]
    found = []
    for n, line in enumerate(lines, 1):
        rest = line
        for pat in allowed:
            rest = pat.sub(" ", rest)
        found += [f"{name}:{n}: {m.group()} in {line.strip()!r}" for m in WIDTH_LITERAL.finditer(rest)]
    return found


def test_rtl_writes_no_protocol_width_as_a_number() -> None:
    """Every [N:0] range and sized literal of hdl/rtl/*.v is one of ALLOWED's design choices: a width that a
    register field, an enum or the array size sets comes from the generated macros and localparams
    (``[`RRAM_STATUS_ERR_CODE_WIDTH-1:0]``, ``'0`` in a compare or reset, ``REW'(ROWS)`` from a localparam of
    them)."""
    found = [hit for path in sorted(RTL.glob("*.v")) for hit in _handwritten_widths(path.name, _code_lines(path))]
    assert not found, "hand-written widths (derive them from rram_defines.vh / rram_protocol.vh):\n" + "\n".join(found)


@pytest.mark.parametrize(("name", "pattern", "why"), ALLOWED, ids=[f"{f}:{w[:30]}" for f, _, w in ALLOWED])
def test_every_allowed_width_is_still_used(name: str, pattern: str, why: str) -> None:
    """An exception that no longer matches anything is dropped from ALLOWED (the list stays what the RTL has)."""
    paths = sorted(RTL.glob("*.v")) if name == "*" else [RTL / name]
    assert any(re.search(pattern, line) for p in paths for line in _code_lines(p)), (name, pattern, why)


@pytest.mark.parametrize(
    ("line", "literal"),
    [("    reg [7:0] pend_err;", "[7:0]"), ("    wire row_bad = row_end > 17'(ROWS);", "17'("),
     ("        if (guard_left != 16'd0) x <= 1'b1;", "16'd"), ("    lhs_r <= 64'sd0;", "64'sd"),
     ("    reg [1:0] sl;", "[1:0]"), ("    wire [31:0] count;", "[31:0]"), ("    x = {16'd0, guard};", "16'd")],
)  # fmt: skip
def test_the_scan_finds_a_handwritten_width(line: str, literal: str) -> None:
    """The scan flags a field width written back as a number, even one of an allowed width on another name."""
    found = _handwritten_widths("rram_seq.v", [line])
    assert found and literal in found[0], (line, found)


@pytest.mark.parametrize(
    ("module", "derived"),
    [
        ("rram_seq", ["[`RRAM_STATUS_ERR_CODE_WIDTH-1:0] pend_err", "[`RRAM_STATUS_ERR_CODE_WIDTH-1:0] start_err",
                      "[`RRAM_OPCODE_OP_WIDTH-1:0] op;", "[`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_left",
                      "[`RRAM_CELL_COUNT_VALUE_WIDTH-1:0] cell_pos", "`RRAM_OPCODE_OP_WIDTH'(N_OP)",
                      "localparam integer RW = `RRAM_ROW_INDEX_WIDTH", "[`RRAM_SL_MODE_WIDTH-1:0] sl_mode",
                      "k[`RRAM_PLANE_WIDTH-1:0]"]),
        ("rram_status", ["[`RRAM_STATUS_ERR_CODE_WIDTH-1:0] start_err", "[`RRAM_STATUS_ERR_CODE_WIDTH-1:0] result",
                         "[`RRAM_PULSE_COUNT_COUNT_WIDTH-1:0] pulses"]),
        ("rram_chain_frame", ["[`RRAM_ROW_INDEX_WIDTH-1:0] lo", "[`RRAM_GUARD_CYCLES_CYCLES_WIDTH-1:0] guard_left",
                              "`RRAM_FRAME_WORD_INDEX_WIDTH"]),
        ("rram_pattern", ["[`RRAM_ROW_INDEX_WIDTH-1:0] hi", "[`RRAM_FRAME_WORD_INDEX_WIDTH-1:0] w"]),
        ("rram_sample", ["[`RRAM_SETTLE_CYCLES_CYCLES_WIDTH-1:0] cnt"]),
        ("rram_pulse", ["`RRAM_GUARD_CYCLES_CYCLES_WIDTH", "`RRAM_PULSE_CYCLES_CYCLES_WIDTH;"]),
        ("rram_accumulate", ["[`RRAM_PLANE_WIDTH-1:0] plane"]),
        ("rram_stream_out", ["[`RRAM_OUT_WORDS_COUNT_WIDTH-1:0] count"]),
        ("rram_overlay_top", ["[`RRAM_SL_MODE_WIDTH-1:0] sl_mode", "[`RRAM_DAC_FRAME_ADDRESS_WIDTH-1:0] frame_ch"]),
    ],
)  # fmt: skip
def test_internal_widths_come_from_the_generated_macros(module: str, derived: list[str]) -> None:
    """The internal registers that hold a field's value (error codes, opcode, guard and settle counters, the cell
    position, row numbers, the bit-plane) take its width from rram_defines.vh."""
    code = "\n".join(_code_lines(RTL / f"{module}.v"))
    for text in derived:
        assert text in code, (module, text)
