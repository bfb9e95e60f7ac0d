"""The backend registry: the one place a backend name becomes something that holds a chip.

Names (``--backend`` on the command line, ``backend=`` in :meth:`rramctl.chip.Chip.open`):

- ``emulator``: the bit-exact emulator of chip, board and overlay (rramsim), behind the same registers;
- ``pynq``: the overlay on this board, through the PYNQ library;
- ``serial:PORT[@BAUD]``: a board reached through its agent over a USB-UART link;
- ``software``: :class:`rramctl.software.SoftwareChip`, a float model of the chip API (no registers);
- ``auto``: ``pynq`` when this machine is a board (a Zynq FPGA manager, pynq importable), else ``emulator``.

Transports are imported only when chosen, so pynq and pyserial stay optional at import time.
Adding a backend is one entry in :data:`TRANSPORT_OPENERS` (a register-level backend) or in
:func:`resolve` (a backend that is a chip model of its own, like ``software``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rramctl.errors import UsageError
from rramctl.paths import state_file

if TYPE_CHECKING:
    from rramctl.config import BoardConfig
    from rramctl.transport.base import Transport

BACKEND_NAMES = ("auto", "emulator", "pynq", "serial:PORT[@BAUD]", "software")


def default_state_path(backend: str = "emulator") -> Path:
    """Where the emulator (or the software backend, in a file of its own) keeps its chip between CLI invocations
    ($RRAMCTL_STATE overrides)."""
    return state_file("RRAMCTL_STATE", "software.npz" if backend == "software" else "emulator.npz")


@dataclass(frozen=True)
class BackendSpec:
    """A parsed backend name: ``kind`` is emulator, pynq, serial or software; ``arg`` the rest (serial port)."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@dataclass(frozen=True)
class OpenOptions:
    """What a backend may need to open: each backend takes the fields that apply to it."""

    config: BoardConfig
    state: Path | None = None  # emulator / software: the chip's state file (None: a fresh chip in memory)
    seed: int = 0  # emulator / software: seed of a new chip
    bitfile: Path | None = None  # pynq: overlay bitstream
    model: Any = None  # emulator: the chip model (ChipModelConfig, preset name or TOML file); None: the default preset
    autosave: bool = True  # emulator: write the state file after every operation (False: in memory, save_state)
    device: str = "cpu"  # emulator: where its array math runs: cpu (numpy), numpy, torch-cpu, cuda[:N]


def resolve(backend: str) -> BackendSpec:
    """Parse a backend name; ``auto`` becomes the board when this machine is one, else the emulator."""
    text = backend.strip()
    if text == "auto":
        from rramctl.transport.pynq_transport import find_board

        return BackendSpec("pynq") if find_board() else BackendSpec("emulator")
    kind, _, arg = text.partition(":")
    if kind == "serial":
        if not arg:
            raise UsageError("the serial backend needs a port: serial:PORT[@BAUD], e.g. serial:/dev/ttyUSB0")
        return BackendSpec("serial", arg)
    if kind in TRANSPORT_OPENERS or kind == "software":
        if arg:
            raise UsageError(f"backend {kind!r} takes no ':{arg}'")
        return BackendSpec(kind)
    raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}")


def emulator_model(model: Any, seed: int | None = None) -> Any:
    """The emulated chip's model (``rramsim.config.ChipModelConfig``) from a model, a preset name, a TOML file or None
    (the default preset), with the seed of a new chip (None: the model's own); one that cannot be loaded is a
    UsageError (rramctl's error root; the emulator's ModelError its cause)."""
    from rramsim.config import ModelError, load_model

    try:
        return load_model(model) if seed is None else load_model(model, seed=seed)
    except ModelError as e:
        raise UsageError(str(e)) from e


def _open_emulator(spec: BackendSpec, opts: OpenOptions) -> Transport:
    from rramctl.transport.emulator import EmulatorTransport

    model = emulator_model(opts.model, opts.seed)
    return EmulatorTransport.open(
        state_path=opts.state,
        seed=opts.seed,
        temperature_c=opts.config.forming_temperature_c,
        config=model,
        autosave=opts.autosave,
        device=opts.device,
    )


def _open_pynq(spec: BackendSpec, opts: OpenOptions) -> Transport:
    from rramctl.transport.pynq_transport import PynqTransport

    return PynqTransport.open(opts.bitfile, timeout_s=opts.config.poll_timeout_s)


def _open_serial(spec: BackendSpec, opts: OpenOptions) -> Transport:
    from rramctl.transport.serial import open_serial_transport
    from rramctl.transport.serial_journal import SessionJournal, default_journal_path

    return open_serial_transport(f"serial:{spec.arg}", SessionJournal(default_journal_path()))


#: Register-level backends: a kind -> the function that opens its transport.
TRANSPORT_OPENERS: dict[str, Callable[[BackendSpec, OpenOptions], Transport]] = {
    "emulator": _open_emulator,
    "pynq": _open_pynq,
    "serial": _open_serial,
}


def open_transport(spec: BackendSpec, opts: OpenOptions) -> Transport:
    """The transport of a register-level backend (``software`` has none)."""
    opener = TRANSPORT_OPENERS.get(spec.kind)
    if opener is None:
        raise UsageError(f"backend {spec} has no register transport")
    return opener(spec, opts)


__all__ = ["BACKEND_NAMES", "BackendSpec", "OpenOptions", "TRANSPORT_OPENERS", "default_state_path", "open_transport",
           "resolve"]  # fmt: skip
