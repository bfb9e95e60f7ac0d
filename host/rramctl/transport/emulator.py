"""EmulatorTransport: the Transport of docs/protocol.md on the bit-exact emulator (rramsim).

``transact`` = drop stale output, push the send words as one packet, write the trigger, pop up to
``recv_words`` words.  With a state file the chip persists: it is loaded if the file exists (the
seed then comes from the file), kept in memory while the transport is open, and saved atomically
once, on close (also after an error or Ctrl-C: what completed is kept; a Ctrl-C during that save acts
after it), so ``rramctl form`` / ``rramctl read`` / ``rramctl multiply`` continue one chip.  While
open, the transport holds a lock on the state file: a second process waits (up to ``lock_wait_s``),
then gets a StateError naming the PID that holds it, so no command's update is lost.  A library or
training session opens the chip with ``autosave=False``: the file is only read, and the session saves
with ``save_state``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rramsim.state as sim_state
from numpy.typing import NDArray
from rramsim.config import ChipModelConfig, load_model
from rramsim.overlay import BoardClockError, EmulatedOverlay

from rramctl import regmap as R
from rramctl.errors import StateError, UsageError
from rramctl.fileio import atomic_write_with, interrupts_held
from rramctl.hw.linedrive import BitplaneStream
from rramctl.paths import LOCK_WAIT_S, FileLock
from rramctl.transport.base import BoardCost, RegWrite, Transport, TransportError


class EmulatorTransport(Transport):
    name = "emulator"

    def __init__(
        self,
        config: ChipModelConfig | None = None,
        *,
        state_path: str | Path | None = None,
        temperature_c: float | None = None,
        autosave: bool = True,
        lock_wait_s: float = LOCK_WAIT_S,
        device: str = "cpu",
    ) -> None:
        """A fresh chip from ``config``, or the chip in ``state_path`` when that file exists.
        ``device``: where the emulator's array math runs (``cpu``, ``numpy``, ``torch-cpu``, ``cuda``,
        ``cuda:N``; rramsim.arraymath): the same codes on every device, a setup choice like the chuck.
        ``temperature_c`` (the chuck) applies to a loaded chip too: it is the setup, not the chip.
        ``autosave``: lock ``state_path`` while open and write the chip back to it on close (the CLI's
        one-command sessions); False only reads it (a library or training session saves with ``save_state``)."""
        loaded = Path(state_path) if state_path is not None else None
        self.state_path = loaded if autosave else None
        self._lock = FileLock(self.state_path, "emulator state", wait_s=lock_wait_s) if self.state_path else None
        if self._lock is not None:
            self._lock.acquire()
        try:
            if loaded is not None and loaded.exists():
                try:
                    self.overlay = sim_state.load(loaded)
                except sim_state.StateError as e:
                    raise StateError(str(e)) from e
            else:
                self.overlay = EmulatedOverlay(config or ChipModelConfig())
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        if temperature_c is not None:
            self.overlay.set_temperature(temperature_c)
        try:
            self.overlay.set_device(device)
        except ValueError as e:
            if self._lock is not None:
                self._lock.release()
            raise UsageError(str(e)) from e
        self._closed = False

    @classmethod
    def open(
        cls,
        *,
        state_path: str | Path | None = None,
        seed: int = 0,
        temperature_c: float | None = None,
        config: ChipModelConfig | None = None,
        autosave: bool = True,
        lock_wait_s: float = LOCK_WAIT_S,
        device: str = "cpu",
    ) -> EmulatorTransport:
        """The backends' entry point: a new chip of ``seed`` unless ``state_path`` holds one."""
        cfg = config or load_model(None, seed=seed)  # the default preset (paper-40nm)
        return cls(cfg, state_path=state_path, temperature_c=temperature_c, autosave=autosave,
                   lock_wait_s=lock_wait_s, device=device)  # fmt: skip

    def _live(self) -> EmulatedOverlay:
        if self._closed:
            raise TransportError("the emulator transport is closed")
        return self.overlay

    def _read_reg(self, offset: int) -> int:
        return self._live().read_reg(offset)

    def _write_reg(self, offset: int, value: int) -> None:
        self._live().write_reg(offset, value)

    def _transact_bitplanes(self, send: BitplaneStream, recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        """The bit-planes go to the overlay as they are (it skips encoding and decoding the frames)."""
        return self._transact(send, recv_words, trigger)

    def _transact(
        self, words: NDArray[np.uint32] | BitplaneStream, recv_words: int, trigger: RegWrite
    ) -> NDArray[np.uint32]:
        ov = self._live()
        ov.discard_output()
        if isinstance(words, BitplaneStream) or words.size:
            ov.push_stream(words)
        ov.write_reg(trigger.offset, trigger.value)
        if ov.waiting_for_input:
            ov.push_stream(np.zeros(0, np.uint32))  # the DMA sent nothing: end of stream -> UNDERRUN (ours)
        return ov.pop_stream(recv_words)

    def save(self) -> None:
        """Write the chip to its state file now (an operation cut off by an error or Ctrl-C is
        aborted first, as CTRL.ABORT does on the board: the cells keep what it applied)."""
        if self.state_path is None:
            return
        if self.overlay.busy:
            self.overlay.write_reg(R.CTRL, R.CTRL_ABORT.put(1))
        self.save_state(self.state_path)

    state_in_file = True

    def advance_clock(self, seconds: float) -> None:
        """The chip rests for ``seconds`` of virtual board time (relaxation and drift run on it); a rest that would
        take the clock past ``rramsim.overlay.MAX_BOARD_TIME_S`` is refused (UsageError) and changes nothing."""
        try:
            self._live().rest(seconds)
        except BoardClockError as e:
            raise UsageError(str(e)) from None

    def board_clock(self) -> float:
        """The virtual board clock in seconds."""
        return self._live().board_time_s

    def board_cost(self) -> BoardCost:
        overlay = self._live()
        return BoardCost.of(overlay.board_time_s, overlay.ledger)

    def chip_model(self) -> ChipModelConfig:
        return self.overlay.crossbar.config

    def save_state(self, path: Path) -> None:
        """Write the chip to ``path`` atomically (the folder is created)."""
        overlay = self._live()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_with(path, lambda f: sim_state.dump(overlay, f))

    def close(self) -> None:
        if not self._closed:
            try:
                with interrupts_held():  # a Ctrl-C during the save acts after it: the file holds what completed
                    self.save()
            finally:
                self._closed = True
                if self._lock is not None:
                    self._lock.release()
