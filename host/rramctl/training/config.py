"""The configuration of a training run (pydantic; saved resolved with the run as config.json).

A run is configured by nested sections (optimiser, threshold, to, wo, network, data) beside a few
top-level settings (task, method, recipe, backend, ...). ``recipe`` fills in defaults: ``rramctl``
(ours) or ``paper`` (the choices of the paper's public code, /docs/training.md "Recipes"); any value
given explicitly wins over the recipe's. A run can be loaded from a TOML file (:func:`load_toml`) and
changed by ``section.key=value`` assignments (:func:`apply_assignments`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from typing_extensions import Self

from rramctl.errors import UsageError
from rramctl.seeds import SEED_LIMIT, Seed
from rramctl.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Task = Literal["fmnist-cnn", "fsdd-crnn"]
Recipe = Literal["rramctl", "paper"]
MethodName = Literal["to", "wo"]


class ConfigFileError(UsageError):
    """A training configuration file or assignment that cannot be used."""


class _Section(Settings):
    """A section of the training configuration (rramctl.settings.Settings: strict, frozen)."""

    def _refuse_if(self, wrong: bool, message: str) -> Self:
        """For an ``after`` validator: the section itself, or one clear error."""
        if wrong:
            raise ValueError(message)
        return self


class OptimiserConfig(_Section):
    """SGD + momentum with a cosine learning-rate schedule (edge-popup code, Ramanujan et al.; seed 000 ref. 63).
    The learning rate of the trained parameters belongs to the method (``to.lr``, ``wo.lr``)."""

    batch_size: int = Field(128, ge=1, description="(ours) samples per step; the paper's code: 60 (CNN), 30 (CRNN)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, description="on TO scores (none on WO conductances, ours)")
    bn_lr: float = Field(0.05, gt=0, description="(ours) learning rate of the batch-norm scale/shift (bn_affine)")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine",
        description="learning rate per epoch: cosine 1 -> 0 (edge-popup code; the paper's CNN code) or constant "
        "(the paper's CRNN hardware-TO code, which also trains without momentum and weight decay)",
    )


class ThresholdConfig(_Section):
    """Threshold learning rule (seed 000 Methods): T_s(t) = max(T_end, T_init - step * t); t += 1 per new best
    validation accuracy (or after each epoch of ``t_epochs``)."""

    rule: Literal["absolute", "relative"] = Field(
        "absolute",
        description="absolute (ours): a score change |ds| < T_s is dropped; relative (the paper's code): where "
        "| |s| - |s_old| | < T_s * |s_old| (float32; never where s_old = 0) the pair's mask bit is held while the "
        "score keeps its update",
    )
    init: float = Field(
        5e-3, ge=0, description="T_init; (ours) 5e-3 absolute; the paper's code, relative: 0.01 (CNN), 0.009 (CRNN)"
    )
    end: float = Field(5e-4, ge=0, description="T_end; (ours) 5e-4 absolute, the paper's code 0.007 relative")

    @model_validator(mode="after")
    def _order(self) -> ThresholdConfig:
        return self._refuse_if(self.end > self.init, f"threshold.end ({self.end}) must not exceed threshold.init")

    step: float = Field(
        5e-4,
        ge=0,
        description="alpha, the decrease per new best validation accuracy; (ours) 5e-4, the paper's code "
        "(T_init - T_end) / 15 (CNN) or / 10 (CRNN) = 2e-4",
    )
    follows_lr: bool = Field(
        False,
        description="(ours) scale T_s with the cosine learning-rate schedule, so that the small updates of the "
        "last epochs are not all dropped (t still advances as the counter says)",
    )
    t_epochs: tuple[int, ...] | None = Field(
        None,
        description="(ours) the epochs after which t advances, in place of the new best validation accuracies: "
        "for a run without validation (data.validation = 0), e.g. the course t took on validation; a TOML "
        "array or a comma-separated list",
    )

    @field_validator("t_epochs", mode="before")
    @classmethod
    def _t_epochs(cls, v: Any) -> Any:
        if isinstance(v, str):  # the command line's --t-epochs 1,2,5
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @field_validator("t_epochs")
    @classmethod
    def _t_epochs_order(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and (any(e < 1 for e in v) or list(v) != sorted(set(v))):
            raise ValueError(f"threshold.t_epochs must be increasing epoch numbers >= 1, got {list(v)}")
        return v

    floor: bool = Field(
        True,
        description="T_end is a floor under T_s (seed 000 Methods: T_s = max(T_end, ...), ours too); false: the "
        "paper's code, where T_s keeps falling by the step past T_end, below 0 too (then the relative rule holds "
        "nothing), and T_end has no effect (the paper's code derives its step from it, (T_init - T_end) / 15: here "
        "threshold.step is given)",
    )
    counts_ties: bool = Field(
        False,
        description="t also advances at an epoch whose validation accuracy equals the best so far (the paper's "
        "code: `if best <= correct`); false (ours): only a strictly better one",
    )

    @property
    def counts_on_validation(self) -> bool:
        """Whether T_s depends on the counter of new best validation accuracies (it can fall, no t_epochs)."""
        return self.t_epochs is None and self.step > 0 and (self.init > self.end or not self.floor)

    @property
    def steps_to_floor(self) -> int | None:
        """How many advances of t take T_s from T_init down to its floor T_end (later ones change nothing); None
        where T_s has no floor or never moves."""
        if not self.floor or self.step <= 0:
            return None
        return math.ceil((self.init - self.end) / self.step - 1e-9)

    def at(self, t: int, lr_fraction: float = 1.0) -> float:
        """T_s(t); ``lr_fraction`` (the schedule's lr / base lr) scales it when ``follows_lr``."""
        ts = self.init - self.step * t
        if self.floor:
            ts = max(self.end, ts)
        return ts * lr_fraction if self.follows_lr else ts


class TOConfig(_Section):
    """Edge-pruning topology optimisation (seed 000 Methods)."""

    lr: float = Field(3.0, gt=0, description="score learning rate; (ours) 3.0, the paper's code 0.1")
    score_init: Literal["abs-weight", "kaiming-uniform"] = Field(
        "abs-weight",
        description="abs-weight (seed 000 Methods: the weight serves as the score; |w| scaled to [0, 1] per layer, "
        "ours); kaiming-uniform (the paper's code and edge-popup: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), independent "
        "of the weights, drawn from the run's seed)",
    )
    rank: Literal["score", "magnitude"] = Field(
        "score", description="keep the top-k by score (ours) or by |score| (edge-popup's GetSubnet, the paper's code)"
    )
    keep_margin: float = Field(
        0.0,
        ge=0,
        description="(ours) hysteresis of the mask: a pruned pair takes a kept pair's place only when its score "
        "exceeds the kept pair's by more than keep_margin (the top-k of score + keep_margin x mask; still exactly k "
        "pairs kept); it stops pairs near the top-k cut from being reset and set again as their scores jitter. "
        "0: the plain top-k",
    )
    scale_pairs: Literal["kept", "all"] = Field(
        "kept",
        description="the pairs whose mean |G| scales the products of a layer without batch-norm (network.batch_norm): "
        "kept (ours: the pairs that conduct now) or all (the paper's code: hardware_weight_one.mean(), the set "
        "magnitude of every pair, pruned ones included, fixed over the run)",
    )
    readback: Literal["layer", "pairs"] = Field(
        "pairs",
        description="(ours) what is read back after each mask sync: pairs (only the cells of the flipped pairs, by a "
        "verify-only PROGRAM; on a board ~500x fewer ADC conversions a step on Fashion-MNIST) or layer (every cell "
        "of each changed layer, one READ per tile half: the only way before this setting, so a saved run without it "
        'reopens with layer). The same weights where reads are exact (docs/training.md "What is read back")',
    )


class WOConfig(_Section):
    """Weight-optimisation baseline (seed 000 Methods "Weight optimization")."""

    lr: float = Field(
        10000.0,
        gt=0,
        description="(ours) learning rate of the weights in uS (batch-norm makes each layer scale-invariant, so it "
        "is large: spoken digits, software model, 10 epochs: 30 -> 20 %, 1000 -> 82 %, 3000 -> 90 %, 10000 -> 95 %)",
    )
    tw: float = Field(0.0, ge=0, description="program a cell pair only when |dw| > Tw (uS); 0 = free updates")
    cap_us: float = Field(5.0, gt=0, description="(ours) largest weight change per step (uS)")
    max_us: float = Field(40.0, gt=0, description="(ours) weights are kept within +-max_us")
    floor_us: float = Field(1.0, gt=0, description="(ours) conductance of the idle cell of a pair")

    @model_validator(mode="after")
    def _floor(self) -> WOConfig:
        return self._refuse_if(self.floor_us >= self.max_us, "wo.floor_us must be below wo.max_us")

    tolerance: float = Field(0.1, gt=0, lt=1, description="write-verify margin (seed 000 Methods: ~10 %)")
    form_pairs: bool = Field(
        True,
        description="(ours) form both cells of every pair before training: write-verify needs formed cells, an "
        "unformed one takes the whole pulse cap and stays off",
    )


class NetworkConfig(_Section):
    """The host side of the network (batch-norm, activation and input quantisation, pruning fraction)."""

    sparsity: float = Field(0.5, description="fraction of pairs pruned per layer (seed 000: 0.5)")
    act_clip: float = Field(3.0, gt=0, description="(ours) activations clipped to [0, act_clip] before quantising")
    act_quant: Literal["fixed", "minmax"] = Field(
        "fixed",
        description="fixed (ours): activations clipped to [0, act_clip], codes of a fixed step; minmax (the paper's "
        "hardware code): each batch's activations scaled by their own maximum to the code range, the next layer's "
        "products multiplied back by that step on the host. With minmax, a layer without batch-norm divides its "
        "products by the paper's mean|G| / sqrt(2 / kept inputs per output)",
    )
    batch_norm: Literal["every-layer", "conv-only"] = Field(
        "every-layer",
        description="every-layer (ours): batch-norm after every crossbar layer; conv-only (the paper's code): after "
        "C1/C2 only, the other layers' products divided by a fixed scale (mean|G| x sqrt(kept inputs per output))",
    )
    bn_affine: bool = Field(False, description="(ours) learn batch-norm scale/shift on the host")
    bn_recalibration_batches: int = Field(
        20, ge=0, description="(ours) training batches that re-estimate batch-norm statistics before each evaluation"
    )
    input_quant: Literal["fixed", "minmax", "quantile"] = Field(
        "fixed",
        description="fixed (ours): the data's own codes (top bits of each pixel; MFCC scaled by the training set); "
        "minmax (the paper's hardware code, CNN and CRNN): each batch scaled by its own min..max to the input bits; "
        "quantile (ours): by its 1st..99th percentile",
    )
    time_aggregation: Literal["last", "mean"] = Field(
        "last", description="CRNN: the recurrent layer's output is h(T) (ours) or the mean over time steps (paper)"
    )
    conv_layout: Literal["pooled", "strided"] = Field(
        "pooled",
        description="CRNN: pooled (ours): stride-1 convolutions, batch-norm and ReLU, then a (2,1) and an adaptive "
        "max-pool; strided (the paper's code): convolutions of stride (2, 1), each followed by a max-pool (2x2 after "
        "C1, to the 4 time steps after C2) and then batch-norm and ReLU (23x20 maps: 64x11x19 -> 64x5x9, 32x2x8 -> "
        "32x1x4); the same weight shapes. The paper recipe's value; the rramctl recipe's default on both spoken-digit "
        "sources (the paper's features and our MFCC maps, each chosen on validation)",
    )
    pool_order: Literal["after-relu", "before-norm"] = Field(
        "after-relu",
        description="CNN: where C2's 2x2 max-pool sits: after-relu (ours): C2 -> batch-norm -> ReLU -> max-pool; "
        "before-norm (the paper's code): C2 -> max-pool -> batch-norm -> ReLU. With batch-norm after every layer "
        "the two differ only in the statistics; without it after F1 and F2 (batch_norm = conv-only) the pooled maxima "
        "of normalised maps are larger and rarely zero, so F1 and F2 see larger inputs than the paper's network",
    )
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="(ours) fraction of the activation codes entering the fully connected layers (F1 and F2) set to "
        "0 in each training step; the next products are multiplied by 1 / (1 - dropout) on the host, "
        "so the chip still sees integer codes. Off in evaluation and in the batch-norm re-estimation",
    )
    weight_noise: float = Field(
        0.0,
        ge=0,
        description="(ours) in the manner of read noise: relative standard deviation of a fresh Gaussian factor on "
        "every weight of the host products of each training step (the paper's code draws a fresh weight from "
        "measured read-noise data at every read); the chip's own products keep the chip's noise. Off in evaluation "
        "and in the batch-norm re-estimation. The rramctl recipe's default on the paper's features: 0.1",
    )

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"sparsity must lie in (0, 1), got {v}")
        return v


