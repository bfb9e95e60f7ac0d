"""Benchmark runs of one training task: several seeds, both recipes, TO and WO, mean +- std.

Each (recipe, method, seed) trains one run on the emulator (chip_seed = seed), products on the host
during training unless ``--forward chip``; the final test can be repeated with every product on the
chip (``--chip-test-subset``). Reported per run: test accuracy at the final epoch, the best-on-validation
epoch and its test accuracy, cell programming operations and pair flips per step and per epoch. Written
to ``--out/results.json`` (per-seed records and their mean +- std) and printed as a table beside the
paper's figures (seed 000 Results, Fig. 3 and 4).
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rramctl.fileio import atomic_write_text
from rramctl.training import plots
from rramctl.training.config import ThresholdConfig, TrainConfig, apply_assignments
from rramctl.training.data import Dataset, load_task_data
from rramctl.training.runner import Run, RunError, finish, load_run

PAPER = {  # seed 000 Results / Fig. 3d,f and 4d,f; programming: TO 2.3 M / 349 k cell updates
    "fmnist-cnn": {"to": 0.874, "wo": 0.797, "ops_reduction": 0.9994, "epochs": 65, "to_cell_updates": 2.3e6},
    "fsdd-crnn": {"to": 0.981, "wo": 0.908, "ops_reduction": 0.9993, "epochs": 60, "to_cell_updates": 3.49e5},
}


def run_one(cfg: TrainConfig, out: Path, data: Dataset, chip_test_subset: int | None, fresh: bool) -> dict[str, Any]:
    """Train one run in ``out`` (a run with the same settings there is resumed, or reused when complete,
    unless ``fresh``); its figures as one record."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        run = Run.open(cfg, out, data)
    except RunError:  # another run's settings (or no complete checkpoint): start again
        shutil.rmtree(out, ignore_errors=True)
        run = Run.open(cfg, out, data)
    run.train()
    s = finish(run)
    steps_per_epoch = run.progress.steps // max(1, run.progress.epoch)
    pair_flips = sum(run.progress.flips.values())
    rec = {
        "recipe": cfg.recipe, "method": cfg.method, "seed": cfg.seed, "epochs": run.progress.epoch,
        "steps": run.progress.steps, "batch_size": cfg.optimiser.batch_size, "split": run.split_record(),
        "path": "host products in training and test" if cfg.host_forward else "chip products in training and test",
        "test_accuracy": s["test_accuracy"], **run.best_on_validation(),
        "cell_ops": s["programming_ops_total"], "cell_ops_per_step": s["programming_ops_total"] / run.progress.steps,
        "cell_ops_per_epoch": s["programming_ops_total"] / run.progress.epoch,
        "pair_flips": pair_flips, "pair_flips_per_step": pair_flips / run.progress.steps,
        "pair_flips_per_epoch": pair_flips / run.progress.epoch, "steps_per_epoch": steps_per_epoch,
        "program_pulses": sum(s["program_pulses"].values()), "seconds_per_step": s["seconds_per_step"],
    }  # fmt: skip
    rec = {k: v for k, v in rec.items() if v is not None}  # a run without validation has no best-on-validation
    run.close()
    if chip_test_subset:
        again = load_run(out, lambda c: data, forward="chip", test_subset=chip_test_subset)
        assert again.mapped is not None
        before = again.mapped.board_cost()
        acc, _, _ = again.evaluate(again.test_split)
        after = again.mapped.board_cost()
        again.close()
        rec["chip_test_accuracy"], rec["chip_test_samples"] = acc, len(again.test_split)
        if before is not None and after is not None:  # emulator: board time and energy of one inference
            rec["chip_cost_per_inference"] = (after - before).per(len(again.test_split))
    rec["wall_seconds"] = time.perf_counter() - t0
    return rec


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation (n - 1) over seeds per recipe and method."""
    keys = ("test_accuracy", "test_at_best_val", "best_val_accuracy", "cell_ops_per_step", "cell_ops_per_epoch",
            "pair_flips_per_step", "pair_flips_per_epoch", "chip_test_accuracy", "array_read_j_per_inference",
            "board_time_s_per_inference")  # fmt: skip
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(f"{r['recipe']}/{r['method']}", []).append(r)
        if "chip_cost_per_inference" in r:
            r["array_read_j_per_inference"] = r["chip_cost_per_inference"]["array_read_j"]
            r["board_time_s_per_inference"] = r["chip_cost_per_inference"]["time_s"]
    out: dict[str, dict[str, Any]] = {}
    for name, rs in groups.items():
        out[name] = {"seeds": [r["seed"] for r in rs], "path": rs[0]["path"]}
        for k in keys:
            vals = [float(r[k]) for r in rs if k in r]
            if vals:
                out[name][k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
        to, wo = groups.get(f"{rs[0]['recipe']}/to"), groups.get(f"{rs[0]['recipe']}/wo")
        if name.endswith("/to") and to and wo:
            r_to = statistics.fmean(r["cell_ops_per_step"] for r in to)
            r_wo = statistics.fmean(r["cell_ops_per_step"] for r in wo)
            out[name]["ops_reduction_vs_wo"] = 1 - r_to / r_wo if r_wo else None
            e_to = [r["array_read_j_per_inference"] for r in to if "array_read_j_per_inference" in r]
            e_wo = [r["array_read_j_per_inference"] for r in wo if "array_read_j_per_inference" in r]
            if e_to and e_wo:  # seed 000 Fig. 3g / 4g compare the array read energy per inference, TO / WO
                out[name]["array_energy_ratio_to_wo"] = statistics.fmean(e_to) / statistics.fmean(e_wo)
    return out


class RunFolderError(ValueError):
    """A harness folder given to ``--merge`` or ``--sweep`` that is not one: no folder at all, or one without a
    readable ``results.json`` or a run's ``metrics.json`` (the scripts print it as one line)."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{path}: not a readable {what} ({e.__class__.__name__}: {e})") from e


