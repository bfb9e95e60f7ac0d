"""Full-length benchmark runs of one task, side by side in one process (used by benchmarks/train_*.py).

Runs, in order: plain-software TO (float model), emulator TO (chip weights, batched reset/set, read-back;
training products on the host), its final test on the chip (every product through chip.multiply_pairs),
the time of a training step with every product on the chip, and emulator WO with free updates (T_w = 0).
Prints the results beside the paper's (seed 000 Results, Fig. 3 and 4) and writes results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from rramctl.training.config import TrainConfig
from rramctl.training.data import load_task_data
from rramctl.training.runner import Run, finish, load_run

PAPER = {  # seed 000 Results / Fig. 3d,f and 4d,f
    "fmnist-cnn": {"to": 0.874, "wo": 0.797, "ops_reduction": 0.9994, "epochs": 65},
    "fsdd-crnn": {"to": 0.981, "wo": 0.908, "ops_reduction": 0.9993, "epochs": 60},
}


def _train(cfg: TrainConfig, out: Path, name: str, data: Any) -> dict[str, Any]:
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    run = Run.open(cfg, d, data)
    run.train()
    summary = finish(run)
    run.close()
    summary["wall_seconds"] = time.perf_counter() - t0
    print(f"[{name}] {100 * summary['test_accuracy']:.2f} %  ops {summary['programming_ops_total']}  "
          f"{summary['seconds_per_step']:.3f} s/step", flush=True)  # fmt: skip
    return summary


def main(task: str, argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=PAPER[task]["epochs"])
    p.add_argument("--wo-epochs", type=int, default=None, help="WO epochs (default: --epochs)")
    p.add_argument("--subset", type=int, default=None, help="training samples (default: all)")
    p.add_argument("--wo-subset", type=int, default=None)
    p.add_argument("--chip-test-subset", type=int, default=1000, help="test samples for the all-on-chip test")
    p.add_argument("--chip-steps", type=int, default=2, help="training steps timed with products on the chip")
    p.add_argument("--out", type=Path, default=Path("runs/bench") / task)
    p.add_argument("--skip", nargs="*", default=[], choices=["software", "emulator", "chip", "wo"])
    a = p.parse_args(argv)
    data = load_task_data(task)
    base = dict(task=task, epochs=a.epochs, subset=a.subset)
    parts = ",".join(sorted({"software", "emulator", "chip", "wo"} - set(a.skip)))
    res: dict[str, Any] = {"task": task, "paper": PAPER[task], "args": {parts: {k: str(v) for k, v in vars(a).items()}}}
    if "software" not in a.skip:
        res["software_to"] = _train(TrainConfig(**base, backend="software"), a.out, "software_to", data)
    if "emulator" not in a.skip:
        res["emulator_to"] = _train(TrainConfig(**base, backend="emulator", forward="host"), a.out, "emulator_to", data)
        run = load_run(a.out / "emulator_to", lambda c: data, forward="chip", test_subset=a.chip_test_subset)
        acc, _, _ = run.evaluate(run.test_split)
        run.close()
        res["emulator_to"]["chip_test_accuracy"] = acc
        res["emulator_to"]["chip_test_samples"] = len(run.test_split)
        print(f"[emulator_to, all products on the chip] {100 * acc:.2f} % on {len(run.test_split)}", flush=True)
    if "chip" not in a.skip:
        cfg = TrainConfig(**base, backend="emulator", forward="chip")
        d = a.out / "chip_step"
        shutil.rmtree(d, ignore_errors=True)
        run = Run.open(cfg, d, data)
        t0 = time.perf_counter()
        run.train(stop_after_steps=a.chip_steps)
        res["chip_seconds_per_step"] = (time.perf_counter() - t0) / a.chip_steps
        run.close()
        print(f"[chip forward] {res['chip_seconds_per_step']:.2f} s/step", flush=True)
    if "wo" not in a.skip:
        wo = dict(base, epochs=a.wo_epochs or a.epochs, subset=a.wo_subset or a.subset)
        res["emulator_wo"] = _train(TrainConfig(**wo, method="wo", backend="emulator", forward="host"), a.out,
                                    "emulator_wo", data)  # fmt: skip
    # parts run separately (--skip) into one --out, one after another or at the same time, add up in
    # results.json: merge with what the file holds when this part ends
    out = a.out / "results.json"
    now: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    res = {**now, **res, "args": {**now.get("args", {}), **res["args"]}}
    print(table(res))
    a.out.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    return res


def table(res: dict[str, Any]) -> str:
    paper = res["paper"]
    lines = ["| run | test accuracy | paper | cell programming ops | s/step |", "|---|---|---|---|---|"]
    rows = (
        ("software_to", "software TO (float model)", None),
        ("emulator_to", "emulator TO", paper["to"]),
        ("emulator_wo", "emulator WO, T_w = 0", paper["wo"]),
    )
    for key, label, ref in rows:
        if key in res:
            s = res[key]
            lines.append(f"| {label} | {100 * s['test_accuracy']:.2f} % ({s['test_samples']}) | "
                         f"{'' if ref is None else f'{100 * ref:.1f} %'} | {s['programming_ops_total']:,} | "
                         f"{s['seconds_per_step']:.3f} |")  # fmt: skip
    if "emulator_to" in res and "chip_test_accuracy" in res["emulator_to"]:
        s = res["emulator_to"]
        lines.append(f"| emulator TO, test with every product on the chip | {100 * s['chip_test_accuracy']:.2f} % "
                     f"({s['chip_test_samples']}) | {100 * paper['to']:.1f} % | | |")  # fmt: skip
    if "chip_seconds_per_step" in res:
        lines.append(f"| training step with every product on the chip | | | | {res['chip_seconds_per_step']:.2f} |")
    if "emulator_to" in res and "emulator_wo" in res:
        to, wo = res["emulator_to"], res["emulator_wo"]
        # per training step, since the two runs may differ in length and training-set size
        r_to = to["programming_ops_total"] / max(1, to["steps"])
        r_wo = wo["programming_ops_total"] / max(1, wo["steps"])
        lines.append(f"\nprogramming ops per training step: TO {r_to:,.0f}, WO {r_wo:,.0f}: TO needs "
                     f"{100 * (1 - r_to / r_wo):.2f} % fewer (paper {100 * paper['ops_reduction']:.2f} %)")  # fmt: skip
    if "software_to" in res and "chip_seconds_per_step" in res:
        ratio = res["chip_seconds_per_step"] / res["software_to"]["seconds_per_step"]
        lines.append(f"training step, all products on the emulated chip / plain-software TO step: {ratio:.0f}x")
    return "\n".join(lines)