class DataConfig(_Section):
    """Where the data come from and how the training recordings/images are split."""

    data_dir: Path | None = Field(None, description="folder with the data (Fashion-MNIST IDX files / FSDD recordings)")
    source: Literal["standard", "paper-features"] = Field(
        "standard",
        description="spoken digits: standard (our MFCC maps of the FSDD recordings, 2,700/300) or paper-features "
        "(the paper's own 23x20 feature file and 2,100/900 split, given as features_file)",
    )
    features_file: Path | None = Field(None, description="npz with X_train, y_train, X_test, y_test (paper-features)")
    validation: float = Field(
        1 / 12,
        ge=0,
        lt=1,
        description="fraction of the training set held out for validation (Fashion-MNIST: 5,000 of 60,000); 0: "
        "none, train on every training sample (a refit with settings chosen on validation)",
    )
    validation_seed: Seed = Field(0, description="seed of the validation draw (the same for every training seed)")
    flip: bool = Field(False, description="(ours) Fashion-MNIST: flip each training image left-right at random "
                       "(p = 0.5, drawn per epoch from the run's seed; rramctl.training.augment)")  # fmt: skip
    shift: int = Field(0, ge=0, le=4, description="(ours) Fashion-MNIST: move each training image by up to this "
                       "many pixels of the 14x14 input map down/up and right/left at random, zero-filled "
                       "(0: none)")  # fmt: skip

    @model_validator(mode="after")
    def _features(self) -> DataConfig:
        if self.source == "paper-features" and self.features_file is None:
            raise ValueError("data.source = paper-features needs data.features_file")
        return self


