"""The transport interface (docs/protocol.md, "Transport operations").

Three operations, the same for the board (pynq), a laptop (serial agent) and the emulator.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rramctl import regmap as R
from rramctl.errors import LinkError, UsageError
from rramctl.hw.energy import EnergyCounts
from rramctl.hw.linedrive import BitplaneStream


class TransportError(LinkError):
    """The link to the overlay failed (timeout, dropped link, refused request)."""


class RegWrite(NamedTuple):
    offset: int
    value: int


@dataclass
class BoardCost(EnergyCounts):
    """Board time and energy as the overlay's model counts them (the emulator: docs/emulator.md, "Board
    time and energy"). Counters since power-up; the difference of two readings is the cost of the work
    done between them."""

    time_s: float = 0.0

    @classmethod
    def of(cls, time_s: float, energy: EnergyCounts) -> BoardCost:
        return cls(time_s=time_s, **energy.counts())

    def __sub__(self, before: BoardCost) -> BoardCost:
        return self.since(before)

    def __add__(self, other: BoardCost) -> BoardCost:
        return self.combined(other, 1)

    def per(self, n: int) -> dict[str, float]:
        """This cost divided by ``n`` (steps, inferences), as a dict with ``total_j``."""
        return {k: v / max(1, n) for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, float]:
        return {**self.to_dict(), "total_j": self.total_j}


WORD_MAX = 0xFFFF_FFFF
REGISTER_OFFSETS = frozenset(R.REGISTERS.values())


def check_offset(offset: object) -> int:
    """A register offset of the overlay's map (docs/registers.md), as an int."""
    if type(offset) is int and offset in REGISTER_OFFSETS:  # the common case, first
        return offset
    if not isinstance(offset, int | np.integer) or int(offset) not in REGISTER_OFFSETS:
        shown = f"{int(offset):#x}" if isinstance(offset, int | np.integer) else repr(offset)
        raise UsageError(f"no register at offset {shown} (see docs/registers.md)")
    return int(offset)


def check_word(value: object, what: str = "register value") -> int:
    """A 32-bit unsigned word, as an int."""
    if type(value) is int and 0 <= value <= WORD_MAX:  # the common case, first
        return value
    if not isinstance(value, int | np.integer) or not 0 <= int(value) <= WORD_MAX:
        raise UsageError(f"{what} {value!r} is not a 32-bit unsigned word")
    return int(value)


class Transport(ABC):
    """Register access plus one atomic stream transaction.

    The public methods check their arguments once, here, for every backend (offsets of the register
    map, 32-bit words, a non-negative reply length), then call the backend's private method.
    A backend implements ``_read_reg``, ``_write_reg`` and ``_transact`` and may assume valid arguments.
    """

    name: str = "transport"

    def read_reg(self, offset: int) -> int:
        """One 32-bit register read."""
        return self._read_reg(check_offset(offset))

    def write_reg(self, offset: int, value: int) -> None:
        """One 32-bit register write."""
        self._write_reg(check_offset(offset), check_word(value))

    def transact(
        self, send: NDArray[np.uint32] | BitplaneStream | None, recv_words: int, trigger: RegWrite
    ) -> NDArray[np.uint32]:
        """Arm S2MM for up to ``recv_words``, start MM2S of ``send``, write ``trigger``,
        wait for both streams; return the words received (uint32, length <= recv_words).  A
        :class:`~rramctl.hw.linedrive.BitplaneStream` goes to ``_transact_bitplanes`` (words, unless
        the backend takes bit-planes as they are: the emulator)."""
        if not isinstance(recv_words, int | np.integer) or recv_words < 0:
            raise UsageError(f"recv_words must be a non-negative integer, got {recv_words!r}")
        offset, value = RegWrite(*trigger)
        checked = RegWrite(check_offset(offset), check_word(value, "trigger value"))
        if isinstance(send, BitplaneStream):
            return self._transact_bitplanes(send, int(recv_words), checked)
        return self._transact(as_words(send), int(recv_words), checked)

    @abstractmethod
    def _read_reg(self, offset: int) -> int:
        """Backend: one register read (offset already checked)."""

    @abstractmethod
    def _write_reg(self, offset: int, value: int) -> None:
        """Backend: one register write (offset and value already checked)."""

    @abstractmethod
    def _transact(self, send: NDArray[np.uint32], recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        """Backend: one stream transaction (``send`` already a contiguous uint32 array)."""

    def _transact_bitplanes(self, send: BitplaneStream, recv_words: int, trigger: RegWrite) -> NDArray[np.uint32]:
        """Backend: a MULTIPLY's packet of bit-planes; by default its chain frames as words."""
        return self._transact(as_words(send.words()), recv_words, trigger)

    def batch(self) -> AbstractContextManager[None]:
        """A run of many transacts that belong together (e.g. a form-verify ramp). Transports with
        per-transact side costs (the emulator's state file) may defer them to the end of the batch."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the link."""

    #: True where the chip's state lives in a file the host saves (the emulator); False where it
    #: lives in the cells themselves (a board).
    state_in_file: bool = False

    def save_state(self, path: Path) -> None:
        """Save the chip's state to ``path`` (only where ``state_in_file``)."""
        raise UsageError(f"the {self.name} backend keeps its state in the cells; there is no state file to save")

    def save(self) -> None:  # noqa: B027 - optional hook
        """Write the chip's state now to the file it was opened from (the emulator with a state file and autosave);
        nothing where the state lives in the cells (a board) or in memory."""

    def session_note(self) -> str | None:
        """What the user should know about how this link was opened (e.g. a resumed serial session)."""
        return None

    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass on the board: a real board waits; the emulator advances its virtual clock."""
        time.sleep(seconds)

    def board_clock(self) -> float:
        """Seconds on the board's clock (a real board: the host's monotonic clock)."""
        return time.monotonic()

    def board_cost(self) -> BoardCost | None:
        """Board time and energy counted so far, where the overlay models them (the emulator); None on a board."""
        return None

    def chip_model(self) -> Any:
        """The emulated chip's model (``rramsim.config.ChipModelConfig``) where the overlay is the emulator; None on
        a board."""
        return None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_words(send: NDArray[np.uint32] | None) -> NDArray[np.uint32]:
    """Normalise a send payload to a contiguous 1-D uint32 array."""
    if send is None:
        return np.zeros(0, dtype=np.uint32)
    words = np.ascontiguousarray(send, dtype=np.uint32).ravel()
    return words
