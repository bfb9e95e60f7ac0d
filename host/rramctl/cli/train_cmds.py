"""``rramctl prune`` (train a network on the chip by topology or weight optimisation) and ``rramctl infer``
(evaluate a saved run). The main app calls :func:`register`.

``prune``'s options are derived from the training configuration (rramctl.training.config): one option
per setting (``--batch-size``, ``--sparsity``, ``--to-lr``, ...), beside ``--config-file run.toml`` and
``--set section.key=value``. Precedence: recipe defaults < file < --set < options.

The data loaders and the runner (which import torch) are imported inside the two commands, so every other
command starts without torch (about a second less on a laptop).
"""

from __future__ import annotations

import inspect
import json
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from rramctl.backends import emulator_model
from rramctl.cli.io import check_writable_folder
from rramctl.errors import RramctlError
from rramctl.training.config import (
    TrainConfig,
    apply_assignments,
    field_help,
    leaf_fields,
    load_toml,
    merge,
)

if TYPE_CHECKING:  # the data and the runner (torch) are imported by the commands that train: the others start
    from rramctl.training.data import Dataset  # without torch (about a second less at every command's start)

TASKS = ("fmnist-cnn", "fsdd-crnn")
DEFAULT_RUN_DIR = Path("runs/latest")
# settings with an option of their own below (required, or used before the configuration exists)
_OWN = {"task", "method", "recipe"}


def _fail(msg: str, as_json: bool = False) -> typer.Exit:
    """The one error line (stderr) and exit status 2; with --json also the error as one JSON object on stdout, as
    the main app's other commands give it."""
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    if as_json:
        typer.echo(json.dumps({"error": msg, "exit_status": 2}))
    return typer.Exit(2)


def _load_data(cfg: TrainConfig, download: bool) -> Dataset:
    from rramctl.training.data import load_task_data

    root = cfg.data.data_dir or os.environ.get("RRAMCTL_DATA")
    dl = Path(root) if root else Path.home() / ".cache" / "rramctl"
    return load_task_data(cfg.task, download_to=dl / "fashion-mnist" if download else None,
                          data_dir=cfg.data.data_dir, source=cfg.data.source,
                          features_file=cfg.data.features_file)  # fmt: skip


def _report(summary: dict[str, Any]) -> str:
    conf = summary["confusion"]
    rows = "\n".join("  " + " ".join(f"{v:5d}" for v in row) for row in conf)
    ops = ", ".join(f"{k} {v}" for k, v in summary["programming_ops"].items())
    return (
        f"{summary['task']} {summary['method'].upper()} on {summary['backend']} (forward on {summary['forward']}), "
        f"{summary['epochs_done']} epochs\n"
        f"test accuracy {100 * summary['test_accuracy']:.2f} % on {summary['test_samples']} samples\n"
        f"confusion (rows true, cols predicted):\n{rows}\n"
        f"cell programming operations: {summary['programming_ops_total']} ({ops})"
        + _disagreement(summary.get("chip_disagreement"))
    )


def _disagreement(d: dict[str, dict[str, int]] | None) -> str:
    """The line of infer's chip check: pairs of the chip as saved that disagree with the network (not repaired)."""
    if d is None:
        return ""
    kept, pruned = sum(d["kept_pairs_off_their_weight"].values()), sum(d["pruned_pairs_on"].values())
    return (f"\nchip as saved vs the network: {kept} kept pair(s) off their weight, {pruned} pruned pair(s) on "
            "(evaluated as they are; not reprogrammed)")  # fmt: skip


