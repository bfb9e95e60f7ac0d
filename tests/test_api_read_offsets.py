"""Chip.read: without gate_v the stored column offsets are subtracted, with any gate_v (the read gate's own 1.8 V
included) the raw reading is returned (rramctl calibrate's gate-off pass measures the offsets with it), and
docs/api.md says exactly that where read() is documented (it said the offsets were always subtracted, then only
that a gate_v read was raw)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rramctl.chip import Chip
from rramctl.geometry import Region

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
REGION = Region(0, 4, 0, 8)


@pytest.fixture
def chip() -> Chip:
    c = Chip.open("emulator", seed=3)  # in memory
    c.electroform(Region(0, 8, 0, 16))
    return c


def test_read_subtracts_the_stored_offsets_only_without_gate_v(chip: Chip) -> None:
    chip.calibrate_offsets(REGION, vectors=8)
    offsets_us = chip.column_offsets(REGION) * chip.product_lsb_us
    assert np.any(offsets_us != 0)  # the paper-40nm model's columns have offsets
    codes: list[np.ndarray] = []  # the emulator's reads are noisy: each reading is compared with its own codes
    original = chip._hw.read_region

    def recorded(*a: object, **k: object) -> np.ndarray:
        codes.append(original(*a, **k))  # type: ignore[arg-type]
        return codes[-1]

    chip._hw.read_region = recorded  # type: ignore[method-assign]
    default = chip.read(REGION)
    given = chip.read(REGION, gate_v=chip.config.read_gate_v)  # the same gate, given
    off = chip.read(REGION, gate_v=0.0)  # transistors closed: calibrate's gate-off pass
    np.testing.assert_array_equal(default, chip.codes_to_us(codes[0]) - offsets_us[None, :])
    np.testing.assert_array_equal(given, chip.codes_to_us(codes[1]))  # raw: nothing subtracted
    np.testing.assert_array_equal(off, chip.codes_to_us(codes[2]))
    chip.close()


def read_row() -> str:
    rows = [line for line in API_DOC.read_text().splitlines() if line.startswith("| `read(region=None")]
    assert len(rows) == 1
    return rows[0]


def test_api_doc_says_what_read_subtracts() -> None:
    row = read_row()
    assert "column_offsets(region) * product_lsb_us" in row  # what is subtracted without gate_v
    assert "not** subtracted" in row and "`read_gate_v`'s 1.8 V included" in row  # any gate_v: raw
    assert "0 for a column never calibrated" in row
    assert "rramctl calibrate" in row  # why: the pass that measures the offsets
    text = API_DOC.read_text()
    assert "removed from later reads and products" not in text  # the calibrate_offsets row said every read
    assert "`read` (without `gate_v`) and `read_cells` give `codes_to_us(codes) - offset * product_lsb_us`" in text
