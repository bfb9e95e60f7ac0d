"""``rramctl``: form, read, prune and multiply on an RRAM chip, on the board or the emulator.

One code path: every command opens a Chip (rramctl.chip.Chip.open) and uses only its methods
(docs/architecture.md).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TextIO

import numpy as np
import typer
from numpy.typing import NDArray
from pydantic import ValidationError
from typer.core import TyperGroup, TyperOption

from rramctl import __version__
from rramctl.backends import default_state_path, emulator_model, resolve
from rramctl.chip import FORMED_THRESHOLD_US, BoardCost, Chip
from rramctl.cli.io import (
    INTERRUPTED_AFTER,
    INTERRUPTED_BEFORE,
    INTERRUPTED_STATUS,
    InputFileError,
    Interrupted,
    check_writable,
    gather_cells,
    load_array,
    user_error_message,
    validation_message,
)
from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.errors import UsageError
from rramctl.fileio import atomic_write_bytes, atomic_write_with
from rramctl.geometry import PAIR_OFFSET, ROWS, Region
from rramctl.protocol import MAX_BITS
from rramctl.seeds import SEED_MAX

#: Flags of the main command that may also be written after the command name (``rramctl info --json``).
GLOBAL_FLAGS = ("--json", "--debug")


class GuardedGroup(TyperGroup):
    """The main command: global flags anywhere on the line, and one error path for every command.

    A failure the user can cause or fix (:class:`rramctl.errors.RramctlError`, an ``OSError`` on a
    path, a rejected configuration value) prints one ``error:`` line (a rejected configuration adds one
    line per field) and exits 2; a Ctrl-C, wherever it arrives, prints one ``error:`` line that says what
    was kept and exits 130; anything else is a bug and keeps its traceback. ``--debug`` (or
    ``RRAMCTL_DEBUG=1``) shows the traceback of user errors too."""

    _stage = "starting"  # where a Ctrl-C arrives: "starting" (options read), "running" (invoke), "ended"
    _interrupt_told = False  # its error line was written

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _escape_markup(self)
        for command in self.commands.values():
            _escape_markup(command)

    def get_params(self, ctx: Any) -> list[Any]:
        return _valueless_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:  # its options and its --help, for its help page
            _valueless_flags(command.get_params(ctx))
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        head, sep, tail = _split_at_dashdash(args)
        flags = [a for a in head if a in GLOBAL_FLAGS]
        rest = [a for a in head if a not in GLOBAL_FLAGS]
        return super().parse_args(ctx, flags + rest + sep + tail)

    def invoke(self, ctx: Any) -> Any:  # a click context (typer may vendor click)
        self._stage = "running"
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as e:  # the CLI's own exits are no user error: re-raised
            message = user_error_message(e)
            if message is None:  # a bug: its traceback, exit 1
                raise
            if ctx.params.get("debug") or _env_debug():  # the traceback too; a user error keeps its status
                traceback.print_exc()
            status = INTERRUPTED_STATUS if isinstance(e, KeyboardInterrupt) else 2
            self._interrupt_told = status == INTERRUPTED_STATUS
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            if ctx.params.get("json_out"):  # --json: a script reads one JSON object on stdout, an error too
                typer.echo(json.dumps({"error": message, "exit_status": status}))
            raise typer.Exit(status) from None
        finally:
            self._stage = "ended"

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Warnings meant for the user (rramctl's: saturation and the like) as one ``warning:`` line each; a Ctrl-C
        outside the command (while its options are read, or as rramctl exits after it) is one ``error:`` line and
        status 130, as one during it (:meth:`invoke`): typer's own exit on it says nothing."""
        self._stage = "starting"  # then "running" (invoke), "ended"
        self._interrupt_told = False
        as_program = (args[0] if args else kwargs.get("args")) is None  # the command line of this process
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                try:
                    status = super().main(*args, **kwargs)  # standalone (the default): exits with SystemExit
                except SystemExit as e:
                    if e.code == INTERRUPTED_STATUS:  # typer's exit on a KeyboardInterrupt, or ours
                        self._tell_interrupt()
                    raise
                except KeyboardInterrupt:  # one that arrived while typer itself exited
                    self._tell_interrupt()
                    raise SystemExit(INTERRUPTED_STATUS) from None
            if status == INTERRUPTED_STATUS:  # standalone_mode=False: the status is returned
                self._tell_interrupt()
            return status
        finally:
            if as_program:
                _ignore_ctrl_c_from_now()

    def _tell_interrupt(self) -> None:
        """The one ``error:`` line of a Ctrl-C that :meth:`invoke` did not report: what it cut off."""
        if self._interrupt_told:
            return
        self._interrupt_told = True
        message = INTERRUPTED_BEFORE if self._stage == "starting" else INTERRUPTED_AFTER
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def _ignore_ctrl_c_from_now() -> None:
    """rramctl has said all it will say and the process exits with that status: a Ctrl-C from here on is ignored.
    Python's teardown (tenths of a second with numpy, numba and torch loaded) first puts SIGINT back to its default
    action, so a Ctrl-C then killed the process with no message, status 130, after a command that had completed.
    Only where the command line is read from ``sys.argv`` (the ``rramctl`` program), not for a caller that gives
    the arguments (``app([...])``, typer's CliRunner): it keeps its Ctrl-C."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
    line: str | None = None,
) -> None:  # fmt: skip
    """One ``warning:`` line for rramctl's own warnings; anything else as Python shows it."""
    if category.__module__.startswith("rramctl"):
        typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)
    else:
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


