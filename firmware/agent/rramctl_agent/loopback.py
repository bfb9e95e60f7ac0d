"""An agent on a pseudo-terminal in a background thread, and a link that paces bytes at a baud rate.

Used by the tests, the benchmark and ``rramctl-agent --pty`` (a laptop demo without a board):
the host opens ``PtyAgent.path`` like any serial device.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from typing import Any

from rramctl.transport import serial_link as L
from rramctl.transport.base import Transport

from rramctl_agent.agent import Agent


class PacedLink:
    """Wraps a ByteLink so each write takes the time its bytes need on an 8N1 UART at ``baudrate``.

    A pty moves bytes as fast as the CPU can; this models the wire: a frame is delivered when its last
    byte would have arrived, and a direction carries one frame at a time (full duplex: pace both ends)."""

    def __init__(self, link: L.ByteLink, baudrate: int) -> None:
        if baudrate <= 0:
            raise ValueError(f"baud rate must be positive, got {baudrate}")
        self.link = link
        self.baudrate = baudrate
        self._free_at = 0.0

    def read(self, size: int = 1) -> bytes:
        return self.link.read(size)

    def write(self, data: bytes) -> int | None:
        start = max(time.monotonic(), self._free_at)
        self._free_at = start + L.wire_seconds(len(data), self.baudrate)
        delay = self._free_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return self.link.write(data)

    def close(self) -> None:
        self.link.close()


class PtyAgent:
    """An Agent serving ``transport`` on a new pty; the host side is the device ``path``.

    ``wrap`` wraps the agent's end of the link (pacing, fault injection)."""

    def __init__(self, transport: Transport, *, wrap: Any = None, **agent_kwargs: Any) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, before anybody opens the device
        self.path = os.ttyname(self.slave)
        link: L.ByteLink = L.FdLink(self.master)
        if wrap is not None:
            link = wrap(link)
        self.agent = Agent(transport, link, **agent_kwargs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.agent.serve, args=(self._stop,), name="rramctl-agent", daemon=True)

    def start(self) -> PtyAgent:
        self._thread.start()
        return self

    def halt(self) -> None:
        """Stop serving but keep the pty open: a hung or crashed agent behind a live cable."""
        self._stop.set()
        self._thread.join(timeout=5)

    def stop(self) -> None:
        """Stop serving and release the pty (the device goes away: an unplugged cable)."""
        self.halt()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
