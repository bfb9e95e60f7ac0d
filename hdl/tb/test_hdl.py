"""pytest entry for the HDL: Verilator lint of the RTL and the cocotb benches (Icarus, cocotb_tools.runner).

The RTL is compiled once per build (BUILDS: array size, ADC count, clocks) and every cocotb test of the
build's bench module runs as its own pytest case; the test list is read from the bench module itself.  Everything skips
cleanly when iverilog, cocotb or cocotbext-axi is missing (verilator for the lint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench_util import bench_tests

pytestmark = pytest.mark.hdl

HDL = Path(__file__).resolve().parents[1]
RTL = sorted((HDL / "rtl").glob("*.v")) + [HDL / "generated" / "rram_ctrl_regs.sv"]
INCLUDES = [HDL / "generated"]
TOP = "rram_overlay_top"
FAST = {"ADC_HALF": 2, "ADC_MIN_CYCLES": 100, "DAC_HALF": 2, "SR_HALF": 3}  # bench clocks (same RTL)
LINT_CONFIGS = [{}, {"ROWS": 16, "COLS": 16, "NADC": 2}, {"ROWS": 32, "COLS": 32, "NADC": 1}]


@dataclass(frozen=True)
class Build:
    module: str  # the cocotb module in hdl/tb
    params: dict[str, int]
    slow: bool = False


# One compile per build; every cocotb test of its module runs against it.  The matrix over array size and
# ADC count is slow (bigger arrays: longer reads); the 16x16/2-ADC build and the default-timing pin build
# run by default.
BUILDS = {
    "16x16-2adc": Build("tb_overlay", {"ROWS": 16, "COLS": 16, "NADC": 2, **FAST}),
    "32x32-1adc": Build("tb_overlay", {"ROWS": 32, "COLS": 32, "NADC": 1, **FAST}, slow=True),
    "64x16-4adc": Build("tb_overlay", {"ROWS": 64, "COLS": 16, "NADC": 4, **FAST}, slow=True),
    "pins-default-timing": Build("tb_pins", {"ROWS": 16, "COLS": 16, "NADC": 2}),
    # the RTL's operation times against rramsim.timing (the emulator's board clock), at both clock settings
    "board-time-fast": Build("tb_board_time", {"ROWS": 16, "COLS": 16, "NADC": 2, **FAST}),
    "board-time-default": Build("tb_board_time", {"ROWS": 16, "COLS": 16, "NADC": 2}),
}


SEEDS = (7, 11, 29)  # a bench test that draws from TB_SEED (the co-simulation, random strobes) runs with each


def _bench_tests(module: str) -> list[tuple[str, bool]]:
    """(name, draws from TB_SEED) of each ``@cocotb.test`` coroutine of hdl/tb/<module>.py, read from its source."""
    return bench_tests(HDL / "tb" / f"{module}.py")


def cocotb_tests(module: str) -> list[str]:
    """The names of the ``@cocotb.test`` coroutines of hdl/tb/<module>.py, read from its source: the test
    list comes from the bench itself, so no test can be left out of a hand-kept list."""
    return [name for name, _ in _bench_tests(module)]


CASES = [
    pytest.param(name, case, seed, id=f"{name}-{case}" + (f"-seed{seed}" if seeded else ""),
                 marks=[pytest.mark.slow] if b.slow else [])
    for name, b in BUILDS.items()
    for case, seeded in _bench_tests(b.module)
    for seed in (SEEDS if seeded else SEEDS[:1])
]  # fmt: skip


def test_every_bench_test_is_collected() -> None:
    assert len(cocotb_tests("tb_overlay")) >= 14 and cocotb_tests("tb_pins")
    assert {"cosim_driver_matches_emulator", "abort_at_every_state"} <= set(cocotb_tests("tb_overlay"))
    seeded = {case: seed for _, case, seed in (p.values for p in CASES) if seed != SEEDS[0]}
    assert "cosim_driver_matches_emulator" in seeded  # the co-simulation runs on several seeds


@pytest.mark.parametrize("params", LINT_CONFIGS, ids=lambda p: "x".join(str(v) for v in p.values()) or "default")
def test_verilator_lint_clean(params: dict[str, int]) -> None:
    if shutil.which("verilator") is None:
        pytest.skip("verilator not installed")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", TOP, *[f"-I{d}" for d in INCLUDES],
           *[f"-G{k}={v}" for k, v in params.items()]]  # fmt: skip
    run = subprocess.run([*cmd, *map(str, RTL)], capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[Any, Any, Path]]]:
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("Icarus Verilog not installed")
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    pytest.importorskip("cocotbext.axi")
    done: dict[str, tuple[Any, Any, Path]] = {}

    def get(name: str) -> tuple[Any, Any, Path]:
        if name not in done:
            build_dir = tmp_path_factory.mktemp(f"sim_build_{name}")
            runner = runner_mod.get_runner("icarus")
            runner.build(sources=RTL, includes=INCLUDES, hdl_toplevel=TOP, parameters=BUILDS[name].params,
                         build_dir=build_dir, timescale=("1ns", "1ps"))  # fmt: skip
            done[name] = (runner_mod, runner, build_dir)
        return done[name]

    yield get


@pytest.mark.parametrize(("build", "case", "seed"), CASES)
def test_bench(builds: Callable[[str], tuple[Any, Any, Path]], build: str, case: str, seed: int) -> None:
    runner_mod, runner, build_dir = builds(build)
    p = BUILDS[build].params
    env = {"PYTHONPATH": os.pathsep.join([str(HDL / "tb"), os.environ.get("PYTHONPATH", "")]),
           "TB_ROWS": str(p["ROWS"]), "TB_COLS": str(p["COLS"]), "TB_NADC": str(p["NADC"]),
           "TB_SEED": str(seed)}  # fmt: skip
    xml = str(build_dir / f"results_{case}_{seed}.xml")
    results = runner.test(test_module=BUILDS[build].module, hdl_toplevel=TOP, testcase=case, build_dir=build_dir,
                          test_dir=build_dir, extra_env=env, results_xml=xml)  # fmt: skip
    n_tests, n_failed = runner_mod.get_results(results)
    assert n_tests == 1 and n_failed == 0, f"cocotb test {case} failed (log above)"
