"""Threads for the compiled CPU kernels: one operation's samples split into parts run side by side.

The compiled kernels (rramsim.kernels) release the GIL and numpy's matrix products do too, so one
MULTIPLY's whole input vectors can be shared out among threads with no process start, no copies and no
change of result: every sample keeps the noise key it has in the whole operation (its flat index), every
part writes its own rows of the output, and what the parts add up (the rail tally, the sum of S) are
integer sums that do not depend on the order (int64, wrapping as one sum does).  The same seed and the
same operations give the same codes with 1 thread or 64 (tests/test_emulator_fast_paths.py).  PROGRAM's
write-verify is split the same way, one round of distinct cells into parts of cells (rramsim.overlay;
tests/test_speed_program.py).

How many: ``RRAMSIM_THREADS`` if set (1 = no threads), else the CPUs this process may run on, at most
``DEFAULT_MAX``.  :func:`set_threads` changes it in a running process (the CLI's and training's
``--threads``).  An operation is split only where each part has ``MIN_PART_SAMPLES`` samples or more:
below that the threads' hand-over costs more than it saves.  (ours)

While parts run, the BLAS library (numpy's matrix products) is held to one thread with threadpoolctl: each part's
product then runs in its own thread only, instead of every part starting the BLAS library's threads (which spin
and slow each other down many times over).  threadpoolctl is the maintained way to do this across OpenBLAS, MKL
and BLIS builds; where it is missing the parts run with the BLAS library as it is set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "RRAMSIM_THREADS"
DEFAULT_MAX = 16  # (ours) beyond this a multiply's parts are too small to gain
MIN_PART_SAMPLES = 1 << 13  # (ours) about 0.15 ms of read-out per part on one core, several times a hand-over

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_override: int | None = None
_blas: Any = None  # threadpoolctl.ThreadpoolController, made at the first parts run (False: not installed)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def threads() -> int:
    """The threads an operation may use now (>= 1)."""
    if _override is not None:
        return _override
    given = os.environ.get(ENV, "").strip()
    if given:
        try:
            n = int(given)
        except ValueError:
            raise ValueError(f"{ENV}={given!r}: give a whole number of threads (1 or more)") from None
        if n < 1:
            raise ValueError(f"{ENV}={given!r}: give a whole number of threads (1 or more)")
        return n
    return max(1, min(_cpus(), DEFAULT_MAX))


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (None: back to ``RRAMSIM_THREADS`` / the CPUs)."""
    global _override
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
    _override = n


def parts(n_items: int, samples_per_item: int) -> list[tuple[int, int]]:
    """Split ``n_items`` (whole vectors) into contiguous [start, stop) ranges, one per thread, each of
    ``MIN_PART_SAMPLES`` samples or more; one range where threads would not gain."""
    if n_items <= 0:
        return [(0, max(n_items, 0))]
    n = min(threads(), max(1, (n_items * samples_per_item) // MIN_PART_SAMPLES), n_items)
    bounds = [n_items * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


def run_parts(work: Callable[[int, int], T], ranges: list[tuple[int, int]]) -> list[T]:
    """``work(start, stop)`` for every range, side by side on the pool (the first on this thread); the
    results in the ranges' order.  An exception in any part is raised here once all parts have ended."""
    if len(ranges) == 1:
        return [work(*ranges[0])]
    pool = _executor(len(ranges) - 1)
    with _one_blas_thread():
        futures = [pool.submit(work, a, b) for a, b in ranges[1:]]
        try:
            first = work(*ranges[0])
        finally:
            rest = [f.exception() for f in futures]  # wait for every part before anything is raised
    for e in rest:
        if e is not None:
            raise e
    return [first, *(f.result() for f in futures)]


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rramsim"), workers
        return _pool


def _one_blas_thread() -> AbstractContextManager[Any]:
    global _blas
    with _lock:
        if _blas is None:
            try:
                from threadpoolctl import ThreadpoolController

                _blas = ThreadpoolController()
            except ImportError:  # pragma: no cover - a dependency; the parts still run
                _blas = False
    return _blas.limit(limits=1, user_api="blas") if _blas else nullcontext()