def _cli_type(annotation: Any) -> Any:
    """The type an option parses to: bool/int/float/Path as declared, anything else (Literal) as str."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    return annotation if annotation in (bool, int, float, Path) else str


def _setting_params() -> list[inspect.Parameter]:
    """One keyword parameter (default None: not given) per configuration setting."""
    params = []
    for opt, (section, name, ann) in leaf_fields().items():
        if section is None and name in _OWN:
            continue
        typ = _cli_type(ann)
        decl = f"--{opt}/--no-{opt}" if typ is bool else f"--{opt}"
        where = f"{section}.{name}" if section else name
        option = typer.Option(None, decl, help=f"[{where}] {field_help(section, name)}", show_default=False,
                              rich_help_panel="Settings")  # fmt: skip
        params.append(inspect.Parameter("set__" + opt.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY,
                                        default=option, annotation=typ | None))  # fmt: skip
    return params


def _settings_given(values: dict[str, Any]) -> dict[str, Any]:
    """The derived options the user gave, as a nested dict for TrainConfig."""
    out: dict[str, Any] = {}
    for opt, (section, name, _) in leaf_fields().items():
        v = values.get("set__" + opt.replace("-", "_"))
        if v is None:
            continue
        if section is None:
            out[name] = v
        else:
            out.setdefault(section, {})[name] = v
    return out


def build_config(base: dict[str, Any], config_file: Path | None, assignments: list[str],
                 options: dict[str, Any]) -> TrainConfig:  # fmt: skip
    """file < --set < options, over ``base`` (the global options: backend, board config, chip model, device)."""
    data = merge(base, load_toml(config_file)) if config_file is not None else dict(base)
    data = apply_assignments(data, assignments)
    return TrainConfig.model_validate(merge(data, options))


def prune(
    ctx: typer.Context,
    task: str = typer.Option(..., help="fmnist-cnn or fsdd-crnn"),
    method: str | None = typer.Option(
        None, help="to: topology optimisation (prune/reinstate); wo: weight optimisation"
    ),
    recipe: str | None = typer.Option(None, help="defaults: rramctl (ours) or paper (the paper's code choices)"),
    config_file: Annotated[Path | None, typer.Option(help="TOML file with the run's settings")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="section.key=value (repeatable)")] = None,
    run_dir: Annotated[Path, typer.Option(help="run folder (an existing run there is resumed)")] = DEFAULT_RUN_DIR,
    download: bool = typer.Option(True, help="download Fashion-MNIST when not found locally"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    **settings: Any,
) -> None:
    """Train a randomly formed network on the chip: edge-pruning topology optimisation or the WO baseline."""
    from rramctl.training.runner import Run, finish  # torch: imported here (the module docstring)

    session = ctx.obj  # the global options (rramctl --backend/--config), when run through the main app
    as_json = bool(getattr(session, "json", False))  # --json: one JSON object on stdout, notes on stderr
    if task not in TASKS:
        raise _fail(f"unknown task {task!r}; choose one of {', '.join(TASKS)}", as_json)
    base: dict[str, Any] = {}
    if session is not None:  # the global options reach the run (prune's own options, given later, win)
        base["backend"] = session.backend
        if getattr(session, "config_path", None) is not None:
            base["board_config"] = session.config_path
        if getattr(session, "model", None) is not None:
            base["chip_model"] = session.model
        base["device"] = getattr(session, "device", "cpu")
        if getattr(session, "seed_given", False):  # rramctl --seed N prune: the chips' seed (chip_seed)
            base["chip_seed"] = session.seed
    options = _settings_given(settings)  # prune's options win over the file and --set (task, method, recipe too)
    options["task"] = task
    for k, v in (("method", method), ("recipe", recipe)):
        if v is not None:
            options[k] = v
    try:
        cfg = build_config(base, config_file, set_ or [], options)
    except ValidationError as e:
        raise _fail("; ".join(f"{'.'.join(map(str, er['loc']))}: {er['msg']}".removeprefix(": ")
                              for er in e.errors()), as_json) from None  # fmt: skip
    except RramctlError as e:
        raise _fail(str(e), as_json) from None
    if cfg.data.data_dir is not None and not Path(cfg.data.data_dir).is_dir():
        raise _fail(f"--data-dir {cfg.data.data_dir} is not a folder; give the folder that holds the data", as_json)
    try:
        if cfg.chip_model is not None:  # a model that cannot be loaded: one error, before the data and the chips
            emulator_model(cfg.chip_model)
        data = _load_data(cfg, download)
        run = Run.open(cfg, run_dir, data)
    except RramctlError as e:
        raise _fail(str(e), as_json) from None
    typer.echo((run_dir / "placement.txt").read_text().rstrip(), err=as_json)
    if run.restarted:
        typer.echo(f"{run_dir}: the run was cut off before forming was recorded; started it again", err=as_json)
    elif run.resumed and run.progress.epoch == 0:
        typer.echo(f"resuming {run_dir}: the first epoch was interrupted and starts again", err=as_json)
    elif run.resumed and run.progress.epoch >= cfg.epochs and (run_dir / "summary.json").is_file():
        # a finished run: its results as they were saved (evaluating again would draw new read noise and
        # overwrite them); `rramctl infer` evaluates it again into its own folder
        summary = json.loads((run_dir / "summary.json").read_text())
        run.close()
        typer.echo(f"{run_dir}: the run is complete ({run.progress.epoch} epochs); its saved results (rramctl infer "
                   f"--run {run_dir} evaluates it again)", err=True)  # fmt: skip
        typer.echo(json.dumps({**summary, "run_dir": str(run_dir)}, indent=2) if as_json else _report(summary))
        return
    elif run.resumed:
        typer.echo(f"resuming {run_dir} after epoch {run.progress.epoch}", err=as_json)
    from tqdm import tqdm

    bar = tqdm(total=(cfg.epochs - run.progress.epoch), unit="epoch", disable=not progress or as_json,
               dynamic_ncols=True)  # fmt: skip

    def on_step(step: int, per_epoch: int) -> None:
        doing = "evaluating" if step == per_epoch else f"step {step}/{per_epoch}"
        bar.set_postfix_str(f"epoch {run.progress.epoch + 1}: {doing}")

    def on_epoch(metrics: dict[str, Any]) -> None:  # counted once its checkpoint is saved
        bar.set_postfix_str(epoch_line(metrics), refresh=False)
        bar.update(1)

    try:
        run.train(on_step=on_step, on_epoch=on_epoch)
    finally:
        bar.close()
    summary = finish(run)
    run.close()
    if as_json:
        typer.echo(json.dumps({**summary, "run_dir": str(run_dir)}, indent=2))
        return
    typer.echo(_report(summary))
    typer.echo(f"run saved in {run_dir}")


def epoch_line(metrics: dict[str, Any]) -> str:
    """The progress bar's note after an epoch: its number and accuracies (validation first where the run holds it
    out; test accuracy is reported, never used to decide)."""
    parts = [f"epoch {metrics['epoch']} saved"]
    if metrics.get("val_accuracy") is not None:
        parts.append(f"val {100 * metrics['val_accuracy']:.2f} %")
    parts.append(f"test {100 * metrics['test_accuracy']:.2f} %")
    return ", ".join(parts)


_hints = typing.get_type_hints(prune, include_extras=True)
_own = [p.replace(annotation=_hints[p.name]) for p in inspect.signature(prune).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD]  # fmt: skip
prune.__signature__ = inspect.Signature([*_own, *_setting_params()])  # type: ignore[attr-defined]


def infer(
    ctx: typer.Context,
    run: Annotated[Path, typer.Option("--run", help="a run folder written by `rramctl prune`")],
    forward: str | None = typer.Option(None, help="override: chip or host"),
    test_subset: int | None = typer.Option(None, help="override: evaluate on this many test samples"),
    out: Annotated[
        Path | None, typer.Option(help="folder for summary.json and the figures (default: RUN/infer)")
    ] = None,
    allow_untrained: bool = typer.Option(False, help="evaluate a run that has no finished training epoch"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (as rramctl --json does)"),
) -> None:
    """Evaluate a saved run on its test set with the chip as saved: accuracy, confusion, programming counts.
    Writes its own summary.json and figures (RUN/infer/): the run's training outputs stay as they are."""
    from rramctl.training.runner import finish, load_run

    as_json = as_json or bool(getattr(ctx.obj, "json", False))
    if forward is not None and forward not in ("chip", "host"):
        raise _fail(f"--forward must be chip or host, got {forward!r}", as_json)
    if test_subset is not None and test_subset < 1:
        raise _fail(f"--test-subset must be at least 1 sample, got {test_subset}", as_json)
    if run.exists() and not run.is_dir():  # named as the run it is not, before --out (RUN/infer) is looked at
        raise _fail(f"--run {run}: a file, not a run folder written by rramctl prune", as_json)
    out_dir = out if out is not None else run / "infer"
    if out_dir.resolve() == run.resolve():
        raise _fail(f"--out {out_dir} is the run folder; infer never overwrites the run's own outputs", as_json)
    if (out_dir / "config.json").exists():  # another run: its summary.json and figures would be replaced
        raise _fail(f"--out {out_dir} holds a run (config.json); infer never overwrites a run's outputs: choose "
                    "another --out", as_json)  # fmt: skip
    try:  # before the evaluation, so that a bad --out costs nothing
        check_writable_folder(out_dir, "--out")
    except RramctlError as e:
        raise _fail(str(e), as_json) from None
    overrides: dict[str, Any] = {}
    if forward is not None:
        overrides["forward"] = forward
    if test_subset is not None:
        overrides["test_subset"] = test_subset
    try:
        r = load_run(run, lambda cfg: _load_data(cfg, download=False), allow_untrained=allow_untrained, **overrides)
    except (RramctlError, FileNotFoundError) as e:
        raise _fail(str(e), as_json) from None
    except ValidationError as e:
        raise _fail(str(e), as_json) from None
    try:
        summary = finish(r, out_dir)
    finally:
        r.close()
    typer.echo(json.dumps(summary, indent=2) if as_json else f"{_report(summary)}\nsaved in {out_dir}")


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
    app.command("infer")(infer)