def merge_parts(task: str, sources: list[Path], unique: bool = True) -> dict[str, Any]:
    """One results object from the ``results.json`` of several invocations (e.g. one per method, run at
    the same time), or from results files merged before (``*.json``: runs of a seed made in another session and kept
    in benchmarks/results/, their records and curves taken as they are): each invocation's arguments, every run
    record (with its validation and test curves) and the summary over all of them. A folder that is not a harness
    folder, a file that is not a results file of ``task``, parts of different data or (``unique``) the same run
    (recipe, method, seed) twice: :class:`RunFolderError`."""
    if not sources:
        raise RunFolderError("no run folder given")
    res: dict[str, Any] = {"task": task, "paper": PAPER[task], "commands": {}, "runs": []}
    seen: dict[tuple[str, str, int], Path] = {}
    for source in sources:
        part, records = _merge_part(task, source)
        if "data" in res and res["data"] != part["data"]:
            raise RunFolderError(f"{source}: data {part['data']!r}, other parts {res['data']!r}: not one benchmark")
        res["data"] = part["data"]
        res["commands"].update(part["commands"])
        for rec in records:
            run = (rec["recipe"], rec["method"], int(rec["seed"]))
            if unique and run in seen:
                raise RunFolderError(f"{source}: {'/'.join(map(str, run))} is in {seen[run]} too")
            seen[run] = source
            res["runs"].append(rec)
    res["summary"] = aggregate(res["runs"])
    return res


