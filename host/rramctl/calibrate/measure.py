"""The measurement protocol of ``rramctl calibrate``: chip API calls only, so it runs on a board as on
the emulator.  Stages (docs/emulator.md, "Calibration"):

1. ``pristine``: two reads of the untouched region (stuck-on cells conduct before forming);
2. ``offsets``: gate-off reads (read range: each column's offset and noise floor) and a zero-input
   multiply (multiply range: ADC input noise), the dummy pass of the Tsinghua A111 SDK;
3. ``forming``: a voltage sweep of the whole region (seed 000 Fig. 2h), read back after every step:
   each cell's forming voltage and formed conductance;
4. ``reads``: after a rest, repeated reads of the formed region (read noise vs conductance);
5. ``cycling``: reset/set cycles of a sample of formed cells, read after each pulse (off level,
   post-set spread, success, stuck cells);
6. ``relaxation``: write-verify of a sample of formed cells, then reads at increasing delays on the
   chip's clock (relaxation and drift).

Each stage's arrays are written to ``<out>/measurements/<stage>.npz`` when it ends (the forming sweep
after every step), after the chip's state is made durable (:meth:`Chip.persist`: an emulator's state file is
written then, not only at close); ``progress.json`` lists the finished stages and the chip's identity, so a
run cut off (even by SIGKILL) resumes where it stopped on the same chip (a stage cut half-way is measured
again; the forming sweep resumes at its next step), and another chip is refused.

The protocol needs a region no command has formed: a formed cell cannot be formed again, so a region an
earlier calibration (or any forming) used has nothing for the forming sweep and, after it, no newly
formed cells to cycle and write.  The pristine reads (read-only) are checked before anything is written
or pulsed, and such a region is refused with one :class:`CalibrationError`; so is a sweep that formed
too few cells, before the stages that need them.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rramctl.calibrate.fit import MIN_FORMED
from rramctl.calibrate.plan import CalibrationPlan
from rramctl.chip import FORMED_THRESHOLD_US, Chip
from rramctl.config import Pulse
from rramctl.errors import StateError, UsageError
from rramctl.fileio import atomic_write_text, atomic_write_with
from rramctl.geometry import Region

PROGRAM_BATCH = 64  # cells a write-verify PROGRAM of the relaxation stage (ours: ~0.3 s of board time)
STAGES = ("pristine", "offsets", "forming", "reads", "cycling", "relaxation")
Arrays = dict[str, NDArray[Any]]
Progress = Callable[[str, int, int], None]  # (stage, step, steps)
# A fresh region conducts before forming only at its stuck-on defects (paper-40nm: 500 ppm); more than this
# fraction (or than ON_BEFORE_FORMING_MIN cells, on a small region) means cells formed before (ours).
ON_BEFORE_FORMING_FRACTION = 0.01
ON_BEFORE_FORMING_MIN = 3


class CalibrationError(UsageError):
    """A region the protocol cannot measure (formed before, or too few cells formed in the sweep)."""


# the arrays each stage's .npz holds (a file without them is damaged)
STAGE_KEYS = {
    "pristine": ("g_us",), "offsets": ("gate_off_us", "zero_codes"),
    "forming": ("v_form_v", "g_formed_us", "volts", "steps_done", "stuck_on"), "reads": ("g_us",),
    "cycling": ("cells", "reset_us", "set_us", "set_t_s"),
    "relaxation": ("cells", "verify_us", "pulses", "converged", "g_us", "t_s"),
}  # fmt: skip


def chip_identity(chip: Chip, plan: CalibrationPlan, state: Path | None = None) -> dict[str, Any]:
    """What tells this chip from another in progress.json: the backend, the state file (emulator, software),
    the emulated chip model's seed and a hash of the whole model (where known; a board cannot be told from
    another board of the same backend), and the region."""
    ident: dict[str, Any] = {"backend": chip.backend, "state": str(state.resolve()) if state is not None else None}
    model = chip.emulated_model()
    if model is not None:
        ident["model_seed"] = int(model.seed)
        ident["model_sha256"] = hashlib.sha256(model.model_dump_json().encode()).hexdigest()[:16]
    ident["region"] = plan.region
    return ident


class MeasurementStore:
    """The measurement folder: one .npz per stage and progress.json (the plan, the chip and finished stages).

    ``chip``: the identity (:func:`chip_identity`) of the chip being measured: a folder that holds another
    chip's measurements is refused (StateError) before the chip is touched.  ``persist``: called before a
    stage's file and progress are written (the chip's state made durable first: :meth:`Chip.persist`), so a
    stage is never recorded done on a chip state that a kill could still lose."""

    def __init__(
        self,
        out: Path,
        plan: CalibrationPlan,
        chip: dict[str, Any] | None = None,
        persist: Callable[[], None] | None = None,
    ) -> None:
        self.out = out
        self.folder = out / "measurements"
        self.plan = plan
        self.chip = chip
        self.persist = persist or (lambda: None)
        self.progress_path = out / "progress.json"
        self.done: list[str] = []
        for folder in (out, self.folder):  # checked before the chip is touched (the first read)
            if folder.exists() and not folder.is_dir():
                raise StateError(f"--out {out}: {folder} is a file, not a folder; choose another --out")
        if self.progress_path.exists():
            try:
                saved = json.loads(self.progress_path.read_text(encoding="utf-8"))
                same = CalibrationPlan.model_validate(saved["plan"]) == plan
                done = [str(s) for s in saved["done"]]
                saved_chip = saved.get("chip")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise StateError(f"{self.progress_path} is not a calibration progress file: {e}") from e
            if not same:
                raise StateError(f"{out} holds a calibration with another plan; use another --out or remove it")
            if chip is not None and isinstance(saved_chip, dict) and saved_chip != chip:
                differ = ", ".join(
                    f"{k} {saved_chip.get(k)!r} there, {chip.get(k)!r} now"
                    for k in sorted(set(saved_chip) | set(chip))
                    if saved_chip.get(k) != chip.get(k)
                )
                raise StateError(
                    f"{out} holds the calibration of another chip ({differ}): its measurements cannot be resumed or "
                    "mixed with this chip's; use another --out, or the chip it measured (nothing was run or written)"
                )
            self.done = [s for s in done if s in STAGES]
            for stage in self.done:  # every finished stage's file is there and readable, before the chip is touched
                self.load(stage, required=True)

    def _write_progress(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"plan": self.plan.model_dump(mode="json"), "done": self.done}
        if self.chip is not None:
            record["chip"] = self.chip
        atomic_write_text(self.progress_path, json.dumps(record, indent=1))

    def save(self, stage: str, arrays: Arrays, *, finished: bool = True) -> None:
        self.persist()  # the chip state these arrays were measured on is durable before they are recorded
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_with(self.folder / f"{stage}.npz", lambda f: np.savez(f, **arrays))
        if finished and stage not in self.done:
            self.done.append(stage)
        self._write_progress()

    def load(self, stage: str, *, required: bool = False) -> Arrays | None:
        """A stage's arrays; None where its file is missing (a stage not yet run).  A damaged file, or a missing
        one of a stage ``required`` (listed done), is one StateError naming it."""
        path = self.folder / f"{stage}.npz"
        fix = (
            f"the chip's region was used by this calibration, so it cannot be measured again: restore the file, "
            f"or remove {self.out} and calibrate a region no command has formed yet"
        )
        if not path.exists():
            if required:
                raise StateError(f"{self.progress_path} lists the {stage} stage done, but {path} is missing; {fix}")
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise StateError(f"measurements file {path} is damaged ({type(e).__name__}: {e}); {fix}") from e
        missing = [k for k in STAGE_KEYS[stage] if k not in arrays]
        if missing:
            raise StateError(f"measurements file {path} lacks {', '.join(missing)}: it is damaged; {fix}")
        return arrays

    def all(self) -> dict[str, Arrays]:
        return {s: a for s in STAGES if s in self.done and (a := self.load(s, required=True)) is not None}


def _reads(chip: Chip, region: Region, n: int, gate_v: float | None = None) -> NDArray[np.float64]:
    return np.stack([chip.read(region, gate_v=gate_v) for _ in range(n)])


def _stage_pristine(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    reads = _reads(chip, plan.area, 2)
    progress("pristine", 1, 1)
    return {"g_us": reads}


def _stage_offsets(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    region = plan.area
    gate_off = _reads(chip, region, plan.offset_reads, gate_v=0.0)  # transistors closed: offset + leakage + noise
    progress("offsets", 1, 2)
    x = np.zeros((plan.offset_vectors, region.n_rows), dtype=np.int64)
    codes = chip.multiply(x, region, 1).codes  # raw codes: no offsets are stored yet on a fresh run
    progress("offsets", 2, 2)
    return {"gate_off_us": gate_off, "zero_codes": codes}


def _stage_forming(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    region = plan.area
    volts = plan.form_voltages()
    part = store.load("forming") or {}
    start = int(part["steps_done"]) if "steps_done" in part else 0
    v_form = part.get("v_form_v", np.full(region.shape, np.nan))
    g_formed = part.get("g_formed_us", np.full(region.shape, np.nan))
    pristine = store.load("pristine")
    before = pristine["g_us"].mean(axis=0) if pristine is not None else np.zeros(region.shape)
    stuck_on = before > FORMED_THRESHOLD_US
    for k in range(start, len(volts)):
        rep = chip.electroform(region, Pulse(voltage_v=volts[k], width_s=plan.form_width_s, gate_v=plan.form_gate_v))
        new = (rep.conductance_us > FORMED_THRESHOLD_US) & np.isnan(v_form) & ~stuck_on
        v_form[new] = volts[k]
        g_formed[new] = rep.conductance_us[new]
        arrays = {"v_form_v": v_form, "g_formed_us": g_formed, "volts": np.array(volts), "steps_done": np.array(k + 1),
                  "stuck_on": stuck_on, "width_s": np.array(plan.form_width_s),
                  "gate_v": np.array(plan.form_gate_v)}  # fmt: skip
        store.save("forming", arrays, finished=False)
        progress("forming", k + 1, len(volts))
    return store.load("forming") or {}


def _check_pristine(plan: CalibrationPlan, pristine: Arrays, out: Path, written: bool) -> None:
    """Refuse a region whose cells conduct before forming beyond the defect rate: an earlier calibration
    (or another command) formed them, and the forming sweep cannot measure a formed cell."""
    on = pristine["g_us"].mean(axis=0) > FORMED_THRESHOLD_US
    n_on, n = int(on.sum()), int(on.size)
    if n_on <= max(ON_BEFORE_FORMING_MIN, ON_BEFORE_FORMING_FRACTION * n):
        return
    area = plan.area
    rows, cols = np.nonzero(on)
    where = (f"rows {area.row + rows.min()}-{area.row + rows.max()}, "
             f"columns {area.col + cols.min()}-{area.col + cols.max()}")  # fmt: skip
    done = (
        f"the measurements in {out} were taken on it: remove {out} or choose another --out"
        if written
        else "nothing was pulsed or written"
    )
    raise CalibrationError(
        f"calibrate: {n_on} of the {n} cells of region {plan.region} already conduct before forming ({where}): "
        "an earlier calibration or another command formed them, and a formed cell cannot be formed again, so "
        "the forming sweep and the stages after it have nothing to measure there; calibrate a region no "
        "command has formed yet, or a fresh chip (emulator: another --state, or move the state file away); "
        f"{done}"
    )


def _check_formed(plan: CalibrationPlan, store: MeasurementStore) -> None:
    """Refuse to go on after a sweep that formed too few cells to cycle, write and fit."""
    forming = store.load("forming")
    if forming is None:
        raise StateError("the forming stage has not run")
    n_formed = int((~np.isnan(forming["v_form_v"])).sum())
    if n_formed < MIN_FORMED:
        raise CalibrationError(
            f"calibrate: only {n_formed} cells of region {plan.region} formed in the sweep up to "
            f"{plan.form_stop_v:g} V (at least {MIN_FORMED} are needed to cycle, write and fit): use a larger "
            f"region no command has formed yet (or a higher form_stop_v within the rating) and another --out "
            f"(the measurements so far are in {store.out})"
        )


def _block(plan: CalibrationPlan, store: MeasurementStore, n: int, from_top: bool) -> tuple[NDArray[np.int64], Region]:
    """The formed cells of the fewest whole rows, from the top or the bottom of the region, that hold at
    least n of them (absolute [row, col]), and those rows as a region: reading a few rows is quick, so
    every cell is read soon after its pulse (ours)."""
    _check_formed(plan, store)
    forming = store.load("forming")
    assert forming is not None  # _check_formed
    formed = ~np.isnan(forming["v_form_v"])
    area = plan.area
    order = range(area.n_rows) if from_top else range(area.n_rows - 1, -1, -1)
    rows, count = [], 0
    for r in order:
        rows.append(r)
        count += int(formed[r].sum())
        if count >= n:
            break
    r0, nr = min(rows), len(rows)
    idx = np.argwhere(formed[r0 : r0 + nr]) + [r0, 0]
    return idx + [area.row, area.col], Region(area.row + r0, nr, area.col, area.n_cols)


def _stage_reads(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    chip.wait(plan.settle_s)
    reads = []
    for k in range(plan.reads):
        reads.append(chip.read(plan.area))
        progress("reads", k + 1, plan.reads)
    return {"g_us": np.stack(reads)}


def _cell_reads(
    chip: Chip, area: Region, cells: NDArray[np.int64], n: int, since: float | NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``n`` reads of the region at the given cells, and each sample's time after ``since`` on the chip's
    clock: a READ samples its cells one after another in row-major order (docs/protocol.md), so a
    cell's time is interpolated between the read's start and end by its position (ours)."""
    r, c = cells[:, 0] - area.row, cells[:, 1] - area.col
    frac = (r * area.n_cols + c + 0.5) / (area.n_rows * area.n_cols)
    g, t = [], []
    for _ in range(n):
        start = chip.clock_s()
        g.append(chip.read(area)[r, c])
        t.append(start + frac * (chip.clock_s() - start) - since)
    return np.stack(g), np.stack(t)


