"""Every file rramctl reads, damaged: truncated, bit-flipped, empty, replaced by garbage, of the wrong
type, with keys missing or added, with object arrays. The contract: the read either succeeds (the damage
was harmless) or ends in one :class:`rramctl.errors.RramctlError` (through the CLI: exit 2 and one
``error:`` line naming the file, no traceback), and the file is left exactly as it was.

Hypothesis draws the damage; every test is derandomized (the same cases on every run) and has no
example database, so a run is reproducible from the code alone."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rramctl.cli.io import gather_cells
from rramctl.cli.main import app
from rramctl.config import BoardConfig
from rramctl.errors import RramctlError
from rramctl.geometry import Region
from rramctl.transport.emulator import EmulatorTransport
from rramctl.transport.serial_journal import SessionJournal
from typer.testing import CliRunner

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- damage ------------------------------------------------------------------------------------
Damage = tuple[str, int]

damages = st.one_of(
    st.just(("empty", 0)),
    st.tuples(st.sampled_from(["truncate", "flip", "flip_head", "flip_tail", "garbage"]), st.integers(0, 2**40)),
)


def damage(data: bytes, how: Damage) -> bytes:
    """``data`` truncated, with one bit flipped (anywhere, or in the first / last 4 KiB where the
    headers and indexes of the formats live), empty, or replaced by seeded random bytes."""
    kind, k = how
    if kind == "empty" or not data:
        return b""
    if kind == "truncate":
        return data[: k % len(data)]
    if kind == "garbage":
        return np.random.default_rng(k).bytes(1 + k % 300)
    n_bits = 8 * len(data)
    span = min(n_bits, 8 * 4096)
    bit = {"flip": k % n_bits, "flip_head": k % span, "flip_tail": n_bits - 1 - k % span}[kind]
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def json_variants(obj: Any) -> list[Any]:
    """Structural damage of a JSON document: each top-level key missing or of another type, an extra
    key, and the whole document of another type."""
    out: list[Any] = [[], "text", 3, None, {}]
    if isinstance(obj, dict):
        for k in obj:
            out.append({kk: v for kk, v in obj.items() if kk != k})
            for other in ("x", [1], None, -1, {"a": 1}):
                out.append({**obj, k: other})
        out.append({**obj, "unexpected": 1})
    return out


def npz_variants(arrays: dict[str, np.ndarray]) -> list[Callable[[], dict[str, np.ndarray]]]:
    """Structural damage of an .npz (built on demand): each array missing, of another dtype or shape,
    an object array (pickled), plus an extra array."""
    out: list[Callable[[], dict[str, np.ndarray]]] = []
    for k, a in arrays.items():
        text = a.dtype.kind == "U"
        out += [
            lambda k=k: {kk: v for kk, v in arrays.items() if kk != k},
            lambda k=k, a=a, text=text: {**arrays, k: np.zeros(3) if text else np.asarray(a, dtype=np.float64)},
            lambda k=k, a=a, text=text: {**arrays, k: np.array(["a", "b"]) if text else np.zeros((2, 3), a.dtype)},
            lambda k=k: {**arrays, k: np.array([{"x": 1}, None], dtype=object)},
        ]
    out.append(lambda: {**arrays, "extra": np.arange(3)})
    return out


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def placed(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def expect_clean(path: Path, read: Callable[[], object], errors: tuple[type[Exception], ...] = (RramctlError,)) -> None:
    """``read()`` succeeds or raises one of ``errors``; the file is unchanged either way it failed."""
    before = path.read_bytes()
    try:
        read()
    except errors as e:
        assert str(e).strip(), "an error without a message"
        assert path.read_bytes() == before, f"{path} changed by a refused read"


def expect_cli_clean(path: Path, args: list[str]) -> None:
    """The CLI ends in exit 0, or in exit 2 with one ``error:`` line that names the file; no traceback;
    a refused file is unchanged."""
    before = path.read_bytes()
    r = CliRunner().invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), f"traceback for {args}: {r.exception!r}"
    assert r.exit_code in (0, 2), r.output
    if r.exit_code == 2:
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and path.name in errors[0], r.output
        assert "Traceback" not in r.output
        assert path.read_bytes() == before


# ---- emulator state ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "chip.npz"
    from rramctl.chip import Chip

    with Chip.open("emulator", state=path, seed=3) as chip:
        chip.electroform(Region(0, 8, 0, 8))
    return path


def _state_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@FUZZ
@given(how=damages)
def test_damaged_state_file(good_state: Path, tmp_path: Path, how: Damage) -> None:
    path = placed(tmp_path / "chip.npz", damage(good_state.read_bytes(), how))
    expect_cli_clean(path, ["--backend", "emulator", "--state", str(path), "info"])


@FUZZ
@given(data=st.data())
def test_state_file_with_wrong_parts(good_state: Path, tmp_path: Path, data: st.DataObject) -> None:
    arrays = _state_arrays(good_state.read_bytes())
    meta = json.loads(str(arrays["meta"]))
    metas = json_variants(meta) + [
        {**meta, "counters": {**meta["counters"], "extra_counter": 1}},
        {**meta, "dac": {**meta["dac"], "buffer": meta["dac"]["buffer"][:-1]}},
        {**meta, "regs": {**meta["regs"], "0": -5}},
    ]
    choices = npz_variants(arrays) + [lambda m=m: {**arrays, "meta": np.array(json.dumps(m))} for m in metas]
    path = placed(tmp_path / "chip.npz", npz_bytes(data.draw(st.sampled_from(choices))()))
    expect_clean(path, lambda: EmulatorTransport.open(state_path=path, lock_wait_s=0).close())


# ---- board configuration (TOML) ----------------------------------------------------------------
GOOD_TOML = b"""forming_temperature_c = 120.0
read_voltage_v = 0.1