class FlagOption(TyperOption):
    """An option that takes no value (a flag such as ``--pairs`` or ``--download/--no-download``, ``--help``, a
    counter): typer's Rich help (0.29, its own click) writes every option's type beside it, ``<bool>`` beside a
    flag as if it took a value; a flag shows none, as click's plain help writes it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return super().display_type_rich(ctx)


def _valueless_flags(params: list[Any]) -> list[Any]:
    """``params`` with each typer option that takes no value made a :class:`FlagOption` (typer builds every option
    as a TyperOption, ``--help`` included, and takes no option class): every command's help, its own flags, the
    global ones and ``--help``, shows no type beside a flag."""
    for param in params:
        if type(param) is TyperOption and (param.is_flag or param.count):
            param.__class__ = FlagOption
    return params


def _escape_markup(command: Any) -> None:
    """Help texts are shown as written: a ``[...]`` in them (``serial:PORT[@BAUD]``, a setting's ``[section.key]``)
    is text, not Rich markup that the help would drop."""
    from rich.markup import escape

    for param in getattr(command, "params", []):
        if getattr(param, "help", None):
            param.help = escape(param.help)
    if getattr(command, "help", None):
        command.help = escape(command.help)


def _split_at_dashdash(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    if "--" in args:
        i = args.index("--")
        return args[:i], ["--"], args[i + 1 :]
    return list(args), [], []


def _env_debug() -> bool:
    return os.environ.get("RRAMCTL_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


app = typer.Typer(
    cls=GuardedGroup,
    name="rramctl",
    help="Control an RRAM in-memory-computing chip on a ZYNQ/PYNQ board, or its bit-exact emulator.\n\n"
    "Typical session on the emulator: rramctl form; rramctl read; rramctl multiply --random 8.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Session:
    backend: str
    config: BoardConfig
    state: Path
    seed: int
    json: bool
    config_path: Path | None = None
    model: str | None = None  # emulator chip model: preset name or TOML file (None: paper-40nm)
    device: str = "cpu"  # where the emulator's array math runs
    seed_given: bool = False  # --seed (or its default) on the command line: prune takes it as its chip seed

    def chip_model(self) -> object:
        """The emulated chip model of ``--model`` (rramsim.config), None for the default or another backend."""
        if self.model is None or not self.backend.startswith("emulator"):
            return None
        return emulator_model(self.model, self.seed)

    def command_line(self, *args: str) -> str:
        """A command that reaches this session's chip again (its backend, state file and board config), e.g. the
        one that finishes an interrupted command."""
        words = ["rramctl", "--backend", self.backend]
        if self.backend in ("emulator", "software"):
            words += ["--state", str(self.state)]
        if self.config_path is not None:
            words += ["--config", str(self.config_path)]
        return " ".join(shlex.quote(w) for w in [*words, *args])

    def open(self) -> Chip:
        existed = self.state.exists()
        chip = Chip.open(self.backend, config=self.config, state=self.state, seed=self.seed,
                         model=self.model if self.backend.startswith("emulator") else None,
                         device=self.device)  # fmt: skip
        note = chip.session_note()  # serial: an interrupted command's session
        if note is not None:
            typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
        if existed and self.backend == "emulator":
            self._note_ignored(chip)
        return chip

    def _note_ignored(self, chip: Chip) -> None:
        """--seed / --model make a new chip only: say so where they differ from the chip the state file holds."""
        held = chip.emulated_model()
        if held is None:
            return
        seed_differs = self.seed_given and held.seed != self.seed
        model_differs = self.model is not None and self.chip_model() != held
        differ = [opt for opt, on in (("--seed", seed_differs), ("--model", model_differs)) if on]
        if differ:
            typer.secho(f"note: {' and '.join(differ)} ignored: {self.state} holds a chip made with others (they "
                        "apply to a new chip: another --state, or move that file away)", fg=typer.colors.YELLOW,
                        err=True)  # fmt: skip


def emit(session: Session, data: dict[str, Any], human: str) -> None:
    if session.json:
        typer.echo(json.dumps(data, indent=2, default=_jsonable))
    else:
        typer.echo(human)


def _jsonable(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rramctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    backend: Annotated[
        str,
        typer.Option(
            envvar="RRAMCTL_BACKEND",
            help="emulator, pynq, serial:PORT[@BAUD], software (a float model) or auto (board if found)",
        ),
    ] = "auto",
    port: Annotated[
        str | None, typer.Option(envvar="RRAMCTL_PORT", help="serial port of a board agent (= --backend serial:PORT)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="board configuration TOML (defaults: docs/hardware.md)")] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            envvar="RRAMCTL_STATE",
            help="the emulated (or software) chip's state file, kept between commands "
            "(default ~/.local/state/rramctl/emulator.npz, software.npz for the software backend)",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, max=SEED_MAX, help="seed of a new emulated chip (ignored once its state file exists)"),
    ] = 0,
    model: Annotated[
        str | None,
        typer.Option(envvar="RRAMCTL_MODEL", help="emulated chip model: paper-40nm (default), ideal, or a TOML file"),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            envvar="RRAMCTL_DEVICE",
            help="where the emulator's array math runs: cpu, numpy, torch-cpu or cuda[:N] (the same codes on each)",
        ),
    ] = "cpu",
    json_out: Annotated[
        bool, typer.Option("--json", help="print one JSON object instead of text (also after the command)")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="RRAMCTL_DEBUG", help="show the traceback of an error")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    cfg = BoardConfig.load(config)
    if port and backend not in ("auto", "serial"):
        raise UsageError(f"--port {port} is for the serial backend; --backend {backend} was given")
    chosen = f"serial:{port}" if port else backend
    spec = resolve(chosen)
    source = ctx.get_parameter_source("seed")  # typer's own click: its enum compared by name
    seed_given = source is not None and source.name != "DEFAULT"
    ctx.obj = Session(str(spec), cfg, state or default_state_path(spec.kind), seed, json_out, config, model, device,
                      seed_given)  # fmt: skip


def session_of(ctx: typer.Context) -> Session:
    session: Session = ctx.obj
    return session


# ---- info ------------------------------------------------------------------------------
@app.command()
def info(ctx: typer.Context) -> None:
    """Show the backend, the overlay's identity and counters, and the operating points in use."""
    s = session_of(ctx)
    with s.open() as chip:
        version = "{}.{}".format(*chip.identity()) if chip.has_overlay else None  # the driver checks the ID first
        counters = chip.counters()
        cost = chip.board_cost()
        data = {
            "rramctl": __version__,
            "backend": s.backend,
            "state": str(s.state) if chip.state_in_file else None,
            "overlay_version": version,
            "array": [chip.rows, chip.cols],
            **counters,
            "board_cost": cost.as_dict() if cost is not None else None,
            "config": s.config.model_dump(),
        }
    c = s.config
    emit(s, data, "\n".join([
        f"rramctl {__version__}   backend: {s.backend}" + (f"   state: {s.state}" if data["state"] else ""),
        (f"overlay ID checked, register map v{version}" if version else "no overlay (a float model without registers)")
        + f"; array {chip.rows} x {chip.cols} (rows = BL, columns = SL)",
        f"operations completed: {counters['op_count']}   cell pulses applied: {counters['pulse_count']}",
        *([_cost_line("board time and energy so far", cost)] if cost is not None else []),
        f"form  {c.form.voltage_v} V / {c.form.width_s * 1e3:g} ms (gate {c.form.gate_v} V) at "
        f"{c.forming_temperature_c} degC",
        f"reset {c.reset.voltage_v} V / {c.reset.width_s * 1e9:g} ns    set {c.set.voltage_v} V / "
        f"{c.set.width_s * 1e9:g} ns    read {c.read_voltage_v} V",
    ]))  # fmt: skip


# ---- form ------------------------------------------------------------------------------
@app.command()
def form(
    ctx: typer.Context,
    region: Annotated[str, typer.Option(help="ROW:NROWS,COL:NCOLS or all")] = "all",
    voltage: Annotated[float | None, typer.Option(help="SL forming amplitude in V (default from config: 3.4)")] = None,
    width: Annotated[float | None, typer.Option(help="pulse width in s (default 10e-3)")] = None,
    gate: Annotated[
        float | None, typer.Option(help="WL gate voltage (compliance) in V (default from config: 1.2)")
    ] = None,
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs",
            help=f"differential pairs: form the region (columns < {PAIR_OFFSET}) at random, then each G- cell "
            f"(+{PAIR_OFFSET}) "
            "complementary to its G+ (seed 000)",
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="with --pairs: finish an interrupted run (G+ kept, missing G- formed)")
    ] = False,
) -> None:
    """Electroform a region: random conductances, about half the cells formed (seed 000, Fig. 2)."""
    s = session_of(ctx)
    reg = Region.parse(region)
    base = s.config.form
    given = {"--voltage": voltage, "--width": width, "--gate": gate}
    try:  # refuse before opening the chip, naming the options (the config's own fields otherwise)
        pulse = Pulse(
            voltage_v=base.voltage_v if voltage is None else voltage,
            width_s=base.width_s if width is None else width,
            gate_v=base.gate_v if gate is None else gate,
        )
        s.config.with_changes(form=pulse.model_dump())
    except (ValidationError, ConfigError) as e:
        options = ", ".join(f"{k} {v:g}" for k, v in given.items() if v is not None) or "the config's form pulse"
        cause = e if isinstance(e, ValidationError) else e.__cause__  # a ratings refusal carries pydantic's error
        fields = validation_message(cause).split("\n", 1)[-1] if isinstance(cause, ValidationError) else f"  {e}"
        raise UsageError(f"form: {options} refused:\n{fields}") from None
    if resume and not pairs:
        raise UsageError("--resume finishes an interrupted `form --pairs`; give it with --pairs")
    if pairs:
        _form_pairs(s, reg, region, pulse, resume)
        return
    with s.open() as chip:
        report = chip.electroform(reg, pulse)
    emit(
        s,
        {
            "region": str(reg),
            "voltage_v": pulse.voltage_v,
            "width_s": pulse.width_s,
            "formed_fraction": report.formed_fraction,
            "mean_formed_us": report.mean_formed_us,
        },  # fmt: skip
        f"formed {report.formed_fraction * 100:.1f} % of {reg.n_rows * reg.n_cols} cells ({reg}) with "
        f"{pulse.voltage_v} V / {pulse.width_s * 1e3:g} ms; mean formed conductance {report.mean_formed_us:.1f} uS",
    )


