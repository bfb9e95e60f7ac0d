"""``rramctl calibrate``: measure a sacrificed region through the chip API, fit the chip model, write a
preset TOML and a report (docs/emulator.md, "Calibration")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from rramctl.cli.io import check_writable, check_writable_folder
from rramctl.errors import UsageError


def _plan(plan_file: Path | None, region: str | None) -> Any:
    from rramctl.calibrate.plan import CalibrationPlan
    from rramctl.config import tomllib

    data: dict[str, Any] = {}
    if plan_file is not None:
        try:
            data = tomllib.loads(plan_file.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise UsageError(f"calibration plan {plan_file} does not exist") from e
        except UnicodeDecodeError as e:
            raise UsageError(f"calibration plan {plan_file} is not a UTF-8 text (TOML) file: byte {e.start}") from e
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"calibration plan {plan_file} is not valid TOML: {e}") from e
    if region is not None:
        data["region"] = region
    where = f"calibration plan {plan_file}" if plan_file is not None else "calibration plan (defaults)"
    if region is not None:
        where += f" with --region {region}"
    try:
        return CalibrationPlan.model_validate(data), where
    except ValidationError as e:
        fields = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'plan'}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise UsageError(f"{where}: {fields}") from e


def _check_out_for_csv(out: Path, source: str) -> None:
    """--from-csv writes fitted.toml and the reports into ``out``: refuse a folder that holds another run's outputs
    (a prune run, a calibration measured on a chip, or a fit of another source), before anything is written."""
    from rramctl.calibrate.report import PRESET_NAME

    if (out / "config.json").exists():
        raise UsageError(f"--out {out} holds a training run (config.json): choose another --out for --from-csv")
    if (out / "progress.json").exists() or (out / "measurements").exists():
        raise UsageError(f"--out {out} holds a calibration measured on a chip (progress.json, measurements/); "
                         "--from-csv would overwrite its fitted.toml and reports: choose another --out")  # fmt: skip
    report = out / "report.json"
    if report.exists() or (out / PRESET_NAME).exists():
        try:
            held = json.loads(report.read_text(encoding="utf-8")).get("source")
        except (OSError, ValueError, AttributeError):
            held = None
        if held != source:
            raise UsageError(f"--out {out} holds the outputs of another calibration ({held or 'unknown source'}); "
                             "choose another --out (nothing was written)")  # fmt: skip


def calibrate(
    ctx: typer.Context,
    region: Annotated[
        str | None,
        typer.Option(help="ROW:NROWS,COL:NCOLS of the cells to sacrifice (default 0:32,0:256, or the --plan's)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for measurements, preset and report (a rerun resumes)")] = Path(
        "calibration"
    ),
    plan_file: Annotated[Path | None, typer.Option("--plan", help="calibration plan TOML (CalibrationPlan)")] = None,
    from_csv: Annotated[
        Path | None, typer.Option(help="fit measurements from this CSV (layout: docs/emulator.md) instead of a chip")
    ] = None,
    export_csv: Annotated[Path | None, typer.Option(help="also write the measurements as that CSV")] = None,
    base_model: Annotated[
        str | None,
        typer.Option(help="model whose values the unfitted parameters keep (default: --model or paper-40nm)"),
    ] = None,
    plots: Annotated[bool, typer.Option(help="write measured-vs-fitted plots")] = True,
) -> None:
    """Measure forming, read noise, reset/set cycling, relaxation/drift and column offsets on a region; fit
    the chip model; write <out>/fitted.toml (use with --model), report.md, report.json and plots."""
    from tqdm import tqdm

    from rramctl.backends import emulator_model
    from rramctl.calibrate.csvio import from_csv as read_csv
    from rramctl.calibrate.csvio import to_csv
    from rramctl.calibrate.fit import fit
    from rramctl.calibrate.measure import STAGES, measure
    from rramctl.calibrate.report import write_outputs
    from rramctl.cli.main import emit, session_of

    s = session_of(ctx)
    if from_csv is None:  # refused before anything is read or written
        from rramctl.backends import resolve
        from rramctl.calibrate.measure import check_backend

        plan, where = _plan(plan_file, region)
        check_backend(resolve(s.backend).kind, plan)
        plan.check(s.config, where)
    if from_csv is not None and (region is not None or plan_file is not None):
        given = " and ".join(o for o, v in (("--region", region), ("--plan", plan_file)) if v is not None)
        raise UsageError(f"--from-csv fits measurements taken elsewhere, {given} set up a measurement on the chip: "
                         "give one or the other")  # fmt: skip
    base = emulator_model(base_model or s.model, s.seed)  # a model that cannot be loaded: UsageError
    if export_csv is not None:  # outputs refused before the chip is touched (the first read)
        check_writable(export_csv, "--export-csv")
    check_writable_folder(out, "--out")
    if from_csv is not None:
        source = f"CSV {from_csv}"
        _check_out_for_csv(out, source)
        meas = read_csv(from_csv)
    else:
        if (out / "config.json").exists():
            raise UsageError(f"--out {out} holds a training run (config.json): choose another --out")
        bar = tqdm(total=len(STAGES), desc="calibrate", unit="stage", file=sys.stderr, disable=None)
        seen: set[str] = set()

        def progress(stage: str, k: int, n: int) -> None:
            bar.set_postfix_str(f"{stage} {k}/{n}")
            if k == n and stage not in seen:
                seen.add(stage)
                bar.update(1)

        with s.open() as chip:
            meas = measure(chip, plan, out, progress, state=s.state if chip.state_in_file else None)
        bar.close()
        source = f"{s.backend} region {plan.region}"
    if export_csv is not None:
        to_csv(meas, export_csv)
    res = fit(meas, base, s.config)
    rep = write_outputs(res, out, source, plots=plots)
    worst = max(res.ks.values()) if res.ks else float("nan")
    human = [f"fitted preset: {out / 'fitted.toml'}   report: {out / 'report.md'}"]
    human += [f"  {p.path:32s} {p.value:>12g} {p.unit}" for p in res.params if p.fitted]
    human += [f"clamped: {p.clamp_line()}" for p in res.params if p.clamped]
    human += [f"largest KS distance (measured vs fitted): {worst:.4f}"]
    emit(s, rep | {"out": str(out)}, "\n".join(human))


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
