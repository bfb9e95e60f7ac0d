"""Small synthetic data for the training tests: IDX files, FSDD-style WAVs, an easy 10-class image set."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from rramctl.training.config import TrainConfig
from rramctl.training.data import Dataset, Split
from rramctl.training.methods import method_for
from rramctl.training.networks import CrossbarNet


def to_net(task: str = "fmnist-cnn", **settings) -> CrossbarNet:
    """A task's network with TO layers (sparsity 0.5), as a run builds it."""
    return method_for(TrainConfig(task=task, **settings)).build()


def formed(net: CrossbarNet, seed: int = 0) -> CrossbarNet:
    """Weights +-27 uS as after complementary forming, half the pairs kept at random (a fresh random subnet)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for la in net.crossbar_layers():
        sign = torch.where(torch.rand(la.weight.shape, generator=g) < 0.5, -1.0, 1.0)
        la.weight.copy_(sign * (27 + 2.4 * torch.randn(la.weight.shape, generator=g)))
        la.mask.copy_(torch.rand(la.mask.shape, generator=g) < 0.5)
    return net


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def write_fmnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def write_fsdd(root: Path, speakers: tuple[str, ...] = ("ann", "bob"), per_digit: int = 6) -> None:
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    t = np.arange(2400) / 8000
    for d in range(10):
        for s in speakers:
            for i in range(per_digit):
                y = 0.3 * np.sin(2 * np.pi * (200 + 60 * d) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(root / f"{d}_{s}_{i}.wav", y.astype(np.float32), 8000)


def easy_images(n_train: int = 600, n_test: int = 300, seed: int = 0) -> Dataset:
    """10 classes of noisy 14x14 prototypes, 4-bit: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 14, 14)) < 0.3

    def split(n: int) -> Split:
        y = rng.integers(0, 10, n)
        x = protos[y] * 12 + rng.integers(0, 4, (n, 14, 14))
        flip = rng.random((n, 14, 14)) < 0.1
        x = np.where(flip, rng.integers(0, 16, (n, 14, 14)), x)
        codes = np.clip(x, 0, 15).astype(np.int64)[:, None]
        return Split(codes, y.astype(np.int64), 4, (codes / 15).astype(np.float32))

    return Dataset("easy", split(n_train), split(n_test))