def _merge_part(task: str, source: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One source of :func:`merge_parts`: its data and commands, and its run records with their curves."""
    if source.suffix == ".json" and not source.is_dir():
        part = read_results_file(source, MERGE_RUN_KEYS, task)
        for rec in part["runs"]:
            rec["results_file"] = str(source)
        return {"data": part["data"], "commands": part["commands"]}, part["runs"]
    part = _read_json(source / "results.json", "harness results file")
    if not isinstance(part, dict) or not {"data", "args", "runs"} <= part.keys():
        raise RunFolderError(f"{source / 'results.json'}: not a harness results file (data, args, runs)")
    for rec in part["runs"]:
        rec["run_folder"] = str(source / f"{rec['recipe']}-{rec['method']}-seed{rec['seed']}")
        metrics = _read_json(Path(rec["run_folder"]) / "metrics.json", "run metrics file")
        if metrics and metrics[0].get("val_accuracy") is not None:  # a run without validation has no curve
            rec["val_accuracy_curve"] = [m["val_accuracy"] for m in metrics]
        rec["test_accuracy_curve"] = [m["test_accuracy"] for m in metrics]
    return {"data": part["data"], "commands": {str(source): part["args"]}}, part["runs"]


def is_results_file(sources: list[Path]) -> bool:
    """Whether a sweep setting's sources are one results file (a ``--merge`` output, ``*.json``) in place of harness
    folders: the runs of a setting made earlier and kept in benchmarks/results/, reused where the code that trains
    them has not changed since (the sweep's rule says how that was checked)."""
    return len(sources) == 1 and sources[0].suffix == ".json"


RESULTS_RUN_KEYS = {"method", "seed", "epochs", "pair_flips", "val_accuracy_curve", "test_accuracy"}


MERGE_RUN_KEYS = {"recipe", "method", "seed", "test_accuracy"}  # what --merge and the summary read of a record


def read_results_file(path: Path, required: set[str] = RESULTS_RUN_KEYS, task: str | None = None) -> dict[str, Any]:
    """A results file written by ``--merge`` (data, commands, runs with their curves), every run record checked for
    the ``required`` keys (default: what a sweep reads) and, given ``task``, the file for that task; one that is not:
    :class:`RunFolderError`."""
    res = _read_json(path, "results file")
    if not isinstance(res, dict) or not {"data", "commands", "runs"} <= res.keys() or not res["runs"]:
        raise RunFolderError(f"{path}: not a merged results file (data, commands, runs)")
    if task is not None and res.get("task") != task:
        raise RunFolderError(f"{path}: a results file of {res.get('task')}, not of {task}")
    for rec in res["runs"]:
        missing = required - set(rec) if isinstance(rec, dict) else required
        if missing:
            hint = " (a run without validation?)" if "val_accuracy_curve" in missing else ""
            raise RunFolderError(f"{path}: a run record lacks {sorted(missing)}{hint}")
    return res


def _mean_std(vals: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


def sweep(
    task: str, out: Path, settings: dict[str, list[Path]], initial_prune: int, last: int = 10, method: str = "to",
    rule: SweepRule | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One file for a sweep of settings (docs/training.md, the sweeps decided on validation): per setting (a label and
    the harness folders of its runs) every ``method`` run's record with its curves, the validation figures that decide
    (final epoch, mean over the last ``last`` epochs) and the test figures reported beside them, and their mean +-
    std; pair flips per epoch after the first sync's ``initial_prune`` pairs; the ``threshold.t_epochs`` a refit
    without validation replays (:func:`t_epochs_replay`). Where two folders hold the same seed, the first one's run is
    kept. With a ``rule``, its decision too (:func:`apply_rule`)."""
    res: dict[str, Any] = {"task": task, "paper": PAPER[task]["to"], "decided_on": f"validation accuracy: final epoch "
                           f"and mean over the last {last} epochs; test reported only", "settings": {}}  # fmt: skip
    for label, folders in settings.items():
        from_file = is_results_file(folders)
        part = read_results_file(folders[0]) if from_file else merge_parts(task, folders, unique=False)
        res["data"] = part["data"]
        kept: dict[int, dict[str, Any]] = {}
        for rec in part["runs"]:
            if rec["method"] == method:
                kept.setdefault(rec["seed"], rec)
        for rec in kept.values():
            val = rec["val_accuracy_curve"]
            rec["val_final"], rec[f"val_mean_last_{last}"] = val[-1], statistics.fmean(val[-last:])
            rec["pair_flips_after_initial_prune_per_epoch"] = (rec["pair_flips"] - initial_prune) / rec["epochs"]
            if not from_file and "results_file" not in rec:  # a results file keeps the curves of accuracy, not of loss
                metrics = _read_json(Path(rec["run_folder"]) / "metrics.json", "run metrics file")
                rec["val_loss_mean_last"] = statistics.fmean(m["val_loss"] for m in metrics[-last:])
        runs = sorted(kept.values(), key=lambda r: r["seed"])
        keys = ("val_final", f"val_mean_last_{last}", "test_accuracy", "best_val_accuracy", "test_at_best_val",
                "pair_flips_after_initial_prune_per_epoch")  # fmt: skip
        summary = {"seeds": [r["seed"] for r in runs], **{k: _mean_std([float(r[k]) for r in runs]) for k in keys}}
        if from_file or any("results_file" in r for r in runs):
            summary["t_epochs_replay"] = t_epochs_replay_of_records(task, part["commands"], runs)
        else:
            summary["t_epochs_replay"] = t_epochs_replay([Path(r["run_folder"]) for r in runs])
        res["settings"][label] = {"commands": part["commands"], "runs": runs, "summary": summary}
        if from_file:
            res["settings"][label]["results_file"] = str(folders[0])
    if rule is not None:
        res["rule"] = apply_rule(res, rule, last)
    atomic_write_text(out, json.dumps(res, indent=2))
    for label, d in res["settings"].items():
        sm = d["summary"]
        print(f"{label}: seeds {sm['seeds']}, validation final {100 * sm['val_final']['mean']:.2f} %, last {last} "
              f"{100 * sm[f'val_mean_last_{last}']['mean']:.2f} %; test {100 * sm['test_accuracy']['mean']:.2f} +- "
              f"{100 * sm['test_accuracy']['std']:.2f} %")  # fmt: skip
    if "rule" in res:
        print(res["rule"]["decision"])
    return res


def t_epochs_replay(run_folders: list[Path]) -> list[int] | None:
    """``threshold.t_epochs`` for a refit on the whole training set (no validation, docs/training.md "Refit on the
    whole training set") from run folders: each run's epochs of a new best validation accuracy (its metrics'
    ``new_best``) and its threshold config (:func:`replay_of`). None where a run has no validation curve or no
    counter (``new_best`` absent)."""
    per_run: list[list[int]] = []
    steps: list[int | None] = []
    for folder in run_folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        if not metrics or any(m.get("new_best") is None for m in metrics):
            return None
        per_run.append([int(m["epoch"]) for m in metrics if m["new_best"]])
        steps.append(ThresholdConfig(**json.loads((folder / "config.json").read_text())["threshold"]).steps_to_floor)
    return replay_of(per_run, steps)


def t_epochs_replay_of_records(task: str, commands: dict[str, Any], runs: list[dict[str, Any]]) -> list[int] | None:
    """:func:`t_epochs_replay` for the runs of a merged results file (their folders gone): the epochs of a new best
    validation accuracy read from each record's validation curve (a value above every earlier one, as the runner's
    counter), the threshold config rebuilt from the recipe's defaults and the ``--set`` assignments of the command
    that ran the record. None where a record has no validation curve or its command is not in ``commands``."""
    per_run: list[list[int]] = []
    steps: list[int | None] = []
    for rec in runs:
        command = commands.get(str(Path(rec.get("run_folder", "")).parent))
        if not rec.get("val_accuracy_curve") or command is None:
            return None
        best, epochs = -1.0, []
        for epoch, acc in enumerate(rec["val_accuracy_curve"], 1):
            if acc > best:
                best = acc
                epochs.append(epoch)
        per_run.append(epochs)
        assignments = ast.literal_eval(command.get("assignments", "[]"))  # the harness records str(list)
        cfg = TrainConfig.model_validate(apply_assignments({"task": task, "recipe": rec["recipe"]}, assignments))
        steps.append(cfg.threshold.steps_to_floor)
    return replay_of(per_run, steps)


def replay_of(new_best_epochs: list[list[int]], steps_to_floor: list[int | None]) -> list[int] | None:
    """The k-th entry is the median over the runs (the lower middle one for an even count) of the epoch of their
    k-th new best validation accuracy, for k = 1 .. the fewest any run had, and no more than the steps that take T_s
    from T_init to its floor T_end (later ones change nothing; None: no floor)."""
    if not new_best_epochs:
        return None
    k = min([len(e) for e in new_best_epochs] + [s for s in steps_to_floor if s is not None])
    return [int(statistics.median_low(e[i] for e in new_best_epochs)) for i in range(k)]


class BudgetRule(NamedTuple):
    """The programming-budget rule of the sweeps (docs/training.md, "A hysteresis on the mask"), written before
    their runs: a setting is taken if (a) its validation accuracy (mean over seeds of the mean of the last epochs)
    is at least the ``reference`` setting's mean less one standard deviation over seeds, and (b) its pair flips per
    epoch after the initial prune are at most ``budget``; among those passing, the fewest flips wins. The reference
    is a candidate too when ``reference_competes``."""

    reference: str
    budget: float
    reference_competes: bool = True


def _reference_figure(settings: dict[str, Any], reference: str, key: str) -> dict[str, float]:
    """The reference setting's summary figure ``key`` (mean and std over seeds); a reference that is not a setting
    of the sweep: ValueError."""
    if reference not in settings:
        raise ValueError(f"rule reference {reference!r} is not a setting of the sweep: {sorted(settings)}")
    figure: dict[str, float] = settings[reference]["summary"][key]
    return figure


def _budget_candidates(
    settings: dict[str, Any], last: int, budget: float, validation_passes: Callable[[float], bool], skip: str | None
) -> dict[str, dict[str, Any]]:
    """Each setting but ``skip``: its validation (mean over seeds of the last epochs' mean), pair flips per epoch after
    the initial prune, and whether each passes (the validation test given, flips at most ``budget``)."""
    rows: dict[str, dict[str, Any]] = {}
    for label, d in settings.items():
        if label != skip:
            val = d["summary"][f"val_mean_last_{last}"]["mean"]
            flips = d["summary"]["pair_flips_after_initial_prune_per_epoch"]["mean"]
            passes = validation_passes(val)
            rows[label] = {"validation": val, "pair_flips_per_epoch": flips, "validation_passes": passes,
                           "budget_passes": flips <= budget}  # fmt: skip
    return rows


def _passing(rows: dict[str, dict[str, Any]]) -> list[str]:
    return [label for label, r in rows.items() if r["validation_passes"] and r["budget_passes"]]


def _budget_line(rows: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{label} {100 * r['validation']:.2f} %, {r['pair_flips_per_epoch']:,.0f} flips"
                     for label, r in rows.items())  # fmt: skip


def apply_budget_rule(res: dict[str, Any], rule: BudgetRule, last: int = 10) -> dict[str, Any]:
    """The decision of ``rule`` on a :func:`sweep`'s settings: each candidate's figures and verdicts, the chosen
    label (None where none passes) and one line that says it."""
    settings = res["settings"]
    ref = _reference_figure(settings, rule.reference, f"val_mean_last_{last}")
    floor = ref["mean"] - ref["std"]
    skip = None if rule.reference_competes else rule.reference
    rows = _budget_candidates(settings, last, rule.budget, lambda val: val >= floor, skip)
    passing = _passing(rows)
    chosen = min(passing, key=lambda label: rows[label]["pair_flips_per_epoch"]) if passing else None
    decision = (f"rule: validation (last {last} epochs) >= {100 * floor:.2f} % ({rule.reference}'s "
                f"{100 * ref['mean']:.2f} - {100 * ref['std']:.2f}), pair flips / epoch <= {rule.budget:,.0f}: "
                + (f"{chosen} chosen" if chosen else "none passes") + f" ({_budget_line(rows)})")  # fmt: skip
    return {"reference": rule.reference, "budget": rule.budget, "last": last, "validation_floor": floor,
            "candidates": rows, "chosen": chosen, "decision": decision}  # fmt: skip


class AheadRule(NamedTuple):
    """The defaults' rule of the sweeps on validation alone (docs/training.md, "Our MFCC pipeline: the defaults on
    validation"), written before their runs: a setting replaces the ``reference`` (the current default) only if it
    is ahead of it on both validation figures (mean over seeds of the final epoch and of the mean over the last
    epochs); among those, the highest mean of the two figures wins, and where several are within ``tie`` of the best
    such mean, the one with the highest last-epochs figure (the steadier one). None ahead on both: the default
    stays."""

    reference: str
    tie: float = 0.001


def apply_ahead_rule(res: dict[str, Any], rule: AheadRule, last: int = 10) -> dict[str, Any]:
    """The decision of ``rule`` on a :func:`sweep`'s settings: each candidate's two figures, whether it is ahead on
    both, the chosen label (None: the reference stays) and one line that says it."""
    settings = res["settings"]
    _reference_figure(settings, rule.reference, "val_final")

    def figures(label: str) -> tuple[float, float]:
        sm = settings[label]["summary"]
        return float(sm["val_final"]["mean"]), float(sm[f"val_mean_last_{last}"]["mean"])

    ref_final, ref_last = figures(rule.reference)
    rows: dict[str, dict[str, Any]] = {}
    for label in settings:
        if label != rule.reference:
            final, last_k = figures(label)
            rows[label] = {"validation_final": final, f"validation_last_{last}": last_k, "mean_of_two": (final + last_k)
                           / 2, "ahead_on_both": final > ref_final and last_k > ref_last}  # fmt: skip
    ahead = [label for label, r in rows.items() if r["ahead_on_both"]]
    chosen = None
    if ahead:
        best = max(rows[label]["mean_of_two"] for label in ahead)
        near = [label for label in ahead if rows[label]["mean_of_two"] >= best - rule.tie]
        chosen = max(near, key=lambda label: rows[label][f"validation_last_{last}"])
    decision = (f"rule: ahead of {rule.reference} ({100 * ref_final:.2f} % final, {100 * ref_last:.2f} % last {last}) "
                f"on both validation figures, then the highest mean of the two (ties within {100 * rule.tie:.2f} "
                "point: the higher last-epochs figure): "
                + (f"{chosen} chosen" if chosen else f"none ahead on both, {rule.reference} stays") + " ("
                + "; ".join(f"{label} {100 * r['validation_final']:.2f} / {100 * r[f'validation_last_{last}']:.2f} %"
                            + (" ahead" if r["ahead_on_both"] else "") for label, r in rows.items()) + ")")  # fmt: skip
    return {"kind": "ahead-on-both", "reference": rule.reference, "last": last, "tie": rule.tie,
            "reference_figures": {"validation_final": ref_final, f"validation_last_{last}": ref_last},
            "candidates": rows, "chosen": chosen, "decision": decision}  # fmt: skip


class MarginRule(NamedTuple):
    """The rule of the threshold sweeps (docs/training.md, "T_init of the threshold rule on validation"), written
    before their runs: a setting replaces the ``reference`` (the current default) only if its validation accuracy
    (mean over seeds of the mean of the last epochs) exceeds the reference's by more than the reference's standard
    deviation over seeds, and its pair flips per epoch after the initial prune are at most ``budget``; among those,
    the highest validation. None: the default stays."""

    reference: str
    budget: float


def apply_margin_rule(res: dict[str, Any], rule: MarginRule, last: int = 10) -> dict[str, Any]:
    """The decision of ``rule`` on a :func:`sweep`'s settings: each candidate's figures and verdicts, the chosen
    label (None: the reference stays) and one line that says it."""
    settings = res["settings"]
    ref = _reference_figure(settings, rule.reference, f"val_mean_last_{last}")
    bar = ref["mean"] + ref["std"]
    rows = _budget_candidates(settings, last, rule.budget, lambda val: val > bar, rule.reference)
    passing = _passing(rows)
    chosen = max(passing, key=lambda label: rows[label]["validation"]) if passing else None
    decision = (
        f"rule: validation (last {last} epochs) > {100 * bar:.2f} % ({rule.reference}'s {100 * ref['mean']:.2f}"
        f" + {100 * ref['std']:.2f}), pair flips / epoch <= {rule.budget:,.0f}: "
        + (f"{chosen} chosen" if chosen else f"none passes, {rule.reference} stays")
        + f" ({_budget_line(rows)})"
    )
    return {"kind": "margin", "reference": rule.reference, "budget": rule.budget, "last": last, "validation_bar": bar,
            "candidates": rows, "chosen": chosen, "decision": decision}  # fmt: skip


SweepRule = BudgetRule | AheadRule | MarginRule


def apply_rule(res: dict[str, Any], rule: SweepRule, last: int = 10) -> dict[str, Any]:
    """The decision of any of the sweep rules on a :func:`sweep`'s settings."""
    if isinstance(rule, BudgetRule):
        return apply_budget_rule(res, rule, last)
    if isinstance(rule, AheadRule):
        return apply_ahead_rule(res, rule, last)
    return apply_margin_rule(res, rule, last)


def sweep_cli(task: str, argv: list[str], initial_prune: int) -> dict[str, Any]:
    """``OUT.json LABEL=FOLDER[,FOLDER...] ... [--reference LABEL (--budget FLIPS [--reference-out | --margin] |
    --ahead)]``: :func:`sweep` from the command line, with the budget rule where a reference and a budget are given,
    the margin rule with ``--margin`` too, the ahead-on-both rule with a reference and ``--ahead``. A setting may be
    one merged results file in place of its folders (``LABEL=RESULTS.json``, :func:`read_results_file`)."""
    p = argparse.ArgumentParser(prog=f"train script --sweep ({task})")
    p.add_argument("out", type=Path)
    p.add_argument("settings", nargs="+", metavar="LABEL=FOLDER[,FOLDER...]|LABEL=RESULTS.json")
    p.add_argument("--reference", help="the budget rule's reference setting (its validation less one std)")
    p.add_argument("--budget", type=float, help="the budget rule's pair flips per epoch after the initial prune")
    p.add_argument("--reference-out", action="store_true", help="the reference is not a candidate")
    p.add_argument("--ahead", action="store_true", help="the ahead-on-both rule against the reference (the default)")
    p.add_argument("--margin", action="store_true", help="with --budget: beat the reference by its std")
    a = p.parse_args(argv)
    if a.ahead and (a.budget is not None or a.reference_out or a.margin):
        p.error("--ahead is a rule of its own: not with --budget, --margin or --reference-out")
    if a.margin and (a.budget is None or a.reference_out):
        p.error("--margin goes with --budget (the reference never competes in it)")
    if (a.reference is None) != (a.budget is None and not a.ahead):
        p.error("--reference goes with --budget or --ahead, and they with it")
    settings: dict[str, list[Path]] = {}
    for item in a.settings:
        label, eq, folders = item.rpartition("=")
        if not eq or not label or not folders:
            p.error(f"a setting is LABEL=FOLDER[,FOLDER...] or LABEL=RESULTS.json, got {item!r}")
        settings[label] = [Path(f) for f in folders.split(",")]
    rule: SweepRule | None = None
    if a.ahead:
        rule = AheadRule(a.reference)
    elif a.margin:
        rule = MarginRule(a.reference, a.budget)
    elif a.reference is not None:
        rule = BudgetRule(a.reference, a.budget, not a.reference_out)
    try:
        return sweep(task, a.out, settings, initial_prune, rule=rule)
    except ValueError as e:  # RunFolderError, or a rule's reference that is not a setting
        p.error(str(e))


def table(task: str, agg: dict[str, dict[str, Any]]) -> str:
    paper = PAPER[task]
    lines = [
        "| recipe / method | test acc., final epoch | test acc. at best validation | paper | "
        "cell ops / step | pair flips / step | pair flips / epoch | path |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pm(d: dict[str, Any], k: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        return f"{scale * d[k]['mean']:{fmt}} +- {scale * d[k]['std']:{fmt}}" if k in d else ""

    for name, d in sorted(agg.items()):
        method = name.split("/")[1]
        at_best = f"{pm(d, 'test_at_best_val', 100)} %" if "test_at_best_val" in d else "no validation"
        lines.append(f"| {name} (seeds {', '.join(map(str, d['seeds']))}) | {pm(d, 'test_accuracy', 100)} % | "
                     f"{at_best} | {100 * paper[method]:.1f} % | "
                     f"{pm(d, 'cell_ops_per_step', fmt=',.0f')} | {pm(d, 'pair_flips_per_step', fmt=',.1f')} | "
                     f"{pm(d, 'pair_flips_per_epoch', fmt=',.0f')} | {d['path']} |")  # fmt: skip
    for name, d in sorted(agg.items()):
        if d.get("ops_reduction_vs_wo") is not None:
            lines.append(f"\n{name}: {100 * d['ops_reduction_vs_wo']:.2f} % fewer cell programming operations per "
                         f"step than WO (paper {100 * paper['ops_reduction']:.2f} %)")  # fmt: skip
        if "chip_test_accuracy" in d:
            lines.append(f"{name}: test with every product on the chip {pm(d, 'chip_test_accuracy', 100)} %")
    return "\n".join(lines)


def main(task: str, argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=PAPER[task]["epochs"])
    p.add_argument("--wo-epochs", type=int, default=None, help="WO epochs (default: --epochs)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=["rramctl", "paper"], choices=["rramctl", "paper"])
    p.add_argument("--methods", nargs="+", default=["to", "wo"], choices=["to", "wo"])
    p.add_argument("--subset", type=int, default=None, help="training samples (default: all but validation)")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--forward", choices=["host", "chip"], default="host", help="where training products run")
    p.add_argument("--backend", default="emulator")
    p.add_argument("--chip-test-subset", type=int, default=0, help="repeat the final test on the chip (0: no)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--features-file", type=Path, default=None, help="spoken digits: the paper's feature file")
    p.add_argument("--set", dest="assignments", action="append", default=[], help="section.key=value for every run")
    p.add_argument("--out", type=Path, default=Path("runs/bench") / task)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--fresh", action="store_true", help="start every run again (default: resume or reuse)")
    a = p.parse_args(argv)
    data_cfg: dict[str, Any] = {"data_dir": a.data_dir}
    if a.features_file is not None:
        data_cfg |= {"source": "paper-features", "features_file": a.features_file}
    data = load_task_data(task, data_dir=a.data_dir, source=data_cfg.get("source", "standard"),
                          features_file=a.features_file)  # fmt: skip
    records = []
    for recipe in a.recipes:
        for method in a.methods:
            for seed in a.seeds:
                epochs = (a.wo_epochs or a.epochs) if method == "wo" else a.epochs
                base = {"task": task, "recipe": recipe, "method": method, "seed": seed, "chip_seed": seed,
                        "epochs": epochs, "subset": a.subset, "test_subset": a.test_subset, "backend": a.backend,
                        "forward": a.forward, "data": data_cfg}  # fmt: skip
                cfg = TrainConfig.model_validate(apply_assignments(base, a.assignments))
                rec = run_one(cfg, a.out / f"{recipe}-{method}-seed{seed}", data, a.chip_test_subset, a.fresh)
                records.append(rec)
                if not a.json:
                    at_best = (f", at best validation (epoch {rec['best_val_epoch']}) "
                               f"{100 * rec['test_at_best_val']:.2f} %" if "best_val_epoch" in rec else "")  # fmt: skip
                    print(f"[{recipe} {method} seed {seed}] test {100 * rec['test_accuracy']:.2f} %{at_best}, "
                          f"{rec['cell_ops_per_step']:,.0f} cell ops/step, {rec['wall_seconds']:.0f} s",
                          flush=True)  # fmt: skip
    agg = aggregate(records)
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for r in records:
        metrics = json.loads((a.out / f"{r['recipe']}-{r['method']}-seed{r['seed']}" / "metrics.json").read_text())
        curves.setdefault(f"{r['recipe']}/{r['method']}", []).append(metrics)
    plots.seed_spread(curves, a.out / "accuracy_spread.png", task)
    res = {"task": task, "paper": PAPER[task], "data": str(a.features_file or a.data_dir or "default"),
           "args": {k: str(v) for k, v in vars(a).items()}, "runs": records, "summary": agg}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out / "results.json", json.dumps(res, indent=2))
    print(json.dumps(res) if a.json else table(task, agg))
    return res
