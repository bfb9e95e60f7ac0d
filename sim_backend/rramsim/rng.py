"""Counter-based, order-independent randomness (ours).

Every draw is a pure function of ``(seed, stream, indices...)``: a chain of splitmix64 finalisers
over uint64 (Steele, Lea, Flood 2014, "Fast splittable pseudorandom number generators"; the
finaliser constants are those of java.util.SplittableRandom).  There is no generator state, so the
vectorised emulator and the cocotb benches, which ask for one ADC sample or one pulse at a time in
RTL order, get bit-identical numbers.  Everything here is integer arithmetic; no floats.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)

NORMAL_SIGMA = 1 << 16  # sigma of normal_int (Irwin-Hall: 12 uniforms of 16 bits)
NORMAL_TERMS = 12
PPM = 1_000_000


class Stream(IntEnum):
    """Stream ids: one per physical quantity, so two quantities never share numbers."""

    FORM_THRESHOLD = 1  # per cell: forming voltage threshold
    FORMED_G = 2  # per cell: conductance after forming (relative to the compliance mean)
    PRISTINE_G = 3  # per cell: pristine conductance
    STUCK = 4  # per cell: stuck-on / stuck-off
    RESET_C2C = 5  # per (op serial, pulse): off-state conductance after a reset
    SET_C2C = 6  # per (op serial, pulse): conductance after a set
    PROGRAM_NOISE = 7  # per (op serial, cell position, pulse number): write-verify increment noise
    READ_NOISE = 8  # per (op serial, sample): ADC read noise
    VERIFY_NOISE = 9  # per (op serial, cell position, read number): write-verify read noise
    RELAXATION = 10  # per pulse (programming: serial, position, pulse number; set: serial, position)
    NOISE_FLOOR = 11  # per (op serial, sample): current-independent read noise
    COL_OFFSET = 12  # per column: TIA offset current
    COL_GAIN = 13  # per column: read-out gain error
    ADC_NOISE = 14  # per (op serial, sample): ADC input noise


def mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    x = np.asarray(x, dtype=_U64)
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> _U64(30))) * _M1
        z = (z ^ (z >> _U64(27))) * _M2
        return z ^ (z >> _U64(31))


def _as_u64(a: ArrayLike) -> NDArray[np.uint64]:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"random-draw indices must be integers, got {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise ValueError("random-draw indices must be >= 0")
    return arr.astype(_U64)


def hash64(seed: int, stream: int, *indices: ArrayLike) -> NDArray[np.uint64]:
    """A 64-bit hash of (seed, stream, indices...), broadcast over the index arrays."""
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    h = mix64(np.asarray(seed, dtype=_U64))
    h = mix64(h ^ _U64(stream))
    for idx in indices:
        h = mix64(h ^ _as_u64(idx))
    return np.asarray(h, dtype=_U64)


def uniform_u32(seed: int, stream: int, *indices: ArrayLike) -> NDArray[np.int64]:
    """Uniform integers 0 .. 2**32 - 1."""
    return (hash64(seed, stream, *indices) >> _U64(32)).astype(np.int64)


def uniform_u16(seed: int, stream: int, *indices: ArrayLike) -> NDArray[np.int64]:
    """Uniform integers 0 .. 65535."""
    return (hash64(seed, stream, *indices) >> _U64(48)).astype(np.int64)


def normal_int(seed: int, stream: int, *indices: ArrayLike) -> NDArray[np.int64]:
    """Approximately normal integers, mean 0, sigma exactly 2**16 (Irwin-Hall of 12 uniform u16,
    range +-6 sigma).  Three 64-bit hashes give the twelve 16-bit uniforms."""
    base = hash64(seed, stream, *indices)
    total = np.zeros(base.shape, dtype=np.int64)
    for lane in range(NORMAL_TERMS // 4):
        h = mix64(base ^ _U64(lane))  # = hash64(seed, stream, *indices, lane)
        for k in range(4):
            total += ((h >> _U64(16 * k)) & _U64(0xFFFF)).astype(np.int64)
    return total - NORMAL_TERMS * (NORMAL_SIGMA // 2)


def bernoulli_ppm(seed: int, stream: int, p_ppm: int, *indices: ArrayLike) -> NDArray[np.bool_]:
    """True with probability ``p_ppm`` / 1e6 (exact: compares a u32 with floor(p * 2**32 / 1e6))."""
    if not 0 <= p_ppm <= PPM:
        raise ValueError(f"probability must be 0..{PPM} ppm, got {p_ppm}")
    return uniform_u32(seed, stream, *indices) < (p_ppm << 32) // PPM


def scaled_normal(mean: ArrayLike, sigma: ArrayLike, z: NDArray[np.int64]) -> NDArray[np.int64]:
    """``mean + floor(sigma * z / 2**16)`` in integers (sigma in the same units as mean)."""
    return np.asarray(mean, dtype=np.int64) + np.floor_divide(np.asarray(sigma, dtype=np.int64) * z, NORMAL_SIGMA)
