"""TO / WO array read energy per inference: the paper's figures, what they imply, and ours from saved runs.

    python benchmarks/energy_ratio.py                      # the paper's figures alone (seed 000)
    python benchmarks/energy_ratio.py --to RUN [RUN ...] --wo RUN [RUN ...] [--samples 100] [--json]

The array read energy of one inference is V^2 t sum over bit-planes of sum over the rows driven by a 1-bit of
(G+ + G-) of every cell on those rows (seed 000 Methods, "Multi-bit vector-matrix multiplications"; our ledger,
``rramsim.energy``). With one read voltage V and one read time t for both networks, the ratio TO / WO is the
ratio of ``sum_rows ones(row) x G(row)`` and depends on the conductances and on how often each row is driven,
not on V or t. Docs: docs/emulator.md, "Board time and energy", "TO / WO energy ratio".

From runs (``--to``/``--wo``: run folders of benchmarks/train_*.py): the conductances are the final checkpoint's
cell state (``array*.npz``, what the chip holds, no read noise); the 1-bits per row are counted over the inputs
each crossbar layer receives in a host-product pass over the first ``--samples`` test inputs of the run's test
split, every vector of every inference (``every vector``) and, as the board's chip test sends them, each distinct
non-zero vector of an evaluation batch once (``as sent``: the harness's ledger figure). Besides the run as it is,
two counterfactuals: the TO network as the paper script's pre-read weights define a pruned pair (G+ reset, G-
still as formed: ``--to`` only) and our WO pairs with their idle cell at the off state instead of ``wo.floor_us``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rramctl.chip import FORMED_THRESHOLD_US
from rramctl.geometry import PAIR_OFFSET
from rramctl.training.config import TrainConfig, saved_config
from rramctl.training.data import Dataset, load_task_data
from rramctl.training.runner import Run, load_run
from rramsim.energy import T_CONV_S, array_read_energy_j

V_READ_PAPER_V = 0.1  # seed 000 Methods: "a row is biased to a small fixed voltage (e.g., 0.1 V)"
G_OFF_US = 0.07  # seed 000 Fig. 2i: pruned pairs "mean conductance of ~0.07 uS"
SPARSITY = 0.5  # seed 000 Results: "half the pairs are pruned (sparsity of 0.5)"
# seed 000 Fig. 3b / 4b: the formed weights' two modes (uS) and Fig. 3g / 4g: RM energy per inference (nJ)
PAPER: dict[str, dict[str, Any]] = {
    "fmnist-cnn": {"modes_us": (27.1, 27.2), "to_nj": 12.94, "wo_nj": 18.65, "source": "seed 000 Fig. 3b, 3g"},
    "fsdd-crnn": {"modes_us": (27.3, 27.1), "to_nj": 4.79, "wo_nj": 6.46, "source": "seed 000 Fig. 4b, 4g"},
}


def paper_figures() -> dict[str, dict[str, float]]:
    """The paper's ratio and what its own figures give for it, per task: uniform row activity (the same inputs
    for both networks), a formed pair = one cell at the mode's |w|, the other off (complementary forming)."""
    out = {}
    for task, p in PAPER.items():
        g = statistics.fmean(p["modes_us"])
        to_pair = (1 - SPARSITY) * (g + G_OFF_US) + SPARSITY * G_OFF_US  # kept: |w| + an off partner; pruned: off
        out[task] = {
            "ratio_paper": p["to_nj"] / p["wo_nj"],
            "formed_pair_us": g + G_OFF_US,
            "ratio_wo_at_formed_weights": to_pair / (g + G_OFF_US),
            # the paper script's pre-read weights: a pruned pair keeps a formed G- (half of the pruned pairs)
            "ratio_pruned_keeps_formed_g_minus": (to_pair + SPARSITY * 0.5 * g) / (g + G_OFF_US),
            # the summed pair conductance WO would need for the paper's ratio at TO's
            "wo_pair_us_for_paper_ratio": to_pair * p["wo_nj"] / p["to_nj"],
        }
    return out


@dataclass
class Layer:
    """One crossbar layer of a run: its cells' conductances (uS) and 1-bits per input row per inference."""

    name: str
    g_plus: NDArray[np.float64]  # (n_in, n_out)
    g_minus: NDArray[np.float64]
    g_minus_formed: NDArray[np.float64]  # G- as formed (before any reset or programming)
    ones_all: NDArray[np.float64]  # (n_in,) every vector of every inference
    ones_sent: NDArray[np.float64]  # (n_in,) distinct non-zero vectors of each evaluation batch

    def energy_j(self, g_us: NDArray[np.float64], ones: NDArray[np.float64], t_s: float = T_CONV_S) -> float:
        return array_read_energy_j(ones, g_us * 1e-6, V_READ_PAPER_V, t_s)


