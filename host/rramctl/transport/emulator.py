"""EmulatorTransport: the Transport of docs/protocol.md on the bit-exact emulator (rramsim).

``transact`` = drop stale output, push the send words as one packet, write the trigger, pop up to
``recv_words`` words.  With a state file the chip persists: it is loaded if the file exists (the
seed then comes from the file), and saved atomically after every transact and on close, so
``rramctl form`` / ``rramctl read`` / ``rramctl multiply`` continue one chip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rramsim import state as sim_state
from rramsim.config import ChipModelConfig
from rramsim.overlay import EmulatedOverlay

from rramctl.transport.base import RegWrite, Transport, TransportError, as_words


class EmulatorTransport(Transport):
    name = "emulator"

    def __init__(
        self,
        config: ChipModelConfig | None = None,
        *,
        state_path: str | Path | None = None,
        temperature_c: float | None = None,
    ) -> None:
        """A fresh chip from ``config``, or the chip in ``state_path`` when that file exists.
        ``temperature_c`` (the chuck) applies to a loaded chip too: it is the setup, not the chip."""
        self.state_path = Path(state_path) if state_path is not None else None
        if self.state_path is not None and self.state_path.exists():
            try:
                self.overlay = sim_state.load(self.state_path)
            except sim_state.StateError as e:
                raise TransportError(str(e)) from e
        else:
            self.overlay = EmulatedOverlay(config or ChipModelConfig())
        if temperature_c is not None:
            self.overlay.set_temperature(temperature_c)
        self._closed = False
        self._batch_depth = 0

    @classmethod
    def open(
        cls,
        *,
        state_path: str | Path | None = None,
        seed: int = 0,
        temperature_c: float | None = None,
        config: ChipModelConfig | None = None,
    ) -> EmulatorTransport:
        """The backends' entry point: a new chip of ``seed`` unless ``state_path`` holds one."""
        cfg = config or ChipModelConfig(seed=seed)
        return cls(cfg, state_path=state_path, temperature_c=temperature_c)

    def _live(self) -> EmulatedOverlay:
        if self._closed:
            raise TransportError("the emulator transport is closed")
        return self.overlay

    def read_reg(self, offset: int) -> int:
        return self._live().read_reg(offset)

    def write_reg(self, offset: int, value: int) -> None:
        self._live().write_reg(offset, value)

    def transact(self, send: NDArray[np.uint32] | None, recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        ov = self._live()
        if recv_words < 0:
            raise ValueError("recv_words must be >= 0")
        words = as_words(send)
        ov.discard_output()
        if words.size:
            ov.push_stream(words)
        ov.write_reg(trigger.offset, trigger.value)
        if ov.waiting_for_input:
            ov.push_stream(np.zeros(0, np.uint32))  # the DMA sent nothing: end of stream -> UNDERRUN (ours)
        out = ov.pop_stream(recv_words)
        if self._batch_depth == 0:
            self.save()
        return out

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Save the state file once, when the batch ends (also on an error), not after every transact."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and not self._closed:
                self.save()

    def save(self) -> None:
        if self.state_path is not None:
            sim_state.save(self.overlay, self.state_path)

    def close(self) -> None:
        if not self._closed:
            self.save()
            self._closed = True
