"""Compiled CPU kernel of the read-out (numba), used by the numpy path when numba is installed.

:func:`rramsim.arraymath.readout_codes` spends most of a multiply hashing noise: three splitmix64
rounds per normal draw in numpy are nine whole-array passes each.  This module does the same
arithmetic one sample at a time in a compiled loop (every term of the sample in registers), so
the noise, the read-out chain and the ADC cost one pass.  It is not a second model: it is the same
integer and float64 arithmetic as arraymath's numpy code, term for term, and the equality tests
(tests/test_emulator_fast_paths.py) compare the two on random cases in every default run.

Why numba (docs/emulator.md, "Performance"): a hand-written C extension would need a compiler on
every user's machine; numba compiles this loop at first use (cached on disk afterwards), ships
wheels for the laptops and servers the emulator runs on, and is optional: without it (the PYNQ
board's 32-bit ARM, or a machine where it does not install) the numpy code runs and gives the same
codes.

Exactness: integer ``+ - * // >>`` on int64/uint64 wrap and floor exactly as numpy's; the read-noise
product is ``((S * z) * ppm) / D`` in float64 with no fused multiply-add (numba does not contract
without ``fastmath``), then floor, as arraymath.read_noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

numba: Any
try:  # optional: the numpy path runs without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

F = TypeVar("F", bound=Callable[..., Any])
AVAILABLE = numba is not None
SIGMA_BITS = 16  # rng.NORMAL_SIGMA = 2**16: floor division by it is an arithmetic shift
PPM = 1_000_000  # rng.PPM, a compile-time constant (the compiler divides by it with a multiply)
EXACT_QUOTIENT = 1 << 50  # below this a float64 quotient is within 1 of the true one
BLOCK = 2048  # samples per block: the block's noise draws stay in the L1 cache


def _njit(**options: Any) -> Callable[[F], F]:
    """numba.njit where numba is installed; else the plain Python function (never called then)."""

    def wrap(f: F) -> F:
        return numba.njit(**options)(f) if numba is not None else f

    return wrap


@_njit(inline="always")
def _mix64(h: np.uint64) -> np.uint64:
    """splitmix64's finaliser (rng.mix64)."""
    h = h + np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@_njit(inline="always")
def _lane_sum(h: np.uint64) -> np.int64:
    """The sum of the four 16-bit fields of one lane hash."""
    mask = np.uint64(0xFFFF)
    return (
        np.int64(h & mask) + np.int64((h >> np.uint64(16)) & mask)
        + np.int64((h >> np.uint64(32)) & mask) + np.int64(h >> np.uint64(48))
    )  # fmt: skip


@_njit(inline="always")
def _normals_of_bases(base: NDArray[np.uint64], z: NDArray[np.int64]) -> None:
    """z = rng.normal_int of the samples whose base hashes are ``base`` (mix64(key ^ prefix)): the sum of the
    four 16-bit fields of three lane hashes mix64(base ^ lane), less the Irwin-Hall mean.  One loop per lane
    (a loop of one hash the compiler turns into vector code; the three hashes in one loop it does not)."""
    n = z.shape[0]
    for i in range(n):
        z[i] = -np.int64(6 << SIGMA_BITS)
    for lane in range(3):
        for i in range(n):
            z[i] += _lane_sum(_mix64(base[i] ^ np.uint64(lane)))


@_njit(inline="always")
def _draw(key: NDArray[np.int64], a: int, prefix: np.uint64, z: NDArray[np.int64], base: NDArray[np.uint64]) -> None:
    """z = the normal draws of samples a .. a + len(z) - 1, keyed by ``key`` (empty: by the sample index);
    ``base``: scratch of len(z) or more.  rng.normal_int(seed, stream, serial, key) given ``prefix`` =
    prefix_hash(seed, stream, serial)."""
    n = z.shape[0]
    if key.shape[0]:
        for i in range(n):
            base[i] = _mix64(np.uint64(key[a + i]) ^ prefix)
    else:
        for i in range(n):
            base[i] = _mix64(np.uint64(a + i) ^ prefix)
    _normals_of_bases(base[:n], z)


@_njit(inline="always")
def _floordiv_estimate(n: int, d: int, inv: float) -> int:
    """floor(n / d) for d > 0 and |n| < EXACT_QUOTIENT, branch-free: the float64 estimate (within 1 of
    the quotient: n is exact and 1/d rounds by 2**-53) corrected by one step."""
    q = int(np.floor(float(n) * inv))
    r = n - q * d
    return q - int(r < 0) + int(r >= d)


@_njit(inline="always")
def _widest(x: NDArray[np.int64]) -> np.int64:
    """max |x| (0 for none)."""
    w = np.int64(0)
    for i in range(x.shape[0]):
        w = max(w, abs(x[i]))
    return w