def _form_pairs(s: Session, reg: Region, region: str, pulse: Pulse, resume: bool) -> None:
    reg.check_pairs()  # refuse before opening the chip
    try:
        with s.open() as chip:
            rep = chip.electroform_pairs(reg, pulse, resume=resume)
    except KeyboardInterrupt:  # the chip kept what was formed (the emulator saved it on the way out)
        raise Interrupted(
            f"interrupted (Ctrl-C): forming of the pairs in {reg} is incomplete (G+ may be formed and G- not; what "
            f"was formed is saved); finish it with: {s.command_line('form', '--pairs', '--region', region, '--resume')}"
        ) from None
    w = rep.weights_us
    emit(
        s,
        {
            "region": str(reg),
            "plus_formed_fraction": rep.plus_formed_fraction,
            "complemented": rep.complemented,
            "complement_formed": rep.complement_formed,
            "max_voltage_v": rep.max_voltage_v,
            "form_pulses": rep.form_pulses,
            "positive_pairs": int((w > FORMED_THRESHOLD_US).sum()),
            "negative_pairs": int((w < -FORMED_THRESHOLD_US).sum()),
        },
        f"formed G+ ({reg}): {rep.plus_formed_fraction * 100:.1f} % at {pulse.voltage_v} V / "
        f"{pulse.width_s * 1e3:g} ms\n"
        f"G- (+{PAIR_OFFSET}) complementary: {rep.complement_formed} of {rep.complemented} cells formed, "
        f"up to {rep.max_voltage_v:.2f} V, {rep.form_pulses} pulses\n"
        f"pairs: {int((w > FORMED_THRESHOLD_US).sum())} positive, {int((w < -FORMED_THRESHOLD_US).sum())} negative, "
        f"{int((np.abs(w) <= FORMED_THRESHOLD_US).sum())} near zero",
    )


