"""``rramctl prune`` (train a network on the chip by topology or weight optimisation) and ``rramctl infer``
(evaluate a saved run). The lead's main app calls :func:`register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from rramctl.config import ConfigError
from rramctl.driver import OverlayError
from rramctl.training.config import TrainConfig
from rramctl.training.data import DataError, Dataset, load_task_data
from rramctl.training.placement import PlacementError
from rramctl.training.runner import Run, RunError, finish, load_run
from rramctl.transport.base import TransportError

TASKS = ("fmnist-cnn", "fsdd-crnn")
DEFAULT_RUN_DIR = Path("runs/latest")


def _fail(msg: str) -> typer.Exit:
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _load_data(cfg: TrainConfig, download: bool) -> Dataset:
    import os

    if cfg.data_dir is not None:
        os.environ["RRAMCTL_DATA"] = str(cfg.data_dir)
    dl = Path(os.environ.get("RRAMCTL_DATA", Path.home() / ".cache" / "rramctl")) / "fashion-mnist"
    return load_task_data(cfg.task, download_to=dl if download else None)


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
    )


def prune(
    ctx: typer.Context,
    task: str = typer.Option(..., help="fmnist-cnn or fsdd-crnn"),
    method: str = typer.Option("to", help="to: topology optimisation (prune/reinstate); wo: weight optimisation"),
    epochs: int = typer.Option(10, help="training epochs"),
    sparsity: float = typer.Option(0.5, help="fraction of pairs pruned per layer, in (0, 1)"),
    subset: int | None = typer.Option(None, help="train on this many samples"),
    test_subset: int | None = typer.Option(None, help="evaluate on this many test samples"),
    run_dir: Annotated[Path, typer.Option(help="run folder (an existing run there is resumed)")] = DEFAULT_RUN_DIR,
    backend: str | None = typer.Option(
        None,
        help="emulator, pynq, serial:PORT (the chip API) or software (float model); default: rramctl --backend",
    ),
    forward: str = typer.Option("chip", help="chip: products on the chip; host: from read-back weights"),
    batch_size: int = typer.Option(128),
    lr: float | None = typer.Option(None, help="learning rate (TO scores / WO weights in uS)"),
    tw: float = typer.Option(0.0, help="WO: program a pair only when |dw| > Tw (uS)"),
    n_arrays: int = typer.Option(1, help="512x512 arrays to place the network on"),
    seed: int = typer.Option(0),
    chip_seed: int = typer.Option(0),
    data_dir: Annotated[Path | None, typer.Option(help="folder with the data (else $RRAMCTL_DATA)")] = None,
    download: bool = typer.Option(True, help="download Fashion-MNIST when not found locally"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train a randomly formed network on the chip: edge-pruning topology optimisation or the WO baseline."""
    if task not in TASKS:
        raise _fail(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    session = ctx.obj  # the global options (rramctl --backend/--config), when run through the main app
    if backend is None:
        backend = session.backend if session is not None else "emulator"
    fields: dict[str, Any] = dict(
        task=task, method=method, epochs=epochs, sparsity=sparsity, subset=subset, test_subset=test_subset,
        backend=backend, board_config=getattr(session, "config_path", None), forward=forward,
        batch_size=batch_size, tw=tw, n_arrays=n_arrays, seed=seed,
        chip_seed=chip_seed, data_dir=data_dir,
    )  # fmt: skip
    if lr is not None:
        fields["lr" if method == "to" else "wo_lr"] = lr
    try:
        cfg = TrainConfig(**fields)
    except ValidationError as e:
        raise _fail("; ".join(f"{'.'.join(map(str, er['loc']))}: {er['msg']}" for er in e.errors())) from None
    try:
        data = _load_data(cfg, download)
        run = Run.open(cfg, run_dir, data)
    except (DataError, RunError, PlacementError, ConfigError, TransportError, OverlayError, ValueError) as e:
        raise _fail(str(e)) from None
    typer.echo((run_dir / "placement.txt").read_text().rstrip())
    if run.progress.epoch:
        typer.echo(f"resuming {run_dir} after epoch {run.progress.epoch}")
    from tqdm import tqdm

    bar = tqdm(total=(cfg.epochs - run.progress.epoch), unit="epoch", disable=not progress, dynamic_ncols=True)

    def on_step(step: int, per_epoch: int) -> None:
        bar.set_postfix_str(f"epoch {run.progress.epoch + 1}: step {step}/{per_epoch}")
        if step == per_epoch:
            bar.update(1)

    try:
        run.train(on_step=on_step)
    finally:
        bar.close()
    summary = finish(run)
    run.close()
    typer.echo(_report(summary))
    typer.echo(f"run saved in {run_dir}")


def infer(
    run: Annotated[Path, typer.Option("--run", help="a run folder written by `rramctl prune`")],
    forward: str | None = typer.Option(None, help="override: chip or host"),
    test_subset: int | None = typer.Option(None, help="override: evaluate on this many test samples"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Evaluate a saved run on its test set with the chip as saved: accuracy, confusion, programming counts."""
    overrides: dict[str, Any] = {}
    if forward is not None:
        overrides["forward"] = forward
    if test_subset is not None:
        overrides["test_subset"] = test_subset
    try:
        r = load_run(run, lambda cfg: _load_data(cfg, download=False), **overrides)
    except (DataError, RunError, PlacementError, FileNotFoundError) as e:
        raise _fail(str(e)) from None
    except ValidationError as e:
        raise _fail(str(e)) from None
    summary = finish(r)
    r.close()
    typer.echo(json.dumps(summary, indent=2) if as_json else _report(summary))


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
    app.command("infer")(infer)
