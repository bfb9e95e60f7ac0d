"""The BL line-drive chain: SN74HC595 shift registers selecting CD4051B channels.

Layout (ours, documented in docs/protocol.md): BL r's CD4051B nibble (A, B, C, INH) sits at
595 number r // 2, outputs QA-QD (even r) or QE-QH (odd r).  SN74HC595 datasheet: SER shifts
in on the rising SRCLK edge, QA first; cascaded parts pass QH' on, so the first bit shifted in
ends at the far end of the chain.  CD4051B datasheet: channel = 4*C + 2*B + A, INH = 1 turns
every switch off.

Everything is vectorised: frames for a whole batch of bit-planes are built or decoded at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.errors import UsageError
from rramctl.protocol import (
    ARRAY_LINES,
    CHAIN_NIBBLE_BITS,
    CHAIN_NIBBLE_INH,
    CHAIN_NIBBLE_SELECT,
    FRAME_WORDS,
    MAX_BITS,
    MuxSource,
)

if MAX_BITS > 8:  # bit-plane inputs travel as uint8 (BitplaneStream, the driver): a wider MAX_BITS needs a wider type
    raise RuntimeError(f"the protocol's MAX_BITS {MAX_BITS} exceeds the 8 bits of the bit-plane stream's inputs")

N_LINES = ARRAY_LINES  # BLs a chain frame drives
BITS_PER_LINE = CHAIN_NIBBLE_BITS  # one CHAIN_NIBBLE per line (protocol.toml [word.CHAIN_NIBBLE])
# The vectorised packing below moves whole bytes (two nibbles a byte, the higher line's on top: the hot path of
# every MULTIPLY packet), so it holds for a 4-bit nibble only; the nibble values themselves are built and split
# with the fields' shifts and masks.
if BITS_PER_LINE != 4:
    raise RuntimeError(f"linedrive packs two 4-bit nibbles a byte; protocol.toml's CHAIN_NIBBLE has {BITS_PER_LINE}")
CHAIN_BITS = N_LINES * BITS_PER_LINE  # 2048 bits = 256 cascaded SN74HC595
LINES_PER_WORD = 32 // BITS_PER_LINE  # 8 nibbles per chain word
assert CHAIN_BITS // 32 == FRAME_WORDS  # 64 words per chain frame (protocol)

# Chain position of (line r, nibble bit b) = 4 * r + b (b: 0=A 1=B 2=C 3=INH), i.e. 8 * (r // 2) +
# 4 * (r % 2) + b; stream bit p = CHAIN_BITS - 1 - position.  So the stream, read MSB first, is the
# hex digits INH C B A of lines 511, 510, ..., 0: word w holds lines 511 - 8w (top nibble) down to
# 504 - 8w (bottom nibble), and one nibble = CHAIN_NIBBLE_SELECT | CHAIN_NIBBLE_INH (select | INH << 3).
SELECT_MAX = (1 << CHAIN_NIBBLE_SELECT.width) - 1  # highest CD4051B channel (7)
SELECT_SHIFT = np.uint8(CHAIN_NIBBLE_SELECT.lsb)
SELECT_MASK = np.uint8(CHAIN_NIBBLE_SELECT.mask)  # the nibble's select bits in place
INH_SHIFT = np.uint8(CHAIN_NIBBLE_INH.lsb)
INH_BIT = CHAIN_NIBBLE_INH.mask  # the nibble's INH bit in place
LOW_NIBBLE = np.uint8((1 << BITS_PER_LINE) - 1)
READ_NIBBLE = np.uint8(CHAIN_NIBBLE_SELECT.put(int(MuxSource.READ)))  # V_READ, not inhibited


class LineDriveError(UsageError):
    """A select outside the CD4051B channels or a malformed chain frame."""


def _pack(nib: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """(N, 512) nibbles in line order -> (N, 64) chain words."""
    rev = nib[:, ::-1]
    pairs = np.ascontiguousarray((rev[:, 0::2] << np.uint8(BITS_PER_LINE)) | rev[:, 1::2])  # (N, 256) stream bytes
    return pairs.view(">u4").astype(np.uint32)


def encode_frames(select: NDArray[np.integer], inhibit: NDArray[np.bool_]) -> NDArray[np.uint32]:
    """Chain frames for (N, 512) selects (0-7) and inhibits; returns (N, 64) uint32 words."""
    select = np.asarray(select)
    inhibit = np.asarray(inhibit, dtype=bool)
    if select.ndim != 2 or select.shape[1] != N_LINES or inhibit.shape != select.shape:
        raise LineDriveError(f"selects must have shape (N, {N_LINES}), got {select.shape}")
    if select.size and (select.min() < 0 or select.max() > SELECT_MAX):
        raise LineDriveError(f"CD4051B select must be 0-{SELECT_MAX}")
    nib = (select.astype(np.uint8) << SELECT_SHIFT) | (inhibit.astype(np.uint8) << INH_SHIFT)
    return _pack(nib)


def decode_nibbles(frames: NDArray[np.uint32]) -> NDArray[np.uint8]:
    """(N, 64) chain words -> (N, 512) nibbles (CHAIN_NIBBLE: ``select | INH << 3``) in line order."""
    frames = np.asarray(frames, dtype=np.uint32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_WORDS:
        raise LineDriveError(f"chain frames must have shape (N, {FRAME_WORDS}), got {frames.shape}")
    return _unpack(frames)[:, ::-1]


def _unpack(words: NDArray[np.uint32]) -> NDArray[np.uint8]:
    """(N, W) words -> (N, 8W) nibbles in stream order (top nibble of word 0 first)."""
    b = np.ascontiguousarray(words.astype(">u4")).view(np.uint8)  # (N, 4W) stream bytes
    nib = np.empty((b.shape[0], 2 * b.shape[1]), dtype=np.uint8)
    nib[:, 0::2] = b >> np.uint8(BITS_PER_LINE)
    nib[:, 1::2] = b & LOW_NIBBLE
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
    lines = (N_LINES - 1 - (LINES_PER_WORD * words[:, None] + np.arange(LINES_PER_WORD)[None, :])).ravel()
    return nib[:, ::-1], lines[::-1].astype(np.int64)


def decode_frames(frames: NDArray[np.uint32]) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Inverse of :func:`encode_frames`: (N, 64) words -> (selects (N, 512), inhibits)."""
    nib = decode_nibbles(frames)
    select: NDArray[np.uint8] = (nib & SELECT_MASK) >> SELECT_SHIFT
    return select, (nib & np.uint8(INH_BIT)) != 0


