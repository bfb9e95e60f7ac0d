"""Seeds: every random draw of rramctl and its emulator comes from a seed, a whole number 0 <= seed < 2**64.

The one bound for every seed a user gives (the chip's ``--seed`` and ``Chip.open(seed=)``, the emulator's chip model,
the training run's ``seed`` / ``chip_seed`` / ``data.validation_seed``, ``--input-seed``, the serial agent's
``--seed``): the emulator's counter-based noise hash and ``torch.manual_seed`` take 64 bits (numpy's seed sequences
would take more, torch and the hash would not), and a negative seed is refused by numpy. Ours, for one rule.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

SEED_LIMIT = 1 << 64  # seeds are 0 <= seed < SEED_LIMIT
SEED_MAX = SEED_LIMIT - 1

Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
"""A seed as a pydantic field type (``seed: Seed = 0``)."""