def _stage_cycling(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    cells, block = _block(plan, store, plan.cycle_cells, True)
    after_reset, after_set, set_age = [], [], []
    for k in range(plan.cycles):
        chip.reset(cells)
        after_reset.append(_cell_reads(chip, block, cells, plan.cycle_reads, chip.clock_s())[0])
        t_set = chip.clock_s()
        chip.set(cells)
        g, age = _cell_reads(chip, block, cells, plan.cycle_reads, t_set)
        after_set.append(g)
        set_age.append(age)  # time since the set pulse of each sample: relaxation has begun
        progress("cycling", k + 1, plan.cycles)
    return {"cells": cells, "reset_us": np.stack(after_reset), "set_us": np.stack(after_set),
            "set_t_s": np.stack(set_age)}  # fmt: skip


def _stage_relaxation(chip: Chip, plan: CalibrationPlan, store: MeasurementStore, progress: Progress) -> Arrays:
    cells, block = _block(plan, store, plan.program_cells, False)
    # write-verify in batches of PROGRAM_BATCH cells, each cell's time counted from the start of its batch: one
    # PROGRAM of 1,024 cells lasts seconds on the board (a chain frame per verify read and per pulse,
    # rramsim.timing), as long as the relaxation it measures
    since = np.empty(len(cells))
    verify, pulses, converged = np.empty(len(cells)), np.empty(len(cells), np.int64), np.empty(len(cells), bool)
    for batch in np.array_split(np.arange(len(cells)), -(-len(cells) // PROGRAM_BATCH)):
        since[batch] = chip.clock_s()
        rep = chip.program(cells[batch], np.full(len(batch), plan.program_target_us))
        verify[batch], pulses[batch], converged[batch] = rep.final_us, rep.pulses, rep.converged
    t0 = chip.clock_s()
    g, t = [], []
    for k, delay in enumerate(plan.delays_s):
        rest = t0 + delay - chip.clock_s()
        if rest > 0:
            chip.wait(rest)
        gk, tk = _cell_reads(chip, block, cells, plan.delay_reads, since)
        g.append(gk)
        t.append(tk)
        progress("relaxation", k + 1, len(plan.delays_s))
    return {"cells": cells, "verify_us": verify, "pulses": pulses, "converged": converged,
            "g_us": np.stack(g), "t_s": np.stack(t)}  # fmt: skip


_RUNNERS = {
    "pristine": _stage_pristine, "offsets": _stage_offsets, "forming": _stage_forming, "reads": _stage_reads,
    "cycling": _stage_cycling, "relaxation": _stage_relaxation,
}  # fmt: skip


def check_backend(backend: str, plan: CalibrationPlan) -> None:
    """Refuse the ``software`` backend: it has no read noise, offsets, ADC or board clock, so a fit means nothing,
    and its waits sleep in real time (the plan's rests, ``settle_s`` + the last of ``delays_s``)."""
    if backend == "software":
        rest = plan.settle_s + plan.delays_s[-1]
        raise CalibrationError(
            "calibrate: the software backend has no read noise, column offsets, ADC or board clock, so a fit to it "
            f"means nothing (and its waits sleep in real time: {rest:,.0f} s of rests in this plan); calibrate on "
            "the emulator or a board (nothing was run or written)"
        )


def measure(
    chip: Chip,
    plan: CalibrationPlan,
    out: Path,
    progress: Progress | None = None,
    *,
    state: Path | None = None,
) -> dict[str, Arrays]:
    """Run every stage not yet finished in ``out``; return every stage's arrays.

    Refused before the chip is touched or a file written: the ``software`` backend, a plan past the chip's
    board ratings (:meth:`CalibrationPlan.check`), a folder that holds another plan or another chip (``state``:
    the chip's state file, recorded as part of its identity).  The chip's state is made durable
    (:meth:`Chip.persist`) before each stage is recorded.  The chip's stored column offsets
    (:meth:`Chip.calibrate_offsets`) are cleared (the zero-input pass must see raw codes) and stay cleared."""
    check_backend(chip.backend, plan)
    plan.check(chip.config)
    store = MeasurementStore(out, plan, chip_identity(chip, plan, state), chip.persist)
    report = progress or (lambda stage, k, n: None)
    chip.clear_offsets()  # the zero-input pass must see raw codes
    with chip.batch():
        for stage in STAGES:
            if stage in ("reads", "cycling", "relaxation"):
                _check_formed(plan, store)  # before the rest and pulses of a stage that needs formed cells
            if stage in store.done:
                if stage == "pristine" and (saved := store.load("pristine")) is not None:
                    _check_pristine(plan, saved, out, written=True)
                report(stage, 1, 1)
                continue
            arrays = _RUNNERS[stage](chip, plan, store, report)
            if stage == "pristine":
                _check_pristine(plan, arrays, out, written=False)  # before the first file and the first pulse
            store.save(stage, arrays)
    return store.all() | {"meta": region_meta(plan.area)}


def region_meta(region: Region) -> Arrays:
    """The calibrated region, as the fit needs it (absolute cell indices of the sampled cells)."""
    return {"region": np.array([region.row, region.n_rows, region.col, region.n_cols])}
