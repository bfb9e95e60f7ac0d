"""BoardConfig ratings and the driver's refusals: bad inputs give a clear error and write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.chip import Chip
from rramctl.config import BoardConfig, ConfigError, Pulse
from rramctl.driver import Driver
from rramctl.geometry import GeometryError, Region, check_cells, pair_cells
from rramctl.transport.base import RegWrite, Transport


class RecordingTransport(Transport):
    """Records every access; answers ID/VERSION like an overlay and STATUS as idle + done."""

    def __init__(self) -> None:
        self.log: list[tuple] = []

    def _read_reg(self, offset: int) -> int:
        self.log.append(("read", offset))
        return {R.ID: R.ID_VALUE.reset, R.VERSION: R.VERSION_MAJOR.put(1), R.STATUS: R.STATUS_DONE.put(1)}.get(
            offset, 0
        )

    def _write_reg(self, offset: int, value: int) -> None:
        self.log.append(("write", offset, value))

    def _transact(self, send, recv_words: int, trigger: RegWrite):  # noqa: ANN001
        self.log.append(("transact", None if send is None else np.asarray(send).copy(), recv_words, trigger))
        return np.zeros(recv_words, np.uint32)

    def writes(self) -> list[tuple]:
        return [e for e in self.log if e[0] in ("write", "transact")]


@pytest.fixture
def chip() -> tuple[Chip, RecordingTransport]:
    t = RecordingTransport()
    return Chip(Driver(t)), t


def test_default_config_matches_shipped_toml() -> None:
    shipped = Path(__file__).parents[1] / "host" / "rramctl" / "data" / "board.toml"
    assert BoardConfig.load(shipped) == BoardConfig()


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[form]\nvoltage_v = 4.2\nwidth_s = 0.01\ngate_v = 1.2\n", "form.voltage_v"),
        ("[set]\nvoltage_v = 3.3\nwidth_s = 0.5\ngate_v = 1.2\n", "set.width_s"),
        ("read_voltage_v = 0.5\n", "read_voltage_v"),
        ("forming_temperature_c = 150\n", "forming_temperature_c"),
        ("[ratings]\nmax_sl_voltage_v = 9\n", "max_sl_voltage_v"),
        ("bogus = 1\n", "bogus"),
        ("[form\n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, toml: str, needle: str) -> None:
    p = tmp_path / "board.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=needle):
        BoardConfig.load(p)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        BoardConfig.load("/nonexistent/board.toml")


def test_overvoltage_form_writes_nothing(chip: tuple[Chip, RecordingTransport]) -> None:
    c, t = chip
    with pytest.raises(ConfigError, match="absolute maximum"):
        c.electroform(Region(0, 4, 0, 4), Pulse(voltage_v=4.5, width_s=0.01, gate_v=1.2))
    assert t.writes() == []


@pytest.mark.parametrize(
    "cells",
    [np.array([[0, 512]]), np.array([[-1, 0]]), np.array([[600, 3]]), np.array([1, 2, 3]), np.array([[0.5, 1.0]])],
)
def test_cells_outside_array_write_nothing(chip: tuple[Chip, RecordingTransport], cells: np.ndarray) -> None:
    c, t = chip
    with pytest.raises(GeometryError):
        c.reset(cells)
    with pytest.raises(GeometryError):
        c.set(cells)
    assert t.writes() == []


def test_bad_multiply_inputs_write_nothing(chip: tuple[Chip, RecordingTransport]) -> None:
    c, t = chip
    region = Region(0, 8, 0, 4)
    for x, bits in [
        (np.full((1, 8), 16), 4),  # 5-bit values for 4-bit inputs
        (np.full((1, 8), -1), 4),
        (np.zeros((1, 7), int), 4),  # wrong row count
        (np.zeros((1, 8), int), 9),  # bit width the overlay cannot do
        (np.zeros((1, 8), float), 4),
    ]:
        with pytest.raises(ValueError):
            c.multiply(x, region, bits)
    assert t.writes() == []


@pytest.mark.parametrize("region", ["0:0,0:4", "510:4,0:4", "0:4,-1:4", "nonsense"])
def test_regions_outside_array(region: str) -> None:
    with pytest.raises(GeometryError):
        Region.parse(region)


def test_reset_sequence_is_batched_and_ends_safe(chip: tuple[Chip, RecordingTransport]) -> None:
    c, t = chip
    cells = np.stack(np.meshgrid(np.arange(100), np.arange(100), indexing="ij"), -1).reshape(-1, 2)
    assert c.reset(cells) == 10_000
    transacts = [e for e in t.log if e[0] == "transact"]
    assert len(transacts) == 1  # 10,000 cells in one DMA transaction
    send = transacts[0][1]
    assert send[0] == 0 and send[1] == 1 and send[-1] == (99 << 16) | 99
    assert transacts[0][3] == RegWrite(R.CTRL, R.CTRL_START.put(1))
    writes = [e for e in t.log if e[0] == "write"]
    assert (R.OPCODE, 2) in [(w[1], w[2]) for w in writes]
    assert (R.CELL_COUNT, 10_000) in [(w[1], w[2]) for w in writes]
    # the last four writes return DAC channels 0-3 to 0 V (safe idle)
    tail = [w[2] for w in writes[-4:]]
    assert all(w[1] == R.DAC_FRAME for w in writes[-4:])
    assert tail == [(0x08 + ch) << 16 for ch in range(4)]


def test_pair_region_layout() -> None:
    plus = Region(3, 2, 5, 4)
    assert plus.minus() == Region(3, 2, 261, 4)
    assert plus.is_pair_region and not plus.minus().is_pair_region
    with pytest.raises(GeometryError):
        Region(0, 1, 250, 7).minus()  # crosses into the G- half
    assert pair_cells(np.array([3]), np.array([5])).tolist() == [[3, 5], [3, 261]]
    with pytest.raises(GeometryError):
        pair_cells(np.array([0]), np.array([256]))
    assert check_cells([]).shape == (0, 2)


def test_driver_refusals_are_usage_errors_before_any_write() -> None:
    """The driver's own checks (for callers below the chip API) are rramctl errors, not bare ValueErrors, and
    come before the first register write."""
    from rramctl.errors import UsageError

    t = RecordingTransport()
    d = Driver(t)
    t.log.clear()
    kw = dict(pulse_cycles=10, tolerance_ppm=1000, max_pulses=5, v_prog=1000, v_wl=1000, v_read=1000)
    for targets in (np.array([5, 6]), np.array(["a"]), np.array([0])):
        with pytest.raises(UsageError):
            d.program_cells(np.array([[0, 0]]), targets, **kw)  # type: ignore[arg-type]
    for inputs, bits in (([[1, 0], [1]], 1), (np.ones((1, 4), np.int64), 1.5)):
        with pytest.raises(UsageError):
            d.multiply(inputs, bits, Region(0, 4, 0, 4), 100)  # type: ignore[arg-type]
    assert t.writes() == []
