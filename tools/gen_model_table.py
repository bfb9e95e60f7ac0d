#!/usr/bin/env python3
"""Write the table of every chip-model field (rramsim.config.ChipModelConfig: section, name, unit, the `ideal` and
`paper-40nm` values, what it is and its source) into docs/emulator.md between its two markers, from the model's own
field descriptions and presets: the one source of those numbers.  tests/test_model_table.py fails when the docs'
table is stale.

Usage: python tools/gen_model_table.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rramsim.config import ChipModelConfig, load_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "emulator.md"
BEGIN = "<!-- model-fields:begin (tools/gen_model_table.py) -->"
END = "<!-- model-fields:end -->"
UNITS = {"_ns": "nS", "_uv": "uV", "_ppm": "ppm (1e-6)", "_pa": "pA", "_us": "us", "_cycles": "PL clocks (10 ns)",
         "_mlsb": "1/1000 ADC LSB"}  # fmt: skip
NAMED_UNITS = {"ref_temperature_c": "degC", "uv_per_degc": "uV per degC",
               "uv_per_octave": "uV per doubling of the width", "formed_ns_at_ref_gate": "nS",
               "ppm_per_decade": "ppm per decade of time", "ppm_per_op": "ppm per operation"}  # fmt: skip


def unit_of(name: str) -> str:
    """The unit a field's name says (names end in their unit; a few are named whole)."""
    if name in NAMED_UNITS:
        return NAMED_UNITS[name]
    return next((unit for suffix, unit in UNITS.items() if name.endswith(suffix)), "")


def table() -> str:
    ideal, paper = load_model("ideal"), load_model("paper-40nm")
    lines = [BEGIN, "", "| field | unit | `ideal` | `paper-40nm` | what it is (source) |", "|---|---|---|---|---|"]
    for name, field in ChipModelConfig.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and hasattr(section, "model_fields")):
            continue  # seed, rows, cols, temperature_c: described in the text
        for key, sub in section.model_fields.items():
            a, b = getattr(getattr(ideal, name), key), getattr(getattr(paper, name), key)
            value_b = f"**{b:,}**" if a != b else f"{b:,}"
            lines.append(f"| `{name}.{key}` | {unit_of(key)} | {a:,} | {value_b} | {sub.description} |")
    lines += ["", END]
    return "\n".join(lines)


def render(text: str) -> str:
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing")
    return head + table() + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/emulator.md's table is stale")
    args = ap.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        return 0 if new == text else 1
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
