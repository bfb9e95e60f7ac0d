"""The ``software`` backend: a float model of the chip API, for fast development and tests.

:class:`SoftwareChip` answers the same calls as :class:`rramctl.chip.Chip` (electroform, read, reset,
set, program, multiply, and through them multiply_pairs and weights_us) with exact float products and
a simple cell model: no registers, no ADC, no read noise, no bit-serial arithmetic. Its numbers
(docs/hardware.md, "Cell states"): about half the cells form at 3.4 V / 10 ms (seed 000 Results),
formed cells near 27.2 uS (seed 000 Fig. 2, 4b), pruned (reset) cells near 0.07 uS (seed 000
Results). The spreads are ours, measured on the emulator (std 3.0 uS).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rramctl.arguments import as_path, as_read_gate, as_region, as_scalar, as_targets, as_tolerance
from rramctl.chip import FORMED_THRESHOLD_US, Chip, FormReport, MultiplyResult, PairFormReport, ProgramReport
from rramctl.config import BoardConfig, Pulse
from rramctl.errors import StateError
from rramctl.fileio import atomic_write_with, interrupts_held
from rramctl.geometry import COLS, ROWS, Region, check_cells
from rramctl.paths import READ_ERRORS

LOAD_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, TypeError, AttributeError)

FORMED_FRACTION = 0.5  # seed 000 Results: 3.4 V, 10 ms at 120 degC forms about half the cells
FORMED_MEAN_US = 27.2  # seed 000 Results (Fig. 4b): weight peaks at -27.3 / +27.1 uS
FORMED_STD_US = 3.0  # ours: spread of formed cells measured on the emulator (seed 0)
UNFORMED_US = 0.031  # ours: emulator reading of an unformed (~30 MOhm) cell
RESET_US = 0.07  # seed 000 Results: pruned cells about 0.07 uS (docs/hardware.md)
SOFTWARE_WL_THRESHOLD_V = 0.5  # a read with the word line at or below this sees no cell (rramsim: transistor)
PROGRAM_PULSES = 5  # ours: write-verify pulses of a formed cell


class SoftwareChip(Chip):
    """Float stand-in for one 512 x 512 array; every random draw comes from ``seed``."""

    def __init__(self, seed: int = 0, config: BoardConfig | None = None) -> None:
        super().__init__(None, config, backend="software")
        self.autosave_path: Path | None = None  # close() saves the chip there (Chip.open's autosave)
        self._rng = np.random.default_rng(seed)
        self.g = np.full((ROWS, COLS), UNFORMED_US)
        self.formed = np.zeros((ROWS, COLS), dtype=bool)
        self.pulses = 0

    # ---- state -------------------------------------------------------------------------
    state_in_file = True

    def save_state(self, path: Path) -> None:
        path = as_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # the default state folder may not exist yet
        rng = json.dumps(self._rng.bit_generator.state)
        atomic_write_with(
            path,
            lambda f: np.savez(f, g=self.g, formed=self.formed, pulses=np.array(self.pulses), rng=np.array(rng)),
        )

    @classmethod
    def load(cls, path: Path, config: BoardConfig | None = None) -> SoftwareChip:
        """The chip saved at ``path``; a damaged or foreign file is one StateError naming it."""
        chip = cls(0, config)
        try:
            with np.load(path, allow_pickle=False) as d:
                g, formed, pulses, rng = d["g"], d["formed"], int(d["pulses"]), json.loads(str(d["rng"]))
            if g.shape != (ROWS, COLS) or formed.shape != (ROWS, COLS) or formed.dtype != np.bool_:
                raise ValueError(f"arrays of shape {g.shape} / {formed.shape}, expected {(ROWS, COLS)}")
            chip._rng.bit_generator.state = rng
            chip.g, chip.formed, chip.pulses = g.astype(np.float64), formed.copy(), pulses
        except LOAD_ERRORS as e:
            raise StateError(
                f"{path}: not a software-chip state file ({e}); give the software backend a state "
                "file of its own (--state), or move this one away to start a new chip"
            ) from e
        return chip

    # ---- operations --------------------------------------------------------------------
    def _form_cells(self, region: Region, want: NDArray[np.bool_]) -> None:
        sl = region.slices
        fresh = np.maximum(self._rng.normal(FORMED_MEAN_US, FORMED_STD_US, region.shape), 1.0)
        self.g[sl] = np.where(want & ~self.formed[sl], fresh, self.g[sl])
        self.formed[sl] |= want

    def electroform(self, region: Region | None = None, pulse: Pulse | None = None) -> FormReport:
        r, p = as_region(region, default=True), self._form_pulse(pulse)
        self._form_cells(r, self._rng.random(r.shape) < FORMED_FRACTION)
        g = self.read(r)
        formed = g > FORMED_THRESHOLD_US
        return FormReport(r, p.voltage_v, p.width_s, float(formed.mean()),
                          float(g[formed].mean()) if formed.any() else 0.0, g)  # fmt: skip

    def electroform_pairs(
        self, region: Region, pulse: Pulse | None = None, step_v: float = 0.05, *, resume: bool = False
    ) -> PairFormReport:
        """Complementary pairs (as :meth:`Chip.electroform_pairs`): G+ at random, G- formed where G+ is not;
        ``resume`` keeps the G+ half an interrupted call formed."""
        minus = as_region(region).minus()
        pulse = self._form_pulse(pulse)
        as_scalar(step_v, "step_v")  # (no ramp here: checked as the chip checks it)
        plus_fraction = (
            float(self.formed[region.slices].mean()) if resume else self.electroform(region, pulse).formed_fraction
        )
        want = ~self.formed[region.slices] & ~self.formed[minus.slices]
        self._form_cells(minus, want)
        n = int(want.sum())
        v = pulse.voltage_v
        return PairFormReport(region, plus_fraction, n, n, v, n, self.weights_us(region))

    def read(self, region: Region | None = None, *, gate_v: float | None = None) -> NDArray[np.float64]:
        g = self.g[as_region(region, default=True).slices].copy()
        gate_v = None if gate_v is None else as_read_gate(gate_v, self.config)  # the ratings, as Chip.read
        return g if gate_v is None or gate_v > SOFTWARE_WL_THRESHOLD_V else np.zeros_like(g)  # transistors off

    def read_cells(self, cells: NDArray[np.integer]) -> NDArray[np.float64]:
        r, c = check_cells(cells).T
        return self.g[r, c].copy()

    def reset(self, cells: NDArray[np.integer]) -> int:
        r, c = check_cells(cells).T
        self.g[r, c] = np.where(self.formed[r, c], RESET_US, self.g[r, c])
        self.pulses += len(r)
        return len(r)

    def set(self, cells: NDArray[np.integer]) -> int:
        """A formed cell returns to a fresh conducting state; an unformed one stays off."""
        r, c = check_cells(cells).T
        fresh = np.maximum(self._rng.normal(FORMED_MEAN_US, FORMED_STD_US, len(r)), 1.0)
        self.g[r, c] = np.where(self.formed[r, c], fresh, self.g[r, c])
        self.pulses += len(r)
        return len(r)

    def program(
        self, cells: NDArray[np.integer], targets_us: NDArray[np.floating], tolerance: float | None = None
    ) -> ProgramReport:
        """Write-verify: formed cells land within ``tolerance`` of the target (uniform, ours) in
        PROGRAM_PULSES pulses; unformed cells cannot be programmed and burn the pulse cap."""
        cells = check_cells(cells)
        t = as_targets(targets_us, len(cells))
        tol = as_tolerance(tolerance, self.config)
        self.target_codes(t)  # the board's target range, refused as Chip.program refuses it (the codes are not used)
        r, c = cells.T
        ok = self.formed[r, c]
        self.g[r, c] = np.where(ok, t * (1 + self._rng.uniform(-tol, tol, len(t))), self.g[r, c])
        cap = self.config.write_verify.max_pulses  # the pulse cap (MAX_PULSES): an unformed cell burns it
        pulses = np.where(ok, min(PROGRAM_PULSES, cap), cap).astype(np.int64)
        self.pulses += int(pulses.sum())
        return ProgramReport(self.g[r, c].copy(), pulses, ok)

    def _multiply_checked(
        self, x: NDArray[np.integer], region: Region, bits: int, what: str = "multiply"
    ) -> MultiplyResult:
        """Exact float products sum_i x_i G_ij (uS x input LSB) of checked inputs (Chip.multiply and
        multiply_pairs check them); ``codes`` are the products rounded to the multiply-range ADC code the chip
        would report without noise or saturation (so ``what``, the name of a saturation warning, is unused)."""
        products = x.astype(np.float64) @ self.g[region.slices]
        return MultiplyResult(np.rint(products / self.product_lsb_us).astype(np.int64), products)

    def counters(self) -> dict[str, int]:
        return {"op_count": 0, "pulse_count": self.pulses}

    def persist(self) -> None:
        """Save the chip where it was opened from (``autosave_path``) now (nothing for a chip in memory)."""
        if self.autosave_path is not None:
            self.save_state(self.autosave_path)

    def close(self) -> None:
        """Save the chip where it was opened from (``autosave_path``), as the emulator does on close (a Ctrl-C during
        the save acts after it)."""
        with interrupts_held():
            self.persist()


__all__ = ["SoftwareChip"]
