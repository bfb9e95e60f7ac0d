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

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from rramctl.protocol import VERIFY_READS_PER_CELL, VERIFY_TOL_SCALE

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
FLOAT_EXACT = 1 << 53  # every integer below this is a float64
LOG2_MANT = 30  # rramsim.device's mantissa bits of the drift's log2
NORMAL_MAX = 6 << SIGMA_BITS  # the largest |z| of rng.normal_int (Irwin-Hall: 12 * 32768)
AGED_BLOCK = 1024  # cells per block of the aged rule
BLOCK = 2048  # samples per block: the block's noise draws stay in the L1 cache


def _wide_vectors_intrinsic() -> Any:
    """An intrinsic that asks LLVM to vectorise the function that calls it with 512-bit vectors where the
    CPU has them (the function attribute "prefer-vector-width"="512"; LLVM's default on AVX-512 CPUs is 256
    bits).  The vector width changes no result: every vectorised loop here is element-wise or an integer
    reduction (no float reassociation without fastmath).  llvmlite lists the attributes it knows; this
    string attribute is added past that list, and skipped where that fails (the code is then as without)."""
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def wide_vectors(typingctx: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            with contextlib.suppress(Exception):  # a hint only
                set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            return context.get_dummy_value()

        return types.none(), codegen

    return wide_vectors


def _njit(**options: Any) -> Callable[[F], F]:
    """numba.njit where numba is installed; else the plain Python function (never called then)."""

    def wrap(f: F) -> F:
        return numba.njit(**options)(f) if numba is not None else f

    return wrap


_wide_vectors: Callable[[], None] = _wide_vectors_intrinsic() if numba is not None else lambda: None


@_njit(inline="always")
def _mix64(h: np.uint64) -> np.uint64:
    """splitmix64's finaliser (rng.mix64)."""
    h = h + np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@_njit(inline="always")
def _lane_fields(h: np.uint64) -> np.uint64:
    """The four 16-bit fields of one lane hash summed two by two: fields 0 + 1 in bits 0-31, 2 + 3 in bits
    32-63 (arraymath.normal_keyed's ``(h & LANES16) + (h >> 16 & LANES16)``)."""
    lanes = np.uint64(0x0000FFFF0000FFFF)
    return (h & lanes) + ((h >> np.uint64(16)) & lanes)


@_njit(inline="always")
def _normals_of_bases(base: NDArray[np.uint64], z: NDArray[np.int64], acc: NDArray[np.uint64]) -> None:
    """z = rng.normal_int of the samples whose base hashes are ``base`` (mix64(key ^ prefix)): the sum of the
    four 16-bit fields of three lane hashes mix64(base ^ lane), less the Irwin-Hall mean; ``acc``: scratch.
    One loop per lane (a loop of one hash the compiler turns into vector code; the three hashes in one loop
    it does not); the fields summed two at a time in the 32-bit halves of one word as arraymath's numpy
    code does (no half exceeds 6 * 65535), the halves added once at the end."""
    n = z.shape[0]
    for i in range(n):
        acc[i] = _lane_fields(_mix64(base[i]))
    for lane in range(1, 3):
        for i in range(n):
            acc[i] += _lane_fields(_mix64(base[i] ^ np.uint64(lane)))
    for i in range(n):
        z[i] = np.int64(acc[i] & np.uint64(0xFFFFFFFF)) + np.int64(acc[i] >> np.uint64(32)) - np.int64(6 << SIGMA_BITS)


@_njit(inline="always")
def _draw(
    key: NDArray[np.int64], a: int, prefix: np.uint64, z: NDArray[np.int64], base: NDArray[np.uint64],
    acc: NDArray[np.uint64],
) -> None:  # fmt: skip
    """z = the normal draws of samples a .. a + len(z) - 1, keyed by ``key`` (empty: by the sample index);
    ``base``, ``acc``: scratch of len(z) or more.  rng.normal_int(seed, stream, serial, key) given ``prefix``
    = prefix_hash(seed, stream, serial)."""
    n = z.shape[0]
    if key.shape[0]:
        for i in range(n):
            base[i] = _mix64(np.uint64(key[a + i]) ^ prefix)
    else:
        for i in range(n):
            base[i] = _mix64(np.uint64(a + i) ^ prefix)
    _normals_of_bases(base[:n], z, acc)


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


@_njit(inline="always")
def _fits_float(widest: float, ppm: int, p: int, q: int) -> bool:
    """Whether every read-out value of drive sums up to ``widest`` in magnitude, with read noise ``ppm`` and
    no chain, is an integer below EXACT_QUOTIENT, which float64 holds exactly: |S + noise| <= |S| (1 + 6 ppm
    / 1e6) + 1 (|z| < 6 sigma), then the ADC's 2p (S + noise) + q; bounded in float64 with a margin for
    the bound's own roundings."""
    top = widest * (1.0 + 6.0 * float(ppm) / PPM) * 1.001 + 2.0
    return top * float(2 * p) + float(q) < EXACT_QUOTIENT


@_njit(inline="always")
def _floordiv_float(n: float, d: float, inv: float) -> float:
    """floor(n / d) for integer-valued n, d > 0 with |n| < EXACT_QUOTIENT, in float64 (_floordiv_estimate's
    estimate and one-step correction, with no conversion to int64)."""
    e = np.floor(n * inv)
    r = n - e * d
    return e - (1.0 if r < 0.0 else 0.0) + (1.0 if r >= d else 0.0)


@_njit(inline="always")
def _adc_float(
    src: NDArray[Any], code: int, z: NDArray[np.int64], ppm: int, p: int, q: int, cmin: int, cmax: int,
    out: NDArray[np.int64],
) -> None:  # fmt: skip
    """out = clamp(floor((2p x + q) / 2q)) with x = S + floor(S * z * ppm / (sigma * 1e6)) (no read noise,
    ``z`` unused, where ppm is 0) and S = code * src (integer-valued, int64 or float), for sums that pass
    _fits_float: S and the read noise's float64 chain as _readout_block's, then every step in float64, exact
    on integers below EXACT_QUOTIENT (sums, products by integers, the quotient estimate and its one-step
    correction of _floordiv_estimate), converted to int64 once at the end.  No int64 multiply and two
    conversions a sample fewer than the integer path."""
    scale, denom, cf = float(ppm), float(PPM << SIGMA_BITS), float(code)
    tp, qf, d = float(2 * p), float(q), float(2 * q)
    inv, lo, hi = 1.0 / d, float(cmin), float(cmax)
    if ppm != 0:
        for j in range(src.shape[0]):
            sf = float(src[j]) * cf
            n = (sf + np.floor(sf * float(z[j]) * scale / denom)) * tp + qf
            out[j] = np.int64(min(max(_floordiv_float(n, d, inv), lo), hi))
    else:
        for j in range(src.shape[0]):
            n = float(src[j]) * cf * tp + qf
            out[j] = np.int64(min(max(_floordiv_float(n, d, inv), lo), hi))


@_njit(inline="always")
def _chain_fits_float(widest: float, params: NDArray[np.int64], off_max: float, gain_max: float) -> bool:
    """Whether every value of _chain_float's read-out of drive sums up to ``widest`` in magnitude is an integer
    that float64 holds exactly and every quotient's float estimate is within one (products below
    EXACT_QUOTIENT), with no sum past the ADC model's limit: the largest |x| after each term, bounded in
    float64 with margins for the bound's own roundings (|z| <= 6 sigma, the Irwin-Hall range)."""
    ppm, clip, nf_du, an_mlsb = float(params[0]), float(params[2]), float(params[3]), float(params[4])
    p, q, limit = float(params[5]), float(params[6]), float(params[9])
    z_max = float(NORMAL_MAX)
    if widest >= EXACT_QUOTIENT or z_max * nf_du >= EXACT_QUOTIENT or z_max * an_mlsb * q >= EXACT_QUOTIENT:
        return False
    w = widest * (1.0 + 6.0 * ppm / PPM) * 1.001 + 2.0  # S + read noise
    w = min(w, clip) + off_max + 1.0  # clipped, + offset
    w = w + z_max * nf_du / float(1 << SIGMA_BITS) + 1.0  # + noise floor
    if w * gain_max * 1.001 >= EXACT_QUOTIENT:
        return False
    w = w * (1.0 + gain_max / PPM) * 1.001 + 1.0  # * (1 + gain error)
    w = w + z_max * an_mlsb * q / (1000.0 * p * float(1 << SIGMA_BITS)) * 1.001 + 1.0  # + ADC input noise
    return w * 1.001 <= limit and (w * 2.0 * p + q) * 1.001 < EXACT_QUOTIENT


@_njit(inline="always")
def _chain_float(
    src: NDArray[Any], code: int, key: NDArray[np.int64], a: int, prefixes: NDArray[np.uint64],
    params: NDArray[np.int64], state: Any, out_b: NDArray[np.int64],
) -> None:  # fmt: skip
    """ADC codes of the samples a .. a + len(src) - 1 with drive sums S = code * src and the read-out chain on,
    for sums that pass _chain_fits_float: _readout_block's terms in the same order, each in float64 on
    integer values (exact: sums and products below 2**53, floor division by the estimate and its one-step
    correction, the noise floor's shift a product by 2**-16), so the same codes as its int64 path with no
    conversion between int64 and float64 per term.  One loop per term (loops the compiler vectorises)."""
    ppm, clip, nf_du, an_mlsb = params[0], params[2], params[3], params[4]
    p, q, cmin, cmax = params[5], params[6], params[7], params[8]
    z, base, acc, off_f, gain_f, xf = state[2], state[5], state[6], state[8], state[9], state[10]
    m = src.shape[0]
    x, z_b, cf = xf[:m], z[:m], float(code)
    for j in range(m):
        x[j] = float(src[j]) * cf
    if ppm != 0:  # read noise: floor(S * z * ppm / (sigma * 1e6)), float64 left to right
        scale, denom = float(ppm), float(PPM << SIGMA_BITS)
        _draw(key, a, prefixes[0], z_b, base, acc)
        for j in range(m):
            x[j] = x[j] + np.floor(x[j] * float(z_b[j]) * scale / denom)
    hi = float(clip)
    for j in range(m):
        x[j] = min(max(x[j], -hi), hi)
    if off_f.shape[0]:
        for j in range(m):
            x[j] += off_f[j]
    if nf_du != 0:  # noise floor: floor(z * sigma_du / sigma), exact as a product by 2**-16
        nf, shift = float(nf_du), 1.0 / float(1 << SIGMA_BITS)
        _draw(key, a, prefixes[1], z_b, base, acc)
        for j in range(m):
            x[j] += np.floor(float(z_b[j]) * nf * shift)
    if gain_f.shape[0]:  # gain error: floor(x * ppm / 1e6)
        d = float(PPM)
        inv = 1.0 / d
        for j in range(m):
            x[j] += _floordiv_float(x[j] * gain_f[j], d, inv)
    if an_mlsb != 0:  # ADC input noise: floor(z * mlsb * q / (1000 * p * sigma))
        factor, d = float(an_mlsb * q), float(1000 * p << SIGMA_BITS)
        inv = 1.0 / d
        _draw(key, a, prefixes[2], z_b, base, acc)
        for j in range(m):
            x[j] += _floordiv_float(float(z_b[j]) * factor, d, inv)
    tp, qf, d2 = float(2 * p), float(q), float(2 * q)  # the ADC: clamp(floor((2pS + q) / 2q))
    inv, lo, top = 1.0 / d2, float(cmin), float(cmax)
    for j in range(m):
        out_b[j] = np.int64(min(max(_floordiv_float(x[j] * tp + qf, d2, inv), lo), top))


@_njit(inline="always")
def _readout_state(size: int, offset: NDArray[np.int64], gain: NDArray[np.int64], period: int) -> Any:
    """What a read-out keeps across its blocks of ``size`` samples (a whole number of periods): the column
    tables tiled over a block (empty where the model has none) and the scratch arrays of one block."""
    off_t = np.zeros(size if offset.shape[0] else 0, dtype=np.int64)
    gain_t = np.zeros(size if gain.shape[0] else 0, dtype=np.int64)
    for j in range(off_t.shape[0]):
        off_t[j] = offset[j % period]
    for j in range(gain_t.shape[0]):
        gain_t[j] = gain[j % period]
    z, x, scratch = np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64)  # written before read
    base, acc = np.empty(size, np.uint64), np.empty(size, np.uint64)
    off_f, gain_f, xf = off_t.astype(np.float64), gain_t.astype(np.float64), np.empty(size, np.float64)
    widest = np.array([float(_widest(offset)), float(_widest(gain))])  # the tables' largest |entries|
    return off_t, gain_t, z, x, scratch, base, acc, np.ones(1, dtype=np.int64), off_f, gain_f, xf, widest