def _ones(codes: NDArray[np.integer[Any]], bits: int) -> NDArray[np.float64]:
    """1-bits of each row (input) over the bit-planes of ``codes`` (vectors, n_in)."""
    c = codes.astype(np.int64)
    return np.sum([((c >> k) & 1).sum(axis=0) for k in range(bits)], axis=0).astype(np.float64)


def _cells(run: Run) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Each array's conductance now and as formed (uS), from the run's latest checkpoint."""
    ckpt = run.dir / "checkpoints" / (run.dir / "checkpoints" / "LATEST").read_text().strip()
    now, formed = [], []
    for a in range(run.placement.arrays_used):
        with np.load(ckpt / f"array{a}.npz") as z:
            now.append(z["g"].astype(np.float64) / 1000)
            formed.append(z["g_formed"].astype(np.float64) / 1000)
    return now, formed


def open_run(run_dir: Path, samples: int, network: dict[str, str] | None = None) -> Run:
    """Reopen a saved run for a host-product pass over ``samples`` test inputs (its config.json read as the run
    was made: ``saved_config``). ``network``: settings of its ``network`` section to take instead (its file is
    left as it is)."""
    if not network:
        return load_run(run_dir, _data, forward="host", test_subset=samples)
    cfg = saved_config((run_dir / "config.json").read_text())
    cfg = cfg.model_copy(update={"network": cfg.network.model_copy(update=network), "forward": "host",
                                 "test_subset": samples})  # fmt: skip
    run = Run(cfg, run_dir, _data(cfg))
    run._resume(repair=False)  # as load_run does, with the settings above
    return run


def _data(cfg: TrainConfig) -> Dataset:
    d = cfg.data
    return load_task_data(cfg.task, data_dir=d.data_dir, source=d.source, features_file=d.features_file)


def layers_of(run_dir: Path, samples: int, network: dict[str, str] | None = None) -> list[Layer]:
    """A saved run's crossbar layers: conductances and the 1-bits per row of ``samples`` test inferences."""
    run = open_run(run_dir, samples, network)
    try:
        net = run.net
        ones_all: dict[str, NDArray[np.float64]] = {}
        ones_sent: dict[str, NDArray[np.float64]] = {}
        with torch.no_grad():
            weights = {la.name: la.effective_weight().numpy().T.astype(np.float64) for la in net.crossbar_layers()}

        def executor(name: str, codes: NDArray[np.integer[Any]], bits: int) -> NDArray[np.floating[Any]]:
            ones_all[name] = ones_all.get(name, 0) + _ones(codes, bits)
            sent = codes[codes.any(axis=1)]
            if len(sent):
                sent = np.unique(sent, axis=0)
            ones_sent[name] = ones_sent.get(name, 0) + _ones(sent, bits)
            return codes.astype(np.float64) @ weights[name]  # the host product: the pass is unchanged

        net.set_executor(executor)
        run.evaluate(run.test_split)
        n = len(run.test_split)
        now, formed = _cells(run)
        layers = []
        for la in net.crossbar_layers():
            gp, gm, gmf = (np.zeros((la.n_in, la.n_out)) for _ in range(3))
            for t in run.placement.tiles_of(la.name):
                rows, cols = np.s_[t.row : t.row + t.n_rows], np.s_[t.col : t.col + t.n_cols]
                minus = np.s_[t.col + PAIR_OFFSET : t.col + PAIR_OFFSET + t.n_cols]
                at = np.s_[t.in0 : t.in0 + t.n_rows, t.out0 : t.out0 + t.n_cols]
                gp[at], gm[at], gmf[at] = (
                    now[t.array][rows, cols],
                    now[t.array][rows, minus],
                    formed[t.array][rows, minus],
                )
            layers.append(Layer(la.name, gp, gm, gmf, ones_all[la.name] / n, ones_sent[la.name] / n))
        return layers
    finally:
        run.close()


