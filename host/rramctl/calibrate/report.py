"""The outputs of a calibration: the fitted preset (TOML, loadable with ``rramctl --model``), a JSON
report, a Markdown report and one measured-vs-fitted plot per mechanism, all in ``<out>/``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rramsim.config import to_toml

from rramctl.calibrate.fit import FitResult, ncdf
from rramctl.fileio import atomic_write_text

PRESET_NAME = "fitted.toml"


def report_dict(res: FitResult, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "preset": PRESET_NAME,
        "parameters": [
            {"path": p.path, "value": p.value, "unit": p.unit, "fitted": p.fitted, "note": p.note}
            | ({"preset_value": p.preset} if p.clamped else {})
            for p in res.params
        ],
        "clamped": [p.clamp_line() for p in res.params if p.clamped],
        "ks": res.ks,
        "stats": res.stats,
    }


def _markdown(res: FitResult, source: str, plots: list[str]) -> str:
    lines = [
        f"# Chip-model calibration ({source})",
        "",
        f"Preset: `{PRESET_NAME}` (`rramctl --model {PRESET_NAME}`)",
        "",
    ]
    lines += ["| parameter | value | unit | fitted | how |", "|---|---|---|---|---|"]
    lines += [f"| `{p.path}` | {p.value:g} | {p.unit} | {'yes' if p.fitted else 'no'} | {p.note} |" for p in res.params]
    clamped = [p.clamp_line() for p in res.params if p.clamped]
    if clamped:
        lines += ["", "Outside the model's bounds (fitted.toml holds the bound, the table the measured value):", ""]
        lines += [f"- {line}" for line in clamped]
    lines += ["", "| distribution | KS distance (measured vs fitted) |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in res.ks.items()]
    lines += ["", "| statistic | value |", "|---|---|"] + [f"| {k} | {v:g} |" for k, v in res.stats.items()]
    lines += [""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(res: FitResult, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    c = res.curves
    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        made.append(f"{folder.name}/{name}")

    if "forming" in c:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot(c["forming"]["volts"], c["forming"]["measured"], "o", label="measured")
        ax.plot(c["forming"]["volts"], c["forming"]["fitted"], "-", label="fitted")
        ax.set(xlabel="forming voltage (V)", ylabel="fraction formed", title="forming (cf. seed 000 Fig. 2h)")
        ax.legend()
        save(fig, "forming.png")
    if "formed" in c:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        g, m, s = c["formed"]["g_us"], c["formed"]["mean"], c["formed"]["sd"]
        ax.hist(g, bins=40, density=True, alpha=0.6, label="measured")
        x = np.linspace(g.min(), g.max(), 200)
        ax.plot(x, np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)), label="fitted")
        ax.set(xlabel="formed G (uS)", ylabel="density", title="formed conductance")
        ax.legend()
        save(fig, "formed.png")
    if "reads" in c:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        m, v = c["reads"]["mean_us"], c["reads"]["var_us2"]
        ax.plot(m, np.sqrt(v) * 1000, ".", ms=2, alpha=0.4, label="measured (per cell)")
        x = np.linspace(0, m.max(), 100)
        ax.plot(x, np.sqrt((c["reads"]["ppm"] * 1e-6 * x) ** 2 + c["reads"]["floor_us2"]) * 1000, label="fitted")
        ax.set(xlabel="G (uS)", ylabel="read noise sd (nS)", title="read noise vs conductance")
        ax.legend()
        save(fig, "read_noise.png")
    if "relaxation" in c:
        r = c["relaxation"]
        fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
        t = np.maximum(r["t_s"], 1e-3)
        ax[0].semilogx(t, r["sd_meas"], "o", label="measured")
        ax[0].semilogx(t, r["sd_fit"], "-", label="fitted")
        ax[0].set(xlabel="time after write-verify (s)", ylabel="sd of G(t) - G(t0) (uS)", title="relaxation")
        ax[1].semilogx(t, r["mean_meas"], "o", label="measured")
        ax[1].semilogx(t, r["mean_fit"], "-", label="fitted")
        ax[1].set(xlabel="time after write-verify (s)", ylabel="mean G(t) - G(t0) (uS)", title="drift")
        ax[0].legend()
        save(fig, "relaxation.png")
    if "cycling" in c:
        fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
        for a, key, title in (
            (ax[0], "off_us", "off level after reset (uS)"),
            (ax[1], "set_rel", "G after set / formed G - 1"),
        ):
            vals = np.sort(c["cycling"][key])
            a.plot(vals, np.arange(1, vals.size + 1) / vals.size, label="measured")
            a.plot(vals, ncdf((vals - vals.mean()) / vals.std(ddof=1)), label="fitted normal")
            a.set(xlabel=title, ylabel="CDF")
        ax[0].legend()
        save(fig, "cycling.png")
    if "offsets" in c:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot(c["offsets"]["col_offset_pa"] / 1000, ".", ms=3)
        ax.set(xlabel="column in region", ylabel="offset (nA)", title="per-column TIA offset (gate-off reads)")
        save(fig, "offsets.png")
    return made


def write_outputs(res: FitResult, out: Path, source: str, plots: bool = True) -> dict[str, Any]:
    """Write fitted.toml, report.json, report.md (+ plots); return the JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    header = {"name": "fitted", "source": source}
    atomic_write_text(out / PRESET_NAME, to_toml(res.model, header))
    rep = report_dict(res, source)
    atomic_write_text(out / "report.json", json.dumps(rep, indent=1))
    made = _plots(res, out / "plots") if plots else []
    atomic_write_text(out / "report.md", _markdown(res, source, made))
    return rep
