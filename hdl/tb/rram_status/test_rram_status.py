"""Bench of rram_status (hdl/rtl/rram_status.v): STATUS and the counters of the sequencer against a Python
model, clock by clock, under seeded random stimulus shaped as the sequencer drives it (`accept` only while
idle, on a START; `finish` only while busy; CLEAR, refused DAC frames, pulses and saturated samples at any
clock, several on one clock).  The model is docs/hdl.md's "Status": DONE / ERROR / ERR_CODE change only at an
accepted START (a parameter error at once), at the end of an operation, at CLEAR and at a refused DAC frame
while idle; a START while BUSY only sets start_refused; an accepted START clears SAT_COUNT."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest
from bench_util import env_int, reset, run_module_bench
from rramctl.protocol import OverlayErrorCode as E

try:
    import cocotb
    from cocotb.triggers import FallingEdge
except ImportError:  # collected by pytest without cocotb: the runner below skips
    cocotb = None  # type: ignore[assignment]

MASK = (1 << 32) - 1


@dataclass(frozen=True)
class Status:
    busy: int = 0
    done: int = 0
    error: int = 0
    err_code: int = 0
    start_refused: int = 0
    op_count: int = 0
    pulse_count: int = 0
    sat_count: int = 0


def step(s: Status, i: dict[str, int]) -> Status:
    """The state after one clock with inputs `i` (every right-hand side reads the state before the clock)."""
    n = s
    if i["clear"]:
        n = replace(n, done=0, error=0, err_code=E.NONE, start_refused=0)
    if i["rating_err"] and not s.busy:
        n = replace(n, done=0, error=1, err_code=E.OVER_RATING)
    if i["start"] and s.busy:
        n = replace(n, start_refused=1)
    if i["pulse"]:
        n = replace(n, pulse_count=(s.pulse_count + i["pulses"]) & MASK)
    if i["sat"]:
        n = replace(n, sat_count=(s.sat_count + 1) & MASK)
    if i["accept"]:
        n = replace(n, start_refused=0, done=0, error=int(i["start_err"] != E.NONE), err_code=i["start_err"])
        if i["start_err"] == E.NONE:
            n = replace(n, busy=1, sat_count=0)
    if i["finish"]:
        ok = i["result"] == E.NONE
        n = replace(n, busy=0, err_code=i["result"], done=n.done | ok, error=n.error | (not ok))
        n = replace(n, op_count=(s.op_count + ok) & MASK)
    return n


if cocotb is not None:

    @cocotb.test()
    async def status_follows_the_model(dut) -> None:
        rng = random.Random(env_int("TB_SEED"))
        inputs = ("start", "clear", "rating_err", "accept", "start_err", "finish", "result", "pulse", "pulses", "sat")
        for name in inputs:
            getattr(dut, name).value = 0
        await reset(dut)
        model = Status()
        for clock in range(3000):
            start = int(rng.random() < 0.08)
            i = {
                "start": start,
                "clear": int(rng.random() < 0.05),
                "rating_err": int(rng.random() < 0.05),
                "accept": int(start and not model.busy),
                "start_err": rng.choice([E.NONE, E.NONE, E.BAD_REGION, E.BAD_PULSE]),
                "finish": int(model.busy and rng.random() < 0.05),
                "result": rng.choice([E.NONE, E.NONE, E.ABORTED, E.BAD_CELL, E.UNDERRUN]),
                "pulse": int(rng.random() < 0.2),
                "pulses": rng.choice([1, 1, rng.randint(1, 1 << 18), MASK]),
                "sat": int(rng.random() < 0.2),
            }
            for name in inputs:
                getattr(dut, name).value = int(i[name])
            await FallingEdge(dut.clk)
            model = step(model, i)
            got = Status(**{f.name: int(getattr(dut, f.name).value) for f in fields(Status)})
            assert got == model, (clock, i, got, model)


@pytest.mark.hdl
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rram_status(seed: int, tmp_path: Path) -> None:
    run_module_bench(__file__, "rram_status", ["rram_status.v"], tmp_path, env={"TB_SEED": seed})
