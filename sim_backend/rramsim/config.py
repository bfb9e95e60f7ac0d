"""ChipModelConfig: every number of the emulated chip and its setup, with its source.

The model is nested: one sub-model per mechanism (forming, reset, set, program, read, readout,
relaxation, drift, defects, transistor).  Units are chosen so the physics runs in integers:
conductance in nS, voltage in uV, current in pA, time in us, pulse widths in PL clock cycles
(10 ns at 100 MHz, docs/protocol.md), probabilities and relative spreads in ppm.  "(ours)" marks a
modelling choice without a number in the seeds; docs/emulator.md gives every source.

The field defaults are the ``ideal`` preset (the behaviour the bit-exact regression tests and the
RTL co-simulation pin); ``paper-40nm`` (rramsim/presets/paper-40nm.toml) switches on relaxation,
drift, the noise floor, column offsets and gains and ADC input noise with the seeds' numbers.
Presets are TOML files of this model (``load_model``).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from rramctl.protocol import ARRAY_LINES
from rramctl.seeds import Seed
from rramctl.settings import Settings
from typing_extensions import Self

if sys.version_info >= (3, 11):
    import tomllib
else:  # PYNQ 3.x images ship Python 3.10
    import tomli as tomllib

ARRAY_SIZE = ARRAY_LINES  # 512 x 512 (seed 000 Methods; the protocol's ARRAY_LINES)
PRESETS = ("paper-40nm", "ideal")
DEFAULT_PRESET = "paper-40nm"


class _Section(Settings):
    """A section of the chip model (rramctl.settings.Settings: strict, frozen)."""


class Forming(_Section):
    """Pristine cells and electroforming (FORM)."""

    pristine_ns: int = Field(
        default=33, ge=1, description="pristine cell, ~30 MOhm (seed 000 Results, Fig. 2h paragraph)"
    )
    pristine_spread_ppm: int = Field(
        default=100_000, ge=0, le=500_000, description="relative sigma of pristine G (ours)"
    )
    threshold_uv: int = Field(
        default=3_400_000,
        gt=0,
        description="median forming threshold at the reference pulse: 3.4 V forms ~half (seed 000 Results, Fig. 2h "
        "paragraph)",
    )
    threshold_sigma_uv: int = Field(
        default=150_000,
        ge=0,
        description="cell-to-cell sigma of the threshold (ours: fitted so ~half form at 3.4 V; bounded by seed 000 "
        "Fig. 2h, a sweep from 3 V in 0.05 V steps)",
    )
    ref_cycles: int = Field(
        default=1_000_000, ge=1, description="reference width: 10 ms (seed 000 Results, Fig. 2h paragraph)"
    )
    ref_temperature_c: float = Field(
        default=120.0, description="reference temperature (seed 000 Results, Fig. 2h paragraph)"
    )
    uv_per_octave: int = Field(default=30_000, ge=0, description="threshold drop per doubling of the width (ours)")
    uv_per_degc: int = Field(default=5_000, ge=0, description="threshold drop per degC above the reference (ours)")
    formed_ns_at_ref_gate: int = Field(
        default=27_150,
        gt=0,
        description="mean formed G at the reference gate: weights at -27.1 / +27.2 uS (seed 000 Results, Fig. 3b)",
    )
    ref_gate_uv: int = Field(
        default=1_200_000, gt=0, description="reference WL gate (rramctl BoardConfig form.gate_v; ours)"
    )
    formed_spread_ppm: int = Field(
        default=90_000,
        ge=0,
        le=300_000,
        description="relative sigma of formed G, ~2.4 uS (ours; not in seed 000's text: its Fig. 2i shows "
        "pairs after 100 prune/reinstate cycles)",
    )
    formed_min_ns: int = Field(
        default=4_000, ge=0, description="formed G floor, above the 300 kOhm (3.33 uS) limit (ours)"
    )


class Transistor(_Section):
    """The access transistor of each 1T1R cell."""

    wl_threshold_uv: int = Field(default=500_000, ge=0, description="no channel at or below this gate voltage (ours)")
    off_leak_ns: int = Field(default=0, ge=0, description="cell conductance seen through a closed transistor (ours)")


class Reset(_Section):
    off_ns: int = Field(
        default=70,
        gt=0,
        description="off (reset) state ~0.07 uS (seed 000 Results, Fig. 2i: pruned pairs; per cell: ours)",
    )
    c2c_ppm: int = Field(default=200_000, ge=0, le=500_000, description="cycle-to-cycle sigma of the off state (ours)")
    full_uv: int = Field(
        default=2_600_000,
        gt=0,
        description="fully effective reset amplitude 2.6 V (seed 000 Methods, Reset and set operations)",
    )
    onset_uv: int = Field(default=1_800_000, ge=0, description="reset starts to act above this amplitude (ours)")
    full_cycles: int = Field(
        default=40, ge=1, description="fully effective reset width 400 ns (seed 000 Methods, Reset and set operations)"
    )


class Set(_Section):
    full_uv: int = Field(
        default=3_300_000,
        gt=0,
        description="fully effective set amplitude 3.3 V (seed 000 Methods, Reset and set operations)",
    )
    onset_uv: int = Field(default=2_200_000, ge=0, description="set starts to act above this amplitude (ours)")
    full_cycles: int = Field(
        default=30, ge=1, description="fully effective set width 300 ns (seed 000 Methods, Reset and set operations)"
    )
    c2c_ppm: int = Field(default=50_000, ge=0, le=500_000, description="cycle-to-cycle sigma after a set (ours)")


class Program(_Section):
    """Write-verify pulses."""

    ref_uv: int = Field(
        default=1_500_000, gt=0, description="write-verify pulse 1.5 V (seed 000 Methods, Weight optimization)"
    )
    ref_cycles: int = Field(
        default=50, ge=1, description="write-verify pulse 500 ns (seed 000 Methods, Weight optimization)"
    )
    step_ns: int = Field(default=1_500, ge=0, description="mean change per reference pulse (ours)")
    noise_ns: int = Field(
        default=500,
        ge=0,
        description="sigma of the programming noise per pulse (seed 003 Results, Hyperparameter dWth: < 1 uS, "
        "on its TiN/TaOx/HfOy/TiN "
        "array; applying it to seed 000's chip: ours)",
    )
    max_ns: int = Field(default=150_000, gt=0, description="largest conductance a cell reaches (ours)")


class Read(_Section):
    """Noise of one ADC sample's column current."""

    noise_ppm: int = Field(
        default=2_000,
        ge=0,
        le=100_000,
        description="relative sigma, proportional to the current (ours; seed 000 Fig. 2j: minimal fluctuation over "
        "10,000 reads)",
    )
    noise_floor_pa: int = Field(default=0, ge=0, description="sigma of the current-independent noise floor (ours)")


