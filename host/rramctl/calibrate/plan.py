"""CalibrationPlan: what ``rramctl calibrate`` measures, on which region, with which pulses.

Every default is the seed 000 operating point (forming sweep from 3 V in 0.05 V steps of 10 ms at
the reference gate, Fig. 2h; reset 2.6 V / 400 ns, set 3.3 V / 300 ns, write-verify 1.5 V / 500 ns,
Methods) or marked (ours).  The region is sacrificed: it is formed, cycled and programmed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import Self

from rramctl.geometry import Region


class CalibrationPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    region: str = Field(default="0:32,0:256", description="ROW:NROWS,COL:NCOLS of the sacrificed cells")
    form_start_v: float = Field(default=3.0, gt=0, description="forming sweep start (seed 000 Fig. 2h: 3 V)")
    form_step_v: float = Field(default=0.05, gt=0, description="forming sweep step (seed 000 Fig. 2h: 0.05 V)")
    form_stop_v: float = Field(default=3.8, gt=0, description="forming sweep end: the SL rating (ours)")
    form_width_s: float = Field(default=10e-3, gt=0, description="forming pulse 10 ms (seed 000 Methods)")
    form_gate_v: float = Field(default=1.2, gt=0, description="forming gate: the reference compliance (ours)")
    offset_vectors: int = Field(default=512, ge=16, description="zero-input multiply vectors per column (ours)")
    offset_reads: int = Field(default=8, ge=2, description="gate-off reads of the region (ours)")
    settle_s: float = Field(default=1000.0, ge=0, description="rest before the repeated reads: drift settles (ours)")
    reads: int = Field(default=16, ge=4, description="repeated reads of the formed region (ours)")
    cycle_cells: int = Field(default=512, ge=16, description="formed cells (whole top rows) reset/set cycled (ours)")
    cycles: int = Field(default=3, ge=1, description="reset/set cycles (ours)")
    cycle_reads: int = Field(default=8, ge=1, description="reads after each reset and each set (ours)")
    program_target_us: float = Field(default=15.0, gt=0, description="write-verify target, far from formed G (ours)")
    program_cells: int = Field(
        default=1024, ge=16, description="formed cells (whole bottom rows) written and followed in time (ours)"
    )
    delays_s: tuple[float, ...] = Field(
        default=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1000.0, 10000.0),
        description="read times after write-verify (ours; seed 000 Fig. 2j spans 2 x 10,000 s)",
    )
    delay_reads: int = Field(default=4, ge=1, description="reads averaged at each delay (ours)")

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
        return self

    @property
    def area(self) -> Region:
        return Region.parse(self.region)

    def form_voltages(self) -> list[float]:
        n = int(round((self.form_stop_v - self.form_start_v) / self.form_step_v)) + 1
        return [round(self.form_start_v + k * self.form_step_v, 6) for k in range(n)]
