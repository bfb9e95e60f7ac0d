"""The compiled ageing rule (kernels.aged_kernel: blocks, a branch-free log2, float quotients with one correction
step) against the numpy rule of rramsim.device.aged, on the paths the kernel chooses between: quotients whose
numerators lie below 2**53 (float) and beyond (integer division), a time equal to the pulse's (dt = 0), never-
pulsed and unformed cells, one time for all cells and one per cell."""

from __future__ import annotations

import numpy as np
import pytest
from rramsim import device, kernels
from rramsim.config import ChipModelConfig

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="the compiled ageing needs numba")


@pytest.mark.parametrize("span", [10**3, 10**9, 10**12, 10**15])
@pytest.mark.parametrize("drift_ppm", [0, 5_000, 200_000])
def test_the_compiled_ageing_is_the_numpy_rule_on_both_quotient_paths(span: int, drift_ppm: int) -> None:
    cfg = ChipModelConfig.model_validate(
        {"seed": 4, "relaxation": {"sigma_ns": 3_000, "tau_us": 7}, "drift": {"ppm_per_decade": drift_ppm}}
    )
    g = np.random.default_rng(span % 97 + drift_ppm)
    n = 3_000  # three blocks, the last one short
    t = g.integers(-1, span, n)
    t[::50] = span  # dt = 0 at now = span
    cells = (g.integers(1, 160_000, n), t, g.integers(-20_000, 20_000, n), g.random(n) < 0.7)
    for now in (span, g.integers(0, 2 * span, n)):
        np.testing.assert_array_equal(
            device.aged(*cells, now, cfg, compiled=True), device.aged(*cells, now, cfg, compiled=False)
        )


def test_the_block_quotient_is_floor_division_either_side_of_2_53() -> None:
    g = np.random.default_rng(8)
    for top in (1 << 40, 1 << 53, 1 << 62):
        num = g.integers(-top, top, 5_000)
        den = g.integers(1, 1 << 30, 5_000)
        num[:100] = (num[:100] // den[:100]) * den[:100] + np.array([-1, 0, 1, 2] * 25)  # at the steps
        out = np.empty_like(num)
        kernels.aged_floordiv(num, den, out)
        np.testing.assert_array_equal(out, num // den)
