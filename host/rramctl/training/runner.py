"""A training run that survives interruption: run directory, metrics, safetensors checkpoints, resume.

Layout of a run directory::

    config.json            resolved TrainConfig
    placement.txt          the crossbar placement report
    initial.safetensors    weights read back after forming (for the before/after histograms)
    metrics.json           one record per finished epoch
    checkpoints/LATEST     name of the newest complete checkpoint folder
    checkpoints/epoch-N/   model.safetensors (weights, masks, scores, batch-norm, momentum), state.json,
                           array<a>.npz (chip state)
    summary.json, *.png    written by ``finish``
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, TypeAdapter, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from rramctl import backends
from rramctl.errors import StateError, UsageError
from rramctl.fileio import atomic_write_bytes, atomic_write_text
from rramctl.paths import FileLock, remove_stale_temporaries
from rramctl.training import topology
from rramctl.training.augment import EpochAugmentation
from rramctl.training.chips import open_chips, save_chips
from rramctl.training.config import TrainConfig, saved_config
from rramctl.training.crossbar import MappedNetwork, OpCounts
from rramctl.training.data import Dataset, Split
from rramctl.training.methods import method_for
from rramctl.training.networks import CrossbarNet
from rramctl.training.placement import place


class RunError(StateError):
    """A run directory that cannot be started or resumed as asked."""


@dataclass
class Progress:
    epoch: int = 0  # epochs finished
    threshold_t: int = 0  # t of the threshold learning rule
    best_accuracy: float = -1.0  # best validation accuracy so far (stays -1 without validation)
    best_epoch: int = 0  # the epoch that reached it
    test_at_best: float = -1.0  # test accuracy at that epoch (reported, never used for a decision)
    dropped_updates: int = 0  # score updates dropped (absolute rule) or mask bits held (relative rule)
    flips: dict[str, int] = field(default_factory=dict)
    train_seconds: float = 0.0
    steps: int = 0


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))


def _read_json(path: Path, what: str) -> Any:
    """A JSON file of the run folder, or a RunError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} ({what}) is missing or damaged ({e}); the run folder cannot be resumed as it is") from e


CHECKPOINT_NAME = re.compile(r"epoch-\d{4,}")
RNG_KEY = "rng.torch"  # checkpoint tensor: the state of torch's generator (weight noise, dropout)
RESUMABLE_CHANGES = frozenset({"epochs", "device"})  # settings a resumed run may change


