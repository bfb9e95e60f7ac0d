"""The paper's hardware-TO training of the Fashion-MNIST CNN, re-implemented from the authors' published script
(FashionMNIST_hardware_TO.py; read, not copied) as a reference for ``rramctl prune --recipe paper``.

The reference runs the script's algorithm with nothing of rramctl's training code in it, on the same data
split and the same chip weights as an rramctl run, so that a difference between the two is a difference of
implementation, not of data or device:

- weights: one emulated chip formed and read by rramctl exactly as ``Run.open`` does for the same seed and
  chip seed (``paper-40nm``; chip seed = seed since the CRNN reference, before it chip seed 0 for every seed);
  the script's "set" magnitude is |w| of the formed pair, its sign the pair's sign; the script's "reset"
  magnitude is what the same pair reads after both cells are reset (our pruned state: the script subtracts a
  *set* negative cell, which its pre-read data define and our chip does not); one read (the script cycles
  through its pre-read samples at test time: ``--reads``);
- the network: 2x2 max-pool, per-batch min-max 4-bit quantisation of the input and of every ReLU output,
  C1 -> batch-norm (not affine) -> ReLU, C2 -> max-pool -> batch-norm -> ReLU, F1 -> ReLU, F2, log-softmax;
  every layer's output divided by mean(set magnitude) / sqrt(2 / (fan_in x 0.5));
- the mask: top half of |score| (full sort); where the mask was not all-on and |(|s_old| - |s|)| / |s_old| <
  limit the previous bit is held; s_old = the scores at the previous training forward; straight-through
  gradient; kaiming-uniform scores;
- SGD lr 0.1, momentum 0.9, weight decay 5e-4 on the scores, cosine schedule over the epochs (stepped per
  epoch), batch 60, reshuffled each epoch;
- the limit starts at 0.01 and falls by (0.01 - 0.007) / 15 at every epoch whose accuracy is >= the best so
  far, **without a floor** (the script has none); the script looks at test accuracy, this reference at the
  validation split (the 5,000 held-out training images rramctl uses), ``--limit-floor`` adds a floor.

Test accuracy is evaluated every epoch for reporting only.  Evaluation in batches of 60 (the script: 20).
The algorithm (quantisation, gate, limit, chip weights, loop) lives in ``paper_reference.py``, shared with the
CRNN reference ``paper_hardware_crnn.py``.

    python benchmarks/paper_hardware_to.py --seed 0 --epochs 65 --out runs/bench/paper-ref-s0.json
    python benchmarks/paper_hardware_to.py --seeds 0 1 2 --epochs 65 --out runs/bench/paper-ref.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from paper_reference import Array, Built, Script, ScriptNet, cli, renamed, script_quantise  # noqa: E402
from rramctl.training.data import Dataset, load_fmnist  # noqa: E402

LAYERS = ("c1", "c2", "f1", "f2")
SHAPES = {"c1": (64, 1, 3, 3), "c2": (16, 64, 3, 3), "f1": (128, 400), "f2": (10, 128)}
BITS = 4


class ReferenceCNN(ScriptNet):
    def forward(self, x: torch.Tensor, read: int = 0) -> torch.Tensor:
        la = self.pairs()
        x = script_quantise(x, BITS, after_relu=False)
        x = script_quantise(F.relu(self.bn1(la["c1"].conv(x, read))), BITS, after_relu=True)
        x = script_quantise(F.relu(self.bn2(F.max_pool2d(la["c2"].conv(x, read), 2))), BITS, after_relu=True)
        x = script_quantise(F.relu(la["f1"].linear(torch.flatten(x, 1), read)), BITS, after_relu=True)
        return F.log_softmax(la["f2"].linear(x, read), dim=1)


def build(args: argparse.Namespace, names: list[str], set_w: dict[str, Array], reset_w: dict[str, Array]) -> Built:
    net = ReferenceCNN(SHAPES, *renamed(LAYERS, names, set_w, reset_w))
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1, momentum=args.momentum, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    return Built(net, net.pairs(), opt, sched)


def data(args: argparse.Namespace) -> tuple[Dataset, dict[str, Any]]:  # noqa: ARG001
    return load_fmnist(), {}


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--momentum", type=float, default=0.9)


SCRIPT = Script(
    script="FashionMNIST_hardware_TO.py", task="fmnist-cnn", epochs=65, batch=60, drop_last=False, eval_batch=60,
    reads=1, limit=(0.01, 0.007, 15), build=build, data=data, add_args=add_args,
)  # fmt: skip

if __name__ == "__main__":
    cli(SCRIPT, __doc__)
