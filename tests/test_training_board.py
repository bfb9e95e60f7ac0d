"""Training on a board backend: the same training code over `serial:PORT` (a board agent, here on a pty with
the emulator behind it) as over the in-process emulator, bit for bit; the board's state stays on the chip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rramctl.training.chips import open_chips, save_chips
from rramctl.training.config import TrainConfig
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.placement import LayerShape, place
from rramctl.transport.emulator import EmulatorTransport
from rramctl_agent.loopback import PtyAgent  # noqa: E402

LAYERS = [LayerShape("A", 24, 12), LayerShape("B", 12, 6)]


def exercise(m: MappedNetwork) -> dict[str, np.ndarray]:
    m.electroform()
    out = {f"w0_{k}": m.read_weights(k) for k in m.layers}
    rng = np.random.default_rng(1)
    for name, la in m.layers.items():
        idx = np.argwhere(rng.random((la.n_out, la.n_in)) < 0.5)
        m.prune(name, idx)
        m.reinstate(name, idx[: len(idx) // 3])
        out[f"w1_{name}"] = m.read_weights(name)
        out[f"y_{name}"] = m.matmul(name, rng.integers(0, 16, (5, la.n_in)), 4)
    return out


def test_training_over_serial_equals_the_emulator(tmp_path: Path) -> None:
    seed = 2
    direct = MappedNetwork(open_chips("emulator", 1, seed), place(LAYERS))
    want = exercise(direct)
    board = EmulatorTransport.open(seed=seed, temperature_c=120.0)
    with PtyAgent(board, keepalive_s=0.1) as pa:
        chips = open_chips(f"serial:{pa.path}", 1, 0)
        got = exercise(MappedNetwork(chips, place(LAYERS)))
        save_chips(chips, tmp_path)
        chips[0].close()
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    saved = json.loads((tmp_path / "array0.json").read_text())
    assert saved["backend"] == "serial" and saved["counters"]["op_count"] > 0
    assert not (tmp_path / "array0.npz").exists()


def test_board_backends_are_validated() -> None:
    assert TrainConfig(task="fmnist-cnn", backend="serial:/dev/ttyUSB0").on_board
    assert TrainConfig(task="fmnist-cnn", backend="pynq").on_board
    assert not TrainConfig(task="fmnist-cnn", backend="emulator").on_board
    with pytest.raises(ValueError, match="unknown backend"):
        TrainConfig(task="fmnist-cnn", backend="gpu")
    with pytest.raises(ValueError, match="a board holds one"):
        open_chips("serial:/dev/null", 2, 0)
