"""Training methods as types: what a method trains, how it prepares the chip, what each step programs.

``METHODS`` maps ``TrainConfig.method`` to its class; the runner asks the method, never compares names.
:class:`TopologyOptimisation` trains scores and issues mask changes as batched reset/set of pairs
(rramctl.training.topology); :class:`WeightOptimisation` trains a host master copy and write-verifies
pairs toward it (rramctl.training.weightopt).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from rramctl.training import topology, weightopt
from rramctl.training.config import TrainConfig
from rramctl.training.crossbar import MappedNetwork
from rramctl.training.layers import CrossbarLayer, TOLayer, WOLayer
from rramctl.training.networks import CrossbarNet, build_network


class Method(ABC):
    """One training method: its layer type, trained parameters, chip preparation and per-step programming."""

    name: ClassVar[str]

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def make_layer(self, name: str, n_in: int, n_out: int, bits: int) -> CrossbarLayer: ...

    def build(self) -> CrossbarNet:
        return build_network(self.cfg.task, self.cfg.network, self.make_layer)

    @abstractmethod
    def trained(self, net: CrossbarNet) -> list[nn.Parameter]:
        """The parameters the method's optimiser group trains."""

    @property
    @abstractmethod
    def lr(self) -> float: ...

    weight_decay: float = 0.0
    #: whether the chip's state follows from the host's (and is checked against it after each epoch)
    verifies_chip: ClassVar[bool] = False

    @abstractmethod
    def prepare_chip(self, mapped: MappedNetwork) -> None:
        """Form the arrays the placement uses."""

    @abstractmethod
    def init(self, net: CrossbarNet, mapped: MappedNetwork) -> None:
        """Read the formed weights into the network and initialise what is trained."""

    def before_forward(self, net: CrossbarNet, mapped: MappedNetwork) -> dict[str, int]:
        """Bring the chip to what the host wants; returns pairs flipped per layer."""
        return {}

    @abstractmethod
    def after_backward(self, net: CrossbarNet, mapped: MappedNetwork, opt: torch.optim.Optimizer, ts: float) -> int:
        """Optimiser step and its programming; returns updates dropped or held by the threshold rule."""

    def after_epoch(self, net: CrossbarNet, mapped: MappedNetwork, repair: bool = True) -> topology.Agreement | None:
        """Check the chip against the host's network (``repair``: program what disagrees); None: no check."""
        return None


class TopologyOptimisation(Method):
    """Edge-pruning topology optimisation (seed 000 Methods): weights fixed as formed, scores trained."""

    name = "to"
    verifies_chip = True

    def make_layer(self, name: str, n_in: int, n_out: int, bits: int) -> CrossbarLayer:
        return TOLayer(name, n_in, n_out, bits, self.cfg.network.sparsity, self.cfg.to.rank == "magnitude",
                       self.cfg.to.keep_margin, self.cfg.to.scale_pairs == "all")  # fmt: skip

    def trained(self, net: CrossbarNet) -> list[nn.Parameter]:
        return [la.scores for la in _to_layers(net)]

    @property
    def lr(self) -> float:
        return self.cfg.to.lr

    @property
    def weight_decay(self) -> float:  # type: ignore[override]
        return self.cfg.optimiser.weight_decay

    def prepare_chip(self, mapped: MappedNetwork) -> None:
        mapped.electroform(self.cfg.complementary_forming)

    def init(self, net: CrossbarNet, mapped: MappedNetwork) -> None:
        topology.init_from_chip(net, mapped)
        if self.cfg.to.score_init == "kaiming-uniform":
            gen = torch.Generator().manual_seed(self.cfg.seed)
            with torch.no_grad():
                for la in _to_layers(net):
                    bound = 1 / math.sqrt(la.n_in)  # kaiming_uniform_(a=sqrt(5)), as edge-popup's scores
                    la.scores.copy_((torch.rand(la.scores.shape, generator=gen) * 2 - 1) * bound)

    def before_forward(self, net: CrossbarNet, mapped: MappedNetwork) -> dict[str, int]:
        return topology.sync_masks(net, mapped, self.cfg.to.readback)

    def after_backward(self, net: CrossbarNet, mapped: MappedNetwork, opt: torch.optim.Optimizer, ts: float) -> int:
        layers = _to_layers(net)
        before = {la.name: la.scores.detach().clone() for la in layers}
        opt.step()
        if self.cfg.threshold.rule == "relative":
            return topology.hold_small_changes(layers, before, ts)
        return topology.threshold_updates(layers, before, ts)

    def after_epoch(self, net: CrossbarNet, mapped: MappedNetwork, repair: bool = True) -> topology.Agreement | None:
        return topology.verify_chip(net, mapped, repair=repair)


class WeightOptimisation(Method):
    """The weight-optimisation baseline (seed 000 Methods "Weight optimization")."""

    name = "wo"

    def make_layer(self, name: str, n_in: int, n_out: int, bits: int) -> CrossbarLayer:
        return WOLayer(name, n_in, n_out, bits)

    def trained(self, net: CrossbarNet) -> list[nn.Parameter]:
        return [la.master for la in _wo_layers(net)]

    @property
    def lr(self) -> float:
        return self.cfg.wo.lr

    def prepare_chip(self, mapped: MappedNetwork) -> None:
        """Form as TO does (the same random initial weights), then, with ``wo.form_pairs``, the cells left
        unformed, so that write-verify can program both cells of every pair."""
        mapped.electroform(self.cfg.complementary_forming)
        if self.cfg.wo.form_pairs:
            self.unformed_cells = mapped.form_unformed()

    def init(self, net: CrossbarNet, mapped: MappedNetwork) -> None:
        topology.init_from_chip(net, mapped)
        with torch.no_grad():
            for la in _wo_layers(net):
                la.master.copy_(la.weight)

    def after_backward(self, net: CrossbarNet, mapped: MappedNetwork, opt: torch.optim.Optimizer, ts: float) -> int:
        opt.step()
        weightopt.program_updates(_wo_layers(net), mapped, self.cfg.wo)
        return 0


def _to_layers(net: CrossbarNet) -> list[TOLayer]:
    return [la for la in net.crossbar_layers() if isinstance(la, TOLayer)]


def _wo_layers(net: CrossbarNet) -> list[WOLayer]:
    return [la for la in net.crossbar_layers() if isinstance(la, WOLayer)]


METHODS: dict[str, type[Method]] = {m.name: m for m in (TopologyOptimisation, WeightOptimisation)}


def method_for(cfg: TrainConfig) -> Method:
    return METHODS[cfg.method](cfg)
