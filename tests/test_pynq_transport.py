"""PynqTransport against the real pynq package on a mocked board (tests/pynq_mocks.py).

The real ``pynq.DefaultIP``/``pynq.MMIO``/``pynq.lib.dma.DMA``/``pynq.allocate`` code runs; only the
device under it is mocked, as in PYNQ's own tests. Skips when pynq is not installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.errors import StateError
from rramctl.transport.base import RegWrite, TransportError
from rramctl.transport.pynq_transport import (
    BITFILE_ENV,
    check_pynq_version,
    find_board,
    resolve_bitfile,
)

START = RegWrite(R.CTRL, R.CTRL_START.put(1))


# ---- pieces that need no pynq ---------------------------------------------------------------------
def test_importing_rramctl_does_not_import_pynq() -> None:
    code = (
        "import sys, rramctl, rramctl.backends, rramctl.transport.pynq_transport as p\n"
        "p.find_board(); assert 'pynq' not in sys.modules, 'pynq imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_find_board_needs_fpga_manager(tmp_path: Path) -> None:
    assert find_board(tmp_path, {}) is None
    (tmp_path / "sys/class/fpga_manager/fpga0").mkdir(parents=True)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/compatible").write_bytes(b"xlnx,zynq-7000\x00")
    board = find_board(tmp_path, {"BOARD": "Pynq-Z2"})
    if importlib.util.find_spec("pynq") is None:
        assert board is None  # a Zynq without pynq is no PYNQ board
    else:
        assert board is not None and (board.family, board.board) == ("zynq-7000", "Pynq-Z2")


@pytest.mark.parametrize(
    ("version", "family", "ok"),
    [("3.1.2", "zynq-7000", True), ("4.0.0", "zynq-7000", False), ("4.0.0", "zynqmp", True), ("2.7", "zynqmp", False)],
)
def test_pynq_version_matches_board_family(version: str, family: str, ok: bool) -> None:
    if ok:
        check_pynq_version(version, family)
    else:
        with pytest.raises(TransportError, match="pynq"):
            check_pynq_version(version, family)


def test_bitfile_resolution(tmp_path: Path) -> None:
    bit = tmp_path / "rram_overlay.bit"
    with pytest.raises(TransportError, match="not found"):
        resolve_bitfile(bit, {})
    bit.write_bytes(b"\x00")
    with pytest.raises(TransportError, match=r"\.hwh"):
        resolve_bitfile(bit, {})
    bit.with_suffix(".hwh").write_text("<hwh/>")
    assert resolve_bitfile(bit, {}) == bit
    assert resolve_bitfile(None, {BITFILE_ENV: str(bit)}) == bit
    with pytest.raises(TransportError, match=r"\.bit file"):
        resolve_bitfile(tmp_path / "rram_overlay.hwh", {})
    with pytest.raises(TransportError, match="not found"):
        resolve_bitfile(None, {})  # nothing packaged in a source checkout


# ---- the mocked board -------------------------------------------------------------------------------
@pytest.fixture
def mocks() -> ModuleType:
    """tests/pynq_mocks.py, which needs the real pynq package (skip without it)."""
    pytest.importorskip("pynq", reason="pynq is not installed (pip install 'pynq>=3.1,<4')")
    import pynq_mocks

    return pynq_mocks


def test_ip_class_binds_overlay_vlnv(mocks: ModuleType) -> None:
    import pynq
    from rramctl.transport.pynq_transport import rram_ip_class

    cls = rram_ip_class()
    assert issubclass(cls, pynq.DefaultIP)
    assert cls.bindto == ["xilinx.com:module_ref:rram_overlay_top:1.0"]
    assert rram_ip_class() is cls


def test_registers_go_through_mmio_in_order(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    assert t.read_reg(R.ID) == R.ID_VALUE.reset
    t.write_reg(R.OPCODE, 5)
    t.write_reg(R.PULSE_CYCLES, 0xFFFF_FFFF)
    assert t.read_reg(R.OPCODE) == 5
    assert t.board.events("ip_read", "ip_write") == [
        ("ip_read", R.ID), ("ip_write", R.OPCODE, 5), ("ip_write", R.PULSE_CYCLES, 0xFFFF_FFFF),
        ("ip_read", R.OPCODE)]  # fmt: skip


@pytest.mark.parametrize(
    ("offset", "value"), [(R.CTRL + 2, 0), (-4, 0), (R.ADDRESS_SPAN, 0), (R.CTRL, -1), (R.CTRL, 1 << 32), (R.CTRL, 1.5)]
)
def test_bad_register_access_is_refused_and_writes_nothing(mocks: ModuleType, offset: int, value: int) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    with pytest.raises(ValueError):
        t.write_reg(offset, value)  # type: ignore[arg-type]
    assert t.board.events("ip_write") == []


def test_transact_arms_receive_then_send_then_trigger(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    send = np.arange(10, 20, dtype=np.uint32)
    out = t.transact(send, 10, START)
    np.testing.assert_array_equal(out, send + 1)
    assert out.dtype == np.uint32 and type(out) is np.ndarray
    order = [e[0] for e in t.board.events("s2mm", "mm2s", "ip_write")]
    assert order == ["s2mm", "mm2s", "ip_write"]
    (mm2s,) = t.board.events("mm2s")
    np.testing.assert_array_equal(mm2s[3], send)  # the DMA read the words from DDR: the buffer was flushed
    assert t.board.events("ip_write") == [("ip_write", R.CTRL, 1)]


def test_transact_returns_what_the_overlay_sent_when_it_ends_early(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(emit=lambda w: w[:3] * 2))
    out = t.transact(np.array([5, 6, 7, 8], np.uint32), 100, START)
    np.testing.assert_array_equal(out, [10, 12, 14])
    assert t.board.events("s2mm_done") == [("s2mm_done", 12, True)]


def test_send_only_and_receive_only_and_empty(mocks: ModuleType) -> None:
    overlay = mocks.LoopbackOverlay(emit=lambda w: w[:0])  # an op without output, like RESET
    t = mocks.make_pynq_transport(overlay)
    assert t.transact(np.array([1, 2], np.uint32), 0, START).size == 0
    assert t.board.events("s2mm") == []  # nothing armed for an op without output
    overlay.emit = lambda w: np.array([42, 43], np.uint32)
    np.testing.assert_array_equal(t.transact(None, 2, START), [42, 43])
    assert len(t.board.events("mm2s")) == 1  # only the first call sent anything
    assert t.transact(None, 0, START).size == 0
    assert overlay.starts == 3


def test_buffers_are_reused_and_grown(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    for n in (10, 100, 4096, 50):
        t.transact(np.arange(n, dtype=np.uint32), n, START)
    assert len(t.board.events("allocate")) == 2  # one send and one receive buffer of 4096 words
    big = np.arange(10_000, dtype=np.uint32)
    np.testing.assert_array_equal(t.transact(big, 10_000, START), big + 1)
    assert [e[1] for e in t.board.events("allocate")] == [(4096,), (4096,), (10_000,), (10_000,)]


def test_a_stream_above_the_dma_limit_is_refused_before_anything_starts(mocks: ModuleType) -> None:
    """One overlay packet is one DMA transfer (a simple-mode MM2S transfer ends in its own TLAST, which the
    overlay reads as UNDERRUN; PG021: an S2MM packet longer than the length is undefined), so a stream longer
    than the length register allows is refused, not cut into several transfers."""
    # a 12-bit length register: at most 4095 bytes = 1023 words per transfer
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(streaming=True), length_width=12)
    assert t.max_transfer_words == 1023
    before = list(t.board.log)
    with pytest.raises(TransportError, match="exceeds the AXI DMA's largest transfer"):
        t.transact(np.arange(2500, dtype=np.uint32), 2500, START)
    assert t.board.log == before  # nothing armed, sent or written
    t.write_reg(R.CELL_COUNT, 1023)
    np.testing.assert_array_equal(t.transact(np.arange(1023, dtype=np.uint32), 1023, START), np.arange(1023) + 1)


def test_timeout_raises_and_the_dma_recovers(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(), timeout_s=0.05)
    t.board.stall_s2mm = True
    with pytest.raises(TransportError, match="timed out"):
        t.transact(np.arange(4, dtype=np.uint32), 4, START)
    assert t.board.events("dma_reset") == [("dma_reset",)]
    assert any(o == R.CTRL and R.CTRL_ABORT.get(v) for o, v in t.board.ip_writes())  # the overlay was aborted
    t.board.stall_s2mm = False
    np.testing.assert_array_equal(t.transact(np.array([1], np.uint32), 1, START), [2])


def test_an_operation_that_ends_without_tlast_or_leaves_its_send_returns_at_once(mocks: ModuleType) -> None:
    """docs/protocol.md, "Streams when an operation ends early": an operation that sent no word sends no TLAST (S2MM
    stays armed), and a refused START, an error or an abort leaves the MM2S packet unconsumed.  Once STATUS says the
    operation is over the transaction resets the DMA and returns what arrived (nothing), well before its timeout,
    and the next transaction runs."""
    import time

    overlay = mocks.LoopbackOverlay(emit=lambda w: w[:0])  # ends with no output word: no packet, no TLAST
    t = mocks.make_pynq_transport(overlay, timeout_s=5.0)
    t0 = time.monotonic()
    assert t.transact(np.arange(3, dtype=np.uint32), 3, START).size == 0
    assert t.board.events("dma_reset") == [("dma_reset",)]
    t.board.stall_mm2s = True  # the overlay never takes the send (a START refused for its parameters)
    overlay.emit = lambda w: np.array([7], np.uint32)
    np.testing.assert_array_equal(t.transact(np.arange(4, dtype=np.uint32), 1, START), [7])
    assert len(t.board.events("mm2s_stalled")) == 1 and len(t.board.events("dma_reset")) == 2
    assert time.monotonic() - t0 < 2.0  # not the 5 s timeout
    t.board.stall_mm2s = False
    np.testing.assert_array_equal(t.transact(np.array([1, 2], np.uint32), 2, START), [7])
    assert len(t.board.events("dma_reset")) == 2  # a transaction that completes resets nothing


def test_a_refused_start_leaves_its_send_untaken_and_the_dma_is_reset(mocks: ModuleType) -> None:
    """A START refused for its parameters takes no word of its packet: MM2S cannot end while more than the DMA's
    FIFO holds is still offered (the old mock ended it at once), so the transaction must see from STATUS that the
    operation is over, reset the DMA (withdrawing the packet) and return; the next operation gets only its own
    words."""
    import time

    overlay = mocks.LoopbackOverlay()
    t = mocks.make_pynq_transport(overlay, timeout_s=5.0)
    overlay.refuse = 2  # BAD_REGION
    t0 = time.monotonic()
    assert t.transact(np.arange(4 * mocks.MM2S_FIFO_WORDS, dtype=np.uint32), 0, START).size == 0
    assert time.monotonic() - t0 < 2.0  # not the 5 s timeout
    assert t.board.events("mm2s_done") == [] and t.board.events("dma_reset") == [("dma_reset",)]
    assert R.STATUS_ERR_CODE.get(t.read_reg(R.STATUS)) == 2 and overlay.starts == 0
    overlay.refuse = 0
    np.testing.assert_array_equal(t.transact(np.array([1, 2], np.uint32), 2, START), [2, 3])
    assert len(t.board.events("dma_reset")) == 1 and overlay.pending_input() == 0


def test_driver_over_pynq_reports_the_overlay_error_of_an_operation_without_output(mocks: ModuleType) -> None:
    """A PROGRAM whose first cell is outside the array ends with BAD_CELL and no output word (no TLAST): the driver
    gets the overlay's error, not a DMA timeout."""
    from rramctl.driver import Driver, OverlayError
    from rramctl.protocol import OverlayErrorCode
    from rramsim.config import ChipModelConfig
    from rramsim.overlay import EmulatedOverlay

    t = mocks.make_pynq_transport(EmulatedOverlay(ChipModelConfig(seed=3, rows=16, cols=16)), timeout_s=5.0)
    d = Driver(t)
    with pytest.raises(OverlayError) as e:
        d.program_cells(np.array([[16, 0]]), np.array([100]), pulse_cycles=5, tolerance_ppm=0, max_pulses=0,
                        v_prog=1000, v_wl=1000, v_read=100)  # fmt: skip
    assert e.value.code == OverlayErrorCode.BAD_CELL
    assert len(t.board.events("dma_reset")) == 1