class Readout(_Section):
    """The TIA + ADC chain of each column."""

    offset_sigma_pa: int = Field(default=0, ge=0, description="sigma of each column's TIA input offset current (ours)")
    gain_sigma_ppm: int = Field(
        default=0, ge=0, le=100_000, description="sigma of each column's relative gain error (ours)"
    )
    adc_noise_mlsb: int = Field(default=0, ge=0, description="sigma of the ADC input noise, in 1/1000 LSB (ours)")


class Relaxation(_Section):
    """Conductance relaxation after every programming or set pulse (seed 003's TiN/TaOx/HfOy/TiN array; applied to
    seed 000's 40 nm chip: ours)."""

    sigma_ns: int = Field(
        default=0,
        ge=0,
        description="SD of the relaxed-minus-programmed G (seed 003 Results, Hyperparameter dWth: ~2 uS, "
        "on its TiN/TaOx/HfOy/TiN array; "
        "applying it to seed 000's chip: ours)",
    )
    tau_us: int = Field(default=1_000_000, ge=1, description="time to half the relaxation (ours)")


class Drift(_Section):
    """Retention drift of formed cells towards the off level."""

    ppm_per_decade: int = Field(
        default=0, ge=0, le=200_000, description="G loss per decade of time (ours), bounded by seed 000 Fig. 2j"
    )
    t0_us: int = Field(default=1_000_000, ge=1, description="time origin of the log-time drift (ours)")
    ppm_per_op: int = Field(default=0, ge=0, le=100_000, description="relaxation per operation (ours; legacy, off)")


class Defects(_Section):
    stuck_on_ppm: int = Field(default=500, ge=0, le=1_000_000, description="fraction of cells stuck on (ours)")
    stuck_off_ppm: int = Field(default=1_000, ge=0, le=1_000_000, description="fraction of cells stuck off (ours)")
    stuck_on_ns: int = Field(default=80_000, gt=0, description="conductance of a stuck-on cell (ours)")


SECTIONS: dict[str, type[_Section]] = {
    "forming": Forming, "transistor": Transistor, "reset": Reset, "set": Set, "program": Program, "read": Read,
    "readout": Readout, "relaxation": Relaxation, "drift": Drift, "defects": Defects,
}  # fmt: skip

