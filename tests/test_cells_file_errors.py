"""A cells file that does not parse is named with its option and the 1-based line a user sees in an editor (numpy's
loadtxt counts rows and columns from 0); a .npy of booleans is no cell list (it read as cell (1, 0)); binary data
given as a table is one plain error. From the CLI audit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rramctl.cli.io import InputFileError, gather_cells, load_array
from rramctl.cli.main import app
from typer.testing import CliRunner


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("0,1\n0,\n", "line 2: '0,'"),
        ("# cells\n1,2\n3,4\n5,x\n", "line 4: '5,x'"),
        ("1,2\n3,4,5\n", "line 2: 3 values"),
    ],
)
def test_a_csv_that_does_not_parse_names_the_option_and_its_line(tmp_path: Path, text: str, line: str) -> None:
    f = tmp_path / "cells.csv"
    f.write_text(text)
    with pytest.raises(InputFileError) as e:
        gather_cells(f, None, None)
    assert str(e.value).startswith("--cells: ") and line in str(e.value), str(e.value)
    assert "row 1" not in str(e.value)  # not numpy's count from 0


def test_a_npy_of_booleans_is_no_cell_list_but_may_be_input_bits(tmp_path: Path) -> None:
    f = tmp_path / "cells.npy"
    np.save(f, np.array([[True, False]]))
    with pytest.raises(InputFileError, match="bool"):
        gather_cells(f, None, None)
    assert load_array(f).tolist() == [[1, 0]]  # input bits (multiply --inputs) read as 0 / 1


def test_binary_data_given_as_a_table_is_one_plain_error(tmp_path: Path) -> None:
    f = tmp_path / "cells.csv"
    np.savez(f.with_suffix(".npz"), a=np.arange(3))
    f.write_bytes(f.with_suffix(".npz").read_bytes())
    with pytest.raises(InputFileError) as e:
        gather_cells(f, None, None)
    assert "not a .npy file or a comma-separated table" in str(e.value) and "UnicodeDecodeError" not in str(e.value)


def test_the_cli_reports_it_as_one_error_line_and_changes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "cells.csv"
    f.write_text("0,1\n0,\n")
    state = tmp_path / "chip.npz"
    r = CliRunner().invoke(app, ["--backend", "emulator", "--state", str(state), "reset", "--cells", str(f)])
    assert r.exit_code == 2 and "line 2" in r.output and "Traceback" not in r.output, r.output
    assert not state.exists()
