"""Calibration measurements as one long CSV of per-cell time series (docs/emulator.md, "Calibration
from your own measurements"), so a model can be fitted from data taken with other tools (e.g. the
per-cell read series arc2control keeps).

One row per sample, header ``stage,row,col,index,sub,time_s,voltage_v,value``:

| stage | index | sub | time_s | voltage_v | value |
|---|---|---|---|---|---|
| pristine | read number | 0 | - | - | G (uS) before any forming |
| gate_off | read number | 0 | - | - | G (uS) read with the word line off |
| zero_input | vector number | 0 | - | - | multiply-range ADC code, all inputs 0 (row -1) |
| forming | sweep step | 0 | - | pulse (V) | G (uS) read back after the step |
| read | read number | 0 | - | - | G (uS), repeated reads after forming |
| reset / set | cycle | read number | set: time since the set pulse (s) | - | G (uS) after the pulse |
| verify | 0 | 0 | - | - | last verify read (uS) of write-verify; ``pulses`` in sub |
| relax | delay number | read number | time of this sample after write-verify (s) | - | G (uS) |

Cells are absolute array indices; the region is their bounding box.  Missing values are empty.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.calibrate.measure import region_meta
from rramctl.chip import FORMED_THRESHOLD_US
from rramctl.errors import UsageError
from rramctl.fileio import atomic_write_text
from rramctl.geometry import COLS, ROWS, Region

HEADER = ("stage", "row", "col", "index", "sub", "time_s", "voltage_v", "value")
Meas = dict[str, dict[str, NDArray[Any]]]


class CsvLayoutError(UsageError):
    """A measurement CSV that does not follow the documented layout."""


def _rows_of(region: Region, stage: str, arr: NDArray[Any], extra: dict[str, Any] | None = None) -> list[list[Any]]:
    """Rows for a (K, R, C) array of region reads."""
    out = []
    for k in range(arr.shape[0]):
        for r in range(arr.shape[1]):
            for c in range(arr.shape[2]):
                out.append([stage, region.row + r, region.col + c, k, 0, "", "", repr(float(arr[k, r, c]))])
    return out


def to_csv(meas: Meas, path: Path) -> None:
    """Write measurements (rramctl.calibrate.measure) in the documented CSV layout."""
    reg = Region(*(int(v) for v in meas["meta"]["region"]))
    rows: list[list[Any]] = []
    rows += _rows_of(reg, "pristine", meas["pristine"]["g_us"])
    off = meas["offsets"]
    rows += _rows_of(reg, "gate_off", off["gate_off_us"])
    for k, vec in enumerate(off["zero_codes"]):
        rows += [["zero_input", -1, reg.col + j, k, 0, "", "", int(v)] for j, v in enumerate(vec)]
    fm = meas["forming"]
    for (r, c), v in np.ndenumerate(fm["v_form_v"]):
        if not np.isnan(v):
            rows.append(["forming", reg.row + r, reg.col + c, int(np.searchsorted(fm["volts"], v - 1e-9)), 0, "",
                         repr(float(v)), repr(float(fm["g_formed_us"][r, c]))])  # fmt: skip
    rows += _rows_of(reg, "read", meas["reads"]["g_us"])
    cy = meas["cycling"]
    for stage, key in (("reset", "reset_us"), ("set", "set_us")):
        for (k, n, i), v in np.ndenumerate(cy[key]):
            age = repr(float(cy["set_t_s"][k, n, i])) if stage == "set" else ""
            rows.append([stage, int(cy["cells"][i, 0]), int(cy["cells"][i, 1]), k, n, age, "", repr(float(v))])
    rx = meas["relaxation"]
    kept = np.asarray(rx["converged"], dtype=bool)  # the CSV holds the converged cells only (read back as such)
    for i, (r, c) in enumerate(rx["cells"]):
        if kept[i]:
            rows.append(["verify", int(r), int(c), 0, int(rx["pulses"][i]), "", "", repr(float(rx["verify_us"][i]))])
    for (d, n, i), v in np.ndenumerate(rx["g_us"]):
        if kept[i]:
            rows.append(["relax", int(rx["cells"][i, 0]), int(rx["cells"][i, 1]), d, n,
                         repr(float(rx["t_s"][d, n, i])), "", repr(float(v))])  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


STAGES = ("pristine", "gate_off", "zero_input", "forming", "read", "reset", "set", "verify", "relax")
GRID_STAGES = ("pristine", "gate_off", "read")  # every cell of the region at every index


def _num(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise CsvLayoutError(f"{what}: {text!r} is not a number") from e
    if not np.isfinite(value):
        raise CsvLayoutError(f"{what}: {text!r} is not a finite number")
    return value


def _int(text: str, what: str) -> int:
    value = _num(text, what)
    if value != int(value):
        raise CsvLayoutError(f"{what}: {text!r} is not a whole number")
    return int(value)


def _complete(path: Path, stage: str, keys: set[tuple[int, ...]], names: tuple[str, ...],
              shape: tuple[range, ...]) -> None:  # fmt: skip
    """Refuse a stage whose samples do not fill their grid (rows missing: a truncated or partial file)."""
    want = int(np.prod([len(r) for r in shape]))
    if len(keys) == want:
        return
    first = next(
        k
        for k in np.ndindex(*(len(r) for r in shape))
        if tuple(r[i] for r, i in zip(shape, k, strict=True)) not in keys
    )
    at = ", ".join(f"{n} {r[i]}" for n, r, i in zip(names, shape, first, strict=True))
    raise CsvLayoutError(f"{path}: stage {stage} lacks {want - len(keys)} of its {want} samples (the first: {at}); "
                         "the file is truncated or incomplete")  # fmt: skip


def from_csv(path: Path, forming_volts: list[float] | None = None) -> Meas:
    """Read the documented CSV layout into measurements the fit takes.  Read-range G values are kept in
    uS; ``gate_off`` reads are converted to read-range codes by the fit's board units."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise CsvLayoutError(f"{path} does not exist") from e
    except UnicodeDecodeError as e:
        raise CsvLayoutError(f"{path} is not a UTF-8 text (CSV) file: byte {e.start}") from e
    reader = csv.reader(io.StringIO(text))
    head = next(reader, None)
    if head is None or tuple(h.strip() for h in head) != HEADER:
        raise CsvLayoutError(f"{path}: the first line must be {','.join(HEADER)}")
    by: dict[str, list[tuple[Any, ...]]] = {}  # (row, col, index, sub, time_s, voltage_v, value)
    seen: dict[tuple[Any, ...], int] = {}  # (stage, row, col, index, sub) -> line
    for n, rec in enumerate(reader, start=2):
        if len(rec) != len(HEADER):
            raise CsvLayoutError(f"{path}:{n}: {len(rec)} fields, expected {len(HEADER)} (a truncated line?)")
        f_stage, f_row, f_col, f_index, f_sub, f_time, f_volt, f_value = rec
        where = f"{path}:{n}"
        f_stage = f_stage.strip()
        if f_stage not in STAGES:
            raise CsvLayoutError(f"{where}: unknown stage {f_stage!r} (one of {', '.join(STAGES)})")
        ints = tuple(_int(x, where) for x in (f_row, f_col, f_index, f_sub))
        row, col, index, sub = ints
        if not (row == -1 if f_stage == "zero_input" else 0 <= row < ROWS) or not 0 <= col < COLS:
            raise CsvLayoutError(f"{where}: cell ({row}, {col}) is not on the {ROWS} x {COLS} array "
                                 "(zero_input rows are -1)")  # fmt: skip
        if index < 0 or sub < 0:
            raise CsvLayoutError(f"{where}: index and sub must be >= 0, got {index} and {sub}")
        floats = tuple(_num(x, where) if x else np.nan for x in (f_time, f_volt))
        if floats[0] < 0:
            raise CsvLayoutError(f"{where}: time_s = {f_time} is negative (times are after a pulse)")
        if f_stage == "forming" and np.isnan(floats[1]):
            raise CsvLayoutError(f"{where}: a forming row needs its voltage_v")
        key = (f_stage, *(ints if f_stage != "verify" else ints[:3]))
        if key in seen:
            raise CsvLayoutError(
                f"{where}: a second {f_stage} sample of cell ({row}, {col}) index {index}"
                f"{'' if f_stage == 'verify' else f' sub {sub}'} (the first is on line {seen[key]})"
            )
        seen[key] = n
        by.setdefault(f_stage, []).append((*ints, *floats, _num(f_value, where)))
    cells = [(r, c) for stage, recs in by.items() if stage != "zero_input" for r, c, *_ in recs]
    if not cells:
        raise CsvLayoutError(f"{path} holds no cell samples")
    rr, cc = np.array(cells).T
    reg = Region(int(rr.min()), int(rr.max() - rr.min() + 1), int(cc.min()), int(cc.max() - cc.min() + 1))
    meas: Meas = {"meta": region_meta(reg)}
    rows, cols = range(reg.row, reg.row + reg.n_rows), range(reg.col, reg.col + reg.n_cols)
    for stage in GRID_STAGES:
        if stage in by:
            grid_keys: set[tuple[int, ...]] = {(k, r, c) for r, c, k, *_ in by[stage]}
            n_k = max(k[0] for k in grid_keys) + 1
            _complete(path, stage, grid_keys, ("index", "row", "col"), (range(n_k), rows, cols))
    if "zero_input" in by:
        zero_keys: set[tuple[int, ...]] = {(k, c) for _, c, k, *_ in by["zero_input"]}
        n_k = max(k[0] for k in zero_keys) + 1
        _complete(path, "zero_input", zero_keys, ("index", "col"), (range(n_k), cols))
    if "reset" in by and "set" in by:
        cells = sorted({(r, c) for r, c, *_ in by["reset"]} | {(r, c) for r, c, *_ in by["set"]})
        shape = (range(max(k for _, _, k, *_ in by["reset"]) + 1), range(max(s for _, _, _, s, *_ in by["reset"]) + 1))
        for stage in ("reset", "set"):
            got = {((r, c), k, s) for r, c, k, s, *_ in by[stage]}
            want = {(rc, k, s) for rc in cells for k in shape[0] for s in shape[1]}
            if got != want:
                rc, k, s = min(want - got) if want - got else min(got - want)
                raise CsvLayoutError(f"{path}: stage {stage} lacks or adds samples against the other cycling stage "
                                     f"(e.g. cell {rc} cycle {k} read {s}): every cycled cell needs a reset and a set "
                                     "sample at every cycle and read; the file is truncated or incomplete")  # fmt: skip
    if "relax" in by and "verify" in by:
        cells = sorted({(r, c) for r, c, *_ in by["verify"]})
        got = {((r, c), k, s) for r, c, k, s, *_ in by["relax"]}
        shape = (range(max(k for _, _, k, *_ in by["relax"]) + 1), range(max(s for _, _, _, s, *_ in by["relax"]) + 1))
        want = {(rc, k, s) for rc in cells for k in shape[0] for s in shape[1]}
        if got != want:
            rc, k, s = min(want - got) if want - got else min(got - want)
            raise CsvLayoutError(
                f"{path}: stage relax does not hold one sample of every verify cell at every delay "
                f"and read (e.g. cell {rc} delay {k} read {s}); the file is truncated or incomplete"
            )

    def grid(stage: str) -> NDArray[np.float64]:
        recs = by.get(stage, [])
        k_max = max((k for _, _, k, *_ in recs), default=-1) + 1
        out = np.full((k_max, reg.n_rows, reg.n_cols), np.nan)
        for r, c, k, _s, _t, _v, val in recs:
            out[k, r - reg.row, c - reg.col] = val
        return out

    if "pristine" in by:
        meas["pristine"] = {"g_us": grid("pristine")}
    if "gate_off" in by and "zero_input" in by:
        z = by["zero_input"]
        b = max(k for _, _, k, *_ in z) + 1
        zero = np.zeros((b, reg.n_cols), np.int64)
        for _r, c, k, _s, _t, _v, val in z:
            zero[k, c - reg.col] = int(val)
        meas["offsets"] = {"gate_off_us": grid("gate_off"), "zero_codes": zero}
    if "forming" in by:
        recs = by["forming"]
        volts = np.array(sorted(forming_volts or {v for *_, v, _ in recs}))
        v_form = np.full(reg.shape, np.nan)
        g_f = np.full(reg.shape, np.nan)
        for r, c, _k, _s, _t, v, val in recs:
            v_form[r - reg.row, c - reg.col] = v
            g_f[r - reg.row, c - reg.col] = val
        stuck = np.zeros(reg.shape, bool)
        if "pristine" in meas:
            stuck = np.nanmean(meas["pristine"]["g_us"], axis=0) > FORMED_THRESHOLD_US
        meas["forming"] = {"v_form_v": v_form, "g_formed_us": g_f, "volts": volts, "stuck_on": stuck}
    if "read" in by:
        meas["reads"] = {"g_us": grid("read")}
    if "reset" in by and "set" in by:
        meas["cycling"] = _cell_series(by["reset"], by["set"])
    if "relax" in by and "verify" in by:
        meas["relaxation"] = _relax_series(by["verify"], by["relax"])
    return meas


