"""One Fashion-MNIST CNN training step three ways, measured side by side in one run:

- the chip step: rramctl's TO training step with every product on the emulated chip
  (``TrainConfig(forward="chip")``, backend emulator);
- the host step: the same step with the products on the host (``forward="host"``);
- the paper's step: the paper's software-TO step (seed 000 Methods, "Edge pruning topology
  optimization" and "CNN backbone"; the authors' published script, FashionMNIST_software_TO.py),
  re-implemented here from its description: max-pool 28 -> 14, per-tensor 4-bit quantisation of the
  input and of every ReLU output, C1 64x1x3x3 -> batch-norm (not affine) -> ReLU, C2 16x64x3x3 ->
  max-pool -> batch-norm -> ReLU, F1 400 -> 128 -> ReLU, F2 128 -> 10, log-softmax, cross-entropy;
  each layer's mask keeps the top half of |score| found by a full sort, straight-through gradient to
  the scores, the mask changes counted every step; SGD lr 0.1, momentum 0.9, weight decay 5e-4.

Figures: ``chip_vs_host`` = chip step / host step and ``host_vs_paper`` = host step / paper step,
at batch 60 (the paper's) and 128 (rramctl's default).  CPU time of the process, one thread,
medians over steps on distinct batches, the kinds of step taken in turn (step s of each, then step s + 1:
a shared machine's changing load weighs on every figure alike).  Beside them the weight-optimisation
baseline's step (``wo``: ``TrainConfig(method="wo", forward="host")``, every changed pair write-verified on the
emulated chip, T_w = 0) and ``fmnist_65_epochs_wo_h``, the hours its 65 Fashion-MNIST epochs take at that step time
(batch 128, evaluation passes not counted).

With ``--device cuda`` (where torch sees a GPU) the run adds, in wall-clock time with the GPU
synchronised around each step: the chip step with the emulator's array math on the GPU
(``TrainConfig(device="cuda")``; the network's own host-side layers stay on the CPU, one thread) and
the paper's step with its network and batches on the GPU, as its script runs (``.cuda()``).  Keys:
``chip_vs_paper_cuda_60`` / ``_128`` (chip step on the GPU / the paper's step on the same GPU; the
issue's target is <= 1), ``step_ms_cuda``, and ``fmnist_65_epochs_chip_cuda_h``: the hours a 65-epoch
Fashion-MNIST run with every product on the emulated chip takes at that step time (55,000 training
images at rramctl's batch 128; evaluation passes not counted).

    python benchmarks/train_step.py [--steps N] [--device cpu|cuda] [--json] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread: CPU time = the work done
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RRAMSIM_THREADS", "1")  # the emulator's threads too (rramsim.workers)

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_report import emit  # noqa: E402
from rramctl.training.config import TrainConfig  # noqa: E402
from rramctl.training.data import FMNIST_FILES, fmnist_dir, load_fmnist, read_idx  # noqa: E402
from rramctl.training.runner import Run  # noqa: E402
from torch import nn  # noqa: E402

BATCHES = (60, 128)
PAPER_SPARSITY = 0.5
QUANT_BITS = 4


# ---- the paper's software-TO step -----------------------------------------------------------------
class TopHalfMask(torch.autograd.Function):
    """1 where |score| is in the top ``keep`` fraction (full sort, as the paper's script), 0 elsewhere;
    the gradient passes straight through."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, keep: float) -> torch.Tensor:  # noqa: ARG004
        order = scores.flatten().sort().indices
        mask = torch.ones(scores.numel(), device=scores.device)
        mask[order[: int((1 - keep) * scores.numel())]] = 0
        return mask.view_as(scores)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ARG004
        return grad, None


def quantise(x: torch.Tensor, bits: int, after_relu: bool) -> torch.Tensor:
    """Per-tensor uniform quantisation over [min, max] through torch's quantised tensors (where a device
    lacks them, the same arithmetic: round half to even, clamp to the type's range). The gradient passes
    straight through, as in the paper's script, which writes the quantised values into ``x.data`` (the
    quantised tensors themselves carry no gradient: without this every layer below the last would stop
    learning, and its backward pass would not be timed)."""
    with torch.no_grad():
        scale = float((x.max() - x.min()) / (2**bits - 1)) or 1.0
        lo = 0.0 if after_relu else float(x.min())
        dtype, top = (torch.quint8, 255) if after_relu else (torch.qint32, 2**31 - 1)
        try:
            q = torch.quantize_per_tensor(x - lo, scale=scale, zero_point=0, dtype=dtype).int_repr().float()
        except (RuntimeError, NotImplementedError):
            q = torch.round((x - lo) / scale).clamp(0 if after_relu else -top - 1, top)
        q = q * scale + lo
    return x + (q - x).detach() if x.requires_grad else q


class MaskedLayer(nn.Module):
    """Fixed random weights (Kaiming normal) and trained scores (Kaiming uniform); mask changes counted."""

    def __init__(self, shape: tuple[int, ...], conv: bool) -> None:
        super().__init__()
        self.conv = conv
        self.weight = nn.Parameter(torch.empty(shape), requires_grad=False)
        self.scores = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))
        self.register_buffer("last_mask", torch.ones(shape))
        self.register_buffer("switches", torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = TopHalfMask.apply(self.scores.abs(), PAPER_SPARSITY)
        self.switches += (mask != self.last_mask).float()
        self.last_mask = mask.detach().clone()
        w = self.weight * mask
        return F.conv2d(x, w) if self.conv else F.linear(x, w)


class PaperCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = MaskedLayer((64, 1, 3, 3), conv=True)
        self.bn1 = nn.BatchNorm2d(64, affine=False)
        self.c2 = MaskedLayer((16, 64, 3, 3), conv=True)
        self.bn2 = nn.BatchNorm2d(16, affine=False)
        self.f1 = MaskedLayer((128, 400), conv=False)
        self.f2 = MaskedLayer((10, 128), conv=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = quantise(F.max_pool2d(x, 2), QUANT_BITS, after_relu=False)
        x = quantise(F.relu(self.bn1(self.c1(x))), QUANT_BITS, after_relu=True)
        x = quantise(F.relu(self.bn2(F.max_pool2d(self.c2(x), 2))), QUANT_BITS, after_relu=True)
        x = quantise(F.relu(self.f1(torch.flatten(x, 1))), QUANT_BITS, after_relu=True)
        return F.log_softmax(self.f2(x), dim=1)


class Clock:
    """Process CPU time on the CPU; on a GPU, wall-clock time with the device synchronised at both ends."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


Stepper = Callable[[int], float]  # step s -> its seconds


def paper_stepper(images: np.ndarray, labels: np.ndarray, batch: int, device: str = "cpu") -> Stepper:
    """Step s of the paper's software-TO training on normalised 28x28 images (batch s), its network and batches
    on ``device`` (the script's ``.cuda()`` made a parameter); returns its seconds."""
    torch.manual_seed(1)
    net = PaperCNN().to(device)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=5e-4)
    x_all = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]).to(device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    clock = Clock(device)

    def step(s: int) -> float:
        x, y = x_all[s * batch : (s + 1) * batch], y_all[s * batch : (s + 1) * batch]
        t0 = clock()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return clock() - t0

    return step


def paper_step_seconds(
    images: np.ndarray, labels: np.ndarray, batch: int, steps: int, device: str = "cpu", warmup: int = 1
) -> list[float]:
    """Seconds of ``steps`` steps of the paper's software-TO training (after ``warmup`` steps)."""
    return timed_steps(paper_stepper(images, labels, batch, device), steps, warmup)


# ---- rramctl's steps ----------------------------------------------------------------------------------
def rramctl_stepper(run: Run, batch: int) -> Stepper:
    """Step s of ``run``'s training (samples s * batch ..) on the clock of the run's array-math device."""
    inputs = run.train_split.inputs(run.raw_inputs)
    clock = Clock(run.cfg.device)

    def step(s: int) -> float:
        idx = np.arange(s * batch, (s + 1) * batch)
        t0 = clock()
        run._step(inputs[idx], run.train_split.y[idx])
        return clock() - t0

    return step


def rramctl_step_seconds(run: Run, batch: int, steps: int, warmup: int = 1) -> list[float]:
    """Seconds of ``steps`` training steps of ``batch`` samples (after ``warmup`` steps)."""
    return timed_steps(rramctl_stepper(run, batch), steps, warmup)


def timed_steps(step: Stepper, steps: int, warmup: int) -> list[float]:
    return [t for s, t in ((s, step(s)) for s in range(steps + warmup)) if s >= warmup]


def interleaved(steppers: dict[str, Stepper], steps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each stepper's steps, taken in turn (step s of every stepper, then step s + 1), so a machine
    whose load changes during the run weighs on every figure alike."""
    out: dict[str, list[float]] = {k: [] for k in steppers}
    for s in range(steps + warmup):
        for k, step in steppers.items():
            t = step(s)
            if s >= warmup:
                out[k].append(t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per figure (after one warm-up)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    ap.add_argument("--device", default="cpu", help="cuda: also the chip step and the paper's step on the GPU")
    args = ap.parse_args()
    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        ap.error(f"--device {args.device}: torch sees no such GPU (cpu or cuda[:N] where one is present)")
    torch.set_num_threads(1)
    data = load_fmnist()
    folder = fmnist_dir()
    images = read_idx(folder / FMNIST_FILES["train"][0])
    labels = read_idx(folder / FMNIST_FILES["train"][1])
    times: dict[str, dict[int, list[float]]] = {"host": {}, "chip": {}, "paper": {}, "wo": {}}
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, method, forward in (("host", "to", "host"), ("chip", "to", "chip"), ("wo", "wo", "host")):
                cfg = TrainConfig(task="fmnist-cnn", method=method, forward=forward, backend="emulator")
                runs[name] = Run.open(cfg, Path(tmp) / name, data)
            for b in BATCHES:  # every kind of step in turn, step by step: the same machine conditions for each
                steppers = {name: rramctl_stepper(run, b) for name, run in runs.items()}
                steppers["paper"] = paper_stepper(images, labels, b)
                for name, t in interleaved(steppers, args.steps).items():
                    times[name][b] = t
        finally:
            for run in runs.values():
                run.close()
    med = {k: {b: statistics.median(v) for b, v in d.items()} for k, d in times.items()}
    result: dict[str, Any] = {}
    for b in BATCHES:
        result[f"chip_vs_host_{b}"] = round(med["chip"][b] / med["host"][b], 2)
        result[f"host_vs_paper_{b}"] = round(med["host"][b] / med["paper"][b], 3)
    result["chip_vs_host"] = result["chip_vs_host_128"]
    result["host_vs_paper"] = result["host_vs_paper_128"]
    result["step_ms"] = {k: {str(b): round(v * 1e3, 2) for b, v in d.items()} for k, d in med.items()}
    result["fmnist_65_epochs_wo_h"] = round(65 * math.ceil(55_000 / 128) * med["wo"][128] / 3600, 2)
    setup = {
        "task": "fmnist-cnn, TO (and WO: host products, T_w = 0), emulator backend (default chip model), "
        "dedup_inputs on",
        "clock": "process CPU time, one thread (torch, BLAS), medians; the four kinds of step interleaved",
        "steps": args.steps,
    }
    if args.device != "cpu":
        gpu = gpu_figures(data, images, labels, args.device, args.steps, tempfile.gettempdir())
        result.update(gpu.pop("keys"))
        setup["cuda"] = gpu
    lines = [f"batch {b}: chip {med['chip'][b] * 1e3:.0f} ms, host {med['host'][b] * 1e3:.1f} ms, "
             f"paper {med['paper'][b] * 1e3:.1f} ms; chip/host {result[f'chip_vs_host_{b}']}, "
             f"host/paper {result[f'host_vs_paper_{b}']}; WO {med['wo'][b] * 1e3:.0f} ms" for b in BATCHES]  # fmt: skip
    lines.append(f"65 Fashion-MNIST epochs of WO (host products, batch 128): {result['fmnist_65_epochs_wo_h']} h")
    if args.device != "cpu":
        ms = result["step_ms_cuda"]
        lines += [f"GPU ({setup['cuda']['gpu']}), batch {b}: chip {ms['chip'][str(b)]:.0f} ms, paper "
                  f"{ms['paper'][str(b)]:.1f} ms; chip/paper {result[f'chip_vs_paper_cuda_{b}']}"
                  for b in BATCHES]  # fmt: skip
        lines.append(f"65 Fashion-MNIST epochs with every product on the emulated GPU chip: "
                     f"{result['fmnist_65_epochs_chip_cuda_h']} h")  # fmt: skip
    emit(result, setup, args.out, args.json, lines)


def gpu_figures(
    data: Any, images: np.ndarray, labels: np.ndarray, device: str, steps: int, tmp_root: str
) -> dict[str, Any]:
    """The chip step with the emulator's array math on ``device`` and the paper's step on the same GPU,
    wall-clock medians (three warm-up steps each: CUDA context, kernels, cuDNN plans)."""
    med: dict[str, dict[int, float]] = {"chip": {}, "paper": {}}
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        cfg = TrainConfig(task="fmnist-cnn", forward="chip", backend="emulator", device=device)
        run = Run.open(cfg, Path(tmp) / "chip-gpu", data)
        try:
            for b in BATCHES:
                med["chip"][b] = statistics.median(rramctl_step_seconds(run, b, steps, warmup=3))
        finally:
            run.close()
    for b in BATCHES:
        med["paper"][b] = statistics.median(paper_step_seconds(images, labels, b, steps, device, warmup=3))
    train = 55_000  # Fashion-MNIST training images less the 5,000 held out for validation
    epoch_s = math.ceil(train / 128) * med["chip"][128]
    keys: dict[str, Any] = {f"chip_vs_paper_cuda_{b}": round(med["chip"][b] / med["paper"][b], 2) for b in BATCHES}
    keys["chip_vs_paper_cuda"] = keys["chip_vs_paper_cuda_60"]  # the paper's batch
    keys["step_ms_cuda"] = {k: {str(b): round(v * 1e3, 2) for b, v in d.items()} for k, d in med.items()}
    keys["fmnist_65_epochs_chip_cuda_h"] = round(65 * epoch_s / 3600, 2)
    return {
        "keys": keys,
        "gpu": torch.cuda.get_device_name(device),
        "clock": "wall-clock, torch.cuda.synchronize() before and after each step, medians",
        "chip_step": "emulator array math on the GPU; the network's host-side layers on the CPU, one thread",
    }


if __name__ == "__main__":
    main()