# The flat field names of rramsim-state/1 files -> (section, field): loaded state files migrate.
LEGACY_FIELDS: dict[str, tuple[str, str]] = {
    "pristine_ns": ("forming", "pristine_ns"), "pristine_spread_ppm": ("forming", "pristine_spread_ppm"),
    "form_threshold_uv": ("forming", "threshold_uv"), "form_threshold_sigma_uv": ("forming", "threshold_sigma_uv"),
    "form_ref_cycles": ("forming", "ref_cycles"), "form_ref_temperature_c": ("forming", "ref_temperature_c"),
    "form_uv_per_octave": ("forming", "uv_per_octave"), "form_uv_per_degc": ("forming", "uv_per_degc"),
    "formed_ns_at_ref_gate": ("forming", "formed_ns_at_ref_gate"), "form_ref_gate_uv": ("forming", "ref_gate_uv"),
    "formed_spread_ppm": ("forming", "formed_spread_ppm"), "formed_min_ns": ("forming", "formed_min_ns"),
    "wl_threshold_uv": ("transistor", "wl_threshold_uv"),
    "off_ns": ("reset", "off_ns"), "reset_c2c_ppm": ("reset", "c2c_ppm"), "reset_full_uv": ("reset", "full_uv"),
    "reset_onset_uv": ("reset", "onset_uv"), "reset_full_cycles": ("reset", "full_cycles"),
    "set_full_uv": ("set", "full_uv"), "set_onset_uv": ("set", "onset_uv"), "set_full_cycles": ("set", "full_cycles"),
    "set_c2c_ppm": ("set", "c2c_ppm"),
    "program_ref_uv": ("program", "ref_uv"), "program_ref_cycles": ("program", "ref_cycles"),
    "program_step_ns": ("program", "step_ns"), "program_noise_ns": ("program", "noise_ns"),
    "max_ns": ("program", "max_ns"), "read_noise_ppm": ("read", "noise_ppm"),
    "stuck_on_ppm": ("defects", "stuck_on_ppm"), "stuck_off_ppm": ("defects", "stuck_off_ppm"),
    "stuck_on_ns": ("defects", "stuck_on_ns"), "drift_ppm_per_op": ("drift", "ppm_per_op"),
}  # fmt: skip


class ModelError(ValueError):
    """A chip model (preset name or TOML file) that does not exist or does not validate."""


class ChipModelConfig(Settings):
    """The emulated chip.  Immutable; ``with_changes`` for variants."""

    seed: Seed = Field(default=0, description="seed of every random draw of this chip")
    rows: int = Field(
        default=ARRAY_SIZE, ge=1, le=ARRAY_SIZE, description="bit lines (seed 000 Methods, Fabrication: 512)"
    )
    cols: int = Field(
        default=ARRAY_SIZE, ge=1, le=ARRAY_SIZE, description="source lines (seed 000 Methods, Fabrication: 512)"
    )
    temperature_c: float = Field(
        default=120.0, ge=-40.0, le=200.0, description="chuck temperature (seed 000 Results: forming at 120 degC)"
    )
    # one section per mechanism (docs/emulator.md, "Physics model"); a section left out keeps its defaults
    forming: Forming = Field(default_factory=Forming, description="pristine cells and electroforming")
    transistor: Transistor = Field(default_factory=Transistor, description="the 1T1R access transistor")
    reset: Reset = Field(default_factory=Reset, description="RESET pulses (prune)")
    set: Set = Field(default_factory=Set, description="SET pulses (reinstate)")
    program: Program = Field(default_factory=Program, description="write-verify pulses")
    read: Read = Field(default_factory=Read, description="noise of one ADC sample's column current")
    readout: Readout = Field(default_factory=Readout, description="each column's TIA + ADC chain")
    relaxation: Relaxation = Field(default_factory=Relaxation, description="relaxation after a pulse")
    drift: Drift = Field(default_factory=Drift, description="retention drift of formed cells")
    defects: Defects = Field(default_factory=Defects, description="stuck cells")

    @model_validator(mode="before")
    @classmethod
    def _migrate_flat_fields(cls, data: Any) -> Any:
        """Accept the flat field names of the first format (``read_noise_ppm=0``, old state files)."""
        if not isinstance(data, dict) or not any(k in LEGACY_FIELDS for k in data):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in LEGACY_FIELDS:
                section, name = LEGACY_FIELDS[key]
                sub = out.setdefault(section, {})
                if not isinstance(sub, dict):
                    sub = out[section] = dict(sub.model_dump() if isinstance(sub, BaseModel) else sub)
                sub[name] = value
            elif isinstance(value, BaseModel) and key in SECTIONS:
                out.setdefault(key, {}).update(value.model_dump())
            elif isinstance(value, dict) and key in SECTIONS:
                out.setdefault(key, {}).update(value)
            else:
                out[key] = value
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.defects.stuck_on_ppm + self.defects.stuck_off_ppm > 1_000_000:
            raise ValueError("defects.stuck_on_ppm + defects.stuck_off_ppm exceeds 1e6")
        if self.reset.onset_uv >= self.reset.full_uv or self.set.onset_uv >= self.set.full_uv:
            raise ValueError("reset/set onset amplitude must lie below the fully effective amplitude")
        if self.forming.ref_gate_uv <= self.transistor.wl_threshold_uv:
            raise ValueError("forming.ref_gate_uv must exceed transistor.wl_threshold_uv")
        g_top = max(self.program.max_ns, self.defects.stuck_on_ns)
        if g_top * 65_535 * ARRAY_SIZE >= 1 << 53:
            raise ValueError("program.max_ns too large: column drive sums would not stay exact in float64")
        return self

    @property
    def temperature_mdegc(self) -> int:
        return round(self.temperature_c * 1000)

    def with_changes(self, **changes: object) -> ChipModelConfig:
        """A validated copy with some fields replaced.  A section given as a dict is merged into the
        current section (``with_changes(read={"noise_ppm": 0})`` keeps the other read fields)."""
        data = self.model_dump()
        for key, value in changes.items():
            if key in SECTIONS and isinstance(value, dict):
                data[key] = {**data[key], **value}
            elif key in LEGACY_FIELDS:
                section, name = LEGACY_FIELDS[key]
                data[section] = {**data[section], name: value}
            else:
                data[key] = value
        return type(self).model_validate(data)

    def with_path(self, dotted: str, value: object) -> ChipModelConfig:
        """A copy with one ``section.field`` (or top-level field) replaced."""
        section, _, name = dotted.partition(".")
        return self.with_changes(**({section: {name: value}} if name else {section: value}))

    def get_path(self, dotted: str) -> Any:
        section, _, name = dotted.partition(".")
        return getattr(getattr(self, section), name) if name else getattr(self, section)


