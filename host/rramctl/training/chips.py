"""Opening the arrays a run trains on and saving/restoring their state with the run.

Every array comes from :meth:`rramctl.chip.Chip.open`. Where the chip's state lives in a file (the
emulator, the software model) each array is a chip in memory, seeded ``seed + a`` (ours), saved in the
run folder at every checkpoint and restored from it on resume. A board (``pynq``, ``serial:PORT``) is
one array whose state stays in its cells; the checkpoint records what it had done (its counters).
"""

from __future__ import annotations

import json
from pathlib import Path

from rramctl.backends import resolve
from rramctl.chip import Chip
from rramctl.config import BoardConfig
from rramctl.errors import StateError, UsageError
from rramctl.fileio import atomic_write_text


def open_chips(
    backend: str,
    n: int,
    seed: int,
    state_dir: Path | None = None,
    board_config: Path | None = None,
    model: object = None,
    device: str = "cpu",
) -> list[Chip]:
    """``n`` arrays; array ``a`` is seeded ``seed + a`` or restored from ``state_dir``; ``model`` and ``device``: the
    emulator's chip model and where its array math runs (Chip.open)."""
    config = BoardConfig.load(board_config)
    spec = resolve(backend)
    if spec.kind in ("pynq", "serial"):
        if n != 1:
            raise UsageError(f"the network needs {n} arrays but a board holds one; use a smaller model")
        return [Chip.open(str(spec), config=config)]
    chips: list[Chip] = []
    try:
        for a in range(n):
            chips.append(Chip.open(str(spec), config=config, state=_state_file(state_dir, a), seed=seed + a,
                                   model=model, autosave=False, device=device))  # fmt: skip
    except BaseException:
        for chip in chips:
            chip.close()
        raise
    return chips


def _state_file(state_dir: Path | None, a: int) -> Path | None:
    if state_dir is None:
        return None
    f = state_dir / f"array{a}.npz"
    if not f.exists():
        raise StateError(f"{f}: the run's saved state of array {a} is missing")
    return f


def save_chips(chips: list[Chip], state_dir: Path) -> None:
    """Save every array's state (atomic per file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for a, chip in enumerate(chips):
        if chip.state_in_file:
            chip.save_state(state_dir / f"array{a}.npz")
        else:
            record = {"backend": chip.backend, "counters": chip.counters()}
            atomic_write_text(state_dir / f"array{a}.json", json.dumps(record))
