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


def _gen_regmap():
    pytest.importorskip("systemrdl")
    spec = importlib.util.spec_from_file_location("gen_regmap", ROOT / "tools" / "gen_regmap.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_protocol_and_register_map_outputs_are_fresh() -> None:
    """Python (host and emulator copies), Verilog headers and docs/registers.md equal what the generator writes."""
    assert _gen_regmap().main(["--check"]) == 0, "run python tools/gen_regmap.py and commit the result"


def test_regmap_check_flags_a_stale_protocol(tmp_path, monkeypatch) -> None:
    gen = _gen_regmap()
    proto = tmp_path / "protocol.toml"
    proto.write_text(gen.PROTOCOL.read_text().replace("BUSY = 8", "BUSY = 18"))
    monkeypatch.setattr(gen, "PROTOCOL", proto)
    monkeypatch.setattr(gen.load_protocol, "__defaults__", (proto,))
    assert gen.main(["--check"]) == 1


def test_emulator_and_host_share_one_protocol() -> None:
    """The emulated overlay uses the host's generated modules themselves (no second copy to drift)."""
    import rramsim.overlay as overlay
    from rramctl import protocol, regmap

    assert overlay.R is regmap and overlay.Opcode is protocol.Opcode and overlay.E is protocol.OverlayErrorCode
    assert overlay.dac_frame_over_limit is protocol.dac_frame_over_limit
    assert not list((ROOT / "sim_backend").rglob("protocol.py")) and not list((ROOT / "sim_backend").rglob("regmap.py"))


def test_handwritten_rtl_has_no_literal_opcode_or_address() -> None:
    """Opcodes, error codes and register addresses reach the RTL only through the generated headers."""
    import re

    for path in sorted((ROOT / "hdl" / "rtl").glob("*.v")):
        text = path.read_text()
        assert not re.search(r"'h40|7'h|opcode *== *[0-9]|err_code *<= *8'd", text), path.name
        if "opcode" in text or "err_code" in text:
            assert '`include "rram_protocol.vh"' in text, path.name