def bitplane_frames(bits: NDArray[np.integer[Any]] | NDArray[np.bool_], row_start: int = 0) -> NDArray[np.uint32]:
    """Frames that put V_READ on the rows whose bit is 1 and ground the rest.

    ``bits`` is (N, n_rows) of 0/1 applied to rows ``row_start ..``; rows outside are grounded.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2 or row_start < 0 or row_start + bits.shape[1] > N_LINES:
        raise LineDriveError(f"bit-planes of shape {bits.shape} at row {row_start} do not fit")
    n = bits.shape[1]
    frames = np.zeros((bits.shape[0], FRAME_WORDS), dtype=np.uint32)
    if n == 0 or bits.shape[0] == 0:
        return frames
    per = LINES_PER_WORD
    lo, hi = row_start // per * per, -(-(row_start + n) // per) * per  # whole words of 8 lines
    nib = np.zeros((bits.shape[0], hi - lo), dtype=np.uint8)  # MuxSource.GND, not inhibited
    nib[:, row_start - lo : row_start - lo + n] = (bits != 0).view(np.uint8) * READ_NIBBLE
    w0, w1 = (N_LINES - hi) // per, (N_LINES - lo) // per  # words holding lines hi-1 .. lo
    frames[:, w0:w1] = _pack(nib)
    return frames


@dataclass(frozen=True)
class BitplaneStream:
    """A MULTIPLY's input packet before encoding: ``inputs`` (B, n_rows) of unsigned ``bits``-bit
    integers on the rows ``row_start ..``; the packet is one chain frame per bit-plane, vector-major,
    LSB first (frame ``b * bits + k`` puts V_READ on the rows whose bit k of vector b is 1 and grounds
    the rest), i.e. ``bitplane_frames(planes(), row_start)``.  A transport that sends words encodes it
    (:meth:`words`); the emulator's overlay may take it as it is and skip encoding and decoding
    (docs/emulator.md, "Performance"; tests/test_emulator_fast_paths.py proves the two give the same
    codes)."""

    inputs: NDArray[np.uint8]
    bits: int
    row_start: int

    def __post_init__(self) -> None:
        if self.inputs.dtype != np.uint8 or self.inputs.ndim != 2 or not 1 <= self.bits <= MAX_BITS:
            raise LineDriveError(f"bit-plane inputs must be 2-D uint8 with 1-{MAX_BITS} bits, got {self.inputs.dtype} "
                                 f"{self.inputs.shape}, {self.bits} bits")  # fmt: skip

    @property
    def n_frames(self) -> int:
        return int(self.inputs.shape[0]) * self.bits

    @property
    def n_words(self) -> int:
        return self.n_frames * FRAME_WORDS

    def plane_matrix(self, dtype: type[np.generic] = np.bool_) -> NDArray[Any]:
        """The bit-planes as a (B * bits, n_rows) 0/1 matrix of ``dtype``, frame order."""
        out = np.empty((self.inputs.shape[0], self.bits, self.inputs.shape[1]), dtype=dtype)
        for k in range(self.bits):
            out[:, k, :] = (self.inputs >> np.uint8(k)) & np.uint8(1)
        return out.reshape(-1, self.inputs.shape[1])

    def words(self) -> NDArray[np.uint32]:
        """The packet as stream words: one chain frame per bit-plane."""
        return bitplane_frames(self.plane_matrix(), self.row_start).ravel()


def unique_vectors(x: NDArray[np.integer]) -> tuple[NDArray[np.integer], NDArray[np.int64]]:
    """The distinct rows of ``x`` (N, n) and, for every row, the index of its distinct row, exactly as
    ``np.unique(x, axis=0, return_inverse=True)`` gives them (sorted rows), but faster: rows of values
    0-15 (up to 16 of them) or 0-255 (up to 8) as one uint64 each, other rows of values 0-255 as byte strings
    (one 1-D sort; byte order = value order), other rows through a
    64-bit hash per row (a wrapping integer dot product, collisions checked: np.unique then)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        uniq, inv = np.unique(x, axis=0, return_inverse=True)
        return uniq, inv.ravel().astype(np.int64)
    lo = 0 if np.issubdtype(x.dtype, np.unsignedinteger) else int(x.min())  # (no pass for what cannot be < 0)
    hi, n = int(x.max()), x.shape[1]
    if lo >= 0 and (hi < 16 and 4 * n <= 64 or hi < 256 and 8 * n <= 64):  # a row fits one uint64, first value on top
        width = 4 if hi < 16 and 4 * n <= 64 else 8
        key = np.zeros(x.shape[0], dtype=np.uint64)
        for j in range(n):  # number order of the keys = the rows' order (np.unique's)
            key |= x[:, j].astype(np.uint64) << np.uint64(width * (n - 1 - j))
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        return x[first], inv.ravel().astype(np.int64)
    if lo >= 0 and hi < 256:
        first, inv = _unique_byte_rows(np.ascontiguousarray(x, dtype=np.uint8))
        return x[first], inv
    h = x.astype(np.int64, copy=False) @ _hash_weights(x.shape[1])  # wrapping int64 arithmetic
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    uniq = x[first]
    if not np.array_equal(uniq[inv], x):  # two distinct rows share a hash
        uniq, inv = np.unique(x, axis=0, return_inverse=True)
        return uniq, inv.ravel().astype(np.int64)
    order = np.lexsort(uniq.T[::-1])  # the sorted order np.unique(axis=0) returns
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inv.ravel()]


