"""pytest entry for the HDL: Verilator lint of the RTL and the cocotb benches (Icarus, cocotb_tools.runner).

The RTL is compiled once per module (one small configuration: 16x16 array, 2 ADCs, fast SPI/ADC
clocks) and each cocotb test of hdl/tb/tb_overlay.py runs as its own pytest case.  Everything skips
cleanly when iverilog, cocotb or cocotbext-axi is missing (verilator for the lint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.hdl

HDL = Path(__file__).resolve().parents[1]
RTL = sorted((HDL / "rtl").glob("*.v")) + [HDL / "rtl" / "generated" / "rram_ctrl_regs.sv"]
INCLUDES = [HDL / "rtl" / "generated"]
TOP = "rram_overlay_top"
BENCH = {"ROWS": 16, "COLS": 16, "NADC": 2, "ADC_HALF": 2, "ADC_MIN_CYCLES": 100, "DAC_HALF": 2, "SR_HALF": 3}
LINT_CONFIGS = [{}, {"ROWS": 16, "COLS": 16, "NADC": 2}, {"ROWS": 32, "COLS": 32, "NADC": 1}]
CASES = ["registers", "dac_spi", "chain_mux_and_pulse", "adc_read_path", "errors_and_irq",
         "cosim_driver_matches_emulator", "driver_sees_overlay_errors", "ratings_refuse_over_limit_frames",
         "saturated_samples_counted", "axil_any_strobe_completes", "errors_at_the_end_and_abort_with_a_stalled_output",
         "abort_at_every_state", "output_fields_carry_negative_and_extreme_codes",
         "multiply_refuses_programming_levels"]  # fmt: skip


@pytest.mark.parametrize("params", LINT_CONFIGS, ids=lambda p: "x".join(str(v) for v in p.values()) or "default")
def test_verilator_lint_clean(params: dict[str, int]) -> None:
    if shutil.which("verilator") is None:
        pytest.skip("verilator not installed")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", TOP, *[f"-I{d}" for d in INCLUDES],
           *[f"-G{k}={v}" for k, v in params.items()]]  # fmt: skip
    run = subprocess.run([*cmd, *map(str, RTL)], capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("Icarus Verilog not installed")
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    pytest.importorskip("cocotbext.axi")
    build_dir = tmp_path_factory.mktemp("sim_build")
    runner = runner_mod.get_runner("icarus")
    runner.build(sources=RTL, includes=INCLUDES, hdl_toplevel=TOP, parameters=BENCH, build_dir=build_dir,
                 timescale=("1ns", "1ps"))  # fmt: skip
    return runner_mod, runner, build_dir


@pytest.mark.parametrize("case", CASES)
def test_bench(built, case: str) -> None:
    runner_mod, runner, build_dir = built
    env = {"PYTHONPATH": os.pathsep.join([str(HDL / "tb"), os.environ.get("PYTHONPATH", "")]),
           "TB_ROWS": str(BENCH["ROWS"]), "TB_COLS": str(BENCH["COLS"]), "TB_NADC": str(BENCH["NADC"])}  # fmt: skip
    xml = str(build_dir / f"results_{case}.xml")
    results = runner.test(test_module="tb_overlay", hdl_toplevel=TOP, testcase=case, build_dir=build_dir,
                          test_dir=build_dir, extra_env=env, results_xml=xml)  # fmt: skip
    n_tests, n_failed = runner_mod.get_results(results)
    assert n_tests == 1 and n_failed == 0, f"cocotb test {case} failed (log above)"
