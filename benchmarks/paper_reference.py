"""What the two paper-script references share: ``paper_hardware_to.py`` (the paper's FashionMNIST_hardware_TO.py)
and ``paper_hardware_crnn.py`` (its Spoken_digit_hardware_TO.py), each re-implemented (read, not copied) with
nothing of rramctl's training code in it.

Both scripts are the same algorithm on different networks, and this module holds that algorithm:

- :func:`script_quantise`: the scripts' ``quantization``: per tensor, min..max to 2^bits - 1 levels, through
  torch's quantised tensors; after a ReLU ``round(x / step)`` (quint8, zero point 0), elsewhere
  ``round((x - min) / step) + floor(min / step)``; the quantised values replace ``x.data``, so the gradient
  passes straight through;
- :class:`HeldTopHalf`: ``GetSubnet`` with the relative gate: the top half of |score| by a full sort; where the
  previous mask was not all-on and | |s_old| - |s| | / |s_old| < limit, the previous bit is held; s_old = the
  scores at the previous *training* forward; straight-through gradient;
- :class:`ChipPairs`: one weight matrix of ``MaskConv`` / ``MaskLinear`` / ``MaskRNN``: kaiming-uniform scores,
  the weight ``sign x (set magnitude x mask + reset magnitude x (1 - mask))`` of one hardware read, the scale
  mean(set magnitude, every read) / sqrt(2 / (fan_in x (1 - sparsity))), the trackers (previous mask and
  scores, the switch count) updated in the training forward only;
- :class:`Limit`: the gate's limit, lowered by (start - stop) / steps at every epoch whose accuracy ties or
  beats the best (``if best <= correct``), without a floor unless one is given;
- :func:`chip_weights`: the chip weights rramctl forms and reads exactly as ``Run.open`` does for a seed (chip
  seed = seed, as the benchmark harness runs ``--recipe paper``), several reads where the script uses several;
- the training loop, the evaluation (every decision on rramctl's validation split, the test set for
  reporting), the seeds loop, the JSON record and the command line (:func:`cli`).

Where the chip comes from (both references): a pair's "set" magnitude is |w| of the formed pair and its sign the
pair's sign (the scripts take the sign of a random initial weight, independent of the pre-read magnitude: the
same distribution); the "reset" magnitude is what the same pair reads after both cells are reset (our pruned
state: the scripts subtract a *set* negative cell, which their pre-read data define and our chip does not).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from rramctl.training.config import TrainConfig  # noqa: E402
from rramctl.training.data import Dataset  # noqa: E402
from rramctl.training.runner import Run  # noqa: E402
from torch import nn  # noqa: E402

SPARSITY = 0.5
Array = NDArray[np.float64]

# the scripts quantise through torch's quantised tensors, which torch now marks deprecated
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)


def script_quantise(x: torch.Tensor, bits: int, after_relu: bool) -> torch.Tensor:
    """The scripts' ``quantization(m, bit, after_relu)`` (a zero range gives step 1 instead of an error);
    straight-through gradient, as the scripts write the result into ``x.data``."""
    with torch.no_grad():
        lo = x.min()
        step = float((x.max() - lo) / (2**bits - 1)) or 1.0
        if after_relu:
            q = torch.quantize_per_tensor(x, scale=step, zero_point=0, dtype=torch.quint8).int_repr().float()
        else:  # the script's zero point cancels: int_repr - zp + zp_min
            q = torch.quantize_per_tensor(x - lo, scale=step, zero_point=0, dtype=torch.qint32).int_repr().float()
            q = q + torch.div(lo, step, rounding_mode="floor")
        q = q * step
    return x + (q - x).detach() if x.requires_grad else q


class HeldTopHalf(torch.autograd.Function):
    """Top half of |score| by a full sort; bits held where the relative change of |score| is below the limit
    (only once the mask is no longer the all-on start); straight-through gradient."""

    @staticmethod
    def forward(ctx: Any, mag: torch.Tensor, mag_old: torch.Tensor, mask_old: torch.Tensor, limit: float) -> Any:  # noqa: ARG004
        order = mag.flatten().sort().indices
        top = torch.ones(mag.numel())
        top[order[: int((1 - SPARSITY) * mag.numel())]] = 0
        top = top.view_as(mag)
        if bool(mask_old.sum() != mask_old.numel()):
            rel = (mag_old - mag).abs() / mag_old
            top = torch.where(rel < limit, mask_old, top)
        return top

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # noqa: ARG004
        return grad, None, None, None


class ChipPairs(nn.Module):
    """One weight matrix of the scripts: chip magnitudes per read (reads, *shape), scores, gate trackers."""

    def __init__(self, shape: tuple[int, ...], set_w: Array, reset_w: Array) -> None:
        super().__init__()
        self.on = torch.from_numpy(np.abs(set_w)).float().reshape(-1, *shape)
        self.off = torch.from_numpy(np.abs(reset_w)).float().reshape(-1, *shape)
        self.sign = torch.from_numpy(np.sign(set_w[0])).float().reshape(shape)
        self.scores = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))
        fan_in = int(np.prod(shape[1:]))
        self.scale = float(self.on.mean()) / (math.sqrt(2.0) / math.sqrt(fan_in * (1 - SPARSITY)))
        self.mask_old = torch.ones(shape)
        self.mag_old = self.scores.detach().abs().clone()
        self.switches = torch.zeros(shape)
        self.limit = 0.01

    def weight(self, read: int = 0) -> torch.Tensor:
        """The weight of hardware read ``read`` under this forward's mask (the scripts' ``w``)."""
        mask = HeldTopHalf.apply(self.scores.abs(), self.mag_old, self.mask_old, self.limit)
        if self.training:  # the scripts update their trackers in the training forward only
            self.switches += (mask.detach() != self.mask_old).float()
            self.mask_old = mask.detach().clone()
            self.mag_old = self.scores.detach().abs().clone()
        out: torch.Tensor = self.sign * (self.on[read] * mask + self.off[read] * (1 - mask))
        return out

    def conv(self, x: torch.Tensor, read: int, stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
        """The scripts' ``MaskConv``: the convolution divided by the scale."""
        return F.conv2d(x, self.weight(read), stride=stride) / self.scale

    def linear(self, x: torch.Tensor, read: int) -> torch.Tensor:
        """The scripts' ``MaskLinear``: the product divided by the scale."""
        return F.linear(x, self.weight(read)) / self.scale


