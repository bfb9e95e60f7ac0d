"""Backend names -> transports: ``emulator``, ``pynq``, ``serial:PORT[@BAUD]`` and ``auto``.

The transports' own modules are imported only when chosen, so pynq and pyserial stay optional
at import time.
"""

from __future__ import annotations

from pathlib import Path

from rramctl.config import BoardConfig
from rramctl.paths import state_file
from rramctl.transport.base import Transport, TransportError

BACKENDS = ("auto", "emulator", "pynq", "serial:PORT[@BAUD]")


def default_state_path() -> Path:
    """Where the emulator keeps its chip between CLI invocations ($RRAMCTL_STATE overrides)."""
    return state_file("RRAMCTL_STATE", "emulator.npz")


def resolve_backend(backend: str) -> str:
    """``auto``: the pynq board when this machine is one, else the emulator."""
    if backend != "auto":
        return backend
    from rramctl.transport.pynq_transport import find_board

    return "pynq" if find_board() else "emulator"


def open_transport(
    backend: str,
    *,
    state: str | Path | None = None,
    seed: int = 0,
    bitfile: str | Path | None = None,
    config: BoardConfig | None = None,
) -> Transport:
    backend = resolve_backend(backend)
    config = config or BoardConfig()
    if backend == "emulator":
        from rramctl.transport.emulator import EmulatorTransport

        return EmulatorTransport.open(
            state_path=Path(state) if state is not None else default_state_path(),
            seed=seed,
            temperature_c=config.forming_temperature_c,
        )
    if backend == "pynq":
        from rramctl.transport.pynq_transport import PynqTransport

        return PynqTransport.open(bitfile)
    if backend.startswith("serial:"):
        from rramctl.transport.serial import open_serial_transport
        from rramctl.transport.serial_journal import SessionJournal, default_journal_path

        return open_serial_transport(backend, SessionJournal(default_journal_path()))
    raise TransportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