# ---- read ------------------------------------------------------------------------------
@app.command()
def read(
    ctx: typer.Context,
    region: Annotated[str, typer.Option(help="ROW:NROWS,COL:NCOLS or all")] = "all",
    out: Annotated[Path, typer.Option(help="conductance map (.npy, uS)")] = Path("conductance.npy"),
    png: Annotated[Path | None, typer.Option(help="heatmap + histogram figure")] = Path("conductance.png"),
) -> None:
    """Read a conductance map (uS); save it and a heatmap + histogram like Fig. 2 / 3b."""
    s = session_of(ctx)
    reg = Region.parse(region)
    check_writable(out, "--out")  # refuse before the chip is touched
    if png is not None:
        check_writable(png, "--png")
    with s.open() as chip:
        g = chip.read(reg)
    atomic_write_with(out, lambda f: np.save(f, g, allow_pickle=False))
    if png is not None:
        _save_figure(g, reg, png, f"{s.backend}: {reg}")
    formed = g > FORMED_THRESHOLD_US
    emit(
        s,
        {
            "region": str(reg),
            "out": out,
            "png": png,
            "mean_us": float(g.mean()),
            "max_us": float(g.max()),
            "formed_fraction": float(formed.mean()),
        },  # fmt: skip
        f"read {g.size} cells ({reg}): mean {g.mean():.2f} uS, max {g.max():.2f} uS, "
        f"{formed.mean() * 100:.1f} % above 3.33 uS (formed)\nsaved {out}" + (f" and {png}" if png else ""),
    )