@_njit(inline="always")
def _add_floordiv(x: NDArray[np.int64], num: NDArray[np.int64], factor: NDArray[np.int64], d: int) -> None:
    """x += floor(num * factor / d) element-wise (``factor`` broadcast when it has one element): float
    estimates where every product is below EXACT_QUOTIENT, else integer division."""
    n, one = x.shape[0], factor.shape[0] == 1
    if _widest(num) * _widest(factor) < EXACT_QUOTIENT:
        inv = 1.0 / float(d)
        for i in range(n):
            x[i] += _floordiv_estimate(num[i] * factor[0 if one else i], d, inv)
    else:
        for i in range(n):
            x[i] += (num[i] * factor[0 if one else i]) // d


@_njit(cache=True, nogil=True, error_model="numpy")
def readout_kernel(
    s: NDArray[np.int64],
    key: NDArray[np.int64],
    prefixes: NDArray[np.uint64],
    params: NDArray[np.int64],
    offset: NDArray[np.int64],
    gain: NDArray[np.int64],
    out: NDArray[np.int64],
) -> int:
    """ADC codes of the samples ``s`` (1-D) into ``out``; returns 1 where an input is too large for the
    integer ADC model (the caller raises; ``out`` is then partly written), else 0.

    ``key``: each sample's noise key (empty: the sample's index); ``prefixes``: hash prefixes of the
    READ_NOISE, NOISE_FLOOR and ADC_NOISE streams; ``params``: read_noise_ppm, chain (0/1), clip,
    noise_floor_du, adc_noise_mlsb, gain_p, gain_q, code_min, code_max, adc_limit, period; ``offset``
    and ``gain``: the column offset (drive-sum units) and gain error (ppm) of the columns, sample ``i``
    being in column ``i % period`` (empty where the model has none).  See arraymath.readout_codes for
    each term.  Works a block at a time (a whole number of periods, so every block starts at column 0),
    one simple loop per term (loops the compiler vectorises; a loop that mixes every term does not)."""
    ppm_rn, chain, clip, nf_du, an_mlsb = params[0], params[1], params[2], params[3], params[4]
    p, q, cmin, cmax, limit, period = params[5], params[6], params[7], params[8], params[9], params[10]
    scale, denom = float(ppm_rn), float(PPM << SIGMA_BITS)
    size = period * max(1, BLOCK // period)  # samples per block
    off_t = np.zeros(size if offset.shape[0] else 0, dtype=np.int64)  # the tables, tiled over a block
    gain_t = np.zeros(size if gain.shape[0] else 0, dtype=np.int64)
    for j in range(off_t.shape[0]):
        off_t[j] = offset[j % period]
    for j in range(gain_t.shape[0]):
        gain_t[j] = gain[j % period]
    z = np.zeros(size, dtype=np.int64)
    base = np.zeros(size, dtype=np.uint64)
    x = np.zeros(size, dtype=np.int64)
    scratch = np.zeros(size, dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    for a in range(0, s.shape[0], size):
        m = min(size, s.shape[0] - a)
        s_b, out_b, x_b, z_b = s[a : a + m], out[a : a + m], x[:m], z[:m]
        x_b[:] = s_b
        if ppm_rn != 0:  # read noise: floor(S * z * ppm / (sigma * 1e6)), float64 left to right
            _draw(key, a, prefixes[0], z_b, base)
            for j in range(m):
                x_b[j] += np.int64(np.floor(float(s_b[j]) * float(z_b[j]) * scale / denom))
        if chain != 0:
            for j in range(m):
                x_b[j] = min(max(x_b[j], -clip), clip)
            if off_t.shape[0]:
                for j in range(m):
                    x_b[j] += off_t[j]
            if nf_du != 0:  # noise floor: floor(z * sigma_du / sigma), a shift
                _draw(key, a, prefixes[1], z_b, base)
                for j in range(m):
                    x_b[j] += (z_b[j] * nf_du) >> SIGMA_BITS
            if gain_t.shape[0]:  # gain error: floor(x * ppm / 1e6)
                scratch[:m] = x_b
                _add_floordiv(x_b, scratch[:m], gain_t[:m], PPM)
            if an_mlsb != 0:  # ADC input noise: floor(z * mlsb * q / (1000 * p * sigma))
                _draw(key, a, prefixes[2], z_b, base)
                one[0] = an_mlsb * q
                _add_floordiv(x_b, z_b, one, 1000 * p << SIGMA_BITS)
        widest = _widest(x_b)
        if widest > limit:
            return 1
        if widest * 2 * p + q < EXACT_QUOTIENT:  # the ADC: clamp(floor((2pS + q) / 2q))
            inv = 1.0 / float(2 * q)
            for j in range(m):
                out_b[j] = min(max(_floordiv_estimate(x_b[j] * (2 * p) + q, 2 * q, inv), cmin), cmax)
        else:
            for j in range(m):
                out_b[j] = min(max((x_b[j] * (2 * p) + q) // (2 * q), cmin), cmax)
    return 0


@_njit(inline="always")
def _log2_fixed(v: int, mant: int, frac: int) -> int:
    """rramsim.device.log2_fixed_array of one value: the integer part (bit length - 1), then ``frac``
    fraction bits by squaring the ``mant``-bit mantissa."""
    one = np.int64(1) << mant
    ip = np.int64(0)
    t = v
    for shift in (32, 16, 8, 4, 2, 1):
        if t >= np.int64(1) << shift:
            t >>= shift
            ip += shift
    m = v >> (ip - mant) if ip >= mant else v << (mant - ip)
    result = ip
    for _ in range(frac):
        m = (m * m) >> mant
        result <<= 1
        if m >= 2 * one:
            m >>= 1
            result |= 1
    return int(result)


@_njit(cache=True, nogil=True)
def log2_fixed_kernel(x: NDArray[np.int64], mant: int, frac: int, out: NDArray[np.int64]) -> None:
    """rramsim.device.log2_fixed_array, element by element."""
    for i in range(x.shape[0]):
        out[i] = _log2_fixed(x[i], mant, frac)


@_njit(cache=True, nogil=True, error_model="numpy")
def aged_kernel(
    g: NDArray[np.int64],
    t_pulse: NDArray[np.int64],
    relax: NDArray[np.int64],
    formed: NDArray[np.bool_],
    now: NDArray[np.int64],
    params: NDArray[np.int64],
    out: NDArray[np.int64],
) -> None:
    """rramsim.device.aged, cell by cell: relaxation, then log-time drift of formed cells, then the
    clip to 1 .. max_ns, for cells pulsed at ``t_pulse`` >= 0 (others keep g).  ``now``: one time for
    every cell (length 1) or each cell's own; ``params``: tau_us, ppm_per_decade, t0_us, log2(t0),
    off_ns, max_ns, mantissa bits, fraction bits, PPM * LOG2_10."""
    tau, ppm_dec, t0, log2_t0, off, max_ns = params[0], params[1], params[2], params[3], params[4], params[5]
    mant, frac, scale = params[6], params[7], params[8]
    one_now = now.shape[0] == 1
    for i in range(g.shape[0]):
        t = t_pulse[i]
        if t < 0:
            out[i] = g[i]
            continue
        dt = max((now[0] if one_now else now[i]) - t, 0)
        v = g[i] + (relax[i] * dt) // (dt + tau)
        if formed[i] and ppm_dec != 0:
            decades = _log2_fixed(dt + t0, mant, frac) - log2_t0
            above = max(v - off, 0)
            v = v - min(above * ppm_dec * decades // scale, above)
        out[i] = min(max(v, 1), max_ns)


@_njit(cache=True, nogil=True)
def count_at_rails(codes: NDArray[np.int64], lo: int, hi: int) -> int:
    """How many codes are at or beyond either end of the ADC range (rramsim.device.saturated)."""
    n = 0
    for i in range(codes.shape[0]):
        n += int(codes[i] <= lo) + int(codes[i] >= hi)
    return n


@_njit(cache=True, nogil=True)
def shift_add_kernel(planes: NDArray[np.int64], lo: int, hi: int, out: NDArray[np.int64]) -> int:
    """out[b, j] = sum_k planes[b, k, j] << k (MULTIPLY's shift and add of its bit-planes' codes); returns how
    many codes are at or beyond either end of the ADC range (count_at_rails of ``planes``)."""
    n = 0
    for b in range(planes.shape[0]):
        for j in range(planes.shape[2]):
            out[b, j] = 0
        for k in range(planes.shape[1]):
            for j in range(planes.shape[2]):
                c = planes[b, k, j]
                out[b, j] += c << k
                n += int(c <= lo) + int(c >= hi)
    return n


@_njit(cache=True, nogil=True)
def bitplanes_kernel(x: NDArray[np.uint8], bits: int, out: NDArray[np.float32]) -> None:
    """out[b, k, j] = bit k of x[b, j] (rramctl.hw.linedrive.BitplaneStream.plane_matrix, as float32)."""
    for b in range(x.shape[0]):
        for k in range(bits):
            for j in range(x.shape[1]):
                out[b, k, j] = (x[b, j] >> k) & 1


@_njit(cache=True, nogil=True)
def scale_add_kernel(product: NDArray[Any], code: int, accumulate: bool, out: NDArray[np.int64]) -> None:
    """out (+)= code * product, the float product (integer-valued, exact) converted to int64."""
    if accumulate:
        for i in range(product.shape[0]):
            out[i] += np.int64(product[i]) * code
    else:
        for i in range(product.shape[0]):
            out[i] = np.int64(product[i]) * code