def _unique_byte_rows(b: NDArray[np.uint8]) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
    """``np.unique(rows as byte strings, return_index=True, return_inverse=True)[1:]`` for a C-contiguous
    (N, n) uint8 array: the same stable sort of the byte strings, but neighbours compared as bytes (as uint64
    words where n is a multiple of 8), not as numpy void scalars (4x the sort's own time for 512-byte rows)."""
    n = b.shape[1]
    perm = b.view(f"V{n}").ravel().argsort(kind="stable")  # np.unique's sort (return_index: stable)
    rows = b[perm]
    if n % 8 == 0:
        rows = rows.view(np.uint64)
    new = np.empty(len(perm), dtype=bool)
    new[:1] = True
    new[1:] = (rows[1:] != rows[:-1]).any(axis=1)  # a row unlike the one before it: a distinct row starts
    inv = np.empty(len(perm), dtype=np.int64)
    inv[perm] = np.cumsum(new) - 1
    return perm[new], inv


def _hash_weights(n: int) -> NDArray[np.int64]:
    """Fixed odd 64-bit multipliers (splitmix64 of the position; no random state)."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z | np.uint64(1)).view(np.int64)


def idle_frame() -> NDArray[np.uint32]:
    """The safe idle frame: every CD4051B inhibited, every BL floating."""
    return encode_frames(np.zeros((1, N_LINES), np.uint8), np.ones((1, N_LINES), bool))[0]