def test_dma_error_is_a_transport_error(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    t.board.fail_next_transfer = 0x40
    with pytest.raises(TransportError, match="decode error"):
        t.transact(None, 4, START)
    assert t.board.events("dma_reset") == [("dma_reset",)]
    np.testing.assert_array_equal(t.transact(np.array([1, 2], np.uint32), 2, START), [2, 3])


@pytest.mark.parametrize("recv", [-1, 2.0])
def test_bad_transact_arguments_touch_nothing(mocks: ModuleType, recv: int) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    with pytest.raises(ValueError):
        t.transact(None, recv, START)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        t.transact(None, 1, RegWrite(0x3, 1))
    with pytest.raises(ValueError):
        t.transact(np.ones(3, np.uint32), 1, RegWrite(R.CTRL, 1 << 32))
    assert t.board.events("ip_write", "s2mm", "mm2s") == []


def test_open_without_a_board_says_so(mocks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import rramctl.transport.pynq_transport as p

    monkeypatch.setattr(p, "find_board", lambda *a, **k: None)
    with pytest.raises(TransportError, match="no PYNQ board"):
        p.PynqTransport.open(None)


def _fake_pynq_board(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, board: Any, overlay_class: type) -> Path:
    """What ``PynqTransport.open`` finds on a board, faked: the lock path, a .bit with its .hwh, a Zynq-7000,
    ``pynq.Overlay`` = ``overlay_class`` and ``pynq.allocate`` from the mock ``board``; returns the .bit."""
    import pynq
    from rramctl.transport import pynq_transport as p

    monkeypatch.setenv(p.LOCK_ENV, str(tmp_path / "board"))
    bit = tmp_path / "rram_overlay.bit"
    bit.write_bytes(b"\x00")
    bit.with_suffix(".hwh").write_text("<hwh/>")
    monkeypatch.setattr(p, "find_board", lambda *a, **k: p.BoardInfo("zynq-7000", tmp_path, "Pynq-Z2"))
    monkeypatch.setattr(pynq, "Overlay", overlay_class)
    monkeypatch.setattr(pynq, "allocate", lambda shape, dtype: board.allocate(shape, dtype))
    return bit


def test_open_loads_the_overlay_and_binds_ip_by_type(
    mocks: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pynq
    from pynq.lib.dma import DMA
    from rramctl.transport import pynq_transport as p

    board = mocks.MockRramBoard(mocks.LoopbackOverlay())

    class FakeOverlay:  # what pynq.Overlay gives after parsing the .hwh: ip_dict + attributes
        def __init__(self, path: str, download: bool = True) -> None:
            self.path = path
            self.downloaded = download
            self.ip_dict = {
                "rram_ctrl_0": board.ip_description(),
                "dma/axi_dma_0": board.dma_description(),
                "gpio_0": {"type": "xilinx.com:ip:axi_gpio:2.0"},
            }
            self.rram_ctrl_0 = p.rram_ip_class()(self.ip_dict["rram_ctrl_0"])
            self.dma = type("Hier", (), {"axi_dma_0": DMA(self.ip_dict["dma/axi_dma_0"])})()

        def download(self) -> None:
            self.downloaded = True

    bit = _fake_pynq_board(monkeypatch, tmp_path, board, FakeOverlay)
    t = p.PynqTransport.open(bit, timeout_s=1.0)
    assert t.overlay.path == str(bit) and t.overlay.downloaded
    assert t.read_reg(R.ID) == R.ID_VALUE.reset
    np.testing.assert_array_equal(t.transact(np.array([7], np.uint32), 1, START), [8])
    with pytest.raises(StateError, match=f"PID {os.getpid()}"):  # one process holds the board at a time
        p.PynqTransport.open(bit, timeout_s=1.0)
    t.close()

    made: list[FakeOverlay] = []

    class NoDma(FakeOverlay):  # a design without the AXI DMA: refused before the FPGA is reprogrammed
        def __init__(self, path: str, download: bool = True) -> None:
            super().__init__(path, download)
            del self.ip_dict["dma/axi_dma_0"]
            made.append(self)

    monkeypatch.setattr(pynq, "Overlay", NoDma)
    with pytest.raises(TransportError, match="exactly one xilinx.com:ip:axi_dma"):
        p.PynqTransport.open(bit)
    assert len(made) == 1 and not made[0].downloaded
    monkeypatch.setattr(pynq, "Overlay", FakeOverlay)
    p.PynqTransport.open(bit).close()  # the refused open released the lock

    monkeypatch.setattr(pynq, "__version__", "4.0.0")
    with pytest.raises(TransportError, match="Zynq-7000"):
        p.PynqTransport.open(bit)


def test_find_ip_refuses_missing_or_ambiguous_ip() -> None:
    from rramctl.transport.pynq_transport import RRAM_OVERLAY_VLNV, find_ip

    class Ol:
        ip_dict = {"a": {"type": "xilinx.com:module_ref:rram_overlay_top:1.1"}}
        a = "the ip"

    assert find_ip(Ol(), RRAM_OVERLAY_VLNV) == "the ip"  # another version still binds
    Ol.ip_dict = {"a": {"type": "xilinx.com:ip:axi_gpio:2.0"}}
    with pytest.raises(TransportError, match="exactly one.*axi_gpio"):
        find_ip(Ol(), RRAM_OVERLAY_VLNV)
    Ol.ip_dict = {"a": {"type": RRAM_OVERLAY_VLNV}, "b": {"type": RRAM_OVERLAY_VLNV}}
    with pytest.raises(TransportError, match="found 2"):
        find_ip(Ol(), RRAM_OVERLAY_VLNV)


# ---- the full driver over the mocked board ---------------------------------------------------------
def _driver_scenario(driver: Any) -> dict[str, Any]:
    """Every driver operation once, on small regions (what a CLI session does)."""
    from rramctl.geometry import Region

    rng = np.random.default_rng(7)  # explicit seed: the same cells and inputs on both paths
    cells = np.stack([rng.integers(0, 512, 40), rng.integers(0, 512, 40)], axis=1)
    out: dict[str, Any] = {"identify": driver.identify()}
    driver.form(Region(0, 8, 0, 8), 1_000_000, 43_500, 15_000)
    out["reset"] = driver.reset_cells(cells[:20], 40, 34_000, 25_000)
    out["set"] = driver.set_cells(cells[20:], 30, 43_000, 15_000)
    prog = driver.program_cells(cells[:5], np.arange(100, 600, 100), pulse_cycles=50, tolerance_ppm=100_000,
                                max_pulses=20, v_prog=19_600, v_wl=15_000, v_read=1_300)  # fmt: skip
    out["program"] = (prog.pulses, prog.final_codes)
    out["read"] = driver.read_region(Region(0, 8, 0, 8), 1_300)
    out["multiply"] = driver.multiply(rng.integers(0, 16, (3, 16)), 4, Region(0, 16, 0, 8), 1_300)
    out["counters"] = driver.counters()
    return out


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_equal(a[key], b[key], err_msg=key)


def test_driver_over_pynq_matches_the_direct_path(mocks: ModuleType) -> None:
    from rramctl.driver import Driver

    direct = mocks.DirectTransport(mocks.ProtocolShapedOverlay())
    t = mocks.make_pynq_transport(mocks.ProtocolShapedOverlay())
    want, got = _driver_scenario(Driver(direct)), _driver_scenario(Driver(t))
    _assert_same(want, got)
    assert got["read"].shape == (8, 8) and got["multiply"].shape == (3, 8)
    # the same register writes in the same order, and the same words on the stream
    writes = t.board.events("ip_write")
    assert writes == [e for e in direct.log if e[0] == "ip_write"]
    assert len(writes) > 50
    sent = [e[3] for e in t.board.events("mm2s")]
    ref = [e[1] for e in direct.log if e[0] == "mm2s"]
    assert len(sent) == len(ref) == 4  # RESET, SET, PROGRAM, MULTIPLY payloads
    for s, r in zip(sent, ref, strict=True):
        np.testing.assert_array_equal(s, r)
    # every stream op armed its receive side and started its send before CTRL.start: after a start,
    # nothing is armed or sent until the driver writes a register again (no transfer needs splitting here)
    log = t.board.log
    starts = [i for i, e in enumerate(log) if e[:2] == ("ip_write", R.CTRL) and R.CTRL_START.get(e[2])]
    assert len(starts) == 6  # FORM, RESET, SET, PROGRAM, READ, MULTIPLY
    for i in starts:
        after = [e[0] for e in log[i + 1 :]]
        window = after[: after.index("ip_write")] if "ip_write" in after else after
        assert "s2mm" not in window and "mm2s" not in window
        before = [e[0] for e in log[max(j for j in [-1, *starts] if j < i) + 1 : i]]
        armed = [k for k in before if k in ("s2mm", "mm2s")]
        assert armed in ([], ["s2mm"], ["mm2s"], ["s2mm", "mm2s"])


def _emulated_overlay_of(transport: Any) -> Any:
    """The EmulatedOverlay inside an EmulatorTransport (found by type, whatever the attribute is called)."""
    from rramsim.overlay import EmulatedOverlay

    found = [v for v in vars(transport).values() if isinstance(v, EmulatedOverlay)]
    assert len(found) == 1, "EmulatorTransport should wrap one EmulatedOverlay"
    return found[0]


def test_driver_over_pynq_matches_emulator_transport(mocks: ModuleType, tmp_path: Path) -> None:
    """Two identical emulated chips (same seed): one through EmulatorTransport, one through the real
    pynq drivers on the mocked board. Same driver code, bit-identical results and counters."""
    pytest.importorskip("rramsim.overlay", reason="the emulator (sim_backend/rramsim/overlay.py) is not there yet")
    emulator = pytest.importorskip("rramctl.transport.emulator")
    from rramctl.driver import Driver

    ref = emulator.EmulatorTransport.open(state_path=tmp_path / "ref.npz", seed=11, temperature_c=120.0)
    twin = emulator.EmulatorTransport.open(state_path=tmp_path / "twin.npz", seed=11, temperature_c=120.0)
    t = mocks.make_pynq_transport(_emulated_overlay_of(twin))
    want, got = _driver_scenario(Driver(ref)), _driver_scenario(Driver(t))
    _assert_same(want, got)
    assert got["counters"]["op_count"] > 0 and got["counters"]["pulse_count"] > 0
    assert np.ptp(got["read"]) > 0  # a formed region reads something other than one constant
    # the overlay's own output counter agrees with what the DMA delivered
    assert t.read_reg(R.OUT_WORDS) == ref.read_reg(R.OUT_WORDS)


def test_driver_waits_on_the_interrupt(mocks: ModuleType, tmp_path: Path) -> None:
    """Issue 14 class 11: with the overlay's interrupt bound, the driver enables CTRL.irq_en and waits on the
    interrupt (as PYNQ's DMA driver does) instead of polling STATUS; the results are the polling path's.  The
    intc latches the level line (still high from the last operation when pynq acknowledges it), so the first
    wait of every later operation returns at once: the driver reads STATUS, sees BUSY and waits again
    (``while busy: wait``), never falling back to polling."""
    emulator = pytest.importorskip("rramctl.transport.emulator")
    from rramctl.driver import Driver

    ref = emulator.EmulatorTransport.open(state_path=tmp_path / "ref.npz", seed=11, temperature_c=120.0)
    twin = emulator.EmulatorTransport.open(state_path=tmp_path / "twin.npz", seed=11, temperature_c=120.0)
    overlay = _emulated_overlay_of(twin)
    boards: list[Any] = []
    irq = mocks.MockInterrupt(lambda: overlay.irq and boards[0].settled())
    t = mocks.make_pynq_transport(overlay, irq=irq)
    boards.append(t.board)
    t.board.op_time_s = 0.003  # each operation keeps the line low (STATUS BUSY) a while after START
    assert t.has_interrupt
    want, got = _driver_scenario(Driver(ref)), _driver_scenario(Driver(t))
    _assert_same(want, got)
    starts = [e for e in t.board.log if e[:2] == ("ip_write", R.CTRL) and R.CTRL_START.get(e[2])]
    assert len(starts) == 6 and all(R.CTRL_IRQ_EN.get(e[2]) for e in starts)
    assert irq.stale == len(starts) - 1 and irq.waits == len(starts) + irq.stale  # one real wait per operation
    status_reads = [e for e in t.board.log if e[:2] == ("ip_read", R.STATUS)]
    sends = len(t.board.events("mm2s_done"))  # the transport checks STATUS once after a send (untaken words)
    assert 0 < sends < len(starts)
    # one before START, one after START, one after each wait, one after each send: no polling
    assert len(status_reads) == 2 * len(starts) + irq.waits + sends


def test_interrupt_that_never_comes_falls_back_to_polling(mocks: ModuleType) -> None:
    from rramctl.driver import Driver
    from rramsim.config import ChipModelConfig
    from rramsim.overlay import EmulatedOverlay

    irq = mocks.MockInterrupt(lambda: False)  # a line that is not wired through
    t = mocks.make_pynq_transport(EmulatedOverlay(ChipModelConfig(seed=2)), irq=irq)
    t.board.op_time_s = 0.005
    assert t.wait_interrupt(0.01) is False
    d = Driver(t, poll_timeout_s=0.05)
    d.run(0, {}, {})  # NOP: the interrupt times out, STATUS then reads DONE
    assert irq.waits == 2


def test_interrupt_after_a_second_open_in_one_process(
    mocks: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PYNQ keeps the interrupt's UIO reader on the loop current at the process's first overlay load; every
    open shares that loop, so a second open still sees the interrupt.  The first transport's interrupt,
    invalidated by the second load, reads as "no interrupt" (poll), not a RuntimeError."""
    import asyncio

    from pynq.lib.dma import DMA
    from rramctl.transport import pynq_transport as p

    board = mocks.MockRramBoard(mocks.LoopbackOverlay())
    uio: dict[str, Any] = {}  # pynq's per-process UIO reader cache: the loop of the first overlay load
    irqs: list[Any] = []

    class FakeOverlay:
        def __init__(self, path: str, download: bool = True) -> None:
            self.ip_dict = {"rram_ctrl_0": board.ip_description(), "axi_dma_0": board.dma_description()}
            self.rram_ctrl_0 = p.rram_ip_class()(self.ip_dict["rram_ctrl_0"])
            self.axi_dma_0 = DMA(self.ip_dict["axi_dma_0"])
            for old in irqs:
                old.invalidate()
            loop = uio.setdefault("loop", asyncio.get_event_loop())
            self.rram_ctrl_0.irq = mocks.LoopBoundInterrupt(lambda: True, loop)
            irqs.append(self.rram_ctrl_0.irq)

        def download(self) -> None:
            pass

    bit = _fake_pynq_board(monkeypatch, tmp_path, board, FakeOverlay)
    first = p.PynqTransport.open(bit, timeout_s=1.0)
    assert first.wait_interrupt(1.0) is True
    first.close()
    second = p.PynqTransport.open(bit, timeout_s=1.0)
    assert second.wait_interrupt(0.2) is True  # on the reader's loop, not a new one
    assert first.wait_interrupt(0.2) is False  # "invalidated by Overlay change": poll
    second.close()
    assert second._loop is not None and not second._loop.is_closed()  # the shared loop outlives a close

    own = mocks.make_pynq_transport(mocks.LoopbackOverlay(), irq=mocks.MockInterrupt(lambda: True))
    assert own.wait_interrupt(1.0) is True
    loop = own._loop
    own.close()
    assert loop is not None and loop.is_closed()  # a loop the transport made itself is closed with it


def test_no_interrupt_inside_a_running_event_loop(mocks: ModuleType) -> None:
    import asyncio

    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(), irq=mocks.MockInterrupt(lambda: True))

    async def inside() -> bool:
        return t.wait_interrupt(1.0)

    assert asyncio.run(inside()) is False  # a notebook's loop is running: poll instead of nesting loops
    assert t.wait_interrupt(1.0) is True


def test_a_dma_pynq_did_not_bind_or_a_scatter_gather_one_is_refused(mocks: ModuleType) -> None:
    """A DMA of another version is bound by pynq as a plain DefaultIP (no channels): one TransportError, not an
    AttributeError; a scatter-gather build is refused (the transport drives simple mode)."""
    from pynq import DefaultIP
    from pynq.lib.dma import DMA
    from rramctl.transport.pynq_transport import PynqTransport, rram_ip_class

    board = mocks.MockRramBoard(mocks.LoopbackOverlay())
    ip = rram_ip_class()(board.ip_description())
    with pytest.raises(TransportError, match="pynq's DMA driver"):
        PynqTransport(ip, DefaultIP(board.dma_description()), allocate=lambda **kw: None)
    dma = DMA(board.dma_description())
    dma.description = {**dma.description, "parameters": {**dma.description["parameters"], "c_include_sg": "1"}}
    with pytest.raises(TransportError, match="scatter-gather"):
        PynqTransport(ip, dma, allocate=lambda **kw: None)


def _aborts(t: Any) -> list[int]:
    """Indexes in the board log of the CTRL.abort writes."""
    return [i for i, e in enumerate(t.board.log) if e[0] == "ip_write" and e[1] == R.CTRL and R.CTRL_ABORT.get(e[2])]


def test_ctrl_c_mid_transfer_aborts_the_overlay_and_resets_the_dma(mocks: ModuleType) -> None:
    """A KeyboardInterrupt while a transfer is in flight: CTRL.abort, the overlay leaves BUSY, then the DMA is
    reset (no S2MM left armed over a buffer close() frees), and the interrupt reaches the caller."""
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(streaming=True), timeout_s=5.0)
    t.write_reg(R.CELL_COUNT, 8)  # 4 of 8 words sent: the overlay stays BUSY, S2MM armed

    def interrupted(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt

    t._wait_both = interrupted
    with pytest.raises(KeyboardInterrupt):
        t.transact(np.arange(4, dtype=np.uint32), 8, START)
    resets = [i for i, e in enumerate(t.board.log) if e[0] == "dma_reset"]
    assert _aborts(t) and resets and _aborts(t)[0] < resets[0]  # docs/hdl.md: abort, then DMA reset
    assert not R.STATUS_BUSY.get(t.read_reg(R.STATUS)) and not t.board.s2mm.busy
    del t._wait_both
    t.write_reg(R.CELL_COUNT, 1)
    np.testing.assert_array_equal(t.transact(np.array([5], np.uint32), 1, START), [6])  # the next one runs


def test_close_stops_a_channel_still_active_before_freeing_its_buffer(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(streaming=True), timeout_s=5.0)
    t.write_reg(R.CELL_COUNT, 8)
    t._wait_both = lambda *a, **k: None  # a wait that returned early: the transaction left S2MM armed
    t.transact(np.arange(4, dtype=np.uint32), 8, START)
    t._recv.finished = False
    assert t.board.s2mm.busy
    t.close()
    assert t.board.events("dma_reset") and _aborts(t) and not t.board.s2mm.busy
    assert t._recv.buffer is None and t._send.buffer is None


def test_a_dma_timeout_aborts_the_overlay_so_the_next_operation_runs(mocks: ModuleType) -> None:
    """The DMA wait ran out while the overlay was still BUSY: the transport aborts it (then resets the DMA), so
    the driver's next operation is not refused BUSY."""
    from rramctl.driver import Driver

    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(streaming=True), timeout_s=0.1)
    d = Driver(t, poll_timeout_s=0.5)
    d._dac_ready = True  # the loopback has no DAC
    with pytest.raises(TransportError, match="timed out.*aborted"):
        d.run(2, {R.CELL_COUNT: 8}, {}, send=np.arange(4, dtype=np.uint32), recv_words=8)
    resets = [i for i, e in enumerate(t.board.log) if e[0] == "dma_reset"]
    assert _aborts(t) and resets and _aborts(t)[0] < resets[0]
    assert not R.STATUS_BUSY.get(t.read_reg(R.STATUS))
    np.testing.assert_array_equal(d.run(2, {R.CELL_COUNT: 2}, {}, send=np.array([1, 2], np.uint32), recv_words=2),
                                  [2, 3])  # fmt: skip


def test_the_dma_wait_is_budgeted_from_the_operation(mocks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RESET of 65,536 cells takes ~17 s of board time (rramsim.timing): the wait is the floor plus
    BUDGET_MARGIN times that, not the bare floor; the board backend opens with BoardConfig.poll_timeout_s."""
    from rramctl import backends
    from rramctl.config import BoardConfig
    from rramctl.transport import pynq_transport as p
    from rramsim.config import ChipModelConfig
    from rramsim.overlay import EmulatedOverlay

    ov = EmulatedOverlay(ChipModelConfig(seed=3))
    for offset, value in ((R.OPCODE, 2), (R.CELL_COUNT, 65536), (R.PULSE_CYCLES, 100)):
        ov.write_reg(offset, value)
    assert 15.0 < p.op_budget_s(ov.read_reg) < 30.0
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay(streaming=True), timeout_s=0.05)
    seen: list[float] = []
    monkeypatch.setattr(p, "op_budget_s", lambda read_reg: 0.2)
    monkeypatch.setattr(t, "_wait_both", lambda s, r, timeout_s: seen.append(timeout_s))
    t.transact(None, 0, START)
    assert seen == [pytest.approx(0.05 + p.BUDGET_MARGIN * 0.2)]

    opened: dict[str, Any] = {}
    monkeypatch.setattr(p.PynqTransport, "open", classmethod(lambda cls, bitfile, **kw: opened.update(kw)))
    backends._open_pynq(backends.BackendSpec("pynq"), backends.OpenOptions(BoardConfig(poll_timeout_s=77.0)))
    assert opened == {"timeout_s": 77.0}


def test_buffer_growth_allocates_before_freeing(mocks: ModuleType) -> None:
    t = mocks.make_pynq_transport(mocks.LoopbackOverlay())
    np.testing.assert_array_equal(t.transact(np.array([1], np.uint32), 1, START), [2])
    old, calls = t._send.buffer, []
    old.freebuffer = lambda: calls.append("free")
    real = t._allocate

    def failing(**kw: Any) -> Any:
        calls.append("alloc")
        raise MemoryError("no CMA memory")

    t._allocate = failing
    with pytest.raises(MemoryError):
        t.transact(np.arange(5000, dtype=np.uint32), 0, START)
    assert calls == ["alloc"] and t._send.buffer is old  # the old buffer kept, not freed
    t._allocate = lambda **kw: (calls.append("alloc"), real(**kw))[1]
    t.transact(np.arange(5000, dtype=np.uint32), 0, START)
    assert calls == ["alloc", "alloc", "free"] and t._send.buffer is not old


def test_words_a_failed_operation_left_in_the_dma_fifo_never_reach_the_next(mocks: ModuleType) -> None:
    """A refused START with a payload smaller than the DMA's stream FIFO: MM2S finishes (the FIFO holds the words)
    though the overlay took none; the transport resets the DMA, so the next operation reads only its own words."""
    overlay = mocks.LoopbackOverlay(streaming=True)
    t = mocks.make_pynq_transport(overlay)
    t.write_reg(R.CELL_COUNT, 10)
    overlay.refuse = 2
    t.transact(np.arange(10, dtype=np.uint32), 0, START)
    assert t.board.events("dma_reset")
    overlay.refuse = 0
    t.write_reg(R.CTRL, R.CTRL_CLEAR.put(1))
    t.write_reg(R.CELL_COUNT, 2)
    np.testing.assert_array_equal(t.transact(np.array([100, 200], np.uint32), 2, START), [101, 201])