def _save_figure(g: np.ndarray, reg: Region, png: Path, title: str) -> None:
    """Draw the figure in a private folder, then put it in place atomically."""
    from rramctl.plots import conductance_figure

    with tempfile.TemporaryDirectory(prefix="rramctl-fig-") as tmp:
        drawn = conductance_figure(g, reg, Path(tmp) / "figure.png", title=title)
        atomic_write_bytes(png, drawn.read_bytes())


# ---- reset / set -----------------------------------------------------------------------
CellsFile = Annotated[Path | None, typer.Option("--cells", help=".npy or CSV of ROW,COL lines")]
CellOpt = Annotated[list[str] | None, typer.Option("--cell", help="ROW,COL (repeatable)")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="every cell of ROW:NROWS,COL:NCOLS")]


def _cell_command(ctx: typer.Context, op: str, cells_file: Path | None, cell: list[str] | None, region: str | None):  # noqa: ANN202
    s = session_of(ctx)
    cells = gather_cells(cells_file, cell, region)
    with s.open() as chip:
        pulses = chip.reset(cells) if op == "reset" else chip.set(cells)
        after = chip.counters()
    pulse = s.config.reset if op == "reset" else s.config.set
    emit(s, {"op": op, "cells": len(cells), "pulses": pulses, **after},
         f"{op}: {pulses} cell(s), {pulse.voltage_v} V / {pulse.width_s * 1e9:g} ns pulses "
         f"({'SL' if op == 'reset' else 'BL'}); chip total {after['pulse_count']} cell pulses")  # fmt: skip


@app.command()
def reset(ctx: typer.Context, cells: CellsFile = None, cell: CellOpt = None, region: RegionOpt = None) -> None:
    """Prune: reset cells to the off state (2.6 V / 400 ns on the SL)."""
    _cell_command(ctx, "reset", cells, cell, region)


@app.command("set")
def set_(ctx: typer.Context, cells: CellsFile = None, cell: CellOpt = None, region: RegionOpt = None) -> None:
    """Reinstate: set cells back to their conducting state (3.3 V / 300 ns on the BL)."""
    _cell_command(ctx, "set", cells, cell, region)