def _cell_series(reset: list[Any], set_: list[Any]) -> dict[str, NDArray[Any]]:
    cells = sorted({(r, c) for r, c, *_ in reset})
    pos = {rc: i for i, rc in enumerate(cells)}
    k_max = max(k for _, _, k, *_ in reset) + 1
    n_max = max(s for _, _, _, s, *_ in reset) + 1
    out = {key: np.full((k_max, n_max, len(cells)), np.nan) for key in ("reset_us", "set_us", "set_t_s")}
    for key, recs in (("reset_us", reset), ("set_us", set_)):
        for r, c, k, s, t, _v, val in recs:
            out[key][k, s, pos[(r, c)]] = val
            if key == "set_us":
                out["set_t_s"][k, s, pos[(r, c)]] = 0.0 if np.isnan(t) else t
    return {"cells": np.array(cells, np.int64), **out}


def _relax_series(verify: list[Any], relax: list[Any]) -> dict[str, NDArray[Any]]:
    cells = [(r, c) for r, c, *_ in verify]
    pos = {rc: i for i, rc in enumerate(cells)}
    d_max = max(k for _, _, k, *_ in relax) + 1
    n_max = max(s for _, _, _, s, *_ in relax) + 1
    g = np.full((d_max, n_max, len(cells)), np.nan)
    t = np.zeros_like(g)
    for r, c, k, s, ts, _v, val in relax:
        g[k, s, pos[(r, c)]] = val
        t[k, s, pos[(r, c)]] = ts
    verify_us = np.array([val for *_, val in verify])
    pulses = np.array([s for _, _, _, s, *_ in verify], np.int64)
    converged = np.isfinite(verify_us)  # the CSV keeps converged cells only (docs/emulator.md)
    return {"cells": np.array(cells, np.int64), "verify_us": verify_us, "pulses": pulses, "converged": converged,
            "g_us": g, "t_s": t}  # fmt: skip
