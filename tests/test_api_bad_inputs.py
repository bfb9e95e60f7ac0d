"""Bad arguments to the public chip API (docs/api.md): each is ONE error under RramctlError (GeometryError, UsageError,
ConfigError), never a bare ValueError/TypeError/AttributeError from deep inside, and it changes nothing: no register
written, no cell pulsed, the emulator's conductances, counters, board clock and energy ledger as they were."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rramctl.chip import Chip
from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.errors import RramctlError, UsageError
from rramctl.geometry import GeometryError, Region, check_cells, pair_cells
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import load_model

REGION = Region(0, 4, 0, 4)  # a pair region (G- at columns 256-259)
X = np.ones((2, 4), dtype=np.int64)
RAGGED = [[0, 0], [1]]


class Emulated:
    """An in-memory emulated chip (nothing under ~/.local/state) whose every register write is recorded."""

    def __init__(self) -> None:
        model = load_model("ideal").model_copy(update={"seed": 4})
        self.transport = EmulatorTransport(model, autosave=False)
        self.chip = Chip.from_transport(self.transport)
        self.chip.electroform(REGION)
        self.chip.electroform(REGION.minus())
        self.writes: list[tuple[int, int]] = []
        real = self.transport._write_reg

        def recording(offset: int, value: int) -> None:
            self.writes.append((offset, value))
            real(offset, value)

        self.transport._write_reg = recording

    def state(self) -> dict[str, Any]:
        ov = self.transport.overlay
        cb = ov.crossbar
        return {
            **{k: np.array(getattr(cb, k), copy=True) for k in ("g", "g_formed", "stuck", "t_pulse_us", "relax_ns")},
            "counters": copy.deepcopy(vars(ov.counters)),
            "clock": repr(self.chip.clock_s()),
            "cost": repr(self.chip.board_cost()),
            "offsets": dict(self.chip._offsets),
        }

    def refuses(
        self, call: Callable[[Chip], object], error: type[RramctlError] = UsageError, match: str | None = None
    ) -> None:
        """``call`` raises one ``error`` and leaves the chip exactly as it was."""
        before = self.state()
        self.writes.clear()
        with pytest.raises(error, match=match):
            call(self.chip)
        after = self.state()
        assert self.writes == [], "a register was written before the refusal"
        for key, value in before.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, after[key]), key
            else:
                assert value == after[key], key


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulated]:
    e = Emulated()
    yield e
    e.chip.close()


# ---- cell lists and pairs (geometry.check_cells / pair_cells) ----------------------------------------------------
@pytest.mark.parametrize("op", ["reset", "set", "read_cells"])
@pytest.mark.parametrize(
    "cells",
    [RAGGED, np.zeros((0, 3), dtype=np.int64), np.zeros((3, 0), dtype=np.int64)],
    ids=["ragged", "empty-(0,3)", "empty-(3,0)"],
)
def test_malformed_cell_lists_are_one_geometry_error(emu: Emulated, op: str, cells: object) -> None:
    emu.refuses(lambda chip: getattr(chip, op)(cells), GeometryError, "cells must be")


def test_program_refuses_a_ragged_cell_list(emu: Emulated) -> None:
    emu.refuses(lambda chip: chip.program(RAGGED, [5.0, 5.0]), GeometryError, "cells must be")


def test_empty_cell_lists_are_still_no_operations(emu: Emulated) -> None:
    before = emu.state()
    assert emu.chip.reset([]) == 0 and emu.chip.set(np.zeros((0, 2), np.int64)) == 0
    assert emu.chip.read_cells([]).shape == (0,)
    assert np.array_equal(before["g"], emu.state()["g"]) and before["counters"] == emu.state()["counters"]


@pytest.mark.parametrize(
    "pairs",
    [[[0.9, 0.9]], [[True, False]], [0, 1], np.zeros((1, 1, 2), np.int64), None, 5, RAGGED, [[2**70, 0]], [["0", "0"]]],
    ids=["float", "bool", "flat", "3d", "None", "scalar", "ragged", "huge", "str"],
)
def test_weights_of_pairs_checks_its_pairs_as_a_cell_list(emu: Emulated, pairs: object) -> None:
    """It used to cast with dtype=int64 and reshape: floats truncated, a flat list read as a pair, None a TypeError."""
    emu.refuses(lambda chip: chip.weights_of_pairs(pairs), GeometryError, "pairs must be")


@pytest.mark.parametrize(
    ("rows", "cols", "match"),
    [
        ([0.5], [1], "pair rows"),
        ([0], [1.5], "pair columns"),
        ([True], [0], "pair rows"),
        ([0, 1], [0], "2 pair rows"),
        (None, None, "pair rows"),
        ([2**70], [0], "pair rows"),
        ([np.nan], [0], "pair rows"),
    ],  # fmt: skip
)
def test_pair_cells_refuses_non_integer_or_mismatched_lists(rows: object, cols: object, match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        pair_cells(rows, cols)


def test_check_cells_names_what_it_checks() -> None:
    with pytest.raises(GeometryError, match="1 pair\\(s\\) lie outside"):
        check_cells([[600, 0]], "pairs")
    with pytest.raises(GeometryError, match="1 cell\\(s\\) lie outside"):
        check_cells([[600, 0]])


# ---- regions ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        (0.5, 1, 0, 1),
        (0, 2.0, 0, 1),
        (math.nan, 1, 0, 1),
        (None, 1, 0, 1),
        ("0", 1, 0, 1),
        (True, 1, 0, 1),
        (0, 1, 0, 1j),
    ],  # fmt: skip
)
def test_region_fields_must_be_integers(args: tuple[Any, ...]) -> None:
    with pytest.raises(GeometryError, match="must be an integer"):
        Region(*args)


def test_region_normalises_numpy_integers_and_parse_refuses_non_text() -> None:
    r = Region(np.int64(1), np.int32(2), np.uint8(3), 4)
    assert r == Region(1, 2, 3, 4) and all(type(v) is int for v in (r.row, r.n_rows, r.col, r.n_cols))
    for text in (None, 5):
        with pytest.raises(GeometryError, match="as text"):
            Region.parse(text)


def test_a_fractional_region_reaches_no_register(emu: Emulated) -> None:
    """Region(0, 2.5, 0, 2) used to be accepted: the READ set the DAC levels, then failed on 5.0 output words."""
    emu.refuses(lambda chip: chip.read(Region(0, 2.5, 0, 2)), GeometryError)


REGION_CALLS: dict[str, Callable[[Chip, Any], object]] = {
    "read": lambda chip, r: chip.read(r),
    "read_gate": lambda chip, r: chip.read(r, gate_v=1.0),
    "read_codes": lambda chip, r: chip.read_codes(r),
    "electroform": lambda chip, r: chip.electroform(r),
    "electroform_pairs": lambda chip, r: chip.electroform_pairs(r),
    "weights_us": lambda chip, r: chip.weights_us(r),
    "calibrate_offsets": lambda chip, r: chip.calibrate_offsets(r),
    "column_offsets": lambda chip, r: chip.column_offsets(r),
    "multiply": lambda chip, r: chip.multiply(X, r, 1),
    "multiply_pairs": lambda chip, r: chip.multiply_pairs(X, r, 1),
    "check_inputs": lambda chip, r: chip.check_inputs(X, r, 1),
}


@pytest.mark.parametrize("call", REGION_CALLS, ids=list(REGION_CALLS))
@pytest.mark.parametrize("region", [(0, 4, 0, 4), "0:4,0:4", 5], ids=["tuple", "str", "int"])
def test_a_region_argument_must_be_a_region(emu: Emulated, call: str, region: object) -> None:
    emu.refuses(lambda chip: REGION_CALLS[call](chip, region), GeometryError, "must be a rramctl.geometry.Region")


@pytest.mark.parametrize("call", ["weights_us", "calibrate_offsets", "column_offsets", "multiply", "electroform_pairs"])
def test_none_is_no_region_where_the_region_is_required(emu: Emulated, call: str) -> None:
    emu.refuses(lambda chip: REGION_CALLS[call](chip, None), GeometryError, "must be a rramctl.geometry.Region")


# ---- scalars ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [math.nan, math.inf, None, "1", 1j, [1], True])
def test_wait_refuses_what_is_not_a_finite_number_of_seconds(emu: Emulated, seconds: object) -> None:
    """wait(nan) / wait(inf) used to set the emulator's board clock to nan / inf (every later relaxation broken)."""
    emu.refuses(lambda chip: chip.wait(seconds))


