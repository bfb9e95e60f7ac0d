"""Save/load of the whole emulated setup, and the EmulatorTransport's persistence: the same seed and
the same operation sequence give identical ADC codes, with or without save/load in between."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from rramctl import regmap as R
from rramctl.driver import Driver
from rramctl.errors import StateError, UsageError
from rramctl.geometry import Region
from rramctl.hw import dac80508
from rramctl.transport.base import TransportError
from rramctl.transport.emulator import EmulatorTransport
from rramsim import state
from rramsim.config import ChipModelConfig
from rramsim.overlay import EmulatedOverlay

V = dac80508.volts_to_code
X = np.random.default_rng(3).integers(0, 16, size=(4, 64))


def _step(d: Driver, i: int) -> np.ndarray | None:
    """Operation i of a fixed sequence (form, read, reset, multiply, set, program, multiply)."""
    if i == 0:
        d.form(Region(0, 64, 0, 64), 1_000_000, V(3.4), V(1.2))
    elif i == 1:
        return d.read_region(Region(0, 64, 0, 64), V(0.1))
    elif i == 2:
        d.reset_cells(np.array([[1, 1], [2, 3], [5, 8]]), 40, V(2.6), V(2.5))
    elif i == 3:
        return d.multiply(X, 4, Region(0, 64, 0, 64), V(0.1))
    elif i == 4:
        d.set_cells(np.array([[1, 1], [2, 3]]), 30, V(3.3), V(1.2))
    elif i == 5:
        levels = {"v_prog": V(1.5), "v_wl": V(1.2), "v_read": V(0.1)}
        cells, targets = np.array([[4, 4], [6, 7]]), np.array([1000, 1500])
        res = d.program_cells(cells, targets, pulse_cycles=50, tolerance_ppm=100_000, max_pulses=20, **levels)
        return np.concatenate([res.pulses, res.final_codes])
    else:
        return d.multiply(X, 4, Region(0, 64, 0, 64), V(0.1))
    return None


N_STEPS = 7


def _ideal(seed: int) -> ChipModelConfig:
    """The ideal chip model.  Every new Driver initialises the DAC, which takes board time, so on a model
    with relaxation and drift (paper-40nm) a sequence split over invocations rightly differs from one
    session; tests/test_device_model.py checks save/load on paper-40nm."""
    return ChipModelConfig(seed=seed)


def _run_in_one_session(seed: int) -> list[np.ndarray | None]:
    d = Driver(EmulatorTransport.open(seed=seed, config=_ideal(seed)))
    return [_step(d, i) for i in range(N_STEPS)]


def _assert_same(a: list[np.ndarray | None], b: list[np.ndarray | None]) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_separate_invocations_continue_the_same_chip(tmp_path: Path) -> None:
    path = tmp_path / "chip.npz"
    split = []
    for i in range(N_STEPS):  # every step in its own "CLI invocation"
        with EmulatorTransport.open(state_path=path, seed=12, config=_ideal(12)) as t:
            split.append(_step(Driver(t), i))
    _assert_same(split, _run_in_one_session(12))
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind
    other = _run_in_one_session(13)
    assert not np.array_equal(other[1], split[1])


def test_state_round_trip_keeps_everything(tmp_path: Path) -> None:
    t = EmulatorTransport.open(seed=4, config=_ideal(4))
    d = Driver(t)
    for i in range(4):
        _step(d, i)
    t.write_reg(R.CTRL, R.CTRL_IRQ_EN.put(1))
    t.save_state(tmp_path / "s.npz")
    back = state.load(tmp_path / "s.npz")
    a, b = t.overlay, back
    assert a.config == b.config and a.counters == b.counters and a.regs == b.regs
    assert a.dac.to_dict() == b.dac.to_dict() and a.irq_en == b.irq_en and (a.done, a.error) == (b.done, b.error)
    for name in ("g", "g_formed", "stuck"):
        np.testing.assert_array_equal(getattr(a.crossbar, name), getattr(b.crossbar, name))
    # both continue identically (noise keyed by the restored op serial)
    x = Driver(EmulatorTransport.open(seed=0))
    x.transport.overlay = back  # type: ignore[attr-defined]
    np.testing.assert_array_equal(_step(d, 6), _step(x, 6))


def test_state_file_seed_wins_but_temperature_is_the_setup(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    EmulatorTransport.open(state_path=path, seed=7, temperature_c=120.0).close()
    t = EmulatorTransport.open(state_path=path, seed=99, temperature_c=25.0)
    assert t.overlay.config.seed == 7 and t.overlay.config.temperature_c == 25.0
    assert t.overlay.crossbar.config.temperature_c == 25.0


def test_bad_state_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(StateError, match="not a readable"):
        EmulatorTransport.open(state_path=junk)
    assert junk.read_bytes() == b"not a zip"  # left as it was
    with pytest.raises(state.StateError, match="does not exist"):
        state.load(tmp_path / "missing.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, meta=np.array('{"format": "other"}'), g=np.zeros(1), g_formed=np.zeros(1), stuck=np.zeros(1))
    with pytest.raises(state.StateError, match="format"):
        state.load(wrong)


def test_saving_while_busy_is_refused_and_closed_transport_refuses(tmp_path: Path) -> None:
    ov = EmulatedOverlay(ChipModelConfig(seed=1))
    for k, v in {R.OPCODE: 2, R.CELL_COUNT: 1, R.PULSE_CYCLES: 40}.items():
        ov.write_reg(k, v)
    ov.write_reg(R.CTRL, R.CTRL_START.put(1))
    with pytest.raises(state.StateError, match="running"):
        state.dump(ov, io.BytesIO())
    t = EmulatorTransport.open(seed=1)
    t.close()
    with pytest.raises(TransportError, match="closed"):
        t.read_reg(R.ID)


def test_in_memory_session_equals_state_file_sessions(tmp_path: Path) -> None:
    """A library/training session (in memory, saved when it chooses) gives what one CLI command per
    operation (state file saved on every close) gives."""
    per_command, path = [], tmp_path / "cli.npz"
    for i in range(N_STEPS):
        with EmulatorTransport.open(state_path=path, seed=12, config=_ideal(12)) as t:
            per_command.append(_step(Driver(t), i))
    mem_path = tmp_path / "mem.npz"
    t = EmulatorTransport.open(state_path=mem_path, seed=12, autosave=False, config=_ideal(12))
    _step(Driver(t), 0)
    t.close()
    assert not mem_path.exists()  # in memory: nothing written until the session saves
    t = EmulatorTransport.open(seed=12, autosave=False, config=_ideal(12))
    in_memory = [_step(Driver(t), i) for i in range(3)]
    t.save_state(mem_path)  # a checkpoint
    t.close()
    t = EmulatorTransport.open(state_path=mem_path, seed=99, autosave=False)
    in_memory += [_step(Driver(t), i) for i in range(3, N_STEPS)]
    _assert_same(in_memory, per_command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.npz", "mem.npz"]  # no temp files


def test_a_second_user_of_a_state_file_is_told_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    first = EmulatorTransport.open(state_path=path, seed=1)
    with pytest.raises(StateError, match=f"in use by PID {os.getpid()}"):
        EmulatorTransport.open(state_path=path, seed=1, lock_wait_s=0)
    first.close()
    EmulatorTransport.open(state_path=path, lock_wait_s=0).close()


def _one_reset(path: Path, col: int) -> None:
    with EmulatorTransport.open(state_path=path, seed=5, lock_wait_s=60) as t:
        Driver(t).reset_cells(np.array([[0, col]]), 40, V(2.6), V(2.5))


def test_simultaneous_commands_on_one_state_file_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.npz"
    EmulatorTransport.open(state_path=path, seed=5).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_one_reset, args=(path, c)) for c in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert state.load(path).counters.op_count == 6


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04 truncated", b'{"format": "rramsim-state/1"}'],
    ids=["empty", "truncated zip", "json"],
)
def test_unreadable_state_is_one_clear_error_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.npz"
    path.write_bytes(content)
    with pytest.raises(StateError, match=r"s\.npz is damaged or not an rramsim state.*move this one away"):
        EmulatorTransport.open(state_path=path)
    assert path.read_bytes() == content


def test_interrupted_form_pairs_says_how_to_finish_and_resume_finishes(tmp_path: Path, mocker) -> None:  # noqa: ANN001
    from rramctl.chip import Chip
    from rramctl.cli.main import app
    from typer.testing import CliRunner

    path = tmp_path / "c.npz"
    args = ["--backend", "emulator", "--state", str(path), "--seed", "6", "form", "--pairs", "--region", "0:8,0:16"]
    original = Chip.electroform

    def form_then_ctrl_c(self: Chip, *a: object, **k: object) -> object:
        original(self, *a, **k)  # G+ formed, then Ctrl-C
        raise KeyboardInterrupt

    mocker.patch.object(Chip, "electroform", form_then_ctrl_c)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and "--region 0:8,0:16 --resume" in r.output, r.output
    mocker.stopall()
    g = state.load(path).crossbar.g_formed
    plus = g[0:8, 0:16] > 0
    assert plus.any() and not (g[0:8, 256:272] > 0).any()  # G+ kept, G- not formed yet
    r = CliRunner().invoke(app, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    g = state.load(path).crossbar.g_formed
    np.testing.assert_array_equal(g[0:8, 0:16] > 0, plus)  # G+ not formed again
    assert ((g[0:8, 0:16] > 0) | (g[0:8, 256:272] > 0)).mean() > 0.9  # every pair holds a formed cell


def test_the_next_command_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    EmulatorTransport.open(state_path=path, seed=1).close()
    stale = tmp_path / ".c.npz.k1ll3d00.tmp"  # the unique temporary file of a save cut off by SIGKILL
    stale.write_bytes(b"half a state file")
    other = tmp_path / ".other.npz.k1ll3d00.tmp"  # another file's: not ours to remove
    other.write_bytes(b"x")
    EmulatorTransport.open(state_path=path, lock_wait_s=0).close()
    assert not stale.exists() and other.exists()


def test_a_state_saved_before_a_register_existed_loads_with_its_reset_value(tmp_path: Path) -> None:
    """A state file of an earlier version lacks a register added since (e.g. GUARD_CYCLES): it loads, the register at
    its reset value, every conductance kept; a register the overlay does not know is still refused."""
    t = EmulatorTransport.open(seed=4, config=_ideal(4))
    _step(Driver(t), 0)
    t.save_state(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        arrays = {n: z[n] for n in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    fresh = EmulatedOverlay(t.overlay.config).regs[R.GUARD_CYCLES]
    del meta["regs"][str(R.GUARD_CYCLES)]
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
    back = state.load(tmp_path / "old.npz")
    assert back.regs[R.GUARD_CYCLES] == fresh
    np.testing.assert_array_equal(back.crossbar.g, t.overlay.crossbar.g)
    meta["regs"]["4096"] = 1
    np.savez(tmp_path / "new.npz", meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(state.StateError, match="keys"):
        state.load(tmp_path / "new.npz")


def test_chip_open_takes_a_model_by_preset_name_file_or_config(tmp_path: Path) -> None:
    """Chip.open(model=...): a ChipModelConfig, a preset name or a TOML file, each with the seed given; a name that
    is neither is one ModelError, not an AttributeError."""
    from rramctl.chip import Chip
    from rramsim.config import ModelError, load_model, to_toml

    def model_of(chip: Chip) -> ChipModelConfig:
        return chip._hw.transport.overlay.crossbar.config  # type: ignore[attr-defined, no-any-return]

    for model, preset in (("paper-40nm", "paper-40nm"), ("ideal", "ideal"), (load_model("ideal", seed=9), "ideal")):
        chip = Chip.open("emulator", model=model, seed=5, autosave=False)
        assert model_of(chip) == load_model(preset, seed=5)
        chip.close()
    (tmp_path / "m.toml").write_text(to_toml(load_model("paper-40nm", seed=1)))
    chip = Chip.open("emulator", model=tmp_path / "m.toml", seed=4, autosave=False)
    assert model_of(chip) == load_model("paper-40nm", seed=4)
    chip.close()
    with pytest.raises(UsageError, match="neither a preset") as err:  # rramctl's error root, the model's cause
        Chip.open("emulator", model="paper-41nm", autosave=False)
    assert isinstance(err.value.__cause__, ModelError)


def test_state_paths_that_are_no_state_file_say_what_they_are(tmp_path: Path) -> None:
    """A foreign .npz, a folder, a folder that cannot hold a lock: one error saying which, never advice to delete."""
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    (tmp_path / "adir").mkdir()
    for path, what in ((tmp_path / "foreign.npz", "it lacks g, g_formed, meta, stuck"),
                       (tmp_path / "adir", "it is a folder, not a state file"),
                       (Path("/proc/rramctl-none.npz"), "cannot create its lock file")):  # fmt: skip
        with pytest.raises(StateError, match=what) as e:
            EmulatorTransport(state_path=path)
        assert "delete" not in str(e.value) and "readable .npz" not in str(e.value)
    assert np.load(tmp_path / "foreign.npz")["a"].shape == (3,)  # left as it was
