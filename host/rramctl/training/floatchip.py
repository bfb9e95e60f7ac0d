"""A float model of the chip API for the fast development path (``--backend software``).

It offers the calls the training code makes on :class:`rramctl.chip.Chip` (electroform, read,
weights_us, reset, set, program, multiply_pairs) with exact float products and a simple cell model:
no ADC, no read noise, no bit-serial arithmetic. Numbers follow seed 000 and ../shared/hardware-facts.md:
about half the cells form at 3.4 V / 10 ms (seed 000 Results), formed cells near 27.2 uS (Fig. 2, 4b),
pruned (reset) cells near 0.07 uS. The spreads are ours, measured on the emulator (std 3.0 uS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rramctl.geometry import COLS, PAIR_OFFSET, ROWS, Region, check_cells

FORMED_FRACTION = 0.5  # seed 000 Results: 3.4 V, 10 ms at 120 degC forms about half the cells
FORMED_MEAN_US = 27.2  # seed 000 Results (Fig. 4b): weight peaks at -27.3 / +27.1 uS
FORMED_STD_US = 3.0  # ours: spread of formed cells measured on the emulator (seed 0)
UNFORMED_US = 0.031  # ours: emulator reading of an unformed (~30 MOhm) cell
RESET_US = 0.07  # hardware-facts: pruned cells about 0.07 uS


@dataclass(frozen=True)
class FloatProgramReport:
    final_us: NDArray[np.float64]
    pulses: NDArray[np.int64]
    converged: NDArray[np.bool_]

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())


class FloatChip:
    """Float stand-in for one 512 x 512 array; every random draw comes from ``seed``."""

    rows = ROWS
    cols = COLS

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self.g = np.full((ROWS, COLS), UNFORMED_US)
        self.formed = np.zeros((ROWS, COLS), dtype=bool)
        self.pulses = 0

    def close(self) -> None:
        pass

    def electroform(self, region: Region | None = None) -> None:
        r = region or Region()
        sl = np.s_[r.row : r.row + r.n_rows, r.col : r.col + r.n_cols]
        formed = self._rng.random(r.shape) < FORMED_FRACTION
        self.formed[sl] |= formed
        self.g[sl] = np.where(
            formed, np.maximum(self._rng.normal(FORMED_MEAN_US, FORMED_STD_US, r.shape), 1.0), self.g[sl]
        )

    def electroform_pairs(self, region: Region) -> None:
        """Complementary pairs (as ``Chip.electroform_pairs``): G+ at random, G- formed where G+ is not."""
        self.electroform(region)
        plus = np.s_[region.row : region.row + region.n_rows, region.col : region.col + region.n_cols]
        minus = np.s_[
            region.row : region.row + region.n_rows, region.col + PAIR_OFFSET : region.col + PAIR_OFFSET + region.n_cols
        ]
        want = ~self.formed[plus] & ~self.formed[minus]
        self.formed[minus] |= want
        fresh = np.maximum(self._rng.normal(FORMED_MEAN_US, FORMED_STD_US, region.shape), 1.0)
        self.g[minus] = np.where(want, fresh, self.g[minus])

    def read(self, region: Region | None = None) -> NDArray[np.float64]:
        r = region or Region()
        return self.g[r.row : r.row + r.n_rows, r.col : r.col + r.n_cols].copy()

    def weights_us(self, rows: tuple[int, int], pair_cols: tuple[int, int]) -> NDArray[np.float64]:
        (r0, nr), (c0, nc) = rows, pair_cols
        return self.g[r0 : r0 + nr, c0 : c0 + nc] - self.g[r0 : r0 + nr, c0 + PAIR_OFFSET : c0 + PAIR_OFFSET + nc]

    def reset(self, cells: NDArray[np.integer]) -> int:
        cells = check_cells(cells)
        self.g[cells[:, 0], cells[:, 1]] = np.where(
            self.formed[cells[:, 0], cells[:, 1]], RESET_US, self.g[cells[:, 0], cells[:, 1]]
        )
        self.pulses += len(cells)
        return len(cells)

    def set(self, cells: NDArray[np.integer]) -> int:
        """A formed cell returns to a fresh conducting state; an unformed one stays off."""
        cells = check_cells(cells)
        r, c = cells[:, 0], cells[:, 1]
        fresh = np.maximum(self._rng.normal(FORMED_MEAN_US, FORMED_STD_US, len(cells)), 1.0)
        self.g[r, c] = np.where(self.formed[r, c], fresh, self.g[r, c])
        self.pulses += len(cells)
        return len(cells)

    def program(
        self, cells: NDArray[np.integer], targets_us: NDArray[np.floating], tolerance: float = 0.1
    ) -> FloatProgramReport:
        """Write-verify: formed cells land within ``tolerance`` of the target (uniform, ours), 5 pulses each
        (ours); unformed cells cannot be programmed and report 20 pulses (the emulator's max)."""
        cells = check_cells(cells)
        t = np.asarray(targets_us, dtype=np.float64).ravel()
        if t.shape != (len(cells),):
            raise ValueError(f"{len(cells)} cells but {t.size} targets")
        r, c = cells[:, 0], cells[:, 1]
        ok = self.formed[r, c]
        self.g[r, c] = np.where(ok, t * (1 + self._rng.uniform(-tolerance, tolerance, len(t))), self.g[r, c])
        pulses = np.where(ok, 5, 20).astype(np.int64)
        self.pulses += int(pulses.sum())
        return FloatProgramReport(self.g[r, c].copy(), pulses, ok)

    def multiply_pairs(
        self, inputs: NDArray[np.integer], rows: tuple[int, int], pair_cols: tuple[int, int], bits: int
    ) -> NDArray[np.float64]:
        x = np.asarray(inputs)
        if x.size and (x.min() < 0 or x.max() >= 2**bits):
            raise ValueError(f"inputs must lie in [0, {2**bits})")
        return x.astype(np.float64) @ self.weights_us(rows, pair_cols)

    def counters(self) -> dict[str, int]:
        return {"pulse_count": self.pulses}