@pytest.mark.parametrize("tolerance", ["0.1", 0.1j])
def test_program_tolerance_must_be_a_number(emu: Emulated, tolerance: object) -> None:
    emu.refuses(lambda chip: chip.program([[0, 0]], [5.0], tolerance=tolerance), match="tolerance")


@pytest.mark.parametrize("gate_v", ["1", 1j, [1.0]])
def test_read_gate_must_be_a_number(emu: Emulated, gate_v: object) -> None:
    emu.refuses(lambda chip: chip.read(REGION, gate_v=gate_v), match="gate_v")


@pytest.mark.parametrize("bits", [1.5, 1.0, None, "1", True])
@pytest.mark.parametrize("call", ["multiply", "multiply_pairs", "check_inputs"])
def test_bit_width_must_be_an_integer(emu: Emulated, call: str, bits: object) -> None:
    emu.refuses(lambda chip: getattr(chip, call)(X, REGION, bits), match="bit width")


@pytest.mark.parametrize("vectors", [1.5, 2.0, None, "3", True, 2**40, 2**70])
def test_calibrate_vectors_must_be_a_sane_integer(emu: Emulated, vectors: object) -> None:
    """2**40 vectors used to be a MemoryError, 1.5 a TypeError."""
    emu.refuses(lambda chip: chip.calibrate_offsets(REGION, vectors), match="vectors")


