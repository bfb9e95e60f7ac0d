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
medians over steps on distinct batches.

    python benchmarks/train_step.py [--steps N] [--json] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread: CPU time = the work done
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
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
    """Per-tensor uniform quantisation over [min, max] through torch's quantised tensors."""
    scale = float((x.max() - x.min()) / (2**bits - 1)) or 1.0
    if after_relu:
        q = torch.quantize_per_tensor(x, scale=scale, zero_point=0, dtype=torch.quint8)
        return q.int_repr().float() * scale
    lo = float(x.min())
    q = torch.quantize_per_tensor(x - lo, scale=scale, zero_point=0, dtype=torch.qint32)
    return q.int_repr().float() * scale + lo


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


def paper_step_seconds(images: np.ndarray, labels: np.ndarray, batch: int, steps: int) -> list[float]:
    """CPU seconds of the paper's software-TO step on normalised 28x28 images."""
    torch.manual_seed(1)
    net = PaperCNN()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=5e-4)
    x_all = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None])
    y_all = torch.from_numpy(labels.astype(np.int64))
    out = []
    for s in range(steps + 1):  # the first step warms up
        x, y = x_all[s * batch : (s + 1) * batch], y_all[s * batch : (s + 1) * batch]
        t0 = time.process_time()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if s:
            out.append(time.process_time() - t0)
    return out


# ---- rramctl's steps ----------------------------------------------------------------------------------
def rramctl_step_seconds(run: Run, batch: int, steps: int) -> list[float]:
    """CPU seconds of ``steps`` training steps of ``batch`` samples (after one warm-up step)."""
    inputs = run.train_split.inputs(run.raw_inputs)
    out = []
    for s in range(steps + 1):
        idx = np.arange(s * batch, (s + 1) * batch)
        t0 = time.process_time()
        run._step(inputs[idx], run.train_split.y[idx])
        if s:
            out.append(time.process_time() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per figure (after one warm-up)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_fmnist()
    folder = fmnist_dir()
    images = read_idx(folder / FMNIST_FILES["train"][0])
    labels = read_idx(folder / FMNIST_FILES["train"][1])
    times: dict[str, dict[int, list[float]]] = {"host": {}, "chip": {}, "paper": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for forward in ("host", "chip"):
            cfg = TrainConfig(task="fmnist-cnn", forward=forward, backend="emulator")
            run = Run.open(cfg, Path(tmp) / forward, data)
            try:
                for b in BATCHES:
                    times[forward][b] = rramctl_step_seconds(run, b, args.steps)
            finally:
                run.close()
    for b in BATCHES:
        times["paper"][b] = paper_step_seconds(images, labels, b, args.steps)
    med = {k: {b: statistics.median(v) for b, v in d.items()} for k, d in times.items()}
    result: dict[str, Any] = {}
    for b in BATCHES:
        result[f"chip_vs_host_{b}"] = round(med["chip"][b] / med["host"][b], 2)
        result[f"host_vs_paper_{b}"] = round(med["host"][b] / med["paper"][b], 3)
    result["chip_vs_host"] = result["chip_vs_host_128"]
    result["host_vs_paper"] = result["host_vs_paper_128"]
    result["step_ms"] = {k: {str(b): round(v * 1e3, 2) for b, v in d.items()} for k, d in med.items()}
    setup = {
        "task": "fmnist-cnn, TO, emulator backend (default chip model), dedup_inputs on",
        "clock": "process CPU time, one thread (torch, BLAS), medians",
        "steps": args.steps,
    }
    lines = [f"batch {b}: chip {med['chip'][b] * 1e3:.0f} ms, host {med['host'][b] * 1e3:.1f} ms, "
             f"paper {med['paper'][b] * 1e3:.1f} ms; chip/host {result[f'chip_vs_host_{b}']}, "
             f"host/paper {result[f'host_vs_paper_{b}']}" for b in BATCHES]  # fmt: skip
    emit(result, setup, args.out, args.json, lines)


if __name__ == "__main__":
    main()
