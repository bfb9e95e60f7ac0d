"""The paper's hardware-TO training of the spoken-digit CRNN, re-implemented from the authors' published script
(CRNN_Spoken_Digit_TO/Spoken_digit_hardware_TO.py; read, not copied) as a reference for ``rramctl prune --task
fsdd-crnn --recipe paper``, as ``paper_hardware_to.py`` is for the Fashion-MNIST CNN; the algorithm both share is in
``paper_reference.py``.  Nothing of rramctl's training code is in it; the data, split and chip are rramctl's, so
that a difference between the two is one of implementation, not of data or device.

The script's choices, reproduced:

- data: the paper's own feature file (23x20 maps in [0, 1], the same values as its ``train_features.npz`` /
  ``test_features.npz``), batch 30 reshuffled each epoch, the last partial batch dropped (none: 1,890 / 30);
- the network: per-batch min-max 3-bit quantisation (``quantization``: signed variant for the input and for the
  time-step mean, after-ReLU variant elsewhere; straight-through gradient);
  C1 64x1x3x2 stride (2, 1) -> 2x2 max-pool -> batch-norm (not affine) -> ReLU -> quantise (64x5x9);
  C2 32x64x3x2 stride (2, 1) -> 2x2 max-pool -> batch-norm -> ReLU -> quantise (32x1x4: 4 time steps of 32);
  R1: h(t) = ReLU(W_ih x(t) / scale_ih + W_hh h(t-1) / scale_hh), h(0) = 0, no bias, h(t) quantised before it
  enters the next step (not the last); the output is the mean over the 4 steps, as the script computes it:
  its first entry is the *quantised* h(1) (the script's ``h_all`` is that tensor, whose ``.data`` the
  quantisation then replaces) and the others unquantised; the mean quantised (signed variant);
  F1 256x128 -> ReLU -> quantise; F2 10x256; log-softmax; the loss cross-entropy of the log-softmax (= NLL);
- every layer's product (R1: each of W_ih and W_hh with its own) divided by mean(set magnitude over every read) /
  sqrt(2 / (fan_in x 0.5)): C1 fan_in 6, C2 384, W_ih 32, W_hh 128, F1 128, F2 256;
- the mask: ``GetSubnet`` with the relative gate (``paper_reference.HeldTopHalf``), called as the script calls it:
  once per layer and forward for C1, C2, F1, F2, once per time step for W_ih and W_hh (after the first step of a
  forward the scores are those of the previous call, so the bits are held); trackers in the training forward only;
  kaiming-uniform scores; the switch count as the script's ``switch_count`` (every mask change);
- plain SGD, lr 0.1, no momentum, no weight decay, constant lr (the script's momentum, weight decay and cosine
  scheduler are commented out);
- the limit starts at 0.009 and falls by (0.009 - 0.007) / 10 at every epoch whose accuracy ties or beats the
  best, without a floor (``--limit-floor`` adds one);
- hardware reads: training on read 0 (the script resets ``count`` to 0 in every training forward); evaluation in
  batches of 9 (the script's test batch), batch i on read i mod 100 (the script's ``count``: 900 / 9 = 100 test
  batches, each on the next pre-read sample); here 100 reads of each pair from the emulated chip (``--reads``).

Deliberate differences:

- the chip: rramctl's emulated chip for the seed (``paper-40nm``, chip seed = seed, as the benchmark harness runs
  ``--recipe paper``), read as ``Run.open`` does; "set" = |w| of the formed pair with the pair's sign (the script:
  the sign of a random initial weight), "reset" = what the pair reads after both cells are reset (the script: the
  reset positive cell minus the *set* negative cell);
- the limit's counter looks at rramctl's validation split (210 of the 2,100 training recordings, the 1,890 others
  train), not at test accuracy; the test set is evaluated every epoch for reporting only;
- the validation split is evaluated to its end (210 = 23 x 9 + 3: a last batch of 3; the script drops a partial
  test batch, and has none);
- the script saves the best test epoch's model and reports it; this reports the final epoch, and the best
  validation epoch (ties: the later) beside it.

    python benchmarks/paper_hardware_crnn.py --features-file F --seeds 0 1 2 --epochs 60 --out runs/bench/crnn-ref.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from paper_reference import Array, Built, Script, ScriptNet, cli, renamed, script_quantise  # noqa: E402
from rramctl.training.data import Dataset, load_task_data  # noqa: E402

LAYERS = ("c1", "c2", "r_ih", "r_hh", "f1", "f2")
SHAPES = {"c1": (64, 1, 3, 2), "c2": (32, 64, 3, 2), "r_ih": (128, 32), "r_hh": (128, 128), "f1": (256, 128),
          "f2": (10, 256)}  # fmt: skip
BITS = 3
STEPS = 4


class ReferenceCRNN(ScriptNet):
    def forward(self, x: torch.Tensor, read: int = 0) -> torch.Tensor:
        la = self.pairs()
        x = script_quantise(x, BITS, after_relu=False)  # (N, 1, 23, 20)
        x = F.max_pool2d(la["c1"].conv(x, read, stride=(2, 1)), 2)
        x = script_quantise(F.relu(self.bn1(x)), BITS, after_relu=True)  # (N, 64, 5, 9)
        x = F.max_pool2d(la["c2"].conv(x, read, stride=(2, 1)), 2)
        x = F.relu(self.bn2(x)).squeeze(2)  # (N, 32, 4)
        seq = script_quantise(x, BITS, after_relu=True).permute(2, 0, 1)  # (4, N, 32): time, batch, features
        h = torch.zeros(seq.shape[1], SHAPES["r_hh"][0])
        outs = []
        for t in range(STEPS):
            w_ih = la["r_ih"].weight(read) / la["r_ih"].scale  # the script divides R1's weights by their scales
            w_hh = la["r_hh"].weight(read) / la["r_hh"].scale
            h = F.relu(F.linear(seq[t], w_ih) + F.linear(h, w_hh))
            if t != STEPS - 1:
                q = script_quantise(h, BITS, after_relu=True)
                outs.append(q if t == 0 else h)  # the script's h_all: the first step quantised, the others not
                h = q
            else:
                outs.append(h)
        x = script_quantise(torch.stack(outs).mean(0), BITS, after_relu=False)
        x = script_quantise(F.relu(la["f1"].linear(x, read)), BITS, after_relu=True)
        return F.log_softmax(la["f2"].linear(x, read), dim=1)


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--features-file", type=Path, required=True, help="the paper's feature file (fsdd_mfcc_23x20.npz)")


def build(
    args: argparse.Namespace,  # noqa: ARG001
    names: list[str],
    set_w: dict[str, Array],
    reset_w: dict[str, Array],
) -> Built:
    net = ReferenceCRNN(SHAPES, *renamed(LAYERS, names, set_w, reset_w))
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    return Built(net, net.pairs(), opt, None)


def data(args: argparse.Namespace) -> tuple[Dataset, dict[str, Any]]:
    ds = load_task_data("fsdd-crnn", source="paper-features", features_file=args.features_file)
    return ds, {"source": "paper-features", "features_file": args.features_file}


SCRIPT = Script(
    script="Spoken_digit_hardware_TO.py", task="fsdd-crnn", epochs=60, batch=30, drop_last=True, eval_batch=9,
    reads=100, limit=(0.009, 0.007, 10), build=build, data=data, add_args=add_args,
)  # fmt: skip

if __name__ == "__main__":
    cli(SCRIPT, __doc__)