# ---- arrays of numbers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "targets", [["a", "b"], [5 + 1j, 5.0], [True, True], RAGGED], ids=["str", "complex", "bool", "ragged"]
)
def test_program_targets_must_be_real_numbers(emu: Emulated, targets: object) -> None:
    emu.refuses(lambda chip: chip.program([[0, 0], [1, 1]], targets), match="targets_us")


@pytest.mark.parametrize("call", ["multiply", "multiply_pairs", "check_inputs"])
def test_ragged_multiply_inputs_are_one_usage_error(emu: Emulated, call: str) -> None:
    emu.refuses(lambda chip: getattr(chip, call)([[1, 1, 1, 1], [1]], REGION, 1), match="inputs")


@pytest.mark.parametrize("us", [math.nan, math.inf, 1e30, None, "a", [1, [2]], 1j])
def test_us_to_codes_refuses_what_has_no_code(emu: Emulated, us: object) -> None:
    """nan, inf, 1e30 and None used to come back as the code -9223372036854775808."""
    emu.refuses(lambda chip: chip.us_to_codes(us))


@pytest.mark.parametrize("codes", ["a", [1, [2]], 1j, None])
def test_codes_to_us_refuses_what_is_not_codes(emu: Emulated, codes: object) -> None:
    emu.refuses(lambda chip: chip.codes_to_us(codes))


# ---- pulses, forming and the board configuration ---------------------------------------------------------------
@pytest.mark.parametrize("step_v", [math.nan, math.inf, None, "0.1", 1e-5])
def test_electroform_pairs_step_is_checked_before_anything_forms(emu: Emulated, step_v: object) -> None:
    """nan / inf used to form the G+ half and then ramp nothing; 1e-5 V (below one DAC code) ramped for thousands of
    pulses at the same code."""
    emu.refuses(lambda chip: chip.electroform_pairs(Region(8, 2, 0, 2), None, step_v), match="step_v")


