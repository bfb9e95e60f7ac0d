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

# chain position q -> stream bit index p = CHAIN_BITS - 1 - q.
# chain position of (line r, nibble bit b): 8 * (r // 2) + 4 * (r % 2) + b, b: 0=A 1=B 2=C 3=INH
_LINES = np.arange(N_LINES)
_CHAIN_POS = (8 * (_LINES // 2) + 4 * (_LINES % 2))[:, None] + np.arange(BITS_PER_LINE)[None, :]
_STREAM_POS = CHAIN_BITS - 1 - _CHAIN_POS  # (512, 4) stream bit index of each nibble bit


class LineDriveError(UsageError):
    """A select outside the CD4051B channels or a malformed chain frame."""


def encode_frames(select: NDArray[np.integer], inhibit: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Chain frames for (N, 512) selects (0-7) and inhibits; returns (N, 64) uint32 words."""
    select = np.asarray(select)
    inhibit = np.asarray(inhibit, dtype=bool)
    if select.ndim != 2 or select.shape[1] != N_LINES or inhibit.shape != select.shape:
        raise LineDriveError(f"selects must have shape (N, {N_LINES}), got {select.shape}")
    if select.size and (select.min() < 0 or select.max() > 7):
        raise LineDriveError("CD4051B select must be 0-7")
    nib = np.stack(
        [(select >> 0) & 1, (select >> 1) & 1, (select >> 2) & 1, inhibit.astype(select.dtype)],
        axis=-1,
    ).astype(np.uint8)  # (N, 512, 4)
    stream = np.zeros((select.shape[0], CHAIN_BITS), dtype=np.uint8)
    stream[:, _STREAM_POS.ravel()] = nib.reshape(select.shape[0], -1)
    packed = np.packbits(stream, axis=1, bitorder="big")  # MSB of each byte first
    return packed.reshape(select.shape[0], FRAME_WORDS, 4).astype(np.uint32) @ np.array(
        [1 << 24, 1 << 16, 1 << 8, 1], dtype=np.uint32
    )


def decode_frames(frames: NDArray[np.uint32]) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Inverse of :func:`encode_frames`: (N, 64) words -> (selects (N, 512), inhibits)."""
    frames = np.asarray(frames, dtype=np.uint32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_WORDS:
        raise LineDriveError(f"chain frames must have shape (N, {FRAME_WORDS}), got {frames.shape}")
    as_bytes = frames.astype(">u4").view(np.uint8).reshape(frames.shape[0], FRAME_WORDS * 4)
    stream = np.unpackbits(as_bytes, axis=1, bitorder="big")  # (N, 2048)
    nib = stream[:, _STREAM_POS]  # (N, 512, 4)
    select = (nib[..., 0] | (nib[..., 1] << 1) | (nib[..., 2] << 2)).astype(np.uint8)
    return select, nib[..., 3].astype(bool)


def bitplane_frames(bits: NDArray[np.integer], row_start: int = 0) -> NDArray[np.uint32]:
    """Frames that put V_READ on the rows whose bit is 1 and ground the rest.

    ``bits`` is (N, n_rows) of 0/1 applied to rows ``row_start ..``; rows outside are grounded.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2 or row_start < 0 or row_start + bits.shape[1] > N_LINES:
        raise LineDriveError(f"bit-planes of shape {bits.shape} at row {row_start} do not fit")
    select = np.full((bits.shape[0], N_LINES), SRC_GND, dtype=np.uint8)
    select[:, row_start : row_start + bits.shape[1]] = np.where(bits != 0, SRC_READ, SRC_GND)
    return encode_frames(select, np.zeros_like(select, dtype=bool))


def idle_frame() -> NDArray[np.uint32]:
    """The safe idle frame: every CD4051B inhibited, every BL floating."""
    return encode_frames(np.zeros((1, N_LINES), np.uint8), np.ones((1, N_LINES), bool))[0]
