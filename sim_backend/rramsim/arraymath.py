"""The read-out array math of the emulator, written once against a small array-module shim.

Every read path (MULTIPLY, READ, the write-verify reads of PROGRAM) ends in :func:`readout_codes`;
MULTIPLY's column drive sums come from :func:`drive_sums`.  Both take an :class:`ArrayModule` as
their first argument: :class:`NumpyModule` (the default; no torch needed) or :class:`TorchModule`
(torch on CPU or CUDA, imported only when asked for).  The functions use only operators that
numpy arrays and torch tensors share (``+ - * ^ & >>``, in-place forms) plus the shim's few
methods, so the numpy and torch paths are one code, not two copies.

Stable entry points (docs/emulator.md, "Performance"):

- ``readout_codes(xm, drive_sum, sample, cols, op) -> codes``: ADC codes of samples whose ideal
  column drive sum (DAC code x nS) is ``drive_sum``; ``sample`` holds each sample's index (the noise
  key), ``cols`` its column, ``op`` (:class:`ReadOp`) the operation's constants.  Every read-out
  term (offsets, gains, noise floors) goes into this function, keyed with :func:`normal_keyed`.
- ``drive_sums(xm, drives, g_block) -> S``: exact ``S[f, j] = sum_c code_c * (mask_c[f] @ G[:, j])``.
- ``normal_keyed(xm, seed, stream, serial, index)`` = ``rng.normal_int(seed, stream, serial, index)``
  bit for bit, in int64 ops on either module (chunked, in place).
- ``array_module(device)``: ``"cpu"`` -> numpy (+ the compiled read-out of :mod:`rramsim.kernels`
  where numba is installed), ``"numpy"`` -> numpy only, ``"torch-cpu"`` -> torch on the CPU,
  ``"cuda"`` / ``"cuda:N"`` -> torch on that GPU.

Integer-exact contract: the hash is wrapping 64-bit integer arithmetic (int64 and uint64 wrap
identically); the drive sums are float matmuls of 0/1 masks with integer conductances, exact
because every partial sum is an integer below the float's 2**p (float32 is used only when each
column's conductance sum is below 2**24, else float64, below 2**53 by ChipModelConfig); the noise
product is one chain of float64 ``*`` and ``/`` (IEEE-rounded alike on every device), then floor.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from rramsim import kernels, rng, workers

Array = Any  # a numpy array or a torch tensor (the shim's native array)

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)  # splitmix64 constants as signed int64 (same bits)
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)
_U64_MASK = (1 << 64) - 1
_LANES16 = 0x0000FFFF0000FFFF  # 16-bit fields 0 and 2 of a 64-bit word
F32_EXACT = 1 << 24  # every integer below this is a float32
NORMAL_OFFSET = rng.NORMAL_TERMS * (rng.NORMAL_SIGMA // 2)
_I64_MAX = (1 << 63) - 1
_READ_STREAMS = (rng.Stream.READ_NOISE, rng.Stream.NOISE_FLOOR, rng.Stream.ADC_NOISE)  # the kernels' prefixes


def _signed(h: int) -> int:
    """A uint64 value as the int64 with the same bits."""
    return h - (1 << 64) if h >= 1 << 63 else h


class ArrayModule(Protocol):
    """The operations the read-out math needs beyond the shared operators."""

    name: str
    chunk: int  # elements per hash chunk (cache-sized on the CPU)

    def asarray(self, a: NDArray[Any]) -> Array: ...
    def to_numpy(self, a: Array) -> NDArray[Any]: ...
    def empty_i64(self, n: int) -> Array: ...
    def zeros_like(self, a: Array) -> Array: ...
    def srl(self, x: Array, k: int, out: Array) -> Array: ...
    def to_i64(self, a: Array) -> Array: ...
    def to_f64(self, a: Array) -> Array: ...
    def floor_i64(self, a: Array) -> Array: ...
    def floor_div(self, a: Array, b: int) -> Array: ...
    def clip(self, a: Array, lo: int, hi: int) -> Array: ...
    def abs_max(self, a: Array) -> int: ...
    def add_products(self, total: Array | None, mask: Array, g: Array, code: int) -> Array: ...
    def block(self, g: NDArray[np.integer[Any]], col_sum_max: int) -> Array: ...
    def arange_i64(self, n: int) -> Array: ...
    def scalars(self, values: list[Any]) -> NDArray[np.int64]: ...


class NumpyModule:
    """numpy: in-place, cache-sized chunks; float32 BLAS where the sums are exact in float32.  With
    ``compiled`` (the default where numba is installed) :func:`readout_codes` runs the compiled
    kernel of :mod:`rramsim.kernels` (the same arithmetic in one pass); ``compiled=False`` keeps the
    plain numpy code (the tests compare the two)."""

    name = "numpy"
    chunk = 1 << 15

    def __init__(self, compiled: bool | None = None) -> None:
        self.compiled = kernels.AVAILABLE if compiled is None else compiled
        if self.compiled and not kernels.AVAILABLE:
            raise ValueError("the compiled read-out kernel needs numba, which is not installed")

    def asarray(self, a: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(a)

    def to_numpy(self, a: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(a)

    def empty_i64(self, n: int) -> NDArray[np.int64]:
        return np.empty(n, dtype=np.int64)

    def zeros_like(self, a: NDArray[Any]) -> NDArray[Any]:
        return np.zeros_like(a)

    def srl(self, x: NDArray[np.int64], k: int, out: NDArray[np.int64]) -> NDArray[np.int64]:
        np.right_shift(x.view(np.uint64), np.uint64(k), out=out.view(np.uint64))
        return out

    def to_i64(self, a: NDArray[Any]) -> NDArray[np.int64]:
        return np.asarray(a).astype(np.int64, copy=False)

    def to_f64(self, a: NDArray[Any]) -> NDArray[np.float64]:
        return np.asarray(a).astype(np.float64)

    def floor_i64(self, a: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor(a).astype(np.int64)

    def floor_div(self, a: NDArray[np.int64], b: int) -> NDArray[np.int64]:
        return np.floor_divide(a, b)

    def clip(self, a: NDArray[np.int64], lo: int, hi: int) -> NDArray[np.int64]:
        return np.clip(a, lo, hi)

    def abs_max(self, a: NDArray[np.int64]) -> int:
        return int(np.abs(a).max()) if a.size else 0

    def block(self, g: NDArray[np.integer[Any]], col_sum_max: int) -> NDArray[np.floating[Any]]:
        return g.astype(np.float32 if col_sum_max < F32_EXACT else np.float64)

    def arange_i64(self, n: int) -> NDArray[np.int64]:
        return np.arange(n, dtype=np.int64)

    def scalars(self, values: list[Any]) -> NDArray[np.int64]:
        return np.array([int(v) for v in values], dtype=np.int64)

    def add_products(
        self, total: NDArray[np.int64] | None, mask: NDArray[Any], g: NDArray[np.floating[Any]], code: int
    ) -> NDArray[np.int64]:
        """``total + code * (mask @ g)`` in int64 (a new array when ``total`` is None); the float product
        is exact (``block``), converted and scaled in one compiled pass where numba is installed."""
        product = mask.astype(g.dtype, copy=False) @ g
        if self.compiled:
            out = np.empty(product.shape, dtype=np.int64) if total is None else total
            kernels.scale_add_kernel(product.reshape(-1), code, total is not None, out.reshape(-1))
            return out
        part = product.astype(np.int64)
        part *= code
        if total is None:
            return part
        total += part
        return total


class TorchModule:
    """torch on one device: int64 tensors, float64 matmuls (exact, and never TF32).  With ``fused`` (the
    default on CUDA) MULTIPLY's read-out, shift and add run as :func:`multiply_tail` compiled by
    ``torch.compile`` (one or a few GPU kernels instead of a few hundred launches of single operations): the
    same function, the same integer and float64 operations in the same order, so the same codes (the
    equality tests run it against numpy)."""

    name = "torch"

    def __init__(self, device: str = "cpu", fused: bool | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.chunk = 1 << 40  # one chunk: torch kernels gain nothing from cache-sized pieces
        self.fused = self.device.type == "cuda" if fused is None else fused

    def asarray(self, a: NDArray[Any]) -> Any:
        if isinstance(a, self.torch.Tensor):  # already a tensor (made on the device): moved only if elsewhere
            return a.to(self.device)
        return self.torch.as_tensor(np.ascontiguousarray(a), device=self.device)

    def plane_matrix(self, x: NDArray[np.uint8], bits: int) -> Any:
        """The bit-planes of inputs ``x`` (B, rows) as MULTIPLY's (B * bits, rows) 0/1 row masks, frame order
        (linedrive.BitplaneStream.plane_matrix), made on the device: the inputs cross to it, not their planes
        (``bits`` times fewer bytes in uint8, 4 * bits fewer than float32 masks)."""
        t = self.torch.as_tensor(np.ascontiguousarray(x, dtype=np.uint8), device=self.device)
        shifts = self.torch.arange(bits, dtype=self.torch.uint8, device=self.device)
        return ((t[:, None, :] >> shifts[None, :, None]) & 1).reshape(-1, t.shape[1])

    def to_numpy(self, a: Any) -> NDArray[Any]:
        return np.asarray(a.cpu().numpy())

    def empty_i64(self, n: int) -> Any:
        return self.torch.empty(n, dtype=self.torch.int64, device=self.device)

    def zeros_like(self, a: Any) -> Any:
        return self.torch.zeros_like(a)

    def srl(self, x: Any, k: int, out: Any) -> Any:
        return (x >> k) & ((1 << (64 - k)) - 1)  # arithmetic shift made logical (a new tensor: ``out`` unused)

    def to_i64(self, a: Any) -> Any:
        return a.to(self.torch.int64)

    def to_f64(self, a: Any) -> Any:
        return a.to(self.torch.float64)

    def floor_i64(self, a: Any) -> Any:
        return self.torch.floor(a).to(self.torch.int64)

    def floor_div(self, a: Any, b: int) -> Any:
        return self.torch.div(a, b, rounding_mode="floor")

    def clip(self, a: Any, lo: int, hi: int) -> Any:
        return self.torch.clamp(a, lo, hi)

    def abs_max(self, a: Any) -> int:
        return int(a.abs().max().item()) if a.numel() else 0

    def block(self, g: NDArray[np.integer[Any]], col_sum_max: int) -> Any:
        return self.torch.as_tensor(np.ascontiguousarray(g), device=self.device).to(self.torch.float64)

    def arange_i64(self, n: int) -> Any:
        return self.torch.arange(n, dtype=self.torch.int64, device=self.device)

    def scalars(self, values: list[Any]) -> NDArray[np.int64]:
        return np.asarray(self.torch.stack([self.torch.as_tensor(v) for v in values]).cpu().numpy())

    def add_products(self, total: Any, mask: Any, g: Any, code: int) -> Any:
        part = (mask.to(g.dtype) @ g).to(self.torch.int64) * code
        return part if total is None else total + part


def available_devices() -> list[str]:
    """The device names :func:`array_module` accepts on this machine: ``cpu`` and ``numpy`` always,
    ``torch-cpu`` where torch is installed, ``cuda`` where torch sees a GPU (``cuda:N`` for the others)."""
    try:
        import torch
    except ImportError:
        return ["cpu", "numpy"]
    return ["cpu", "numpy", "torch-cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def array_module(device: str = "cpu") -> ArrayModule:
    """The shim for a device name: ``cpu`` (numpy, with the compiled read-out where numba is
    installed), ``numpy`` (numpy only), ``torch-cpu``, ``cuda`` or ``cuda:N`` (torch)."""
    if device == "cpu":
        return NumpyModule()
    if device == "numpy":
        return NumpyModule(compiled=False)
    if device == "torch-cpu":
        return TorchModule("cpu")
    cuda = re.fullmatch(r"cuda(?::(\d+))?", device)
    if cuda:
        try:
            import torch
        except ImportError as e:
            raise ValueError(f"device {device!r} needs torch, which is not installed") from e
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA device is available")
        if cuda[1] is not None and int(cuda[1]) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return TorchModule(device)
    raise ValueError(f"unknown emulator device {device!r} (cpu, numpy, torch-cpu, cuda, cuda:N)")


# ---- counter-based noise --------------------------------------------------------------------
def _mix64_(xm: ArrayModule, z: Array, t: Array) -> Array:
    """splitmix64 finaliser in place on int64 (wrapping; the same bits as rng.mix64)."""
    z += _GOLDEN
    z ^= xm.srl(z, 30, t)
    z *= _M1
    z ^= xm.srl(z, 27, t)
    z *= _M2
    z ^= xm.srl(z, 31, t)
    return z


def _mix64_int(z: int) -> int:
    """splitmix64's finaliser on one Python int (rng.mix64 of a scalar, without numpy's per-call cost)."""
    z = (z + _GOLDEN) & _U64_MASK
    z = ((z ^ (z >> 30)) * _M1) & _U64_MASK
    z = ((z ^ (z >> 27)) * _M2) & _U64_MASK
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=64)
def _stream_hash(seed: int, stream: int) -> int:
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    return _mix64_int(_mix64_int(seed) ^ stream)


def prefix_hash(seed: int, stream: int, *indices: int) -> int:
    """rng.hash64(seed, stream, *indices) of scalar keys (indices >= 0), as a signed int64."""
    h = _stream_hash(seed, stream)
    for i in indices:
        if i < 0:
            raise ValueError("random-draw indices must be >= 0")
        h = _mix64_int(h ^ i)
    return _signed(h)


def normal_keyed(xm: ArrayModule, seed: int, stream: int, serial: int, index: Array) -> Array:
    """``rng.normal_int(seed, stream, serial, index)`` for an int64 index array (any shape), bit for
    bit (:func:`normal_of_prefix`, a cache-sized chunk at a time)."""
    flat = xm.to_i64(index).reshape(-1)
    n = flat.shape[0]
    out = xm.empty_i64(n)
    prefix = prefix_hash(seed, stream, serial)
    for a in range(0, n, xm.chunk):
        out[a : a + xm.chunk] = normal_of_prefix(xm, prefix, flat[a : a + xm.chunk])
    return out.reshape(index.shape)


def normal_of_prefix(xm: ArrayModule, prefix: Any, key: Array) -> Array:
    """The normal draws of int64 keys ``key`` (any shape) given the stream's ``prefix`` =
    prefix_hash(seed, stream, serial) (an int, or a 0-d int64 tensor on the compiled path): one
    splitmix64 per key, three lanes of four 16-bit uniforms summed two at a time in 32-bit fields of
    one int64 (no field exceeds 6 * 65535), less the Irwin-Hall mean (rng.normal_int)."""
    z = key ^ prefix  # a new array
    t = xm.zeros_like(z)
    _mix64_(xm, z, t)
    acc = xm.zeros_like(z)
    for lane in range(rng.NORMAL_TERMS // 4):
        h = z ^ lane
        _mix64_(xm, h, t)
        acc += h & _LANES16
        acc += xm.srl(h, 16, t) & _LANES16
    return (acc & 0xFFFFFFFF) + xm.srl(acc, 32, t) - NORMAL_OFFSET


# ---- the read-out ----------------------------------------------------------------------------
class ReadConsts(NamedTuple):
    """The constants of a read-out that stay the same from one operation to the next (a ReadOp less
    its seed, serial and column tables): what the compiled read-out is specialised on."""

    read_noise_ppm: int
    chain: bool
    clip: int
    noise_floor_du: int
    adc_noise_mlsb: int
    gain_p: int
    gain_q: int
    code_min: int
    code_max: int


@dataclass(frozen=True)
class ReadOp:
    """Constants of one read operation: the chip's seed, the op serial (noise key), the read noise
    (ppm of the drive sum), the ADC gain ``p / q`` codes per drive-sum unit of the selected TIA range
    (rramctl.hw.adc.code_gain), the ADC's code range and the read-out chain (rramsim.device.Readout):
    per-column offset (drive-sum units) and gain error (ppm) tables over all columns, the noise floor
    sigma (drive-sum units) and the ADC input noise sigma (1/1000 LSB); ``clip`` bounds |S| before
    the chain (beyond it every sample clips anyway)."""

    seed: int
    serial: int
    read_noise_ppm: int
    gain_p: int
    gain_q: int
    code_min: int
    code_max: int
    chain: bool = False  # any read-out chain term below
    offset_du: NDArray[np.int64] | None = None
    gain_ppm: NDArray[np.int64] | None = None
    noise_floor_du: int = 0
    adc_noise_mlsb: int = 0
    clip: int = 0

    @property
    def consts(self) -> ReadConsts:
        return ReadConsts(self.read_noise_ppm, self.chain, self.clip, self.noise_floor_du, self.adc_noise_mlsb,
                          self.gain_p, self.gain_q, self.code_min, self.code_max)  # fmt: skip

    @property
    def prefixes(self) -> list[int]:
        """The hash prefixes of the READ_NOISE, NOISE_FLOOR and ADC_NOISE streams of this operation."""
        return [prefix_hash(self.seed, st, self.serial) for st in _READ_STREAMS]

    @property
    def noise_scale(self) -> list[float]:
        """The read noise's float64 factors: S * z * ppm / (sigma * 1e6) is ``S * z * scale[0] / scale[1]``.
        On the compiled path they reach the kernel as a tensor, not as constants: torch.compile on CUDA turns a
        division by a constant into a multiplication by its reciprocal, another rounding."""
        return [float(self.read_noise_ppm), float(rng.NORMAL_SIGMA * rng.PPM)]

    @property
    def limit(self) -> int:
        """The largest |S| (after the chain) the integer ADC model takes: 2p|S| <= int64 max // 2."""
        return (_I64_MAX // 2) // (2 * self.gain_p)


def read_noise(xm: ArrayModule, s: Array, sample: Array, op: ReadOp) -> Array:
    """floor(S * z * ppm / (2**16 * 1e6)) with z = normal_int(seed, READ_NOISE, serial, sample):
    float64 ``*`` and ``/`` left to right, one IEEE rounding each, then floor."""
    return _read_noise(xm, s, sample, op.prefixes[0], op.noise_scale)


def _read_noise(xm: ArrayModule, s: Array, key: Array, prefix: Any, scale: Any) -> Array:
    z = normal_of_prefix(xm, prefix, key)
    return xm.floor_i64(xm.to_f64(s) * xm.to_f64(z) * scale[0] / scale[1])


def readout_terms(
    xm: ArrayModule, x: Array, key: Array, prefixes: Any, scale: Any, c: ReadConsts, offset: Array | None,
    gain: Array | None,
) -> Array:  # fmt: skip
    """Drive sums ``x`` (int64) with every read-out term added, before the ADC's rounding: proportional read
    noise, then the per-column TIA + ADC chain (rramsim.device.Readout) where ``c.chain``: clip to
    +-``c.clip``, + offset (drive-sum units), + floor noise, * (1 + gain error) as x + floor(x * ppm / 1e6),
    + ADC input noise.  ``key``: each sample's noise key; ``prefixes``: the three streams' hash prefixes
    (ReadOp.prefixes), ``scale`` the read noise's factors (ReadOp.noise_scale): Python numbers, or tensors on
    the compiled path; ``offset`` / ``gain``: each sample's column's
    table entry, broadcastable to ``x`` (None where the model has none).  Element-wise: any shape."""
    if c.read_noise_ppm:
        x = x + _read_noise(xm, x, key, prefixes[0], scale)
    if not c.chain:
        return x
    x = xm.clip(x, -c.clip, c.clip)
    if offset is not None:
        x = x + offset
    if c.noise_floor_du:
        x = x + xm.floor_div(normal_of_prefix(xm, prefixes[1], key) * c.noise_floor_du, rng.NORMAL_SIGMA)
    if gain is not None:
        x = x + xm.floor_div(x * gain, rng.PPM)
    if c.adc_noise_mlsb:
        z = normal_of_prefix(xm, prefixes[2], key)
        x = x + xm.floor_div(z * (c.adc_noise_mlsb * c.gain_q), 1000 * c.gain_p * rng.NORMAL_SIGMA)
    return x


def _adc(xm: ArrayModule, x: Array, c: ReadConsts) -> Array:
    """Round half up and clamp ``x * p / q``: floor((2px + q) / 2q) (rramctl.hw.adc.drive_sum_to_code)."""
    return xm.clip(xm.floor_div(x * (2 * c.gain_p) + c.gain_q, 2 * c.gain_q), c.code_min, c.code_max)


def adc_codes(xm: ArrayModule, s: Array, op: ReadOp) -> Array:
    """Round half up and clamp ``S * p / q``: floor((2pS + q) / 2q) (rramctl.hw.adc.drive_sum_to_code)."""
    if xm.abs_max(s) > op.limit:
        raise OverflowError("drive sum too large for the integer ADC model")
    return _adc(xm, s, op.consts)


def _tables(xm: ArrayModule, op: ReadOp, col: NDArray[np.int64] | None) -> tuple[Array | None, Array | None]:
    """The offset and gain error of the columns ``col`` (None: a table the model lacks, or no chain)."""
    if col is None or not op.chain:
        return None, None
    return tuple(None if t is None else xm.asarray(t[col]) for t in (op.offset_du, op.gain_ppm))  # type: ignore[return-value]


def readout_codes(
    xm: ArrayModule, drive_sum: Array, sample: Array | None, cols: NDArray[np.int64], op: ReadOp
) -> Array:
    """ADC codes of samples with ideal drive sums ``drive_sum`` (int64), sample indices ``sample``
    (int64, same shape; ``None``: each sample's flat index 0, 1, ..., in row-major order) and columns
    ``cols`` (numpy, broadcastable to the samples): proportional read
    noise, the read-out chain, then the ADC (:func:`readout_terms`, the one place every read-out term
    goes).  Runs over ``xm.chunk``-sized pieces (every term is per sample), so numpy works in the cache."""
    if getattr(xm, "compiled", False):
        return _readout_compiled(np.asarray(drive_sum), None if sample is None else np.asarray(sample), cols, op)
    if sample is None:
        sample = xm.asarray(np.arange(int(np.prod(drive_sum.shape)), dtype=np.int64).reshape(tuple(drive_sum.shape)))
    s = xm.to_i64(drive_sum)
    shape = s.shape
    flat_s, flat_sample = s.reshape(-1), xm.to_i64(sample).reshape(-1)
    col = np.broadcast_to(np.asarray(cols, dtype=np.int64), shape).reshape(-1) if op.chain else None
    out = xm.empty_i64(flat_s.shape[0])
    prefixes, scale, consts = op.prefixes, op.noise_scale, op.consts
    for a in range(0, flat_s.shape[0], xm.chunk):
        offset, gain = _tables(xm, op, None if col is None else col[a : a + xm.chunk])
        key = flat_sample[a : a + xm.chunk]
        x = readout_terms(xm, flat_s[a : a + xm.chunk], key, prefixes, scale, consts, offset, gain)
        out[a : a + xm.chunk] = adc_codes(xm, x, op)
    return out.reshape(shape)


def _multiply_tail(
    xm: ArrayModule, s: Array, prefixes: Any, scale: Any, c: ReadConsts, offset: Array | None, gain: Array | None,
    bits: int,
) -> tuple[Array, Array, Array, Array]:  # fmt: skip
    """MULTIPLY's read-out of drive sums ``s`` (frames, nc) int64, frame b * bits + k being bit-plane k of
    vector b, each sample keyed by its flat index: the codes (:func:`readout_terms`, the ADC), then
    out[b, j] = sum_k code[b, k, j] << k.  Returns out, how many codes are at either end of the ADC range,
    the sum of S and the widest |S| after the chain (checked against ReadOp.limit by the caller)."""
    frames, nc = s.shape
    x = readout_terms(xm, s, xm.arange_i64(frames * nc).reshape(frames, nc), prefixes, scale, c, offset, gain)
    codes = _adc(xm, x, c)
    planes = codes.reshape(-1, bits, nc)
    total = planes[:, 0] + 0  # a new array
    for k in range(1, bits):  # shift and add, one bit-plane at a time
        total = total + (planes[:, k] << k)
    at_rails = ((codes <= c.code_min) | (codes >= c.code_max)).sum()
    return total, at_rails, s.sum(), abs(x).max()


_FUSED_TAIL: Any = None  # _multiply_tail compiled by torch.compile (made at first use)


def _fused_tail(
    xm: Any, s: Any, op: ReadOp, offset: Any, gain: Any, bits: int
) -> tuple[Array, Array, Array, Array] | None:
    """:func:`_multiply_tail` compiled by ``torch.compile`` (the per-operation values as tensors: no recompile per
    operation, no float64 constant for the compiler to fold).  Where compiling fails (no Triton for this GPU, no C++
    compiler) it warns once, turns ``xm.fused`` off and returns None: the caller runs the eager tail, the same
    codes."""
    global _FUSED_TAIL
    torch = xm.torch
    if _FUSED_TAIL is None:
        _FUSED_TAIL = torch.compile(_multiply_tail, dynamic=True)
    prefixes = torch.tensor(op.prefixes, dtype=torch.int64, device=s.device)
    scale = torch.tensor(op.noise_scale, dtype=torch.float64, device=s.device)  # inputs, not constants
    try:
        parts: tuple[Array, Array, Array, Array] = _FUSED_TAIL(xm, s, prefixes, scale, op.consts, offset, gain, bits)
    except Exception as e:  # a compiler's failure; the eager tail raises any error of the operation itself
        warnings.warn(f"the fused read-out could not be compiled ({type(e).__name__}: {e}); running it op by op "
                      "(the same codes, slower)", RuntimeWarning, stacklevel=3)  # fmt: skip
        xm.fused = False
        return None
    return parts


def multiply_tail(
    xm: ArrayModule, s: Array, cols: NDArray[np.int64], op: ReadOp, bits: int
) -> tuple[NDArray[np.int64], int, int]:
    """MULTIPLY's read-out, shift and add of drive sums ``s`` (frames, nc) on ``xm`` (the codes of
    :func:`readout_codes` with sample keys 0, 1, ... frame after frame): returns out (batch, nc) int64 on the
    host, the samples at the ADC's rails and the sum of S.  Compiled (``torch.compile``) where ``xm.fused``."""
    frames, nc = s.shape
    if not frames * nc:
        return np.zeros((frames // bits, nc), dtype=np.int64), 0, 0
    offset, gain = _tables(xm, op, np.asarray(cols, dtype=np.int64))
    parts = _fused_tail(xm, s, op, offset, gain, bits) if getattr(xm, "fused", False) else None
    if parts is None:
        parts = _multiply_tail(xm, s, op.prefixes, op.noise_scale, op.consts, offset, gain, bits)
    total, at_rails, s_sum, widest = parts
    at_rails, s_sum, widest = (int(v) for v in xm.scalars([at_rails, s_sum, widest]))
    if widest > op.limit:
        raise OverflowError("drive sum too large for the integer ADC model")
    return xm.to_numpy(total).astype(np.int64, copy=False), at_rails, s_sum


def kernel_args(
    op: ReadOp, cols: NDArray[np.int64], shape: tuple[int, ...]
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The compiled read-out's arguments for samples of ``shape`` in columns ``cols`` (as readout_codes
    takes them): the three streams' hash prefixes, the constants (kernels.readout_kernel) and the column
    offset and gain tables over one period of columns (empty where the model lacks them)."""
    prefixes = np.array(op.prefixes, dtype=np.int64)
    tables = op.chain and (op.offset_du is not None or op.gain_ppm is not None)  # the only use of ``cols``
    if tables:
        cols = np.asarray(cols, dtype=np.int64)
        per_place = cols.ndim == 1 and len(shape) >= 1 and cols.size == shape[-1]  # one column per last-axis place
        where: tuple[object, ...] = (cols.shape, cols.tobytes(), None if per_place else tuple(shape))
    else:
        where = ()
    key = (op.read_noise_ppm, op.chain, op.clip, op.noise_floor_du, op.adc_noise_mlsb, op.gain_p, op.gain_q,
           op.code_min, op.code_max, id(op.offset_du), id(op.gain_ppm), where)  # fmt: skip
    hit = _STATIC_ARGS.get(key) if not tables or cols.size <= 4_096 else None  # (long column lists: not kept)
    if hit is None or hit[0] is not op.offset_du or hit[1] is not op.gain_ppm:  # (the tables held: ids stay theirs)
        offset = gain = np.zeros(0, dtype=np.int64)  # a table the model lacks
        period = 1
        if tables:
            col = cols if per_place else np.broadcast_to(cols, shape).reshape(-1)  # else one per sample
            period = max(col.size, 1)
            if op.offset_du is not None:
                offset = np.ascontiguousarray(op.offset_du[col], dtype=np.int64)
            if op.gain_ppm is not None:
                gain = np.ascontiguousarray(op.gain_ppm[col], dtype=np.int64)
        limit = op.limit
        params = np.array(
            [op.read_noise_ppm, int(op.chain), op.clip, op.noise_floor_du, op.adc_noise_mlsb, op.gain_p, op.gain_q,
             op.code_min, op.code_max, limit, period],
            dtype=np.int64,
        )  # fmt: skip
        if len(_STATIC_ARGS) >= 32:
            _STATIC_ARGS.clear()
        hit = (op.offset_du, op.gain_ppm, params, offset, gain)
        _STATIC_ARGS[key] = hit
    return prefixes.view(np.uint64), hit[2], hit[3], hit[4]


# kernel_args' constants and column tables of recent reads (the per-operation part is the prefixes only)
_STATIC_ARGS: dict[tuple[object, ...], tuple[Any, Any, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = {}


def _readout_compiled(
    drive_sum: NDArray[Any], sample: NDArray[Any] | None, cols: NDArray[np.int64], op: ReadOp
) -> Array:
    """:func:`readout_codes` by the compiled kernel (numpy arrays): the same terms, a block at a time."""
    shape = drive_sum.shape
    s = np.ascontiguousarray(drive_sum, dtype=np.int64).reshape(-1)
    key = np.zeros(0, np.int64) if sample is None else np.ascontiguousarray(sample, dtype=np.int64).reshape(-1)
    out = np.empty(s.size, dtype=np.int64)
    if s.size and kernels.readout_kernel(s, key, *kernel_args(op, cols, shape), out):
        raise OverflowError("drive sum too large for the integer ADC model")
    return out.reshape(shape)


def multiply_codes(
    product: NDArray[Any], code: int, bits: int, cols: NDArray[np.int64], op: ReadOp
) -> tuple[NDArray[np.int32], int, int]:
    """MULTIPLY's read-out by the compiled kernel, with its shift and add: ``product`` (frames, nc), the
    integer-valued row-mask products (float or int64; frame b * bits + k is bit-plane k of vector b) whose
    drive sums are ``code * product``; ``cols`` the nc columns.  Returns out[b, j] = sum_k codes[b, k, j] << k
    with codes = ``readout_codes(xm, code * product, None, cols, op)``, how many codes are at either end of
    the ADC range (rramsim.device.saturated) and the sum of the drive sums, in one pass
    (kernels.multiply_kernel; whole vectors shared out among rramsim.workers' threads)."""
    frames, nc = product.shape
    return _multiply_codes_in_parts(lambda a, b: product[a:b], code, frames, nc, bits, cols, op)


class RowMasks(Protocol):
    """Row masks (frames, rows) that give a range of their frames as an array (an array, or planes made a part
    at a time: rramsim.overlay.PlaneParts, which may also give their products with a block itself:
    ``products(a, b, block)``, the values of ``masks[a:b].astype(block.dtype) @ block``)."""

    def __getitem__(self, frames: slice, /) -> NDArray[Any]: ...


def masked_multiply_codes(
    xm: ArrayModule, masks: list[tuple[int, RowMasks]], block: NDArray[Any], frames: int, nc: int, bits: int,
    cols: NDArray[np.int64], op: ReadOp,
) -> tuple[NDArray[np.int32], int, int]:  # fmt: skip
    """:func:`multiply_codes` of the row masks' products with the conductance block (one source: its mask's
    product, scaled in the kernel; several: their exact int64 sum, :func:`drive_sums`; none: zeros), each
    thread's part of the products made by that thread (numpy arrays)."""
    if len(masks) == 1:
        code, mask = masks[0]
        products = getattr(mask, "products", None)  # row masks that make their products themselves (PlaneParts)

        def product(a: int, b: int) -> NDArray[Any]:
            if products is not None:
                return np.asarray(products(a, b, block))
            return mask[a:b].astype(block.dtype, copy=False) @ block
    elif masks:
        code = 1

        def product(a: int, b: int) -> NDArray[Any]:
            return np.asarray(drive_sums(xm, [(c, m[a:b]) for c, m in masks], block))
    else:
        code = 1

        def product(a: int, b: int) -> NDArray[Any]:
            return np.zeros((b - a, nc), dtype=np.int64)

    return _multiply_codes_in_parts(product, code, frames, nc, bits, cols, op)


def _multiply_codes_in_parts(
    product: Callable[[int, int], NDArray[Any]], code: int, frames: int, nc: int, bits: int,
    cols: NDArray[np.int64], op: ReadOp,
) -> tuple[NDArray[np.int32], int, int]:  # fmt: skip
    """The kernel over parts of whole vectors, side by side (rramsim.workers): ``product(a, b)`` gives frames
    a .. b - 1; each part's samples keep their keys in the whole (the kernel's ``first``); the parts' rail
    tallies add, and their sums of S add as int64 (wrapping as the one-pass sum does)."""
    out = np.empty((frames // bits, nc), dtype=np.int32)  # |sum| < 2**13 * 2**8: the stream words' type
    if not frames * nc:
        return out, 0, 0
    args = kernel_args(op, cols, (frames, nc))

    def part(v0: int, v1: int) -> tuple[int, int, int]:
        flat = np.ascontiguousarray(product(v0 * bits, v1 * bits)).reshape(-1)
        failed, at_rails, total = kernels.multiply_kernel(flat, code, v0 * bits * nc, *args, bits, out[v0:v1])
        return int(failed), int(at_rails), int(total)

    results = workers.run_parts(part, workers.parts(frames // bits, bits * nc))
    if any(r[0] for r in results):
        raise OverflowError("drive sum too large for the integer ADC model")
    total = sum(r[2] for r in results)
    return out, sum(r[1] for r in results), (total + (1 << 63)) % (1 << 64) - (1 << 63)


def drive_sums(xm: ArrayModule, drives: list[tuple[int, Array]], g_block: Array) -> Array:
    """Exact column drive sums ``S = sum_c code_c * (mask_c @ G)`` for 0/1 row masks (F, rows) of the
    rows each source code drives; ``g_block`` from ``xm.block`` (a float type that holds every
    column sum exactly)."""
    total: Array = None
    for code, mask in drives:
        total = xm.add_products(total, mask, g_block, int(code))
    return total