[form]
voltage_v = 3.4
width_s = 0.01
gate_v = 1.2

[ratings]
max_sl_voltage_v = 3.8
"""

toml_variants = st.sampled_from([
    b"read_voltage_v = 'x'\n",
    b"read_voltage_v = 50\n",
    b"[form]\nvoltage_v = 3.4\n",
    b"form = 3\n",
    b"unknown_key = 1\n",
    b"[form]\nvoltage_v = [1, 2]\nwidth_s = 0.01\ngate_v = 1.2\n",
    b"[[form]]\nvoltage_v = 1\n",
    b"\xff\xfe\x00",
])  # fmt: skip


@FUZZ
@given(content=st.one_of(toml_variants, damages.map(lambda how: damage(GOOD_TOML, how))))
def test_damaged_board_config(tmp_path: Path, content: bytes) -> None:
    path = placed(tmp_path / "board.toml", content)
    expect_clean(path, lambda: BoardConfig.load(path))
    expect_cli_clean(path, ["--backend", "emulator", "--state", str(tmp_path / "s.npz"), "--config", str(path),
                            "info"])  # fmt: skip


def test_config_that_is_a_folder(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["--backend", "emulator", "--config", str(tmp_path), "info"])
    assert r.exit_code == 2 and r.output.count("error:") == 1 and str(tmp_path) in r.output


# ---- cell lists and inputs (.npy / .csv) -------------------------------------------------------
def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


GOOD_CELLS = _npy(np.array([[0, 1], [2, 3], [4, 5]], dtype=np.int64))
odd_arrays = st.sampled_from([
    _npy(np.array([{"a": 1}, None], dtype=object)),
    _npy(np.array([["a", "b"]])),
    _npy(np.zeros((2, 2, 2), dtype=np.int64)),
    _npy(np.array([[0.5, 1.0]])),
    _npy(np.array([[np.nan, 1.0]])),
    _npy(np.array([[1e30, 1.0]])),
    _npy(np.array([[-1, 3]])),
    _npy(np.zeros((0, 2), dtype=np.int64)),
    _npy(np.array(7)),
])  # fmt: skip


@FUZZ
@given(content=st.one_of(odd_arrays, damages.map(lambda how: damage(GOOD_CELLS, how))))
def test_damaged_cells_npy(tmp_path: Path, content: bytes) -> None:
    path = placed(tmp_path / "cells.npy", content)
    expect_clean(path, lambda: gather_cells(path, None, None))


@FUZZ
@given(content=st.one_of(
    st.sampled_from([b"a,b\n", b"1,2,3\n4,5\n", b"1;2\n", b"1,2\nx\n", b"\xff\xfe,1\n", b"#only a comment\n"]),
    damages.map(lambda how: damage(b"0,1\n2,3\n# note\n4,5\n", how)),
))  # fmt: skip
def test_damaged_cells_csv(tmp_path: Path, content: bytes) -> None:
    path = placed(tmp_path / "cells.csv", content)
    expect_clean(path, lambda: gather_cells(path, None, None))


@settings(FUZZ, max_examples=12)
@given(content=st.one_of(odd_arrays, damages.map(lambda how: damage(_npy(np.ones((2, 4), np.int64)), how))))
def test_damaged_multiply_inputs(tmp_path: Path, content: bytes) -> None:
    path = placed(tmp_path / "x.npy", content)
    out = tmp_path / "p.npz"
    expect_cli_clean(path, ["--backend", "emulator", "--state", str(tmp_path / "s.npz"), "multiply", "--inputs",
                            str(path), "--region", "0:4,0:4", "--no-pairs", "--out", str(out)])  # fmt: skip


# ---- serial session journal --------------------------------------------------------------------
GOOD_JOURNAL = {
    "/dev/ttyUSB0": {"session": 17, "token": 99, "open": True},
    "/dev/ttyUSB1": {"session": 5, "token": 3, "open": False},
}


@FUZZ
@given(content=st.one_of(
    st.sampled_from(json_variants(GOOD_JOURNAL)
                    + [{"/dev/ttyUSB0": v} for v in json_variants(GOOD_JOURNAL["/dev/ttyUSB0"])]).map(
        lambda v: json.dumps(v).encode()),
    damages.map(lambda how: damage(json.dumps(GOOD_JOURNAL).encode(), how)),
))  # fmt: skip
def test_damaged_serial_journal(tmp_path: Path, content: bytes) -> None:
    path = placed(tmp_path / "serial-sessions.json", content)
    expect_clean(path, lambda: SessionJournal(path, lock_wait_s=0).interrupted("/dev/ttyUSB0"))


# ---- training: configuration file, run folder (checkpoint, metrics, chip state) ----------------
@FUZZ
@given(content=st.one_of(
    st.sampled_from([b"epochs = 'x'\n", b"[optimiser]\nbatch_size = -3\n", b"[nope]\na = 1\n", b"\xff\xfe"]),
    damages.map(lambda how: damage(b"epochs = 2\n[optimiser]\nbatch_size = 16\n", how)),
))  # fmt: skip
def test_damaged_training_config(tmp_path: Path, content: bytes) -> None:
    from rramctl.training.config import TrainConfig, load_toml, merge

    path = placed(tmp_path / "run.toml", content)
    # a rejected value is pydantic's ValidationError: the CLI renders it one line per field
    expect_clean(path, lambda: TrainConfig.model_validate(merge({"task": "fmnist-cnn"}, load_toml(path))),
                 (RramctlError, ValidationError))  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run on the software backend (seconds), the pristine copy the run-folder cases damage."""
    from training_fixtures import write_fmnist

    root = tmp_path_factory.mktemp("run")
    write_fmnist(root / "fm", n_train=48, n_test=16)
    mp = pytest.MonkeyPatch()
    mp.setenv("RRAMCTL_DATA", str(root / "fm"))
    r = CliRunner().invoke(app, ["--backend", "software", "prune", "--task", "fmnist-cnn", "--epochs", "1",
                                 "--run-dir", str(root / "run"), "--no-progress"])  # fmt: skip
    mp.undo()
    assert r.exit_code == 0, r.output
    return root