def preset_text(name: str) -> str:
    """The TOML text of a shipped preset."""
    if name not in PRESETS:
        raise ModelError(f"unknown chip model preset {name!r}; choose one of {', '.join(PRESETS)} or a .toml file")
    return resources.files("rramsim").joinpath("presets", f"{name}.toml").read_text(encoding="utf-8")


def load_model(model: ChipModelConfig | str | Path | None = None, **overrides: object) -> ChipModelConfig:
    """A chip model from a preset name (``paper-40nm``, ``ideal``), a TOML file or a model; ``None`` is
    the default preset.  ``overrides`` (e.g. ``seed=3``) replace fields of the loaded model."""
    if isinstance(model, ChipModelConfig):
        return model.with_changes(**overrides)
    name = DEFAULT_PRESET if model is None else str(model)
    if name in PRESETS:
        text, where = preset_text(name), f"preset {name}"
    else:
        path = Path(name)
        try:
            text, where = path.read_text(encoding="utf-8"), f"chip model {path}"
        except FileNotFoundError as e:
            raise ModelError(f"chip model {name!r} is neither a preset ({', '.join(PRESETS)}) nor a file") from e
        except IsADirectoryError as e:
            raise ModelError(f"chip model {name!r} is a folder, not a TOML file") from e
        except UnicodeDecodeError as e:
            raise ModelError(f"chip model {path} is not a UTF-8 text (TOML) file: byte {e.start}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"{where} is not valid TOML: {e}") from e
    data.pop("preset", None)  # descriptive header of a written preset
    try:
        return ChipModelConfig.model_validate(data).with_changes(**overrides)
    except ValidationError as e:  # one line per field, as the CLI prints every configuration error
        raise ModelError(f"{where} is invalid:\n" + "\n".join(f"  {f}" for f in field_errors(e))) from e


def field_errors(e: ValidationError) -> list[str]:
    """A rejected model's errors, ``field.path: message`` each (no pydantic dump, no links)."""
    return [f"{'.'.join(map(str, err['loc'])) or '(file)'}: {err['msg']}" for err in e.errors(include_url=False)]


def to_toml(config: ChipModelConfig, header: dict[str, str] | None = None) -> str:
    """TOML text of a model (loadable with ``load_model``); ``header`` lands in a [preset] table."""

    def fmt(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    data = config.model_dump()
    lines = [f"{k} = {fmt(v)}" for k, v in data.items() if k not in SECTIONS] + [""]  # top-level keys before tables
    if header:
        lines += ["[preset]"] + [f"{k} = {fmt(v)}" for k, v in header.items()] + [""]
    for section in SECTIONS:
        lines += [f"[{section}]"] + [f"{k} = {fmt(v)}" for k, v in data[section].items()] + [""]
    return "\n".join(lines)