class Run:
    """Train one network with TO or WO on the chosen backend, checkpointing every epoch."""

    resumed = False  # True: continued from a checkpoint of its folder
    restarted = False  # True: its folder held a run cut off before forming was recorded; started again
    repair_on_resume = True  # False after _resume(repair=False), an evaluation: the chip is checked, not programmed
    resume_agreement: topology.Agreement | None = None  # how the chip agreed with the network when resumed
    _folder_lock: FileLock | None = None  # held from Run.open to close

    def __init__(self, cfg: TrainConfig, run_dir: Path, data: Dataset) -> None:
        self.cfg, self.dir, self.data = cfg, Path(run_dir), data
        # the validation split is drawn from the whole training set with its own seed (the same for every
        # training seed); ``subset`` then draws from what is left
        rest, self.val_split = data.train.split_off(cfg.data.validation, cfg.data.validation_seed)
        self.train_split = rest.subset(cfg.subset, cfg.seed)
        self.test_split = data.test.subset(cfg.test_subset, cfg.seed + 1)
        self.raw_inputs = cfg.network.input_quant != "fixed"
        torch.manual_seed(cfg.seed)
        self.method = method_for(cfg)
        self.net: CrossbarNet = self.method.build()
        self.placement = place([la.shape for la in self.net.crossbar_layers()], cfg.n_arrays)
        self.progress = Progress()
        self.metrics: list[dict[str, Any]] = []
        self.mapped: MappedNetwork | None = None
        trained = self.method.trained(self.net)
        host = [p for p in self.net.parameters() if p.requires_grad and all(p is not q for q in trained)]
        self.base_lr = self.method.lr
        groups: list[dict[str, Any]] = [{"params": trained, "base_lr": self.base_lr}]
        if host:  # batch-norm scale/shift (bn_affine): digital, their own learning rate, no decay (ours)
            groups.append({"params": host, "base_lr": cfg.optimiser.bn_lr, "weight_decay": 0.0})
        self.opt = torch.optim.SGD(groups, lr=self.base_lr, momentum=cfg.optimiser.momentum,
                                   weight_decay=self.method.weight_decay)  # fmt: skip

    def chip_model(self) -> object:
        """The emulator's device model of ``chip_model`` (rramsim.config), None for the default or another backend."""
        if self.cfg.chip_model is None or not self.cfg.backend.startswith("emulator"):
            return None
        try:
            return backends.emulator_model(self.cfg.chip_model)
        except UsageError as e:
            raise RunError(str(e)) from e

    def split_record(self) -> dict[str, Any]:
        """The samples each split holds (written to split.json beside config.json)."""
        d = self.cfg.data
        sizes = {"train": len(self.train_split), "validation": len(self.val_split), "test": len(self.test_split)}
        return {"validation_fraction": d.validation, "validation_seed": d.validation_seed, **sizes}

    # ---- start / resume ---------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: TrainConfig, run_dir: Path, data: Dataset) -> Run:
        """A new run in an empty (or absent) folder, or the resumption of the run saved there. The folder
        is locked while the run is open (a second run on it is refused, naming its PID), and temporary
        files a killed run left there are removed first."""
        run_dir = Path(run_dir)
        lock = FileLock(run_dir, "run folder", wait_s=0).acquire()
        try:
            if run_dir.is_dir():
                remove_stale_temporaries(run_dir, recursive=True)
            run = cls._open(cfg, run_dir, data)
        except BaseException:
            lock.release()
            raise
        run._folder_lock = lock
        return run

    @classmethod
    def _open(cls, cfg: TrainConfig, run_dir: Path, data: Dataset) -> Run:
        saved = run_dir / "config.json"
        if saved.exists():
            try:
                old = saved_config(saved.read_text())
            except (OSError, UnicodeDecodeError, ValueError) as e:  # (pydantic's ValidationError is a ValueError)
                raise RunError(f"{saved} is damaged or not a run's configuration ({e}); use a new --run-dir") from e
            # (ours) the epoch count may grow, and the array math may move to another device (the same codes
            # on every device: the same run); any other difference is another run
            diff = {
                k for k in TrainConfig.model_fields if k not in RESUMABLE_CHANGES and getattr(old, k) != getattr(cfg, k)
            }
            if cfg.epochs < old.epochs:  # refused before anything is read or written
                raise RunError(f"{run_dir} holds a run of {old.epochs} epochs; --epochs may grow, not shrink (a "
                               f"shorter run: a new --run-dir)")  # fmt: skip
            if diff:
                raise RunError(f"{run_dir} holds a run with different settings ({', '.join(sorted(diff))}: "
                               f"{_differences(old, cfg, diff)}); use a new --run-dir or the same settings to "
                               "resume (--set section.key=value)")  # fmt: skip
            run = cls(cfg, run_dir, data)
            if not (run_dir / "checkpoints" / "LATEST").exists():
                run._start()  # cut off before forming was recorded: nothing of it is kept, start again
                run.restarted = True
                return run
            run._resume()
            if any(getattr(old, k) != getattr(cfg, k) for k in RESUMABLE_CHANGES):
                _write_json(saved, json.loads(cfg.model_dump_json()))
            return run
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunError(f"{run_dir} is not empty and holds no run (no config.json)")
        run = cls(cfg, run_dir, data)
        run._start()
        return run

    def _start(self) -> None:
        """The chips are opened, then config.json is written (the folder is a run from then on), then
        forming, then its checkpoint at once: from that moment the run resumes with the formed chip."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mapped = MappedNetwork(open_chips(self.cfg.backend, self.placement.arrays_used, self.cfg.chip_seed,
                                               board_config=self.cfg.board_config, model=self.chip_model(),
                                               device=self.cfg.device),
                                    self.placement, self.cfg.dedup_inputs)  # fmt: skip
        atomic_write_text(self.dir / "placement.txt", self.placement.report() + "\n")
        _write_json(self.dir / "split.json", self.split_record())
        _write_json(self.dir / "config.json", json.loads(self.cfg.model_dump_json()))
        self.method.prepare_chip(self.mapped)
        self.method.init(self.net, self.mapped)
        initial = {la.name: la.weight.clone().contiguous() for la in self.net.crossbar_layers()}
        atomic_write_bytes(self.dir / "initial.safetensors", safetensors_bytes(initial))
        self._attach()
        self._save_checkpoint()

    def _resume(self, repair: bool = True) -> None:
        self.repair_on_resume = repair
        latest = self.dir / "checkpoints" / "LATEST"
        if not latest.exists():
            raise RunError(f"{self.dir}: no complete checkpoint to resume from")
        name = latest.read_text(errors="replace").strip()
        ck = self.dir / "checkpoints" / name
        if not CHECKPOINT_NAME.fullmatch(name) or not ck.is_dir():  # never followed outside the run folder
            raise RunError(f"{latest} names {name[:40]!r}, not a checkpoint folder of this run; the run folder is "
                           "damaged: start a new --run-dir")  # fmt: skip
        try:
            tensors = load_file(ck / "model.safetensors")
            missing, unexpected = self.net.load_state_dict(
                {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False
            )
            if RNG_KEY in tensors:  # (checkpoints written before it was saved: the generator as seeded)
                torch.set_rng_state(tensors[RNG_KEY])
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:  # RuntimeError: torch's shape mismatch
            raise RunError(f"{ck / 'model.safetensors'} is damaged or of another network ({e}); the run cannot "
                           "resume from it") from e  # fmt: skip
        # checkpoints older than the residual buffer lack it (the read-back below fills it in), and those older than
        # the saved hold bits lack those (then none are held: as such a run was saved)
        if unexpected or any(not k.endswith((".residual", ".hold")) for k in missing):
            raise RunError(f"{ck}: checkpoint does not match the network (missing {missing}, unexpected {unexpected})")
        for k, p in enumerate(self._optimised()):
            if f"momentum.{k}" in tensors:
                self.opt.state[p]["momentum_buffer"] = tensors[f"momentum.{k}"].clone()
        self.resumed = True
        state = _read_json(ck / "state.json", "checkpoint state")
        try:
            self.progress = TypeAdapter(Progress).validate_python(state["progress"])
            counts = OpCounts.from_dict(TypeAdapter(dict[str, dict[str, int]]).validate_python(state["counts"]))
        except (TypeError, KeyError, ValidationError) as e:
            raise RunError(f"{ck / 'state.json'} does not hold a run's progress and counts ({e})") from e
        try:
            metrics = TypeAdapter(list[dict[str, Any]]).validate_python(
                _read_json(self.dir / "metrics.json", "metrics")
            )
        except ValidationError as e:
            raise RunError(f"{self.dir / 'metrics.json'} is not a list of epoch records ({e})") from e
        self.mapped = MappedNetwork(open_chips(self.cfg.backend, self.placement.arrays_used, self.cfg.chip_seed,
                                               None if self.cfg.on_board else ck, self.cfg.board_config,
                                               self.chip_model(), self.cfg.device),
                                    self.placement, self.cfg.dedup_inputs)  # fmt: skip
        self.mapped.counts = counts
        self.metrics = metrics[: self.progress.epoch]
        self._attach()
        if self.method.verifies_chip:
            self.resume_agreement = self.method.after_epoch(self.net, self.mapped, repair=self.repair_on_resume)

    def _optimised(self) -> list[torch.Tensor]:
        """Every optimised parameter, numbered across the optimiser's groups (checkpoint keys momentum.K)."""
        return [p for group in self.opt.param_groups for p in group["params"]]

    def _attach(self) -> None:
        assert self.mapped is not None
        self.net.set_executor(None if self.cfg.host_forward else self.mapped.matmul)

    def _save_checkpoint(self) -> None:
        assert self.mapped is not None
        root = self.dir / "checkpoints"
        ck = root / f"epoch-{self.progress.epoch:04d}"
        if ck.exists():
            shutil.rmtree(ck)
        ck.mkdir(parents=True)
        tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in self.net.state_dict().items()}
        for k, p in enumerate(self._optimised()):
            buf = self.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{k}"] = buf.clone()
        # torch's generator draws network.weight_noise and network.dropout: a resumed run continues its draws
        tensors[RNG_KEY] = torch.get_rng_state()
        atomic_write_bytes(ck / "model.safetensors", safetensors_bytes(tensors))
        save_chips(self.mapped.chips, ck)
        _write_json(ck / "state.json", {"progress": self.progress.__dict__, "counts": self.mapped.counts.as_dict()})
        _write_json(self.dir / "metrics.json", self.metrics)
        atomic_write_text(root / "LATEST", ck.name)
        for old in root.glob("epoch-*"):
            if old != ck:
                shutil.rmtree(old)

    # ---- training ---------------------------------------------------------------------------
    def schedule(self, epoch: int) -> float:
        """Learning-rate factor per epoch: cosine 1 -> 0 (edge-popup code) or 1 (``optimiser.schedule``)."""
        if self.cfg.optimiser.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * epoch / self.cfg.epochs))

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.schedule(epoch)

    def threshold_at(self, epoch: int) -> float:
        """T_s of the threshold rule now (scaled by the schedule when ``threshold.follows_lr``)."""
        return self.cfg.threshold.at(self.progress.threshold_t, self.schedule(epoch))

    def train(
        self,
        on_step: Callable[[int, int], None] | None = None,
        stop_after_steps: int | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run the remaining epochs. ``on_step(step, steps_per_epoch)`` after each training step and
        ``on_epoch(metrics)`` once an epoch is evaluated and its checkpoint saved (what a resume starts after) drive a
        progress bar; ``stop_after_steps`` stops mid-epoch without saving (tests use it to simulate an interruption)."""
        assert self.mapped is not None
        n = len(self.train_split)
        bs = self.cfg.optimiser.batch_size
        steps_per_epoch = math.ceil(n / bs)
        inputs = self.train_split.inputs(self.raw_inputs)
        done = 0
        while self.progress.epoch < self.cfg.epochs:
            epoch = self.progress.epoch
            for g in self.opt.param_groups:
                g["lr"] = g["base_lr"] * self.schedule(epoch)
            order = np.random.default_rng(self.cfg.seed * 1_000_003 + epoch).permutation(n)
            d = self.cfg.data
            aug = EpochAugmentation.draw(self.cfg.seed, epoch, n, d.flip, d.shift) if d.flip or d.shift else None
            self.net.train()
            t0, loss_sum, correct = time.perf_counter(), 0.0, 0
            flips_before = sum(self.progress.flips.values())
            cost_before = self.mapped.board_cost()
            for s in range(steps_per_epoch):
                idx = order[s * bs : (s + 1) * bs]
                x = inputs[idx] if aug is None else aug.apply(inputs[idx], idx)
                loss, ok = self._step(x, self.train_split.y[idx])
                loss_sum += loss * len(idx)
                correct += ok
                done += 1
                if on_step:
                    on_step(s + 1, steps_per_epoch)
                if stop_after_steps is not None and done >= stop_after_steps:
                    return
            self.progress.train_seconds += time.perf_counter() - t0
            self.progress.steps += steps_per_epoch
            cost_after = self.mapped.board_cost()
            step_cost = (cost_after - cost_before).per(steps_per_epoch) if cost_after and cost_before else None
            self.recalibrate_batchnorm()
            # validation first, then test: on the chip the two draw read noise in this order
            val_acc, val_loss, _ = self.evaluate(self.val_split) if self.validates else (None, None, None)
            acc, test_loss, _ = self.evaluate(self.test_split)  # reported only: no decision looks at it
            new_best = self._count(epoch, val_acc, acc)
            self.progress.epoch += 1
            counts = self.mapped.counts
            ops = counts.programming_ops()
            pair_flips = sum(self.progress.flips.values()) - flips_before
            self.metrics.append({
                "epoch": self.progress.epoch, "lr": self.lr_at(epoch), "train_loss": loss_sum / n,
                "train_accuracy": correct / n, "val_accuracy": val_acc, "val_loss": val_loss,
                "test_accuracy": acc, "test_loss": test_loss,
                "threshold": self.threshold_at(epoch), "new_best": new_best,
                "programming_ops": ops, "programming_ops_total": sum(ops.values()),
                "resets": dict(counts.resets), "sets": dict(counts.sets), "program_pulses": dict(counts.program_pulses),
                "mask_flips": dict(self.progress.flips), "dropped_updates": self.progress.dropped_updates,
                "pair_flips_epoch": pair_flips, "pair_flips_per_step": pair_flips / steps_per_epoch,
                "multiplies": dict(counts.multiplies), "saturated_samples": dict(counts.saturated),
                "seconds_per_step": self.progress.train_seconds / self.progress.steps,
                "board_cost_per_step": step_cost,
            })  # fmt: skip
            self.method.after_epoch(self.net, self.mapped)
            self._save_checkpoint()
            if on_epoch:
                on_epoch(self.metrics[-1])

    @property
    def validates(self) -> bool:
        """Whether the run holds out a validation split (``data.validation`` > 0)."""
        return len(self.val_split) > 0

    def _count(self, epoch: int, val_acc: float | None, test_acc: float) -> bool | None:
        """Whether ``epoch`` (0-based) reached a new best validation accuracy (None without validation), kept
        with its test accuracy; the threshold rule's t advances then (and at a tie with ``threshold.counts_ties``), or
        after each epoch of ``threshold.t_epochs``."""
        new_best = counted = None
        if val_acc is not None:
            new_best = val_acc > self.progress.best_accuracy
            counted = new_best or (self.cfg.threshold.counts_ties and val_acc == self.progress.best_accuracy)
            if new_best:  # (a tie keeps the first best epoch)
                self.progress.best_accuracy = val_acc
                self.progress.best_epoch = epoch + 1
                self.progress.test_at_best = test_acc
        t_epochs = self.cfg.threshold.t_epochs
        if (epoch + 1 in t_epochs) if t_epochs is not None else bool(counted):
            self.progress.threshold_t += 1
        return new_best

    def best_on_validation(self) -> dict[str, Any]:
        """The best-on-validation epoch, its validation and test accuracy; None for each without validation."""
        p, ok = self.progress, self.validates and self.progress.best_epoch > 0
        return {"best_val_epoch": p.best_epoch if ok else None, "best_val_accuracy": p.best_accuracy if ok else None,
                "test_at_best_val": p.test_at_best if ok else None}  # fmt: skip

    def _step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        assert self.mapped is not None
        for k, v in self.method.before_forward(self.net, self.mapped).items():
            self.progress.flips[k] = self.progress.flips.get(k, 0) + v
        logits = self.net(torch.from_numpy(x).float())
        target = torch.from_numpy(y)
        loss = F.cross_entropy(logits, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        ts = self.threshold_at(self.progress.epoch)
        self.progress.dropped_updates += self.method.after_backward(self.net, self.mapped, self.opt, ts)
        return float(loss.detach()), int((logits.argmax(1) == target).sum())

    @torch.no_grad()
    def recalibrate_batchnorm(self) -> None:
        """Re-estimate every batch-norm's running statistics (plain average, not the moving one) over
        ``bn_recalibration_batches`` training batches with the chip's current mask (ours). The moving average
        of training lags behind the mask changes and made test accuracy swing by tens of percent between
        epochs on the small spoken-digit set. The products run where training runs them (chip or host)."""
        n = self.cfg.network.bn_recalibration_batches
        bns = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if n == 0 or not bns:
            return
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        self.net.train()
        for module in self.net.modules():  # only batch-norm in training mode: no dropout, no weight noise
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.training = False
        order = np.random.default_rng(self.cfg.seed * 7919 + self.progress.epoch).permutation(len(self.train_split))
        bs = self.cfg.optimiser.batch_size
        inputs = self.train_split.inputs(self.raw_inputs)
        for s in range(min(n, math.ceil(len(order) / bs))):
            idx = order[s * bs : (s + 1) * bs]
            self.net(torch.from_numpy(inputs[idx]).float())
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        self.net.train()

    @torch.no_grad()
    def evaluate(self, split: Split, batch: int | None = None) -> tuple[float, float, np.ndarray]:
        """Accuracy, mean loss and confusion matrix (rows: true, cols: predicted) with the chip as it is. Batches of
        500, or of the training batch size where inputs or activations are quantised per batch (minmax /
        quantile): a batch's range sets its codes, so evaluation batches must be drawn like training batches."""
        if batch is None:
            per_batch = self.raw_inputs or self.cfg.network.act_quant != "fixed"
            batch = self.cfg.optimiser.batch_size if per_batch else 500
        self.net.eval()
        conf = np.zeros((10, 10), dtype=np.int64)
        loss = 0.0
        inputs = split.inputs(self.raw_inputs)
        for b in range(0, len(split), batch):
            x, y = inputs[b : b + batch], split.y[b : b + batch]
            logits = self.net(torch.from_numpy(x).float())
            loss += float(F.cross_entropy(logits, torch.from_numpy(y), reduction="sum"))
            np.add.at(conf, (y, logits.argmax(1).numpy()), 1)
        return float(np.trace(conf) / max(1, len(split))), loss / max(1, len(split)), conf

    def close(self) -> None:
        if self.mapped is not None:
            self.mapped.close()
        if self._folder_lock is not None:
            self._folder_lock.release()


def _differences(saved: TrainConfig, given: TrainConfig, names: set[str]) -> str:
    """``key saved X, given Y`` for each differing setting of the top-level ``names`` (a section's own keys)."""
    out = []
    for name in sorted(names):
        a, b = getattr(saved, name), getattr(given, name)
        if isinstance(a, BaseModel) and isinstance(b, BaseModel):
            out += [f"{name}.{k} saved {getattr(a, k)!r}, given {getattr(b, k)!r}"
                    for k in type(a).model_fields if getattr(a, k) != getattr(b, k)]  # fmt: skip
        else:
            out.append(f"{name} saved {a!r}, given {b!r}")
    return "; ".join(out)


def load_run(
    run_dir: Path, data_loader: Callable[[TrainConfig], Dataset], *, allow_untrained: bool = False, **overrides: Any
) -> Run:
    """Reopen a saved run (its config.json) from its latest checkpoint; ``overrides`` may change only
    how it is evaluated (forward, test_subset). A run with no finished epoch is refused unless
    ``allow_untrained``."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.json"
    if not saved.exists():
        raise RunError(f"{run_dir} holds no run (no config.json)")
    bad = set(overrides) - {"forward", "test_subset"}
    if bad:
        raise RunError(f"cannot change {', '.join(sorted(bad))} of a saved run")
    if overrides.get("forward", "chip") not in ("chip", "host"):
        raise RunError(f"--forward must be chip or host, got {overrides['forward']!r}")
    try:
        cfg = saved_config(saved.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:  # (pydantic's ValidationError is a ValueError)
        raise RunError(f"{saved} is damaged or not a run's configuration ({e}); the run cannot be evaluated") from e
    data = data_loader(cfg)
    run = Run(cfg.model_copy(update=overrides), run_dir, data)
    run._resume(repair=False)  # evaluated with the chip as saved: pairs that disagree are reported, not programmed
    if run.progress.epoch == 0 and not allow_untrained:
        run.close()
        raise RunError(f"{run_dir} has no finished training epoch: its network is untrained; resume it with "
                       "`rramctl prune` (same settings), or give --allow-untrained to evaluate it anyway")  # fmt: skip
    return run


def finish(run: Run, out_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate on the test split with the chip as it is, write summary.json and the figures to
    ``out_dir`` (default: the run folder; ``rramctl infer`` gives its own, so training outputs stay)."""
    from rramctl.training import plots

    out = run.dir if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    assert run.mapped is not None
    cost_before = run.mapped.board_cost()
    acc, loss, conf = run.evaluate(run.test_split)
    cost_after = run.mapped.board_cost()
    layers = run.net.crossbar_layers()
    initial = load_file(run.dir / "initial.safetensors")
    before = np.concatenate([initial[la.name].numpy().ravel() for la in layers])
    after = np.concatenate([run.mapped.read_weights(la.name).ravel() for la in layers])
    counts = run.mapped.counts
    ops = counts.programming_ops()
    summary = {
        "task": run.cfg.task, "method": run.cfg.method, "backend": run.cfg.backend,
        "forward": "host" if run.cfg.host_forward else "chip", "epochs_done": run.progress.epoch,
        "steps": run.progress.steps,
        "test_samples": len(run.test_split), "test_accuracy": acc, "test_loss": loss,
        "best_epoch_accuracy": run.best_on_validation()["best_val_accuracy"], "confusion": conf.tolist(),
        "programming_ops": ops, "programming_ops_total": sum(ops.values()),
        "resets": dict(counts.resets), "sets": dict(counts.sets), "program_pulses": dict(counts.program_pulses),
        "multiplies": dict(counts.multiplies), "pairs_below_1us_fraction": float(np.mean(np.abs(after) < 1.0)),
        "saturated_samples": dict(counts.saturated),
        "seconds_per_step": run.progress.train_seconds / max(1, run.progress.steps),
        # estimated board time and energy of one test inference on this path (emulator model; host forward
        # reads no products from the chip, so only a chip-forward test prices the array reads)
        "board_cost_per_inference": (cost_after - cost_before).per(len(run.test_split))
        if cost_after and cost_before else None,
    }  # fmt: skip
    if run.resume_agreement is not None and not run.repair_on_resume:  # an evaluation of the chip as saved
        summary["chip_disagreement"] = {"kept_pairs_off_their_weight": run.resume_agreement.kept_wrong,
                                        "pruned_pairs_on": run.resume_agreement.pruned_wrong}  # fmt: skip
    _write_json(out / "summary.json", summary)
    title = f"{run.cfg.task} {run.cfg.method.upper()} ({run.cfg.backend})"
    if run.metrics:
        plots.accuracy_curves(run.metrics, out / "accuracy.png", title)
    plots.weight_histograms(before, after, out / "weights_hist.png")
    plots.confusion(conf, out / "confusion.png", f"{title}: {100 * acc:.1f} %")
    return summary
