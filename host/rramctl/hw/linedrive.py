"""The BL line-drive chain: SN74HC595 shift registers selecting CD4051B channels.

Layout (ours, documented in docs/protocol.md): BL r's CD4051B nibble (A, B, C, INH) sits at
595 number r // 2, outputs QA-QD (even r) or QE-QH (odd r).  SN74HC595 datasheet: SER shifts
in on the rising SRCLK edge, QA first; cascaded parts pass QH' on, so the first bit shifted in
ends at the far end of the chain.  CD4051B datasheet: channel = 4*C + 2*B + A, INH = 1 turns
every switch off.

Everything is vectorised: frames for a whole batch of bit-planes are built or decoded at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rramctl.errors import UsageError

N_LINES = 512
BITS_PER_LINE = 4
CHAIN_BITS = N_LINES * BITS_PER_LINE  # 2048 bits = 256 cascaded SN74HC595
FRAME_WORDS = CHAIN_BITS // 32  # 64 words per chain frame

# CD4051B sources on each BL (ours).
SRC_GND = 0
SRC_READ = 1  # DAC channel 3
SRC_BL_PROG = 2  # DAC channel 1

# Chain position of (line r, nibble bit b) = 4 * r + b (b: 0=A 1=B 2=C 3=INH), i.e. 8 * (r // 2) +
# 4 * (r % 2) + b; stream bit p = CHAIN_BITS - 1 - position.  So the stream, read MSB first, is the
# hex digits INH C B A of lines 511, 510, ..., 0: word w holds lines 511 - 8w (top nibble) down to
# 504 - 8w (bottom nibble), and one nibble = select | INH << 3.
INH_BIT = 1 << 3


class LineDriveError(UsageError):
    """A select outside the CD4051B channels or a malformed chain frame."""


def _pack(nib: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """(N, 512) nibbles in line order -> (N, 64) chain words."""
    rev = nib[:, ::-1]
    pairs = np.ascontiguousarray((rev[:, 0::2] << 4) | rev[:, 1::2])  # (N, 256) stream bytes
    return pairs.view(">u4").astype(np.uint32)


def encode_frames(select: NDArray[np.integer], inhibit: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Chain frames for (N, 512) selects (0-7) and inhibits; returns (N, 64) uint32 words."""
    select = np.asarray(select)
    inhibit = np.asarray(inhibit, dtype=bool)
    if select.ndim != 2 or select.shape[1] != N_LINES or inhibit.shape != select.shape:
        raise LineDriveError(f"selects must have shape (N, {N_LINES}), got {select.shape}")
    if select.size and (select.min() < 0 or select.max() > 7):
        raise LineDriveError("CD4051B select must be 0-7")
    nib = select.astype(np.uint8) | (inhibit.astype(np.uint8) << np.uint8(3))
    return _pack(nib)


def decode_nibbles(frames: NDArray[np.uint32]) -> NDArray[np.uint8]:
    """(N, 64) chain words -> (N, 512) nibbles ``select | INH << 3`` in line order."""
    frames = np.asarray(frames, dtype=np.uint32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_WORDS:
        raise LineDriveError(f"chain frames must have shape (N, {FRAME_WORDS}), got {frames.shape}")
    return _unpack(frames)[:, ::-1]


def _unpack(words: NDArray[np.uint32]) -> NDArray[np.uint8]:
    """(N, W) words -> (N, 8W) nibbles in stream order (top nibble of word 0 first)."""
    b = np.ascontiguousarray(words.astype(">u4")).view(np.uint8)  # (N, 4W) stream bytes
    nib = np.empty((b.shape[0], 2 * b.shape[1]), dtype=np.uint8)
    nib[:, 0::2] = b >> 4
    nib[:, 1::2] = b & 0xF
    return nib


def driven_lines(frames: NDArray[np.uint32]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Nibbles of only the lines that some frame does not leave at nibble 0 (grounded, not inhibited):
    returns (N, m) nibbles and the m line numbers, ascending.  A line whose nibble is 0 in every
    frame is grounded throughout and carries no drive; the whole word of 8 lines is decoded or not."""
    frames = np.asarray(frames, dtype=np.uint32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_WORDS:
        raise LineDriveError(f"chain frames must have shape (N, {FRAME_WORDS}), got {frames.shape}")
    words = np.flatnonzero(np.bitwise_or.reduce(frames, axis=0))
    nib = _unpack(frames[:, words])  # stream order within the chosen words
    lines = (N_LINES - 1 - (8 * words[:, None] + np.arange(8)[None, :])).ravel()
    return nib[:, ::-1], lines[::-1].astype(np.int64)


def decode_frames(frames: NDArray[np.uint32]) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Inverse of :func:`encode_frames`: (N, 64) words -> (selects (N, 512), inhibits)."""
    nib = decode_nibbles(frames)
    select: NDArray[np.uint8] = nib & np.uint8(7)
    return select, (nib & np.uint8(INH_BIT)) != 0


def bitplane_frames(bits: NDArray[np.integer], row_start: int = 0) -> NDArray[np.uint32]:
    """Frames that put V_READ on the rows whose bit is 1 and ground the rest.

    ``bits`` is (N, n_rows) of 0/1 applied to rows ``row_start ..``; rows outside are grounded.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2 or row_start < 0 or row_start + bits.shape[1] > N_LINES:
        raise LineDriveError(f"bit-planes of shape {bits.shape} at row {row_start} do not fit")
    nib = np.zeros((bits.shape[0], N_LINES), dtype=np.uint8)  # SRC_GND, not inhibited
    nib[:, row_start : row_start + bits.shape[1]] = (bits != 0).view(np.uint8) * np.uint8(SRC_READ)
    return _pack(nib)


def idle_frame() -> NDArray[np.uint32]:
    """The safe idle frame: every CD4051B inhibited, every BL floating."""
    return encode_frames(np.zeros((1, N_LINES), np.uint8), np.ones((1, N_LINES), bool))[0]