@_njit(inline="always")
def _readout_block(
    s_b: NDArray[np.int64], a: int, key: NDArray[np.int64], prefixes: NDArray[np.uint64], params: NDArray[np.int64],
    state: Any, out_b: NDArray[np.int64],
) -> int:  # fmt: skip
    """ADC codes of the block of samples a .. a + len(s_b) - 1 (drive sums ``s_b``, starting at column 0 of
    the tables) into ``out_b``; 1 where one is too large for the integer ADC model, else 0.  See
    readout_kernel.  One simple loop per term (loops the compiler vectorises; a loop that mixes every term
    does not)."""
    ppm_rn, chain, clip, nf_du, an_mlsb = params[0], params[1], params[2], params[3], params[4]
    p, q, cmin, cmax, limit = params[5], params[6], params[7], params[8], params[9]
    off_t, gain_t, z, x, scratch, base, acc, one = state[:8]
    m = s_b.shape[0]
    x_b, z_b = x[:m], z[:m]
    if chain == 0 and _fits_float(float(_widest(s_b)), ppm_rn, p, q):  # every value an integer below 2**50
        if ppm_rn != 0:
            _draw(key, a, prefixes[0], z_b, base, acc)
        _adc_float(s_b, 1, z_b, ppm_rn, p, q, cmin, cmax, out_b)
        return 0
    widest_t = state[11]
    if chain != 0 and _chain_fits_float(float(_widest(s_b)), params, widest_t[0], widest_t[1]):
        _chain_float(s_b, 1, key, a, prefixes, params, state, out_b)
        return 0
    x_b[:] = s_b
    if ppm_rn != 0:  # read noise: floor(S * z * ppm / (sigma * 1e6)), float64 left to right
        scale, denom = float(ppm_rn), float(PPM << SIGMA_BITS)
        _draw(key, a, prefixes[0], z_b, base, acc)
        for j in range(m):
            x_b[j] += np.int64(np.floor(float(s_b[j]) * float(z_b[j]) * scale / denom))
    if chain != 0:
        for j in range(m):
            x_b[j] = min(max(x_b[j], -clip), clip)
        if off_t.shape[0]:
            for j in range(m):
                x_b[j] += off_t[j]
        if nf_du != 0:  # noise floor: floor(z * sigma_du / sigma), a shift
            _draw(key, a, prefixes[1], z_b, base, acc)
            for j in range(m):
                x_b[j] += (z_b[j] * nf_du) >> SIGMA_BITS
        if gain_t.shape[0]:  # gain error: floor(x * ppm / 1e6)
            scratch[:m] = x_b
            _add_floordiv(x_b, scratch[:m], gain_t[:m], PPM)
        if an_mlsb != 0:  # ADC input noise: floor(z * mlsb * q / (1000 * p * sigma))
            _draw(key, a, prefixes[2], z_b, base, acc)
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
    each term.  Works a block at a time (a whole number of periods, so every block starts at column 0)."""
    _wide_vectors()
    period = params[10]
    size = period * max(1, BLOCK // period)  # samples per block
    state = _readout_state(size, offset, gain, period)
    for a in range(0, s.shape[0], size):
        m = min(size, s.shape[0] - a)
        if _readout_block(s[a : a + m], a, key, prefixes, params, state, out[a : a + m]):
            return 1
    return 0


@_njit(cache=True, nogil=True, error_model="numpy")
def multiply_kernel(
    product: NDArray[Any],
    code: int,
    first: int,
    prefixes: NDArray[np.uint64],
    params: NDArray[np.int64],
    offset: NDArray[np.int64],
    gain: NDArray[np.int64],
    bits: int,
    out: NDArray[np.integer[Any]],
) -> tuple[int, np.int64, np.int64]:
    """MULTIPLY's read-out with its shift and add, in one pass over blocks of whole input vectors: the drive
    sums S = code * product (``product``: the (frames, nc) products of the row masks with G, flat and
    integer-valued, float or int64; frame b * bits + k is bit-plane k of vector b), the ADC code of each as
    readout_kernel gives it with the sample's flat index as its noise key (``params``, ``offset``, ``gain``
    as there, the period 1 or nc), and out[b, j] = sum_k code[b, k, j] << k (``out``: (batch, nc), int32 or
    int64).  ``first``: the flat index of ``product``'s first sample in the whole operation (a part of an
    operation's samples, whole vectors, keyed as in the whole: arraymath.multiply_codes' threads).
    Returns (1 where a sum is too large for the integer ADC model, else 0; how many codes are at or beyond
    either end of the ADC range, params' code_min and code_max; the sum of S, wrapping as int64 does)."""
    _wide_vectors()
    nc, cmin, cmax = out.shape[1], params[7], params[8]
    vec = bits * nc  # samples per input vector
    size = vec * max(1, BLOCK // vec)  # whole vectors, so whole periods and every block at column 0
    state = _readout_state(size, offset, gain, params[10])
    z, base, acc, widest_t = state[2], state[5], state[6], state[11]
    s_b, codes = np.empty(size, np.int64), np.empty(size, np.int64)  # written before read
    no_key = np.zeros(0, np.int64)
    total, at_rails = np.int64(0), np.int64(0)
    for a in range(0, product.shape[0], size):
        m = min(size, product.shape[0] - a)
        product_b = product[a : a + m]  # (a slice: indexing with a + j is three times slower)
        widest, block_sum = np.int64(0), np.int64(0)
        for j in range(m):
            p_j = np.int64(product_b[j])
            widest = max(widest, abs(p_j))
            block_sum += p_j
        total += block_sum * code  # the sum of S, wrapping as a sum of int64 products does
        if params[1] == 0 and _fits_float(float(widest) * abs(float(code)), params[0], params[5], params[6]):
            if params[0] != 0:  # read noise draws (no chain: the only draws)
                _draw(no_key, first + a, prefixes[0], z[:m], base, acc)
            _adc_float(product_b, code, z[:m], params[0], params[5], params[6], cmin, cmax, codes[:m])
        elif params[1] != 0 and _chain_fits_float(float(widest) * abs(float(code)), params, widest_t[0], widest_t[1]):
            _chain_float(product_b, code, no_key, first + a, prefixes, params, state, codes[:m])
        else:  # the read-out in int64, term by term
            for j in range(m):
                s_b[j] = np.int64(product_b[j]) * code
            if _readout_block(s_b[:m], first + a, no_key, prefixes, params, state, codes[:m]):
                return 1, at_rails, total
        nv = m // vec  # the block's vectors: codes (nv, bits, nc) -> out rows a // vec ..
        planes, rows = codes[:m].reshape(nv, bits, nc), out[a // vec : a // vec + nv]
        for v in range(nv):
            for j in range(nc):
                c = planes[v, 0, j]
                rows[v, j] = c
                at_rails += np.int64(c <= cmin) + np.int64(c >= cmax)
            for k in range(1, bits):
                for j in range(nc):
                    c = planes[v, k, j]
                    rows[v, j] += c << k
                    at_rails += np.int64(c <= cmin) + np.int64(c >= cmax)
    return 0, at_rails, total


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
    off_ns, max_ns, mantissa bits, fraction bits, PPM * LOG2_10.  Works a block at a time
    (_aged_block)."""
    _wide_vectors()
    n, one_now = g.shape[0], now.shape[0] == 1
    scratch = _aged_scratch(min(n, AGED_BLOCK))
    for a in range(0, n, AGED_BLOCK):
        b = slice(a, min(n, a + AGED_BLOCK))
        _aged_block(g[b], t_pulse[b], relax[b], formed[b], now if one_now else now[b], params, out[b], scratch)


@_njit(inline="always")
def _aged_scratch(size: int) -> Any:
    return np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64)


@_njit(inline="always")
def _log2_30_16(v: Any) -> Any:
    """_log2_fixed(v, 30, 16) branch-free (selects, the loops unrolled: the compiler vectorises a loop of it);
    the same steps, so the same value."""
    one = np.int64(1) << LOG2_MANT
    t, ip = v, np.int64(0)
    for shift in (32, 16, 8, 4, 2, 1):
        step = np.int64(shift) if t >= (np.int64(1) << shift) else np.int64(0)
        t >>= step
        ip += step
    m = (v >> max(ip - LOG2_MANT, 0)) << max(LOG2_MANT - ip, 0)
    result = ip
    for _ in range(16):  # m < 2**32 throughout: the mask is a no-op that lets the compiler use 32 x 32-bit products
        m = m & np.int64(0xFFFFFFFF)
        m = (m * m) >> LOG2_MANT
        top = np.int64(m >= 2 * one)
        m >>= top
        result = (result << 1) | top
    return result


@_njit(inline="always")
def _floordiv_block(num: NDArray[np.int64], den: NDArray[np.int64], d: int, out: NDArray[np.int64]) -> None:
    """out = floor(num / den) (``den`` empty: by ``d``; every divisor > 0), numpy's //: where every |num| is
    below 2**53, the float64 quotient (num and den exact, the quotient rounded once, so its floor is within 1 of
    the true one) corrected by one step, in loops the compiler vectorises; else integer division."""
    m = num.shape[0]
    one_d = den.shape[0] == 0
    wide = np.int64(0)
    for i in range(m):
        wide = max(wide, abs(num[i]))
    if wide < FLOAT_EXACT:
        for i in range(m):
            dd = d if one_d else den[i]
            e = np.int64(np.floor(float(num[i]) / float(dd)))
            r = num[i] - e * dd
            out[i] = e - np.int64(r < 0) + np.int64(r >= dd)
    else:
        for i in range(m):
            out[i] = num[i] // (d if one_d else den[i])


@_njit(inline="always")
def _aged_block(
    g: Any, t_pulse: Any, relax: Any, formed: Any, now: Any, params: NDArray[np.int64], out: Any, scratch: Any
) -> None:
    """aged_kernel's rule on one block (``now``: length 1 or the block's), in passes the compiler vectorises:
    the time since each pulse, the drift's log2 (_log2_30_16 where the mantissa and fraction bits are 30 and
    16, else _log2_fixed), the relaxation's quotient, the drift's quotient (_floordiv_block), then the clip;
    cells never pulsed keep g.  At dt = 0 it gives g clipped, as the rule does (R * 0 // tau = 0, and
    log2(t0) - log2(t0) = 0)."""
    tau, ppm_dec, t0, log2_t0, off, max_ns = params[0], params[1], params[2], params[3], params[4], params[5]
    m, one_now = g.shape[0], now.shape[0] == 1
    dt, lg, num = scratch[0][:m], scratch[1][:m], scratch[2][:m]
    for i in range(m):
        dt[i] = max((now[0] if one_now else now[i]) - t_pulse[i], 0)
    if ppm_dec != 0:
        if params[6] == LOG2_MANT and params[7] == 16:
            for i in range(m):
                lg[i] = _log2_30_16(dt[i] + t0)
        else:
            for i in range(m):
                lg[i] = _log2_fixed(dt[i] + t0, params[6], params[7])
    for i in range(m):  # the relaxation: g + floor(R * dt / (dt + tau))
        num[i] = np.int64(relax[i]) * dt[i]
        lg[i] = lg[i] - log2_t0 if ppm_dec != 0 and formed[i] else np.int64(0)  # decades of drift (0: none)
    for i in range(m):
        dt[i] += tau
    _floordiv_block(num, dt, 1, num)
    for i in range(m):
        dt[i] = np.int64(g[i]) + num[i]  # G relaxed
        num[i] = max(dt[i] - off, 0) * ppm_dec * lg[i]
    _floordiv_block(num, dt[:0], params[8], num)
    for i in range(m):  # drift: the loss, at most what lies above the off level; then the clip
        v = dt[i]
        v = min(max(v - min(num[i], max(v - off, 0)), 1), max_ns)
        out[i] = v if t_pulse[i] >= 0 else np.int64(g[i])


@_njit(inline="always")
def _aged_one(g: Any, t: Any, relax: Any, formed: Any, now: Any, params: NDArray[np.int64]) -> Any:
    """rramsim.device.aged of one cell (aged_kernel's rule; ``params`` as there)."""
    if t < 0:
        return g
    tau, ppm_dec, t0, log2_t0, off, max_ns = params[0], params[1], params[2], params[3], params[4], params[5]
    dt = max(now - t, 0)
    if dt == 0:  # no relaxation (R * 0 // tau) and no drift (log2(t0) - log2(t0) = 0): the clip alone
        return min(max(g, 1), max_ns)
    v = g + (relax * dt) // (dt + tau)
    if formed and ppm_dec != 0:
        decades = _log2_fixed(dt + t0, params[6], params[7]) - log2_t0
        above = max(v - off, 0)
        v = v - min(above * ppm_dec * decades // params[8], above)
    return min(max(v, 1), max_ns)


@_njit(cache=True, nogil=True)
def count_at_rails(codes: NDArray[np.int64], lo: int, hi: int) -> int:
    """How many codes are at or beyond either end of the ADC range (rramsim.device.saturated)."""
    n = 0
    for i in range(codes.shape[0]):
        n += int(codes[i] <= lo) + int(codes[i] >= hi)
    return n


@_njit(cache=True, nogil=True)
def driven_rows_kernel(x: NDArray[np.uint8], bits: int, out: NDArray[np.bool_]) -> int:
    """out[r] = some input x[b, r] has a bit below ``bits`` set (the rows some bit-plane of MULTIPLY drives:
    ``(x & (2**bits - 1)).any(axis=0)``); returns how many rows."""
    seen = np.zeros(x.shape[1], dtype=np.uint8)
    for b in range(x.shape[0]):
        for r in range(x.shape[1]):
            seen[r] |= x[b, r]
    n, mask = 0, np.uint8((1 << bits) - 1)
    for r in range(x.shape[1]):
        out[r] = (seen[r] & mask) != 0
        n += int(out[r])
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


@_njit(inline="always")
def _normal_of_base(base: np.uint64) -> np.int64:
    """rng.normal_int of the draw whose base hash is ``base`` (hash64 of its whole key): the four 16-bit
    fields of three lane hashes mix64(base ^ lane), less the Irwin-Hall mean (_normals_of_bases, one draw)."""
    acc = _lane_fields(_mix64(base))
    acc += _lane_fields(_mix64(base ^ np.uint64(1)))
    acc += _lane_fields(_mix64(base ^ np.uint64(2)))
    return np.int64(acc & np.uint64(0xFFFFFFFF)) + np.int64(acc >> np.uint64(32)) - np.int64(6 << SIGMA_BITS)


@_njit(inline="always")
def _normal_at(prefix: np.uint64, position: int, pulse: int) -> np.int64:
    """rng.normal_int(seed, stream, serial, position, pulse) given ``prefix`` = hash64(seed, stream, serial)."""
    return _normal_of_base(_mix64(_mix64(prefix ^ np.uint64(position)) ^ np.uint64(pulse)))


@_njit(inline="always")
def _pulse_normals(
    prefix: np.uint64, positions: NDArray[np.int64], cells: NDArray[np.int64], k: int, z: NDArray[np.int64],
    base: NDArray[np.uint64], acc: NDArray[np.uint64],
) -> None:  # fmt: skip
    """z[j] = rng.normal_int(seed, stream, serial, positions[cells[j]], k) given ``prefix`` = hash64(seed,
    stream, serial); ``base``, ``acc``: scratch (one loop per hash, as _draw)."""
    n = z.shape[0]
    for j in range(n):
        base[j] = _mix64(prefix ^ np.uint64(positions[cells[j]]))
    for j in range(n):
        base[j] = _mix64(base[j] ^ np.uint64(k))
    _normals_of_bases(base[:n], z, acc)


@_njit(cache=True, nogil=True, error_model="numpy")
def program_kernel(
    g: NDArray[np.int32],
    g_formed: NDArray[np.int32],
    stuck: NDArray[np.int8],
    t_pulse: NDArray[np.int64],
    relax_ns: NDArray[np.int32],
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    positions: NDArray[np.int64],
    targets: NDArray[np.int64],
    params: NDArray[np.int64],
    aged_params: NDArray[np.int64],
    pulse_prefixes: NDArray[np.uint64],
    read_prefixes: NDArray[np.uint64],
    read_params: NDArray[np.int64],
    offset: NDArray[np.int64],
    gain: NDArray[np.int64],
    pulses: NDArray[np.int64],
    final: NDArray[np.int64],
    s_sum: NDArray[np.int64],
    reads: NDArray[np.int64],
) -> tuple[int, np.int64]:
    """PROGRAM's write-verify loop (rramsim.overlay.EmulatedOverlay._program_reference) over one round of
    distinct cells, pulse number by pulse number: the verify read of every cell still active (its
    conductance as Crossbar.conductance gives it, the read-out of readout_kernel keyed by position * 65536 +
    k), the tolerance test, then one pulse per cell outside it (Crossbar.program_pulse: the PROGRAM_NOISE and
    RELAXATION draws keyed by (position, k), the fold of the cell's aged conductance, the clip, the cell's
    clocks).  Cells are independent and every draw keyed, so the order of the cells changes nothing; a pulse
    folds the conductance its verify read aged (the same cell, clock and time: the same value where the cell
    can switch, and nothing is written where it cannot).

    ``g``, ``t_pulse``, ``relax_ns``: the crossbar's arrays, written in place; ``g_formed``, ``stuck`` read.
    ``params``: now_us, time model on (0/1), gate open (0/1), off_leak_ns, V_READ code, tolerance ppm,
    max pulses, step of an up pulse and of a down pulse (ns), noise_ns, max_ns, relaxation sigma_ns;
    ``aged_params`` as aged_kernel's; ``pulse_prefixes``: hash64(seed, stream, serial) of PROGRAM_NOISE and
    RELAXATION; ``read_prefixes``, ``read_params``: readout_kernel's; ``offset``, ``gain``: the column tables
    over all columns (empty where the model has none).  Out: ``pulses`` and ``final`` (last verify code) per
    cell, and per pulse number k the sum of the read's drive sums ``s_sum[k]`` and its samples ``reads[k]``
    (0 past the last read).  Returns (1 where a drive sum is too large for the integer ADC model, else 0;
    samples at either end of the ADC range)."""
    now, time_on, gate_open, leak, v_read = params[0], params[1], params[2], params[3], params[4]
    tol, max_p, step_up, step_down, noise_ns, max_ns, sigma = (
        params[5], params[6], params[7], params[8], params[9], params[10], params[11],
    )  # fmt: skip
    cmin, cmax = read_params[7], read_params[8]
    n = rows.shape[0]
    active, kept_g = np.arange(n), np.empty(n, np.int64)
    s, key, code, g_now = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    z, zr, base, acc = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.uint64)
    off, gn = np.empty(n if offset.shape[0] else 0, np.int64), np.empty(n if gain.shape[0] else 0, np.int64)
    at_rails = np.int64(0)
    m = n
    for k in range(max_p + 1):
        if m == 0:
            break
        total = np.int64(0)
        for i in range(m):  # the verify reads (Crossbar.conductance, then the read-out below)
            a = active[i]
            r, c = rows[a], cols[a]
            gv = np.int64(g[r, c])
            if time_on != 0:
                t = t_pulse[r, c] if stuck[r, c] == 0 else np.int64(-1)
                gv = _aged_one(gv, t, np.int64(relax_ns[r, c]), g_formed[r, c] > 0, now, aged_params)
            g_now[i] = gv
            if gate_open == 0:
                gv = min(gv, leak)
            s[i] = v_read * gv
            total += s[i]
            key[i] = positions[a] * VERIFY_READS_PER_CELL + k  # overlay: the verify read's key
            if off.shape[0]:
                off[i] = offset[c]
            if gn.shape[0]:
                gn[i] = gain[c]
        s_sum[k], reads[k] = total, m
        state = _readout_state(m, off[:m], gn[:m], m)
        if _readout_block(s[:m], 0, key[:m], read_prefixes, read_params, state, code[:m]):
            return 1, at_rails
        kept = 0
        for i in range(m):  # the tolerance test; the cells outside it stay active, in order
            a = active[i]
            cd = code[i]
            at_rails += np.int64(cd <= cmin) + np.int64(cd >= cmax)
            final[a] = cd
            want = targets[a]
            if abs(cd - want) * VERIFY_TOL_SCALE > want * tol and k < max_p:  # not write_verify_accepts
                active[kept] = a
                kept_g[kept] = g_now[i] if cd < want else -g_now[i] - 1  # the fold's G, the sign: up / down
                kept += 1
        m = kept
        if m == 0 or gate_open == 0:  # a closed gate: the pulses change nothing, but they count
            for i in range(m):
                pulses[active[i]] += 1
            continue
        _pulse_normals(pulse_prefixes[0], positions, active[:m], k, z[:m], base, acc)
        if sigma != 0:
            _pulse_normals(pulse_prefixes[1], positions, active[:m], k, zr[:m], base, acc)
        for i in range(m):  # one pulse per cell (Crossbar.program_pulse)
            a = active[i]
            pulses[a] += 1
            r, c = rows[a], cols[a]
            if not (g_formed[r, c] > 0 and stuck[r, c] == 0):
                continue  # cannot switch: nothing is written
            up = kept_g[i] >= 0
            gv = kept_g[i] if up else -kept_g[i] - 1
            delta = (step_up if up else step_down) + ((noise_ns * z[i]) >> SIGMA_BITS)
            g[r, c] = min(max(gv + delta if up else gv - delta, 1), max_ns)
            t_pulse[r, c] = now
            relax_ns[r, c] = (sigma * zr[i]) >> SIGMA_BITS if sigma != 0 else 0
    return 0, at_rails


@_njit(cache=True, nogil=True)
def aged_floordiv(num: NDArray[np.int64], den: NDArray[np.int64], out: NDArray[np.int64]) -> None:
    """out = num // den (den > 0) by the aged rule's block quotient (_floordiv_block; the tests compare)."""
    _floordiv_block(num, den, 1, out)


@_njit(cache=True, nogil=True, error_model="numpy")
def reset_set_kernel(
    is_set: bool,
    g: NDArray[np.int32],
    g_formed: NDArray[np.int32],
    stuck: NDArray[np.int8],
    t_pulse: NDArray[np.int64],
    relax_ns: NDArray[np.int32],
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    positions: NDArray[np.int64],
    params: NDArray[np.int64],
    aged_params: NDArray[np.int64],
    prefixes: NDArray[np.uint64],
) -> None:
    """One RESET or SET pulse on each of a round of distinct cells (rramsim.crossbar.Crossbar.reset / set, the
    overlay's reference): the level drawn per cell (RESET_C2C or SET_C2C keyed by (serial, position)), the fold
    of the cell's aged conductance, the step by the pulse's efficacy, and for the cells that can switch the new
    G and their clocks (the relaxation drawn per set pulse).  ``params``: now_us, time model on (0/1), efficacy
    ppm, level mean (off_ns; unused by a set), level sigma ppm, max_ns, relaxation sigma_ns; ``prefixes``:
    hash64(seed, stream, serial) of the level's stream and of RELAXATION.  The caller skips a closed gate and a
    pulse of no efficacy (nothing changes then)."""
    now, time_on, e, mean, c2c, max_ns, sigma = (
        params[0], params[1], params[2], params[3], params[4], params[5], params[6],
    )  # fmt: skip
    n = rows.shape[0]
    z, zr, base, acc = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.uint64)
    for i in range(n):
        base[i] = _mix64(prefixes[0] ^ np.uint64(positions[i]))
    _normals_of_bases(base, z, acc)
    if is_set and sigma != 0:
        for i in range(n):
            base[i] = _mix64(prefixes[1] ^ np.uint64(positions[i]))
        _normals_of_bases(base, zr, acc)
    for i in range(n):
        r, c = rows[i], cols[i]
        if not (g_formed[r, c] > 0 and stuck[r, c] == 0):
            continue  # cannot switch: nothing is written
        gv = np.int64(g[r, c])
        if time_on != 0:
            gv = _aged_one(gv, t_pulse[r, c], np.int64(relax_ns[r, c]), True, now, aged_params)
        if is_set:
            own = np.int64(g_formed[r, c])
            level = min(max(own + ((own * c2c // 1_000_000 * z[i]) >> SIGMA_BITS), 1), max_ns)
            g[r, c] = gv + (level - gv) * e // 1_000_000 if level > gv else gv
            relax_ns[r, c] = (sigma * zr[i]) >> SIGMA_BITS if sigma != 0 else 0
        else:
            level = max(mean + ((mean * c2c // 1_000_000 * z[i]) >> SIGMA_BITS), 1)
            g[r, c] = gv - (gv - level) * e // 1_000_000 if gv > level else gv
            relax_ns[r, c] = 0
        t_pulse[r, c] = now


@_njit(cache=True, nogil=True, error_model="numpy")
def read_conductance_kernel(
    g: NDArray[np.int32],
    g_formed: NDArray[np.int32],
    stuck: NDArray[np.int8],
    t_pulse: NDArray[np.int64],
    relax_ns: NDArray[np.int32],
    region: NDArray[np.int64],
    params: NDArray[np.int64],
    aged_params: NDArray[np.int64],
    out: NDArray[np.int64],
) -> None:
    """READ's drive sums ``out`` (flat, row-major over the region) = V_READ x the conductance each cell has at
    its own sample time (Crossbar.conductance with ``at``: aged from its last pulse, stuck cells as never
    pulsed, gated by the word line), the time of sample k (row i = k // cols) being now + ((i + 1) * row +
    (k + 1) * sample) // cycles_per_us (crossbar.ReadTimes).  ``region``: row0, rows, col0, cols;
    ``params``: now_us, row cycles, sample cycles, cycles per us, time model on (0/1), gate open (0/1),
    off_leak_ns, V_READ code.  A block at a time through _aged_block."""
    _wide_vectors()
    r0, nr, c0, nc = region[0], region[1], region[2], region[3]
    now, row, sample, per_us, time_on, gate_open, leak, v_read = (
        params[0], params[1], params[2], params[3], params[4], params[5], params[6], params[7],
    )  # fmt: skip
    n = nr * nc
    size = min(n, AGED_BLOCK)
    gb, tb, rb, at, aged = (np.empty(size, np.int64), np.empty(size, np.int64), np.empty(size, np.int64),
                            np.empty(size, np.int64), np.empty(size, np.int64))  # fmt: skip
    fb = np.empty(size, np.bool_)
    scratch = _aged_scratch(size)
    cycles = np.empty(size, np.int64)
    for a in range(0, n, size):
        m = min(size, n - a)
        i, j, q = a // nc, a % nc, 0
        while q < m:  # gather the block's cells, row-major, a row's run at a time (contiguous: vectorised)
            r, seg = r0 + i, min(nc - j, m - q)
            g_row, t_row, s_row = g[r, c0 + j : c0 + j + seg], t_pulse[r, c0 + j : c0 + j + seg], stuck[r, c0 + j :]
            x_row, f_row = relax_ns[r, c0 + j : c0 + j + seg], g_formed[r, c0 + j : c0 + j + seg]
            row_cycles = (i + 1) * row + (a + q + 1) * sample
            for u in range(seg):
                gb[q + u] = g_row[u]
                tb[q + u] = t_row[u] if s_row[u] == 0 else -1
                rb[q + u] = x_row[u]
                fb[q + u] = f_row[u] > 0
                cycles[q + u] = row_cycles + u * sample
            q, j = q + seg, j + seg
            if j == nc:
                i, j = i + 1, 0
        _floordiv_block(cycles[:m], cycles[:0], per_us, at[:m])
        for q in range(m):
            at[q] += now
        if time_on != 0:
            _aged_block(gb[:m], tb[:m], rb[:m], fb[:m], at[:m], aged_params, aged[:m], scratch)
        else:
            aged[:m] = gb[:m]
        for q in range(m):
            v = aged[q] if gate_open != 0 else min(aged[q], leak)
            out[a + q] = v_read * v
