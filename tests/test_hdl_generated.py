"""The committed peakrdl-etana register block equals what tools/gen_regblock.py generates now."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gen_regblock():
    spec = importlib.util.spec_from_file_location("gen_regblock", ROOT / "tools" / "gen_regblock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    pytest.importorskip("peakrdl_etana")
    if not (shutil.which("peakrdl") or Path(sys.executable).with_name("peakrdl").exists()):
        pytest.skip("peakrdl command not installed")
    return _gen_regblock()


def test_register_block_is_fresh(gen) -> None:
    assert gen.main(["--check"]) == 0, "run python tools/gen_regblock.py and commit the result"


def test_register_block_matches_the_register_map(gen) -> None:
    """Every register of rramctl.regmap has a decode in the block at its byte offset."""
    from rramctl import regmap as R

    text = gen.OUTPUT.read_text()
    for name, offset in R.REGISTERS.items():
        assert f"cpuif_addr == 7'h{offset:x}" in text.lower(), name


def test_check_flags_a_stale_block(gen, tmp_path, monkeypatch) -> None:
    stale = tmp_path / "rram_ctrl_regs.sv"
    stale.write_text(gen.OUTPUT.read_text().replace("52524d43", "52524d44"))
    monkeypatch.setattr(gen, "OUTPUT", stale)
    assert gen.main(["--check"]) == 1