def recipe_defaults(recipe: str, task: str, source: str = "standard") -> dict[str, Any]:
    """Section defaults a recipe sets for a task and its data source (values given explicitly win)."""
    if recipe == "paper":
        # the paper's hardware-TO scripts (FashionMNIST_hardware_TO.py, Spoken_digit_hardware_TO.py): the CNN trains
        # with momentum 0.9, weight decay 5e-4 and a cosine schedule, the CRNN with plain SGD at a constant lr
        cnn = task == "fmnist-cnn"
        optimiser = {"batch_size": 60} if cnn else {"batch_size": 30, "momentum": 0.0, "weight_decay": 0.0,
                                                    "schedule": "constant"}  # fmt: skip
        return {
            "optimiser": optimiser,
            "threshold": {
                "rule": "relative",
                "init": 0.01 if cnn else 0.009,
                "end": 0.007,
                "step": 2e-4,
                "follows_lr": False,
                "floor": False,
                "counts_ties": True,
            },  # fmt: skip
            "to": {"lr": 0.1, "score_init": "kaiming-uniform", "rank": "magnitude", "scale_pairs": "all"},
            # (ours: the paper's WO code is not public) without batch-norm after every layer the layers are not
            # scale-invariant and 10,000 uS per unit gradient overshoots: spoken digits, software model, seed 0,
            # 2 epochs, best validation 18 % (10,000), 38 % (3,000), 49 % (1,000), 38 % (100)
            "wo": {"lr": 1000.0},
            "network": {
                "batch_norm": "conv-only",
                "bn_affine": False,
                "bn_recalibration_batches": 0,
                "input_quant": "minmax",
                "act_quant": "minmax",
                "time_aggregation": "mean",
                "pool_order": "before-norm",
                "conv_layout": "strided",
            },  # fmt: skip
        }
    # (ours) on Fashion-MNIST the learned batch-norm and the lr-scaled threshold add 1.6 and 0.6 points after
    # 8 epochs (docs/training.md)
    if task == "fmnist-cnn":
        # (ours) to.keep_margin 0.1: the programming budget's rule on validation at 65 epochs (docs/training.md "A
        # hysteresis on the mask, Fashion-MNIST at 65 epochs")
        return {"network": {"bn_affine": True}, "threshold": {"follows_lr": True}, "to": {"keep_margin": 0.1}}
    if source == "paper-features":
        # (ours) chosen on the 210 validation recordings of the paper's feature file, 60 epochs, seeds 0-2
        # (docs/training.md "The sweep toward 98.1 %")
        return PAPER_FEATURES_DEFAULTS
    # (ours) chosen on validation: the 270 validation recordings of our own MFCC maps, 60 epochs, seeds 0-2
    # (docs/training.md "Our MFCC pipeline: the defaults on validation")
    return MFCC_DEFAULTS


