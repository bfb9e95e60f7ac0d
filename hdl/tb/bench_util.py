"""Shared pieces of the HDL benches.

- ``bench_tests``: the ``@cocotb.test`` coroutines of a bench file, read from its source (the whole-overlay
  benches of test_hdl.py and the per-module benches both take their test list from the cocotb module itself).
- ``run_module_bench``: the pytest side of a per-module bench, laid out as alexforencich/verilog-axi lays
  out ``tb/<module>/``: build one RTL module (with its parameters) on Icarus and run every cocotb test of
  ``hdl/tb/<module>/test_<module>.py`` against it.
- ``pauses``: a seeded random pause pattern for cocotbext-axi's ``set_pause_generator``: on an
  AxiStreamSource it is the idle inserter (TVALID gaps), on an AxiStreamSink the back-pressure inserter
  (TREADY low).
- ``Peripheral``: a model of a serial peripheral behind a command strobe (the 595 chain driver, the ADC
  reader): busy for a random time after each command, and the bench fails on a command while it is busy.
- ``reset``, ``pulse`` and ``expected_frame`` (a BL chain frame as the host's encoder makes it).
"""

from __future__ import annotations

import ast
import os
import random
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

HDL = Path(__file__).resolve().parents[1]
RTL = HDL / "rtl"
INCLUDES = [HDL / "generated"]


def bench_tests(path: Path) -> list[tuple[str, bool]]:
    """(name, draws from TB_SEED) of each ``@cocotb.test`` coroutine of the bench file at `path`."""
    source = path.read_text()

    def is_test(d: ast.expr) -> bool:
        d = d.func if isinstance(d, ast.Call) else d
        return isinstance(d, ast.Attribute) and d.attr == "test"

    def tests(body: list[ast.stmt]) -> Iterator[ast.AsyncFunctionDef]:  # module level or under `if cocotb ...:`
        for node in body:
            if isinstance(node, ast.AsyncFunctionDef) and any(map(is_test, node.decorator_list)):
                yield node
            elif isinstance(node, ast.If):
                yield from tests(node.body)

    return [(f.name, "TB_SEED" in (ast.get_source_segment(source, f) or "")) for f in tests(ast.parse(source).body)]