@pytest.mark.parametrize(
    "pulse",
    [
        Pulse(voltage_v=4.5, width_s=1e-3, gate_v=1.2),
        Pulse(voltage_v=3.0, width_s=1.0, gate_v=1.2),
        Pulse(voltage_v=3.0, width_s=1e-3, gate_v=3.0),
    ],  # fmt: skip
    ids=["over-voltage", "too-wide", "gate-over"],
)
def test_a_resumed_pair_forming_checks_its_pulse_first(emu: Emulated, pulse: Pulse) -> None:
    """resume=True used to read both halves first, then fail in the overlay (DeviceError) or, past the SL rating,
    return a report having ramped nothing."""
    emu.refuses(lambda chip: chip.electroform_pairs(REGION, pulse, resume=True), ConfigError)


@pytest.mark.parametrize("pulse", ["pulse", {"voltage_v": 3.0}, 5])
@pytest.mark.parametrize("call", ["electroform", "electroform_pairs"])
def test_a_pulse_must_be_a_pulse(emu: Emulated, call: str, pulse: object) -> None:
    emu.refuses(lambda chip: getattr(chip, call)(REGION, pulse), match="Pulse")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Pulse(voltage_v=math.inf, width_s=1e-3, gate_v=1.2),
        lambda: Pulse(voltage_v=-1, width_s=1e-3, gate_v=1.2),
        lambda: Pulse(voltage_v="x", width_s=1e-3, gate_v=1.2),
        lambda: BoardConfig(forming_temperature_c=math.nan),
        lambda: BoardConfig(clock_hz=math.inf),
        lambda: BoardConfig(clock_hz=1e30),
        lambda: BoardConfig(ratings={"max_temperature_c": math.nan}),
        lambda: BoardConfig(on_saturation="x"),
        lambda: BoardConfig().with_changes(poll_timeout_s=math.inf),
    ],  # fmt: skip
    ids=[
        "pulse-inf",
        "pulse-negative",
        "pulse-str",
        "temperature-nan",
        "clock-inf",
        "clock-past-pulse-cap",
        "rating-nan",
        "on-saturation",
        "with-changes-inf",
    ],  # fmt: skip
)
def test_board_configuration_refuses_nan_inf_and_bad_fields_as_config_errors(make: Callable[[], object]) -> None:
    """A NaN passed every "> rating" check; direct construction raised pydantic's bare ValidationError."""
    with pytest.raises(ConfigError):
        make()


def test_config_errors_keep_pydantics_error_as_their_cause() -> None:
    from pydantic import ValidationError

    with pytest.raises(ConfigError) as e:
        Pulse(voltage_v=-1, width_s=1e-3, gate_v=1.2)
    assert isinstance(e.value.__cause__, ValidationError)
    assert BoardConfig() == BoardConfig() and BoardConfig.load(None) == BoardConfig()


# ---- opening and saving ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"config": "board.toml"}, ConfigError),
        ({"config": {"form": 1}}, ConfigError),
        ({"backend": None}, UsageError),
        ({"device": None}, UsageError),
        ({"seed": "3"}, UsageError),
        ({"seed": None}, UsageError),
    ],  # fmt: skip
)
def test_open_refuses_wrong_argument_types(kwargs: dict[str, object], error: type[RramctlError]) -> None:
    with pytest.raises(error):
        Chip.open(autosave=False, **kwargs)


def test_from_transport_refuses_a_config_that_is_not_one(emu: Emulated) -> None:
    emu.refuses(lambda chip: Chip.from_transport(emu.transport, "board.toml"), ConfigError)


def test_save_state_takes_a_str_and_refuses_special_files(emu: Emulated, tmp_path: Path) -> None:
    emu.chip.save_state(str(tmp_path / "chip.npz"))
    assert (tmp_path / "chip.npz").is_file()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad in (None, fifo, tmp_path):
        emu.refuses(lambda chip, bad=bad: chip.save_state(bad))
    assert fifo.is_fifo()  # not replaced by a regular file


