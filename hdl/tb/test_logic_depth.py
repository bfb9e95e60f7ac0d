"""Issue 14 class 9 (timing closure): logic depth of PROGRAM's write-verify compare, measured on a synthesised
netlist.

The acceptance test of docs/protocol.md (``|code - target| * 1e6 <= target * VERIFY_TOL``) multiplies two
64-bit products and compares them.  Done in one clock, the multipliers and the compare are one combinational
path; the RTL registers the two products (``lhs_r``, ``rhs_r``, state S_PV_MUL) one clock before the compare.
This bench synthesises ``rram_seq`` with its sub-modules in Yosys (generic ``synth -flatten -lut 6``: 6-input
LUTs, as the Zynq-7000 fabric has), keeps the compare result ``verified`` as a named net, and counts the LUT
levels from the nearest registers (or inputs) to it.  Budget: ``COMPARE_LUT_LEVELS`` (8; a 64-bit signed
compare of two registers maps to 7 with Yosys 0.23).  The one-clock form (the RTL before the fix) has the
multipliers in that path: 17 levels.  ``python hdl/tb/test_logic_depth.py FILE.v ... [-I DIR]`` runs the
same measurement on other RTL (as done for the commit before the fix).

Clock: 100 MHz; at 0.5-0.7 ns per LUT level with routing on a -1 Zynq-7000 the budget is about half the period.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

HDL = Path(__file__).resolve().parents[1]
SEQ_SOURCES = [HDL / "rtl" / f"{m}.v" for m in (
    "rram_seq", "rram_stream_in", "rram_stream_out", "rram_chain_frame", "rram_pattern", "rram_pulse",
    "rram_sample", "rram_accumulate", "rram_status")]  # fmt: skip
INCLUDES = [HDL / "generated"]
COMPARE_NET = "verified"  # the write-verify acceptance (rram_seq.v)
COMPARE_LUT_LEVELS = 8  # budget: LUT6 levels from registers to the compare result
FF_PREFIXES = ("$_DFF", "$_SDFF", "$_ALDFF", "$_DLATCH", "$_SR")


def synthesise(sources: Sequence[Path], includes: Sequence[Path], workdir: Path) -> dict[str, Any]:
    """Yosys: rram_seq (ROWS = COLS = 16: the tolerance datapath does not depend on them) flattened and mapped
    to 6-input LUTs, with the compare net kept; the netlist of the top as Yosys's JSON module."""
    out = workdir / "rram_seq.json"
    inc = " ".join(f"-I{d}" for d in includes)
    script = (f"read_verilog -sv {inc} {' '.join(map(str, sources))}; chparam -set ROWS 16 -set COLS 16 rram_seq; "
              f"setattr -set keep 1 rram_seq/w:{COMPARE_NET}; synth -flatten -top rram_seq -lut 6; "
              f"write_json {out}")  # fmt: skip
    run = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return dict(json.loads(out.read_text())["modules"]["rram_seq"])


def lut_levels(module: dict[str, Any], net: str) -> int:
    """The most LUTs on a combinational path from a register output or module input to a bit of `net`."""
    driver: dict[int, dict[str, Any]] = {}
    for cell in module["cells"].values():
        kind = cell["type"]
        if kind != "$lut" and not kind.startswith(FF_PREFIXES):
            raise ValueError(f"unexpected cell type {kind} after LUT mapping")
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    driver[bit] = cell

    @functools.cache
    def depth(bit: int | str) -> int:
        cell = driver.get(bit) if isinstance(bit, int) else None  # a str bit is a constant
        if cell is None or cell["type"] != "$lut":
            return 0
        return 1 + max((depth(b) for b in cell["connections"]["A"]), default=0)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    return max(depth(b) for b in module["netnames"][net]["bits"])


def compare_levels(sources: Sequence[Path], includes: Sequence[Path]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return lut_levels(synthesise(sources, includes, Path(tmp)), COMPARE_NET)


needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")


@needs_yosys
def test_verify_compare_within_budget() -> None:
    levels = compare_levels(SEQ_SOURCES, INCLUDES)
    assert levels <= COMPARE_LUT_LEVELS, f"write-verify compare: {levels} LUT levels > {COMPARE_LUT_LEVELS}"


@needs_yosys
@pytest.mark.slow
def test_budget_catches_a_one_clock_multiply_compare(tmp_path: Path) -> None:
    """The check itself: the same RTL with the compare on the unregistered products (the form before the fix)
    is over the budget."""
    seq = SEQ_SOURCES[0].read_text()
    one_clock, n = re.subn(r"wire verified = lhs_r <= rhs_r;", "wire verified = lhs <= rhs;", seq)
    assert n == 1
    mutant = tmp_path / "rram_seq.v"
    mutant.write_text(one_clock)
    assert compare_levels([mutant, *SEQ_SOURCES[1:]], INCLUDES) > COMPARE_LUT_LEVELS


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="LUT levels to rram_seq's write-verify compare (class 9 check)")
    ap.add_argument("sources", nargs="*", type=Path, help="RTL files (default: the sequencer in hdl/rtl)")
    ap.add_argument("-I", dest="includes", action="append", type=Path, help="include folder")
    args = ap.parse_args(argv)
    levels = compare_levels(args.sources or SEQ_SOURCES, args.includes or INCLUDES)
    print(f"{COMPARE_NET}: {levels} LUT levels (budget {COMPARE_LUT_LEVELS})")
    return 0 if levels <= COMPARE_LUT_LEVELS else 1


if __name__ == "__main__":
    raise SystemExit(main())
