"""The device-model figures of docs/emulator.md ("Device model"), one per mechanism, on the emulator
through the chip API: ``python tools/device_model_plots.py [--out docs/img]`` (about 20 s)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rramctl.chip import Chip
from rramctl.config import BoardConfig
from rramctl.geometry import Region
from rramctl.transport.emulator import EmulatorTransport
from rramsim.config import load_model

SEED = 1


def _label(ax: Any, **labels: str) -> None:
    """Axis labels and title, and the legend in small type."""
    ax.set(**labels)
    ax.legend(fontsize=8)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _formed_chip(region: Region, preset: str = "paper-40nm") -> tuple[Chip, EmulatorTransport]:
    """A seeded emulated chip of ``preset`` with ``region`` electroformed."""
    t = EmulatorTransport(load_model(preset, seed=SEED))
    chip = Chip.from_transport(t)
    chip.electroform(region)
    return chip, t


def relaxation(out: Path) -> None:
    region = Region(0, 32, 0, 64)
    chip, _ = _formed_chip(region)
    g = chip.read(region)
    cells = np.argwhere(g > 10)[:400]
    rep = chip.program(cells, np.full(len(cells), 15.0))
    t, traces = [0.0], [rep.final_us]
    t0 = chip.clock_s()
    for delay in np.logspace(-2, 4, 13):
        chip.wait(max(0.0, t0 + delay - chip.clock_s()))
        t.append(chip.clock_s() - t0)
        traces.append(chip.read(region)[cells[:, 0], cells[:, 1]])
    tr = np.array(traces)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    tt = np.maximum(np.array(t), 1e-3)
    for i in range(8):
        ax[0].semilogx(tt, tr[:, i], lw=1)
    ax[0].axhspan(15 * 0.9, 15 * 1.1, color="0.9", label="write-verify band (+-10 %)")
    _label(ax[0], xlabel="time after write-verify (s)", ylabel="G (uS)", title="relaxation of 8 cells")
    ax[1].semilogx(tt, (tr - tr[0]).std(axis=1), "o-", label="sd of G(t) - G_verify")
    ax[1].semilogx(tt, (tr - tr[0]).mean(axis=1), "s-", label="mean (drift)")
    ax[1].axhline(2.0, color="k", ls=":", label="seed 003: ~2 uS")
    _label(ax[1], xlabel="time after write-verify (s)", ylabel="uS", title="relaxation and drift (paper-40nm)")
    _save(fig, out / "device_relaxation.png")


def read_noise(out: Path) -> None:
    region = Region(0, 64, 0, 64)
    chip, _ = _formed_chip(region)
    cells = np.argwhere(chip.read(region) > 10)[:300]
    targets = np.linspace(4, 60, len(cells))
    chip.program(cells, targets)
    chip.wait(1e4)  # relaxation done, drift slow
    reads = np.stack([chip.read(region)[cells[:, 0], cells[:, 1]] for _ in range(24)])
    off = np.stack([chip.read(region, gate_v=0.0)[:8].ravel() for _ in range(8)])
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.plot(reads.mean(axis=0), reads.std(axis=0, ddof=1) * 1000, ".", label="programmed cells")
    ax.plot(np.zeros(1), [off.std(axis=0, ddof=1).mean() * 1000], "s", label="gate-off reads (floor)")
    x = np.linspace(0, 60, 100)
    m = load_model()
    floor_us = m.read.noise_floor_pa * 1e-12 / 0.1 * 1e6
    ax.plot(x, np.sqrt((m.read.noise_ppm * 1e-6 * x) ** 2 + floor_us**2) * 1000, "k:", label="model: ppm x G (+) floor")
    _label(ax, xlabel="G (uS)", ylabel="read noise sd (nS)", title="read noise vs conductance (paper-40nm)")
    _save(fig, out / "device_read_noise.png")


def gating_and_offsets(out: Path) -> None:
    region = Region(0, 64, 0, 128)
    chip, _ = _formed_chip(region)
    on, off = chip.read(region), chip.read(region, gate_v=0.0)
    x = np.zeros((256, 64), np.int64)
    raw = chip.multiply(x, region, 4)
    chip.calibrate_offsets(region, 512)
    fixed = chip.multiply(x, region, 4)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].hist(on.ravel(), bins=60, alpha=0.6, label="V_WL = 1.8 V (read gate)")
    ax[0].hist(off.ravel(), bins=60, alpha=0.6, label="V_WL = 0 V: leakage + offset")
    _label(ax[0], xlabel="read G (uS)", ylabel="cells", title="word-line gating of reads")
    ax[1].plot(raw.products.mean(axis=0), ".", label="raw (TIA offsets x 15 bit-plane weights)")
    ax[1].plot(fixed.products.mean(axis=0), ".", label="after the zero-input pass")
    _label(ax[1], xlabel="column", ylabel="mean product, zero input (uS)", title="column offsets, 4-bit inputs")
    _save(fig, out / "device_gating_offsets.png")


def saturation(out: Path) -> None:
    region = Region(0, 512, 0, 64)
    chip, t = _formed_chip(region)
    rng = np.random.default_rng(SEED)
    fractions = np.linspace(0.05, 1.0, 20)
    sat = []
    for f in fractions:
        x = (rng.random((16, 512)) < f).astype(np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = chip.multiply(x, region, 1)
        sat.append(res.saturated / res.codes.size)
    volts = np.linspace(0.05, 0.3, 11)
    sat4 = []
    for v in volts:
        cfg = BoardConfig(read_voltage_v=float(v))
        c2 = Chip.from_transport(EmulatorTransport(load_model("paper-40nm", seed=SEED)), cfg)
        c2.electroform(region)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = c2.multiply(rng.integers(0, 16, (16, 512)), region, 4)
        sat4.append(res.saturated / (res.codes.size * 4))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(fractions * 100, np.array(sat) * 100, "o-")
    ax[0].set(xlabel="rows at 1 in a bit-plane (%)", ylabel="ADC samples clipped (%)",
              title="saturation at 0.1 V, 512 rows formed")  # fmt: skip
    ax[1].plot(volts, np.array(sat4) * 100, "o-")
    ax[1].set(xlabel="read voltage (V)", ylabel="ADC samples clipped (%)", title="uniform 4-bit inputs, 512 rows")
    _save(fig, out / "device_saturation.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    out = p.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for make in (relaxation, read_noise, gating_and_offsets, saturation):
        make(out)
        print(f"{make.__name__}: done")


if __name__ == "__main__":
    main()
