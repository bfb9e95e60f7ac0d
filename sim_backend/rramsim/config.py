"""ChipModelConfig: every number of the emulated chip and its setup, with its source.

Units are chosen so the physics runs in integers: conductance in nS, voltage in uV, pulse widths
in PL clock cycles (10 ns at 100 MHz, docs/protocol.md), probabilities in ppm, relative spreads in
ppm.  "(ours)" marks a modelling choice without a number in the seeds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rramctl.hw import linedrive
from typing_extensions import Self

ARRAY_SIZE = linedrive.N_LINES  # 512 x 512 (seed 000 Methods; docs/protocol.md)


class ChipModelConfig(BaseModel):
    """The emulated chip.  Immutable; ``model_copy(update=...)`` / ``with_changes`` for variants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, lt=1 << 64, description="seed of every random draw of this chip")
    rows: int = Field(ARRAY_SIZE, ge=1, le=ARRAY_SIZE, description="bit lines (seed 000: 512)")
    cols: int = Field(ARRAY_SIZE, ge=1, le=ARRAY_SIZE, description="source lines (seed 000: 512)")

    # ---- environment -------------------------------------------------------------------
    temperature_c: float = Field(
        120.0, ge=-40.0, le=200.0, description="chuck temperature (seed 000 Results: forming at 120 degC)"
    )

    # ---- pristine and forming ----------------------------------------------------------
    pristine_ns: int = Field(33, ge=1, description="pristine cell, ~30 MOhm (seed 000 / hardware-facts)")
    pristine_spread_ppm: int = Field(100_000, ge=0, le=500_000, description="relative sigma of pristine G (ours)")
    form_threshold_uv: int = Field(
        3_400_000, gt=0, description="median forming threshold at the reference pulse: 3.4 V forms ~half (seed 000)"
    )
    form_threshold_sigma_uv: int = Field(
        150_000, ge=0, description="cell-to-cell sigma of the threshold (ours; seed 000 sweeps 3 V+ in 0.05 V steps)"
    )
    form_ref_cycles: int = Field(1_000_000, ge=1, description="reference width: 10 ms (seed 000 Methods)")
    form_ref_temperature_c: float = Field(120.0, description="reference temperature (seed 000 Results)")
    form_uv_per_octave: int = Field(
        30_000, ge=0, description="threshold drop per doubling of the width, ~0.1 V/decade (ours)"
    )
    form_uv_per_degc: int = Field(5_000, ge=0, description="threshold drop per degC above the reference (ours)")
    wl_threshold_uv: int = Field(500_000, ge=0, description="access transistor threshold: no current below (ours)")
    formed_ns_at_ref_gate: int = Field(
        27_150, gt=0, description="mean formed G at the reference gate: weights +-27.1 uS (seed 000 Fig. 2h-i, 3b)"
    )
    form_ref_gate_uv: int = Field(1_200_000, gt=0, description="reference WL gate voltage (rramctl BoardConfig)")
    formed_spread_ppm: int = Field(
        90_000, ge=0, le=300_000, description="relative sigma of formed G: quasi-normal peaks, ~2.4 uS (ours)"
    )
    formed_min_ns: int = Field(4_000, ge=0, description="formed G floor, above the 300 kOhm (3.33 uS) limit (ours)")

    # ---- reset / set -------------------------------------------------------------------
    off_ns: int = Field(70, gt=0, description="off (reset) state ~0.07 uS (seed 000 Results)")
    reset_c2c_ppm: int = Field(200_000, ge=0, le=500_000, description="cycle-to-cycle sigma of the off state (ours)")
    reset_full_uv: int = Field(2_600_000, gt=0, description="fully effective reset amplitude 2.6 V (seed 000 Methods)")
    reset_onset_uv: int = Field(1_800_000, ge=0, description="reset starts to act above this amplitude (ours)")
    reset_full_cycles: int = Field(40, ge=1, description="fully effective reset width 400 ns (seed 000 Methods)")
    set_full_uv: int = Field(3_300_000, gt=0, description="fully effective set amplitude 3.3 V (seed 000 Methods)")
    set_onset_uv: int = Field(2_200_000, ge=0, description="set starts to act above this amplitude (ours)")
    set_full_cycles: int = Field(30, ge=1, description="fully effective set width 300 ns (seed 000 Methods)")
    set_c2c_ppm: int = Field(50_000, ge=0, le=500_000, description="cycle-to-cycle sigma after a set (ours)")

    # ---- write-verify programming ------------------------------------------------------
    program_ref_uv: int = Field(1_500_000, gt=0, description="write-verify pulse 1.5 V (seed 000 Methods)")
    program_ref_cycles: int = Field(50, ge=1, description="write-verify pulse 500 ns (seed 000 Methods)")
    program_step_ns: int = Field(1_500, ge=0, description="mean change per reference pulse (ours)")
    program_noise_ns: int = Field(500, ge=0, description="sigma of the programming noise per pulse (ours)")
    max_ns: int = Field(150_000, gt=0, description="largest conductance a cell reaches (ours)")

    # ---- read, defects, drift ----------------------------------------------------------
    read_noise_ppm: int = Field(
        2_000, ge=0, le=100_000, description="relative sigma of one ADC sample's column current (ours; Fig. 2j: small)"
    )
    stuck_on_ppm: int = Field(500, ge=0, le=1_000_000, description="fraction of cells stuck on (ours)")
    stuck_off_ppm: int = Field(1_000, ge=0, le=1_000_000, description="fraction of cells stuck off (ours)")
    stuck_on_ns: int = Field(80_000, gt=0, description="conductance of a stuck-on cell (ours)")
    drift_ppm_per_op: int = Field(0, ge=0, le=100_000, description="relaxation of formed cells per operation (ours)")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.stuck_on_ppm + self.stuck_off_ppm > 1_000_000:
            raise ValueError("stuck_on_ppm + stuck_off_ppm exceeds 1e6")
        if self.reset_onset_uv >= self.reset_full_uv or self.set_onset_uv >= self.set_full_uv:
            raise ValueError("reset/set onset amplitude must lie below the fully effective amplitude")
        if self.form_ref_gate_uv <= self.wl_threshold_uv:
            raise ValueError("form_ref_gate_uv must exceed wl_threshold_uv")
        if max(self.max_ns, self.stuck_on_ns) * 65_535 * ARRAY_SIZE >= 1 << 53:
            raise ValueError("max_ns too large: column drive sums would not stay exact in float64")
        return self

    @property
    def temperature_mdegc(self) -> int:
        return round(self.temperature_c * 1000)

    def with_changes(self, **changes: object) -> ChipModelConfig:
        """A validated copy with some fields replaced."""
        return type(self).model_validate({**self.model_dump(), **changes})