# ---- multiply --------------------------------------------------------------------------
@app.command()
def multiply(
    ctx: typer.Context,
    inputs: Annotated[Path | None, typer.Option(help=".npy or CSV, shape (batch, rows) of m-bit integers")] = None,
    random: Annotated[
        int | None, typer.Option(help="use this many seeded random input vectors instead (at least 1)")
    ] = None,
    input_seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="seed of --random inputs (0 to 2**64 - 1)")] = 0,
    bits: Annotated[int, typer.Option(help=f"input bit width m, 1..{MAX_BITS}; 4 for the CNN, 3 for the CRNN")] = 4,
    region: Annotated[str, typer.Option(help="ROW:NROWS,COL:NCOLS of the weights")] = f"0:{ROWS},0:{PAIR_OFFSET}",
    pairs: Annotated[bool, typer.Option(help=f"differential: G+ at the region's columns, G- at +{PAIR_OFFSET}")] = True,
    out: Annotated[Path, typer.Option(help="results (.npz: inputs, codes, products_us)")] = Path("products.npz"),
) -> None:
    """Bit-serial vector-matrix multiply on the chip: ADC codes and calibrated products (uS x input)."""
    s = session_of(ctx)
    reg = Region.parse(region)
    if (inputs is None) == (random is None):
        raise InputFileError("give exactly one of --inputs FILE or --random N")
    if not 1 <= bits <= MAX_BITS:
        raise UsageError(f"--bits must be 1..{MAX_BITS}, got {bits}")
    if pairs:
        reg.check_pairs()  # refuse before the G+ half runs
    if random is not None:
        if random < 1:
            raise UsageError(f"--random must be at least 1, got {random}")
        x: NDArray[np.integer[Any]] = np.random.default_rng(input_seed).integers(
            0, 1 << bits, size=(random, reg.n_rows), dtype=np.int64
        )
    else:
        assert inputs is not None
        try:
            x = Chip.check_inputs(load_array(inputs), reg, bits)
        except UsageError as e:
            raise InputFileError(f"--inputs {inputs}: {e}") from e
        if len(x) == 0:
            raise InputFileError(f"--inputs {inputs} holds no input vectors (shape {x.shape}); give at least one")
    check_writable(out, "--out")
    with s.open() as chip:
        before = chip.board_cost()
        res = chip.multiply_pairs(x, reg, bits) if pairs else chip.multiply(x, reg, bits)
        after = chip.board_cost()
    cost = after - before if after is not None and before is not None else None
    codes, products = res.codes, res.products
    atomic_write_with(out, lambda f: np.savez(f, inputs=x, codes=codes, products_us=products))
    emit(
        s,
        {
            "batch": len(x),
            "bits": bits,
            "region": str(reg),
            "pairs": pairs,
            "out": out,
            "codes": codes[:4],
            "products_us": products[:4],
            "saturated_samples": res.saturated,
            "board_cost": cost.as_dict() if cost is not None else None,
        },  # fmt: skip
        f"multiplied {len(x)} x {reg.n_rows} {bits}-bit inputs with {reg.n_cols} "
        f"{'differential columns' if pairs else 'columns'} ({reg})\n"
        f"first vector, first columns: codes {codes[0, :6].tolist()}\n"
        f"  products (uS x input LSB) {np.round(products[0, :6], 1).tolist()}\n"
        f"saturated ADC samples: {res.saturated}"
        + (" (products of those columns are clipped)" if res.saturated else "")
        + (f"\n{_cost_line(f'estimated board cost ({len(x)} vectors)', cost)}" if cost is not None else "")
        + f"\nsaved {out}",
    )


def _cost_line(what: str, cost: BoardCost) -> str:
    return (f"{what}: {cost.time_s * 1e3:.3f} ms, {cost.total_j * 1e6:.3f} uJ (array reads "
            f"{cost.array_read_j * 1e9:.3f} nJ, ADC {cost.adc_j * 1e6:.3f} uJ over {cost.adc_conversions} "
            f"conversions, pulses {cost.pulse_j * 1e6:.3f} uJ); emulator model, docs/emulator.md")  # fmt: skip


# ---- selftest --------------------------------------------------------------------------
@app.command()
def selftest(ctx: typer.Context) -> None:
    """Check the whole path without changing any cell: overlay identity, DAC, read, zero multiply, counters."""
    from rramctl.selftest import run_selftest

    s = session_of(ctx)
    with s.open() as chip:
        results = run_selftest(chip, emulator=s.backend == "emulator")
    ok = all(r.ok for r in results)
    emit(
        s,
        {"ok": ok, "checks": [r.__dict__ for r in results]},
        "\n".join(f"[{'ok' if r.ok else 'FAIL'}] {r.name}: {r.detail}" for r in results),
    )
    if not ok:
        raise typer.Exit(1)


def _register_extras() -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec("rramctl.cli.train_cmds") is not None:
        importlib.import_module("rramctl.cli.train_cmds").register(app)
    importlib.import_module("rramctl.cli.calibrate_cmd").register(app)


_register_extras()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