class ScriptNet(nn.Module):
    """What both scripts' ``Net`` has: its weight matrices as :class:`ChipPairs` (``layers``, in the scripts'
    order) and a batch-norm without affine parameters after each of the two convolutions (``bn1``, ``bn2``)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], set_w: dict[str, Array], reset_w: dict[str, Array]) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({n: ChipPairs(shape, set_w[n], reset_w[n]) for n, shape in shapes.items()})
        convs = [shape[0] for shape in shapes.values() if len(shape) == 4]
        self.bn1 = nn.BatchNorm2d(convs[0], affine=False)
        self.bn2 = nn.BatchNorm2d(convs[1], affine=False)

    def pairs(self) -> dict[str, ChipPairs]:
        return {n: p for n, p in self.layers.items() if isinstance(p, ChipPairs)}


@dataclass
class Limit:
    """The gate's limit: start, lowered by (start - stop) / steps at every epoch whose accuracy ties or beats the
    best so far (the scripts look at test accuracy, the references at validation); ``floor``: none in the scripts."""

    start: float
    stop: float
    steps: int
    floor: float | None = None
    value: float = field(init=False)
    best: float = field(init=False, default=-1.0)

    def __post_init__(self) -> None:
        self.value = self.start

    def after_epoch(self, accuracy: float) -> bool:
        if accuracy < self.best:
            return False
        self.best = accuracy
        self.value -= (self.start - self.stop) / self.steps
        if self.floor is not None:
            self.value = max(self.value, self.floor)
        return True


def chip_weights(
    cfg: TrainConfig, folder: Path, data: Dataset, reads: int = 1
) -> tuple[Run, list[str], dict[str, Array], dict[str, Array]]:
    """(run, layer names, set weights, reset weights) per layer as (reads, out, in), from the chip rramctl forms
    for ``cfg`` (chip seed = seed): each layer read ``reads`` times, all its pairs reset, read ``reads`` times."""
    run = Run.open(cfg, folder, data)
    assert run.mapped is not None
    set_w, reset_w = {}, {}
    for layer in run.net.crossbar_layers():
        set_w[layer.name] = np.stack([run.mapped.read_weights(layer.name).copy() for _ in range(reads)])
        run.mapped.prune(layer.name, np.argwhere(np.ones(set_w[layer.name].shape[1:], dtype=bool)))
        reset_w[layer.name] = np.stack([run.mapped.read_weights(layer.name).copy() for _ in range(reads)])
    return run, list(set_w), set_w, reset_w


def renamed(
    layers: tuple[str, ...], names: list[str], set_w: dict[str, Array], reset_w: dict[str, Array]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """rramctl's crossbar layers (``names``, in order) under the reference's names ``layers``."""
    if len(names) != len(layers):
        raise SystemExit(f"unexpected layers {names}")
    return {r: set_w[n] for r, n in zip(layers, names, strict=True)}, {
        r: reset_w[n] for r, n in zip(layers, names, strict=True)
    }


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, reads: int = 1) -> float:
    """Accuracy in batches of ``batch`` (the last one may be short); batch i on hardware read i mod ``reads``
    (the scripts' ``count``)."""
    net.eval()
    correct = 0
    for i, start in enumerate(range(0, len(y), batch)):
        out = net(x[start : start + batch], read=i % reads)
        correct += int((out.argmax(1) == y[start : start + batch]).sum())
    return correct / len(y)


@dataclass(frozen=True)
class Built:
    """A reference network with its chip pairs (in the scripts' layer order), optimiser and schedule."""

    net: nn.Module
    pairs: dict[str, ChipPairs]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None


@dataclass(frozen=True)
class Script:
    """One of the paper's hardware-TO scripts: its settings and how to build its network."""

    script: str  # the paper's script, re-implemented by the module that runs :func:`cli`
    task: str  # rramctl's task of the same network (its chip, placement and validation split)
    epochs: int
    batch: int
    drop_last: bool
    eval_batch: int  # the references' evaluation batch (the script's, or what the reference says instead)
    reads: int  # hardware reads the evaluation cycles through (the script's test batches)
    limit: tuple[float, float, int]  # start, stop, steps
    build: Callable[[argparse.Namespace, list[str], dict[str, Array], dict[str, Array]], Built]
    data: Callable[[argparse.Namespace], tuple[Dataset, dict[str, Any]]]  # the data set and TrainConfig's data
    add_args: Callable[[argparse.ArgumentParser], None] | None = None


def _tensors(run: Run) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    splits = {"train": run.train_split, "val": run.val_split, "test": run.test_split}
    return {k: (torch.from_numpy(s.inputs(True)).float(), torch.from_numpy(s.y)) for k, s in splits.items()}


def _rel_change(pairs: dict[str, ChipPairs], before: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean | |s_old| - |s| | / |s_old| per layer over one step (what the gate tests)."""
    out = {}
    for name, p in pairs.items():
        old = before[name].abs()
        out[name] = float(((old - p.scores.detach().abs()).abs() / old.clamp_min(1e-12)).mean())
    return out


def train_seed(script: Script, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One seed: the chip, the split, the script's training; the record (per-epoch curve included)."""
    data, data_cfg = script.data(args)
    cfg = TrainConfig(task=script.task, recipe="paper", seed=seed, chip_seed=seed, backend="emulator", epochs=1,
                      data=data_cfg)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run, names, set_w, reset_w = chip_weights(cfg, Path(tmp) / "run", data, args.reads)
        run.close()
    xs = _tensors(run)
    torch.manual_seed(seed)
    built = script.build(args, names, set_w, reset_w)
    net, pairs = built.net, built.pairs
    start, stop, steps = script.limit
    limit = Limit(start, stop, steps, args.limit_floor)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = xs["train"]
    n = len(y_train)
    last = n - n % script.batch if script.drop_last else n
    curve: list[dict[str, Any]] = []
    trace: list[dict[str, Any]] = []
    best_epoch = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        flips_before = sum(float(p.switches.sum()) for p in pairs.values())
        for p in pairs.values():
            p.limit = limit.value
        order = torch.randperm(n, generator=gen)
        losses = []
        for i in range(0, last, script.batch):
            idx = order[i : i + script.batch]
            before = {k: p.scores.detach().clone() for k, p in pairs.items()}
            flips0 = {k: float(p.switches.sum()) for k, p in pairs.items()}
            built.opt.zero_grad()
            loss = F.nll_loss(net(x_train[idx]), y_train[idx])
            loss.backward()
            built.opt.step()
            losses.append(loss.item())
            if len(trace) < args.trace_steps:
                step_flips = {k: int(float(p.switches.sum()) - flips0[k]) for k, p in pairs.items()}
                trace.append({"step": len(trace) + 1, "loss": loss.item(), "pair_flips": step_flips,
                              "rel_score_change": _rel_change(pairs, before)})  # fmt: skip
        val = accuracy(net, *xs["val"], script.eval_batch, args.reads)
        test = accuracy(net, *xs["test"], script.eval_batch, args.reads)  # reported only
        if limit.after_epoch(val):  # the scripts: `if best <= correct`, on test accuracy
            best_epoch = epoch
        if built.sched is not None:
            built.sched.step()
        kept = {k: round(float(p.mask_old.mean()), 4) for k, p in pairs.items()}
        flips = sum(float(p.switches.sum()) for p in pairs.values()) - flips_before
        curve.append({"epoch": epoch, "val": val, "test": test, "train_loss": statistics.fmean(losses),
                      "limit_after": limit.value, "pair_flips": int(flips), "kept_fraction": kept,
                      "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        print(json.dumps(curve[-1]), flush=True)
    total = sum(float(p.switches.sum()) for p in pairs.values())
    initial = sum(p.switches.numel() for p in pairs.values()) * SPARSITY
    after = curve[0]["pair_flips"] - initial
    return {"seed": seed, "final_val": curve[-1]["val"], "final_test": curve[-1]["test"], "best_val": limit.best,
            "best_val_epoch": best_epoch, "test_at_best_val": curve[best_epoch - 1]["test"],
            "pair_flips": int(total), "pair_flips_after_initial_prune": int(total - initial),
            "pair_flips_after_initial_prune_per_epoch": (total - initial) / args.epochs,
            "pair_flips_after_initial_prune_curve": [int(after)] + [c["pair_flips"] for c in curve[1:]],
            "final_kept_fraction": curve[-1]["kept_fraction"], "curve": curve,
            **({"first_steps": trace} if trace else {})}  # fmt: skip


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def cli(script: Script, doc: str | None) -> None:
    """``--seed S`` (one run, its record) or ``--seeds S [S ...]`` (the runs and their mean +- std) -> ``--out``;
    the file is rewritten after every seed."""
    reference = f"the paper's {script.script} re-implemented (benchmarks/{Path(sys.argv[0]).name})"
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None, help="one seed: the file holds its record")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="several: their records and summary")
    ap.add_argument("--epochs", type=int, default=script.epochs)
    ap.add_argument("--reads", type=int, default=script.reads, help="hardware reads per pair (training: read 0)")
    ap.add_argument("--limit-floor", type=float, default=None, help="a floor under the limit (the script has none)")
    ap.add_argument("--trace-steps", type=int, default=0, help="record loss, flips and score changes of N steps")
    ap.add_argument("--out", type=Path, required=True)
    if script.add_args is not None:
        script.add_args(ap)
    args = ap.parse_args()
    if args.seed is not None and args.seeds is not None:
        ap.error("give --seed or --seeds, not both")
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = " ".join(["python", *sys.argv])
    arg_record = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.seeds is None:
        rec = {"reference": reference, "commit": commit, "command": command, "args": arg_record,
               **train_seed(script, args, 0 if args.seed is None else args.seed)}  # fmt: skip
        args.out.write_text(json.dumps(rec, indent=1))
        return
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        runs.append(train_seed(script, args, seed))
        keys = ("final_test", "final_val", "best_val", "test_at_best_val", "pair_flips_after_initial_prune_per_epoch")
        summary = {"seeds": [r["seed"] for r in runs], **{k: _mean_std([float(r[k]) for r in runs]) for k in keys}}
        res = {"reference": reference, "commit": commit, "command": command, "args": arg_record,
               "note": "test figures reported only: every decision looks at the validation split; 'pair_flips' "
                       "counts every mask change as the script's switch_count does, 'pair_flips_after_initial_"
                       "prune' subtracts sparsity x pairs as its program_sum does",
               "summary": summary, "runs": runs}  # fmt: skip
        args.out.write_text(json.dumps(res, indent=1))