# validation, mean over seeds 0-2 of the final epoch / of the last 10 epochs: 98.41 / 98.30 % with the lr-scaled
# threshold alone (97.94 / 98.25 % without), 98.89 / 98.76 % with the strided front end and weight noise 0.1.
# to.keep_margin 0.03: the programming budget's rule on validation (docs/training.md "A hysteresis on the mask, spoken
# digits"): last 10 epochs 97.90 +- 0.52 % against 97.78 +- 0.86 % without, 2,728 pair flips an epoch after the
# initial prune against 7,670 (the paper's code: 5,817)
PAPER_FEATURES_DEFAULTS: dict[str, Any] = {
    "threshold": {"follows_lr": True},
    "network": {"conv_layout": "strided", "weight_noise": 0.1},
    "to": {"keep_margin": 0.03},
}

# (ours) chosen on validation (our MFCC maps, data.source = standard; 270 recordings), mean over seeds 0-2 of the
# final epoch / of the last 10 epochs: 97.78 / 97.16 % with the strided front end alone, 96.05 / 96.22 % with the
# former defaults; the lr-scaled threshold and weight noise 0.1 stay off (strided with them: 97.28 / 96.89 % and
# 97.16 / 97.40 %)
MFCC_DEFAULTS: dict[str, Any] = {"network": {"conv_layout": "strided"}}


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class TrainConfig(Settings):
    """Everything that decides a run. Values marked (ours) are our choices, not the paper's."""

    task: Task
    method: MethodName = Field("to", description="to: edge-pruning topology optimisation; wo: weight optimisation")
    recipe: Recipe = Field("rramctl", description="defaults: rramctl (ours) or paper (the paper's code)")
    backend: str = Field(
        "emulator",
        description="emulator (the bit-exact chip emulator behind the real driver), software (float model), "
        "pynq (the board this runs on) or serial:PORT[@BAUD] (a board agent)",
    )
    board_config: Path | None = Field(None, description="board configuration TOML for the chip (docs/hardware.md)")
    chip_model: str | None = Field(
        None,
        description="emulator: the chip's device model, a preset (paper-40nm, ideal: the noise-free rules) or a TOML "
        "file (rramctl calibrate); None: the emulator's default (paper-40nm). Other backends ignore it",
    )
    device: str = Field(
        "cpu",
        description="emulator: where its array math runs (cpu, numpy, torch-cpu, cuda, cuda:N); the same codes on "
        "every device, so the same run. Other backends ignore it",
    )
    forward: Literal["chip", "host"] = Field(
        "chip",
        description="chip: every matrix product through chip.multiply_pairs; host: float products of the "
        "read-back weights (fast development path; always so on the software backend)",
    )
    epochs: int = Field(10, ge=1)
    subset: int | None = Field(None, ge=1, description="train on this many samples (random, seeded)")
    test_subset: int | None = Field(None, ge=1, description="evaluate on this many test samples")
    seed: Seed = Field(0, description="data order, subsets, score initialisation and host-side draws")
    chip_seed: Seed = Field(0, description="array a is formed with seed chip_seed + a (all below 2**64)")
    complementary_forming: bool = Field(
        True,
        description="seed 000 Results: G- cells formed to the state complementary to G+ (pairs +-G); "
        "False forms both halves independently",
    )
    n_arrays: int = Field(1, ge=1, description="512x512 arrays the network may be placed on")
    dedup_inputs: bool = Field(True, description="(ours) multiply each distinct input vector of a batch once")
    optimiser: OptimiserConfig = OptimiserConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    to: TOConfig = TOConfig()
    wo: WOConfig = WOConfig()
    network: NetworkConfig = NetworkConfig()
    data: DataConfig = DataConfig()

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("task") in ("fmnist-cnn", "fsdd-crnn"):
            task = data["task"]
            spoken = {"data": {"validation": 0.1}} if task == "fsdd-crnn" else {}  # (ours) 1 in 10 recordings
            given = data.get("data")
            source = given.get("source") if isinstance(given, dict) else getattr(given, "source", None)
            defaults = recipe_defaults(str(data.get("recipe", "rramctl")), task, str(source or "standard"))
            return merge(merge(spoken, defaults), data)
        return data

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if v not in ("emulator", "software", "pynq") and not (v.startswith("serial:") and len(v) > 7):
            raise ValueError(f"unknown backend {v!r}; choose emulator, software, pynq or serial:PORT[@BAUD]")
        return v

    @model_validator(mode="after")
    def _seeds_and_data(self) -> TrainConfig:
        if self.chip_seed + self.n_arrays > SEED_LIMIT:  # array a is formed with seed chip_seed + a
            raise ValueError(f"chip_seed + n_arrays - 1 = {self.chip_seed + self.n_arrays - 1} (the last array's "
                             "seed) must be below 2**64")  # fmt: skip
        if self.task != "fsdd-crnn" and self.data.source == "paper-features":
            raise ValueError(f"data.source = paper-features is the paper's spoken-digit feature file (task "
                             f"fsdd-crnn); {self.task} takes data.source = standard")  # fmt: skip
        if self.task != "fmnist-cnn" and (self.data.flip or self.data.shift):
            raise ValueError("data.flip and data.shift augment Fashion-MNIST images; spoken-digit feature maps are "
                             "not left-right symmetric nor shift-invariant in frequency")  # fmt: skip
        if self.data.features_file is not None and self.data.source != "paper-features":
            raise ValueError("data.features_file is read only with data.source = paper-features (spoken digits); "
                             "give that too, or leave the file out")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _validation_needed(self) -> TrainConfig:
        # the threshold rule is TO's (WO's step ignores T_s); a rule that looks at accuracy needs validation
        if self.data.validation == 0 and self.method == "to" and self.threshold.counts_on_validation:
            raise ValueError(
                "data.validation = 0 holds out no validation set, but the threshold rule's t advances at each new "
                "best validation accuracy (threshold.step > 0, and init > end or no floor); give threshold.t_epochs "
                "(the epochs after which t advances), a constant T_s (threshold.step = 0) or a validation fraction"
            )
        return self

    @property
    def on_board(self) -> bool:
        """A physical chip: its state lives on the chip, not in the run's checkpoints."""
        return self.backend not in ("emulator", "software")

    @property
    def host_forward(self) -> bool:
        return self.backend == "software" or self.forward == "host"


