"""CalibrationPlan: what ``rramctl calibrate`` measures, on which region, with which pulses.

Every default is the seed 000 operating point (forming sweep from 3 V in 0.05 V steps of 10 ms at
the reference gate, Fig. 2h; reset 2.6 V / 400 ns, set 3.3 V / 300 ns, write-verify 1.5 V / 500 ns,
Methods) or marked (ours).  The region is sacrificed: it is formed, cycled and programmed.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from rramctl.chip import DAC_STEP_V, MAX_OFFSET_VECTORS, MAX_WAIT_S, Chip
from rramctl.config import BoardConfig
from rramctl.errors import UsageError
from rramctl.geometry import COLS, ROWS, Region
from rramctl.settings import Settings

MAX_FORM_STEPS = 1000  # ours: most steps of the forming sweep (the default sweep has 17)
MAX_READS = 1000  # ours: most repeated reads (or cycles) of any stage
MAX_DELAYS = 100  # ours: most delays of the relaxation stage


class PlanError(UsageError):
    """A calibration plan the board or the chip cannot run (past a rating, a wait past MAX_WAIT_S, ...)."""


class CalibrationPlan(Settings):
    region: str = Field(default="0:32,0:256", description="ROW:NROWS,COL:NCOLS of the sacrificed cells")
    form_start_v: float = Field(default=3.0, gt=0, description="forming sweep start (seed 000 Fig. 2h: 3 V)")
    form_step_v: float = Field(default=0.05, gt=0, description="forming sweep step (seed 000 Fig. 2h: 0.05 V)")
    form_stop_v: float = Field(default=3.8, gt=0, description="forming sweep end: the SL rating (ours)")
    form_width_s: float = Field(default=10e-3, gt=0, description="forming pulse 10 ms (seed 000 Methods)")
    form_gate_v: float = Field(default=1.2, gt=0, description="forming gate: the reference compliance (ours)")
    offset_vectors: int = Field(
        default=512, ge=16, le=MAX_OFFSET_VECTORS, description="zero-input multiply vectors per column (ours)"
    )
    offset_reads: int = Field(default=8, ge=2, le=MAX_READS, description="gate-off reads of the region (ours)")
    settle_s: float = Field(
        default=1000.0, ge=0, le=MAX_WAIT_S, description="rest before the repeated reads: drift settles (ours)"
    )
    reads: int = Field(default=16, ge=4, le=MAX_READS, description="repeated reads of the formed region (ours)")
    cycle_cells: int = Field(
        default=512, ge=16, le=ROWS * COLS, description="formed cells (whole top rows) reset/set cycled (ours)"
    )
    cycles: int = Field(default=3, ge=1, le=MAX_READS, description="reset/set cycles (ours)")
    cycle_reads: int = Field(default=8, ge=1, le=MAX_READS, description="reads after each reset and each set (ours)")
    program_target_us: float = Field(default=15.0, gt=0, description="write-verify target, far from formed G (ours)")
    program_cells: int = Field(
        default=1024,
        ge=16,
        le=ROWS * COLS,
        description="formed cells (whole bottom rows) written and followed in time (ours)",
    )
    delays_s: tuple[float, ...] = Field(
        default=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1000.0, 10000.0),
        description="read times after write-verify (ours; seed 000 Fig. 2j spans 2 x 10,000 s)",
    )
    delay_reads: int = Field(default=4, ge=1, le=MAX_READS, description="reads averaged at each delay (ours)")

    @field_validator("region")
    @classmethod
    def _region_parses(cls, v: str) -> str:
        Region.parse(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.form_stop_v <= self.form_start_v:
            raise ValueError("form_stop_v must exceed form_start_v")
        if list(self.delays_s) != sorted(self.delays_s) or self.delays_s[0] < 0 or len(self.delays_s) < 4:
            raise ValueError("delays_s must be at least 4 increasing times >= 0")
        if len(self.delays_s) > MAX_DELAYS or self.delays_s[-1] > MAX_WAIT_S:
            raise ValueError(
                f"delays_s must be at most {MAX_DELAYS} times of 0-{MAX_WAIT_S:g} s (rramctl.chip.MAX_WAIT_S)"
            )
        if self.form_step_v < DAC_STEP_V:  # a smaller step repeats DAC codes
            raise ValueError(f"form_step_v must be at least one DAC step ({DAC_STEP_V:.6g} V)")
        if (n := self.form_steps()) > MAX_FORM_STEPS:
            raise ValueError(f"the forming sweep from form_start_v to form_stop_v in form_step_v has {n} steps, more "
                             f"than {MAX_FORM_STEPS}: use a larger form_step_v")  # fmt: skip
        return self

    @property
    def area(self) -> Region:
        return Region.parse(self.region)

    def form_steps(self) -> int:
        """Steps of the forming sweep (the last may pass ``form_stop_v`` by up to half a step)."""
        return int(round((self.form_stop_v - self.form_start_v) / self.form_step_v)) + 1

    def form_voltages(self) -> list[float]:
        return [round(self.form_start_v + k * self.form_step_v, 6) for k in range(self.form_steps())]

    def check(self, board: BoardConfig, source: str = "calibration plan") -> None:
        """Refuse (PlanError, naming ``source`` and the field) a plan the board's ratings or the chip's limits do not
        allow, before the chip is opened or a file written: the forming sweep's every pulse (amplitude, width, gate)
        within the ratings, the write-verify target inside the read range, the region on the array."""
        r = board.ratings
        top = max(self.form_voltages())
        problems = []
        if top > r.max_sl_voltage_v:
            problems.append(f"form_stop_v = {self.form_stop_v:g} V: the forming sweep's last step, {top:g} V, "
                            f"exceeds the SL rating ratings.max_sl_voltage_v = {r.max_sl_voltage_v:g} V")  # fmt: skip
        if self.form_gate_v > r.max_wl_voltage_v:
            problems.append(f"form_gate_v = {self.form_gate_v:g} V exceeds the WL rating ratings.max_wl_voltage_v = "
                            f"{r.max_wl_voltage_v:g} V")  # fmt: skip
        if not r.min_pulse_width_s <= self.form_width_s <= r.max_pulse_width_s:
            problems.append(f"form_width_s = {self.form_width_s:g} s is outside the rated pulse widths "
                            f"{r.min_pulse_width_s:g}-{r.max_pulse_width_s:g} s")  # fmt: skip
        try:  # the range Chip.program takes (conversions only: no chip is opened)
            Chip(None, board).target_codes(np.array([self.program_target_us]))
        except UsageError as e:
            problems.append(f"program_target_us = {self.program_target_us:g} uS: {e}")
        if problems:
            raise PlanError(f"{source}: " + "; ".join(problems) + " (nothing was run or written)")