def test_the_software_model_checks_its_arguments_as_the_chip_does() -> None:
    """The float model (SoftwareChip) overrides the operations; each override passes its arguments through the
    same normaliser (rramctl.arguments), so it refuses what the emulated chip refuses, and changes nothing."""
    from rramctl.software import SoftwareChip

    chip = SoftwareChip(seed=1)
    chip.electroform(Region(0, 4, 0, 8))
    g = chip.g.copy()
    for call in (
        lambda: chip.electroform("0:4,0:8"),  # type: ignore[arg-type]
        lambda: chip.electroform_pairs(Region(0, 4, 0, 8), step_v=float("nan")),
        lambda: chip.read(Region(0, 4, 0, 8), gate_v=float("nan")),
        lambda: chip.program(np.array([[0, 0]]), np.array(["a"])),
        lambda: chip.program(np.array([[0, 0]]), np.array([10.0]), tolerance=2.0),
        lambda: chip.multiply_pairs(np.ones((2, 4), np.int64), Region(0, 4, 0, 8), 1.5),  # type: ignore[arg-type]
        lambda: chip.multiply([[1, 0], [1]], Region(0, 2, 0, 2), 1),  # type: ignore[arg-type]
    ):
        with pytest.raises(RramctlError):
            call()
    np.testing.assert_array_equal(chip.g, g)
    res = chip.multiply_pairs(np.ones((2, 4), np.int64), Region(0, 4, 0, 8), 1)  # the override still runs
    assert res.products.shape == (2, 8)


def test_the_pl_clock_is_the_protocols() -> None:
    """BoardConfig.clock_hz turns pulse widths into PULSE_CYCLES; the RTL, the emulator and the board clock run at
    the protocol's PL_CLOCK_HZ, so another value (which gave other pulse widths on the board than the emulator's)
    is refused."""
    from rramctl.protocol import PL_CLOCK_HZ

    assert BoardConfig().clock_hz == PL_CLOCK_HZ
    for hz in (50e6, PL_CLOCK_HZ + 1):
        with pytest.raises(ConfigError, match="clock_hz"):
            BoardConfig(clock_hz=hz)


# ---- from a newcomer walkthrough of docs/api.md -----------------------------------------------------------------
def test_open_refuses_a_state_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO as ``state`` blocked Chip.open forever (np.load opened it); 3 raised a bare TypeError; a folder gave a
    StateError after opening it. Each is one UsageError now, before anything opens the path."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, needle in ((fifo, "not a regular file"), (tmp_path, "not a regular file"), (3, "file path")):
        for backend in ("emulator", "software"):
            with pytest.raises(UsageError, match=needle):
                Chip.open(backend, state=bad)  # type: ignore[arg-type]
    from rramsim import state

    with pytest.raises(state.StateError, match="not a regular file"):  # the reader itself, for every caller
        state.load(fifo)


def test_yes_no_arguments_must_be_booleans() -> None:
    with pytest.raises(UsageError, match="autosave must be True or False"):
        Chip.open("emulator", autosave="no")  # type: ignore[arg-type]
    chip = Chip.open("emulator", seed=1, autosave=False)
    before = chip.board_cost()
    with pytest.raises(UsageError, match="resume must be True or False"):
        chip.electroform_pairs(Region(0, 2, 0, 2), resume="yes")  # type: ignore[arg-type]
    assert chip.board_cost() == before
    chip.close()


@pytest.mark.parametrize("backend", ["emulator", "software"])
def test_program_targets_are_one_per_cell_and_the_software_read_gate_is_rated(backend: str) -> None:
    """A (1, N) targets array was flattened and programmed; the software model's read took any gate."""
    chip = Chip.open(backend, seed=1, autosave=False)
    cells = np.array([[0, 0], [0, 1], [0, 2]])
    with pytest.raises(UsageError, match="one-dimensional"):
        chip.program(cells, np.full((1, 3), 20.0))
    with pytest.raises(UsageError, match="3 cells but 2 targets"):
        chip.program(cells, np.full(2, 20.0))
    with pytest.raises(ConfigError, match="gate_v = 9.0 V is outside"):
        chip.read(Region(0, 2, 0, 2), gate_v=9.0)
    chip.close()
