"""Weight-optimisation baseline on the same chip (seed 000 Methods "Weight optimization"): gradient
updates accumulate in a host master copy; a pair is programmed (write-verify, chip.program) toward the
master when the two differ by more than T_w (T_w = 0: free updates, every changed pair every step), each
step's change capped (ours), and the chip's programmed conductances are read back as the weights the
next forward pass uses (the gradient reaches the master straight through, layers.ChipWeight)."""

from __future__ import annotations

import numpy as np
import torch

from rramctl.training.config import WOConfig
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.layers import WOLayer


def program_updates(layers: list[WOLayer], mapped: MappedNetwork, cfg: WOConfig) -> dict[str, int]:
    """Cap and clip the master weights, program the pairs whose change exceeds T_w; returns pairs per layer.

    Pair encoding (ours): w >= 0 -> G+ = floor + w, G- = floor; w < 0 -> G+ = floor, G- = floor - w."""
    programmed = {}
    with torch.no_grad():
        for layer in layers:
            layer.master.clamp_(-cfg.max_us, cfg.max_us)
            delta = layer.master - layer.weight  # the host master accumulates every update, however small
            idx = (delta.abs() > cfg.tw).nonzero().numpy() if cfg.tw > 0 else (delta != 0).nonzero().numpy()
            programmed[layer.name] = len(idx)
            if not len(idx):
                continue
            step = delta.clamp(-cfg.cap_us, cfg.cap_us).numpy()[idx[:, 0], idx[:, 1]]
            w = layer.weight.numpy()[idx[:, 0], idx[:, 1]].astype(np.float64) + step
            mapped.program(layer.name, idx, cfg.floor_us + np.maximum(w, 0), cfg.floor_us + np.maximum(-w, 0),
                           cfg.tolerance)  # fmt: skip
            fresh = mapped.read_weights(layer.name)
            layer.weight[idx[:, 0], idx[:, 1]] = torch.from_numpy(fresh[idx[:, 0], idx[:, 1]]).float()
    return programmed