def run_energies(layers: list[Layer]) -> dict[str, float]:
    """Array read energy per inference (J, V = 0.1 V, t = one ADS8324 conversion) of one run, as it is and
    under each counterfactual, every vector counted and as sent."""
    out: dict[str, float] = {}
    for how in ("all", "sent"):
        e = e_script = e_off_idle = 0.0
        for la in layers:
            ones = la.ones_all if how == "all" else la.ones_sent
            g = la.g_plus + la.g_minus
            e += la.energy_j(g, ones)
            pruned = np.maximum(la.g_plus, la.g_minus) < FORMED_THRESHOLD_US
            keeps_minus = pruned & (la.g_minus_formed >= FORMED_THRESHOLD_US)
            e_script += la.energy_j(np.where(keeps_minus, la.g_plus + la.g_minus_formed, g), ones)
            idle = np.minimum(la.g_plus, la.g_minus)
            e_off_idle += la.energy_j(g - idle + np.minimum(idle, G_OFF_US), ones)
        out[f"as_is_{how}"], out[f"pruned_keeps_formed_g_minus_{how}"] = e, e_script
        out[f"idle_cell_off_{how}"] = e_off_idle
    layer_g = {la.name: float((la.g_plus + la.g_minus).mean()) for la in layers}
    out |= {f"pair_us_{k}": v for k, v in layer_g.items()}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", nargs="*", type=Path, default=[], help="TO run folders")
    p.add_argument("--wo", nargs="*", type=Path, default=[], help="WO run folders")
    p.add_argument("--samples", type=int, default=100, help="test inputs (the harness's chip test: 100)")
    p.add_argument(
        "--as-trained",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="network settings to reopen the runs with instead of their config.json's (read as the runs were made)",
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res: dict[str, Any] = {"paper": paper_figures()}
    for task, f in res["paper"].items():
        if not a.json:
            print(f"{task} ({PAPER[task]['source']}): paper TO/WO {f['ratio_paper']:.3f}; from the paper's own "
                  f"figures: WO at the formed weights {f['ratio_wo_at_formed_weights']:.3f}, pruned pairs keeping a "
                  f"formed G- {f['ratio_pruned_keeps_formed_g_minus']:.3f}; WO pair conductance the paper's ratio "
                  f"needs {f['wo_pair_us_for_paper_ratio']:.1f} uS (a formed pair: {f['formed_pair_us']:.1f} uS)"
                  )  # fmt: skip
    if a.to and a.wo:
        net = dict(kv.split("=", 1) for kv in a.as_trained)
        to_layers, wo_layers = (
            [layers_of(r, a.samples, net) for r in a.to],
            [layers_of(r, a.samples, net) for r in a.wo],
        )
        runs = {"to": [run_energies(la) for la in to_layers], "wo": [run_energies(la) for la in wo_layers]}
        mean = {m: {k: statistics.fmean(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
        to, wo = mean["to"], mean["wo"]
        # the WO chips read with the TO networks' inputs (seed by seed): the conductances' share of the ratio
        wo_to_inputs = statistics.fmean(
            sum(w.energy_j(w.g_plus + w.g_minus, t.ones_all) for t, w in zip(tl, wl, strict=True))
            for tl, wl in zip(to_layers, wo_layers, strict=False)
        )
        ratios = {
            f"{what}_{how}": to[f"{t_key}_{how}"] / wo[f"{w_key}_{how}"]
            for how in ("all", "sent")
            for what, t_key, w_key in (
                ("as_is", "as_is", "as_is"),
                ("pruned_keeps_formed_g_minus", "pruned_keeps_formed_g_minus", "as_is"),
                ("wo_idle_cell_off", "as_is", "idle_cell_off"),
            )
        }
        ratios["same_inputs_all"] = to["as_is_all"] / wo_to_inputs
        res |= {"runs": runs, "mean": mean, "ratios": ratios}
        if not a.json:
            print(f"runs: TO {[str(r) for r in a.to]}, WO {[str(r) for r in a.wo]}, {a.samples} test inputs")
            names = [k.removeprefix("pair_us_") for k in to if k.startswith("pair_us_")]
            print("summed pair conductance (uS), TO / WO: " + ", ".join(
                f"{n} {to[f'pair_us_{n}']:.2f} / {wo[f'pair_us_{n}']:.2f}" for n in names))  # fmt: skip
            print(f"with the same inputs (each TO network's, on both chips): TO/WO {ratios['same_inputs_all']:.3f}")
            for how, label in (("all", "every vector of every inference"), ("sent", "as the chip test sends them")):
                print(f"{label}: E/inference TO {to[f'as_is_{how}'] * 1e6:.3f} uJ, WO {wo[f'as_is_{how}'] * 1e6:.3f} "
                      f"uJ (0.1 V, t = {T_CONV_S * 1e6:.0f} us); TO/WO {ratios[f'as_is_{how}']:.3f}; pruned pairs "
                      f"keeping a formed G- {ratios[f'pruned_keeps_formed_g_minus_{how}']:.3f}; WO idle cell off "
                      f"{ratios[f'wo_idle_cell_off_{how}']:.3f}")  # fmt: skip
    if a.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