SECTIONS: dict[str, type[_Section]] = {
    "optimiser": OptimiserConfig,
    "threshold": ThresholdConfig,
    "to": TOConfig,
    "wo": WOConfig,
    "network": NetworkConfig,
    "data": DataConfig,
}


def leaf_fields() -> dict[str, tuple[str | None, str, Any]]:
    """Every setting a user can give: option name -> (section or None, field name, annotation).
    Names are the field names; where a name repeats, ``section-name`` (``to-lr``, ``wo-lr``)."""
    pairs: list[tuple[str | None, str, Any]] = [
        (None, name, f.annotation) for name, f in TrainConfig.model_fields.items() if name not in SECTIONS
    ]
    pairs += [(sec, name, f.annotation) for sec, model in SECTIONS.items() for name, f in model.model_fields.items()]
    names = [n for _, n, _ in pairs]
    return {(n if names.count(n) == 1 else f"{s}-{n}").replace("_", "-"): (s, n, a) for s, n, a in pairs}


def field_help(section: str | None, name: str) -> str:
    model: type[BaseModel] = TrainConfig if section is None else SECTIONS[section]
    return model.model_fields[name].description or ""


def load_toml(path: Path) -> dict[str, Any]:
    """A run configuration from a TOML file: top-level keys and [optimiser], [threshold], [to], [wo],
    [network], [data] tables, as a dict for :class:`TrainConfig`."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigFileError(f"{path}: cannot read the training configuration: {e}") from e


def apply_assignments(data: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``section.key=value`` (or ``key=value`` for a top-level setting) over ``data``; values are parsed as
    TOML values where they parse (numbers, booleans, quoted strings), else taken as strings."""
    out = dict(data)
    for a in assignments:
        key, sep, raw = a.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts) or len(parts) > 2 or (len(parts) == 2 and parts[0] not in SECTIONS):
            raise ConfigFileError(f"--set {a!r}: expected key=value or section.key=value, sections "
                                  f"{', '.join(SECTIONS)}")  # fmt: skip
        try:
            value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        if len(parts) == 1:
            out[parts[0]] = value
        else:
            section = out.get(parts[0], {})
            if not isinstance(section, dict):  # e.g. a file's `to = 5`, or an earlier --set to=5
                raise ConfigFileError(f"--set {a!r}: {parts[0]} is a section of settings, but it was given the value "
                                      f"{section!r}")  # fmt: skip
            out[parts[0]] = {**section, parts[1]: value}
    return out


# (ours) settings added after runs were saved whose behaviour before they existed is not their field default today:
# to.readback (every run before it read back whole layers)
LEGACY_VALUES: dict[str, dict[str, Any]] = {"to": {"readback": "layer"}}


def saved_config(text: str) -> TrainConfig:
    """A run's saved ``config.json`` as the run was made. A key it lacks was added since; it takes the value that
    stood for it then (its field default, or :data:`LEGACY_VALUES` where today's default differs), never today's
    recipe defaults (which would make an old run reopen with settings it never had). Malformed text: ValueError
    (pydantic's ValidationError included)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a run configuration is a JSON object")
    for name, field in TrainConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, _Section):
            given = data.get(name)
            if isinstance(given, dict):
                for key, f in section.model_fields.items():
                    if key not in given:
                        given[key] = LEGACY_VALUES.get(name, {}).get(key, f.get_default(call_default_factory=True))
        elif name not in data and not field.is_required():
            data[name] = field.get_default(call_default_factory=True)
    return TrainConfig.model_validate(data)