RUN_FILES = ["config.json", "metrics.json", "checkpoints/LATEST", "checkpoints/epoch-0001/state.json",
             "checkpoints/epoch-0001/model.safetensors", "checkpoints/epoch-0001/array0.npz"]  # fmt: skip


def _run_variants(name: str, data: bytes) -> list[bytes]:
    if name.endswith(".json"):
        return [json.dumps(v).encode() for v in json_variants(json.loads(data))]
    if name.endswith("LATEST"):
        return [b"../../escape", b"/etc", b"epoch-0009", b"epoch-0001/../../x", b"", b"\xff\xfe"]
    if name.endswith(".npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return [npz_bytes(make()) for make in npz_variants({k: z[k] for k in z.files})]
    return []


def _infer(run: Path, root: Path) -> None:
    from rramctl.cli.train_cmds import _load_data
    from rramctl.training.runner import load_run

    mp = pytest.MonkeyPatch()
    mp.setenv("RRAMCTL_DATA", str(root / "fm"))
    try:
        load_run(run, lambda cfg: _load_data(cfg, download=False)).close()
    finally:
        mp.undo()


@settings(FUZZ, max_examples=40)
@given(name=st.sampled_from(RUN_FILES), how=damages, structural=st.integers(0, 10**6), use_structural=st.booleans())
def test_damaged_run_folder(
    trained_run: Path, tmp_path: Path, name: str, how: Damage, structural: int, use_structural: bool
) -> None:
    run = tmp_path / "run"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(trained_run / "run", run)
    target = run / name
    original = target.read_bytes()
    variants = _run_variants(name, original)
    content = variants[structural % len(variants)] if use_structural and variants else damage(original, how)
    target.write_bytes(content)
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    try:
        _infer(run, trained_run)
    except RramctlError as e:
        assert str(e).strip()
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot  # nothing changed