def run_module_bench(
    bench: str,
    toplevel: str,
    sources: list[str],
    tmp_path: Path,
    parameters: Mapping[str, int] | None = None,
    env: Mapping[str, object] | None = None,
) -> None:
    """Build `sources` (file names in hdl/rtl) with `toplevel` and `parameters`, run every cocotb test of the
    bench file `bench` (its ``__file__``) with `env` (TB_* variables), and fail unless each one ran and passed."""
    import pytest

    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("Icarus Verilog not installed")
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    path = Path(bench)
    runner = runner_mod.get_runner("icarus")
    runner.build(sources=[RTL / s for s in sources], includes=INCLUDES, hdl_toplevel=toplevel,
                 parameters=dict(parameters or {}), build_dir=tmp_path, timescale=("1ns", "1ps"))  # fmt: skip
    pythonpath = os.pathsep.join([str(path.parent), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    extra_env = {"PYTHONPATH": pythonpath, **{k: str(v) for k, v in (env or {}).items()}}
    results = runner.test(test_module=path.stem, hdl_toplevel=toplevel, build_dir=tmp_path, test_dir=tmp_path,
                          extra_env=extra_env, results_xml=str(tmp_path / "results.xml"))  # fmt: skip
    n_tests, n_failed = runner_mod.get_results(results)
    names = [name for name, _ in bench_tests(path)]
    assert names and n_tests == len(names) and n_failed == 0, f"{n_failed} of {n_tests} failed ({names})"


def pauses(seed: int, p: float) -> Iterator[bool]:
    """Clock by clock: True (a pause) with probability `p`, seeded; bursts come from runs of True."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


def env_int(name: str, default: int | None = None) -> int:
    """A TB_* setting of the bench (the pytest side passes them in the environment)."""
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise KeyError(name)
        return default
    return int(value)


async def reset(dut: Any, *, cycles: int = 2) -> None:
    """Start a 100 MHz clock on ``dut.clk`` and hold ``dut.rst_n`` low for `cycles` clocks."""
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, cycles)
    dut.rst_n.value = 1
    await FallingEdge(dut.clk)


async def pulse(dut: Any, signal: Any) -> None:
    """From a falling edge: `signal` high for one clock (back low on the next falling edge)."""
    from cocotb.triggers import FallingEdge

    signal.value = 1
    await FallingEdge(dut.clk)
    signal.value = 0


class ClockedPinChecker:
    """Base of the per-module pin benches' checkers (tb/ads8324_rx, tb/dac80508_spi, tb/hc595_chain), which sample
    the pins once a PL clock of ``clk_ns`` and count times in clocks: the violations found, one rule for "at least
    ``least`` clocks" (and, with ``ns``, at least the datasheet's ``ns_least`` nanoseconds) and the assertion that
    none was found."""

    def __init__(self, ns: bool, clk_ns: float) -> None:
        self.ns, self.clk_ns = ns, clk_ns
        self.violations: list[str] = []

    def _fail(self, n: int, what: str) -> None:
        self.violations.append(f"clock {n}: {what}")

    def _min(self, n: int, what: str, clocks: int, least: int, ns_least: float | None) -> None:
        if clocks < least:
            self._fail(n, f"{what} {clocks} clocks < {least}")
        if self.ns and ns_least is not None and clocks * self.clk_ns < ns_least - 1e-9:
            self._fail(n, f"{what} {clocks * self.clk_ns:.0f} ns < {ns_least:.1f} ns (datasheet)")

    def assert_clean(self) -> None:
        assert not self.violations, "\n".join(self.violations[:10])


class Peripheral:
    """A serial peripheral behind a command strobe: `command()`, read on each rising edge, returns the command
    that edge takes (None: none); the peripheral records it in `seen`, calls `on_command` with it and is busy
    (the `busy` signal) from the clock after for 1..`longest` clocks.  `gap(n)`: busy for n clocks without a
    command (the ADC reader's rate gap)."""

    def __init__(self, dut: Any, busy: Any, command: Callable[[], object | None], rng: random.Random, *,
                 longest: int = 8, on_command: Callable[[object], None] | None = None) -> None:  # fmt: skip
        import cocotb

        self.dut, self.busy, self.command, self.rng, self.longest = dut, busy, command, rng, longest
        self.on_command = on_command
        self.busy_left = 0
        self.seen: list[object] = []
        busy.value = 0
        cocotb.start_soon(self._run())

    def gap(self, n: int) -> None:
        self.busy_left = n
        self.busy.value = int(n > 0)

    async def _run(self) -> None:
        from cocotb.triggers import RisingEdge, Timer

        while True:
            await RisingEdge(self.dut.clk)
            cmd = self.command()
            await Timer(1, unit="ns")
            if cmd is not None:
                assert self.busy_left == 0, f"command {cmd!r} while busy"
                self.seen.append(cmd)
                self.busy_left = self.rng.randint(1, self.longest)
                if self.on_command is not None:
                    self.on_command(cmd)
            elif self.busy_left:
                self.busy_left -= 1
            self.busy.value = int(self.busy_left > 0)


def expected_frame(lo: int, hi: int, nib_in: int, nib_out: int) -> np.ndarray:
    """The 64 words of the BL chain frame in which rows lo..hi get nibble `nib_in` and the others `nib_out`,
    as the host's frame encoder (rramctl.hw.linedrive.encode_frames, the docs/protocol.md layout) makes it."""
    from rramctl.hw import linedrive
    from rramctl.protocol import CHAIN_NIBBLE_INH, CHAIN_NIBBLE_SELECT

    rows = np.arange(linedrive.N_LINES)
    nib = np.where((rows >= lo) & (rows <= hi), nib_in, nib_out)[None, :]
    return linedrive.encode_frames(CHAIN_NIBBLE_SELECT.get(nib), CHAIN_NIBBLE_INH.get(nib).astype(bool))[0]
