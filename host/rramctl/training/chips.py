"""Opening the arrays a run trains on and saving/restoring their state with the run.

``emulator``: the bit-exact emulator behind the real driver and chip API (no per-transact state file;
the run saves each array's state at its checkpoints). ``software``: FloatChip, the fast float model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rramctl.config import BoardConfig
from rramctl.training.crossbar import ChipLike
from rramctl.training.floatchip import FloatChip


def open_chips(
    backend: str, n: int, seed: int, state_dir: Path | None = None, board_config: Path | None = None
) -> list[ChipLike]:
    """``n`` arrays; array ``a`` is seeded ``seed + a`` (ours) or restored from ``state_dir``.
    A board (``pynq``, ``serial:PORT``) is one array whose state stays on the chip."""
    config = BoardConfig.load(board_config)
    if backend == "emulator":
        return [_open_emulator(seed + a, _state_file(state_dir, a, "npz"), config) for a in range(n)]
    if backend == "pynq" or backend.startswith("serial:"):
        if n != 1:
            raise ValueError(f"the network needs {n} arrays but a board holds one; use a smaller model")
        from rramctl.chip import Chip

        return [Chip.open(backend, config=config)]
    if backend == "software":
        chips: list[ChipLike] = []
        for a in range(n):
            chip = FloatChip(seed + a)
            f = _state_file(state_dir, a, "npz")
            if f is not None:
                _load_float(chip, f)
            chips.append(chip)
        return chips
    raise ValueError(f"unknown backend {backend!r}; choose emulator or software")


def _state_file(state_dir: Path | None, a: int, ext: str) -> Path | None:
    if state_dir is None:
        return None
    f = state_dir / f"array{a}.{ext}"
    if not f.exists():
        raise FileNotFoundError(f"{f}: the run's saved state of array {a} is missing")
    return f


def _open_emulator(seed: int, state_file: Path | None, config: BoardConfig) -> ChipLike:
    from rramctl.chip import Chip
    from rramctl.driver import Driver
    from rramctl.transport.emulator import EmulatorTransport

    transport = EmulatorTransport.open(state_path=state_file, seed=seed, temperature_c=config.forming_temperature_c)
    transport.state_path = None  # the run saves the state at checkpoints, not after every transact
    driver = Driver(transport, poll_timeout_s=config.poll_timeout_s, settle_cycles=config.settle_cycles)
    driver.identify()
    return Chip(driver, config)


def save_chips(chips: list[ChipLike], state_dir: Path) -> None:
    """Save every array's state (atomic per file)."""
    from rramctl.chip import Chip

    state_dir.mkdir(parents=True, exist_ok=True)
    for a, chip in enumerate(chips):
        f = state_dir / f"array{a}.npz"
        if isinstance(chip, Chip) and chip.driver.transport.name != "emulator":
            # a board keeps its state in the cells; record what it had done at this checkpoint
            _write_text(state_dir / f"array{a}.json", json.dumps({"backend": chip.driver.transport.name,
                                                                   "counters": chip.counters()}))  # fmt: skip
        elif isinstance(chip, Chip):
            from rramsim import state as sim_state

            sim_state.save(chip.driver.transport.overlay, f)  # type: ignore[attr-defined]
        elif isinstance(chip, FloatChip):
            tmp = f.with_name(f.stem + ".tmp.npz")
            rng_state = json.dumps(chip._rng.bit_generator.state)
            np.savez(tmp, g=chip.g, formed=chip.formed, pulses=np.array(chip.pulses), rng=np.array(rng_state))
            tmp.replace(f)
        else:
            raise TypeError(f"cannot save the state of {type(chip).__name__}")


def _write_text(f: Path, text: str) -> None:
    tmp = f.with_name(f.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(f)


def _load_float(chip: FloatChip, f: Path) -> None:
    with np.load(f, allow_pickle=False) as d:
        chip.g, chip.formed, chip.pulses = d["g"].copy(), d["formed"].copy(), int(d["pulses"])
        chip._rng.bit_generator.state = json.loads(str(d["rng"]))
