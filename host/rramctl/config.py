"""BoardConfig: the chip's absolute maximum ratings and the operating points of each mode.

Loaded from a TOML file (``rramctl --config board.toml``); every field has a documented default
(docs/hardware.md, "Configuration") and a file overrides any subset of them, a section included
(``[form]`` with only ``voltage_v`` keeps the default width and gate).  Anything outside the ratings
is refused with a clear error before a single register is written: the chip layer validates every
request against this model.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic._internal._model_construction import ModelMetaclass  # BaseModel's metaclass (type(BaseModel))
from typing_extensions import Self

from rramctl import regmap as R
from rramctl.errors import UsageError
from rramctl.hw import dac80508
from rramctl.protocol import MAX_PULSE_CYCLES, PL_CLOCK_HZ, VERIFY_TOL_SCALE, DacChannel
from rramctl.settings import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # PYNQ 3.x images ship Python 3.10
    import tomli as tomllib


MAX_PULSE_WIDTH_S = MAX_PULSE_CYCLES / PL_CLOCK_HZ  # the overlay's pulse cap in seconds (20 ms)

# Word-line gate during reads, multiplies and verify reads (ours: docs/hardware.md, "Waveforms of each mode",
# "Read gate").
DEFAULT_READ_GATE_V = 1.8


class ConfigError(UsageError):
    """A board configuration that is malformed or outside the chip's ratings."""


def _overlay(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` with ``given`` on top: a key ``given`` names replaces the default, except that a
    table over a table is merged key by key (a partial section keeps its other defaults).  Keys the
    defaults lack are kept as given, so validation still refuses them by name."""
    merged = dict(defaults)
    for key, value in given.items():
        base = merged.get(key)
        merged[key] = _overlay(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return merged


class _Refusing(ModelMetaclass):
    """Direct construction (``Pulse(...)``, ``BoardConfig(...)``) refuses a bad field with one ConfigError whose
    cause is pydantic's ValidationError, as :meth:`BoardConfig.load` and :meth:`BoardConfig.with_changes` do. (On
    the metaclass, not as an ``__init__``: a model with its own ``__init__`` has pydantic call it for nested fields
    too, and the nested error would lose its field's name.)"""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as e:
            raise ConfigError(f"{cls.__name__} is invalid:\n{e}") from e


class _Strict(Settings, metaclass=_Refusing):
    """(rramctl.settings.Settings: NaN and infinity are refused by every field, a NaN would pass every "> rating"
    check; bools are no numbers)"""


class Ratings(_Strict):
    """Absolute maximum ratings.  The seeds give operating points, not ratings: these limits are
    ours, set with margin above the paper's operating points (seed 000 Methods) and inside the
    DAC80508 output range (0-5 V at gain 2)."""

    max_sl_voltage_v: float = Field(
        default=3.8,
        gt=0,
        le=float(dac80508.FULL_SCALE_V),
        description="SL pulse amplitude (ours: above forming, 3.4 V)",
    )
    max_bl_voltage_v: float = Field(
        default=3.8, gt=0, le=float(dac80508.FULL_SCALE_V), description="BL pulse amplitude (ours: above set, 3.3 V)"
    )
    max_wl_voltage_v: float = Field(
        default=2.5, gt=0, le=float(dac80508.FULL_SCALE_V), description="WL gate (compliance; ours)"
    )
    max_read_voltage_v: float = Field(
        default=0.3, gt=0, le=1.0, description="read/multiply BL voltage (read disturb; cap 1 V ours)"
    )

    def dac_code_limits(self) -> dict[int, int]:
        """Highest DAC code of each rated channel whose output stays at or below its rating (DacChannel ->
        code): what Chip.open locks into the overlay and what the serial agent enforces itself."""
        volts = {DacChannel.V_SL: self.max_sl_voltage_v, DacChannel.V_BL: self.max_bl_voltage_v,
                 DacChannel.V_WL: self.max_wl_voltage_v, DacChannel.V_READ: self.max_read_voltage_v}  # fmt: skip
        per_volt = dac80508.FULL_SCALE_CODES / dac80508.FULL_SCALE_V
        top = dac80508.FULL_SCALE_CODES - 1
        return {int(ch): min(int(Fraction(v).limit_denominator(10**9) * per_volt), top) for ch, v in volts.items()}

    max_pulse_width_s: float = Field(
        default=MAX_PULSE_WIDTH_S,
        gt=0,
        le=MAX_PULSE_WIDTH_S,
        description="longest pulse (overlay cap: MAX_PULSE_CYCLES, 20 ms; ours)",
    )
    min_pulse_width_s: float = Field(
        default=1 / PL_CLOCK_HZ, gt=0, description="shortest pulse (one PL clock, 10 ns; ours)"
    )
    max_temperature_c: float = Field(
        default=125.0, description="chuck temperature during forming (ours; seed 000 forms at 120 degC)"
    )


class Pulse(_Strict):
    """One programming pulse: amplitude on the driven line, width, and the WL gate voltage."""

    voltage_v: float = Field(gt=0)
    width_s: float = Field(gt=0)
    gate_v: float = Field(gt=0)


class WriteVerify(_Strict):
    tolerance: float = Field(
        default=R.VERIFY_TOL_PPM.reset / VERIFY_TOL_SCALE,  # 0.10: the VERIFY_TOL register's reset
        gt=0,
        lt=1,
        description="relative error accepted (seed 000 Methods, Weight optimization: ~10 %)",
    )
    max_pulses: int = Field(
        default=R.MAX_PULSES_VALUE.reset,  # 20 (ours): the register's reset value
        ge=1,
        le=(1 << R.MAX_PULSES_VALUE.width) - 1,
        description="most pulses a cell (ours)",
    )


class BoardConfig(_Strict):
    """Everything a user of a board configures.  Defaults: seed 000 (Methods, or Results where marked) unless
    marked ours; every WL gate voltage is ours (docs/hardware.md, "Waveforms of each mode")."""

    ratings: Ratings = Ratings()
    # seed 000 Results (Fig. 2h paragraph): forming 3.4 V, 10 ms at 120 degC; gate 1.2 V ours (seed 000 Methods:
    # the WL bias only enforces a compliance current).
    form: Pulse = Pulse(voltage_v=3.4, width_s=10e-3, gate_v=1.2)
    # seed 000 Methods "Reset and set operations": reset 2.6 V / 400 ns on the SL; set 3.3 V / 300 ns on the BL.
    # Gates ours: reset 2.5 V (= the max_wl_voltage_v rating), set 1.2 V.  The SL-driven reset is our choice where
    # the seeds conflict (docs/hardware.md, "Reset polarity").
    reset: Pulse = Pulse(voltage_v=2.6, width_s=400e-9, gate_v=2.5)
    set: Pulse = Pulse(voltage_v=3.3, width_s=300e-9, gate_v=1.2)
    # seed 000 Methods "Weight optimization": 1.5 V / 500 ns, WL current limit, write-verify to ~10 %; gate 1.2 V ours.
    program: Pulse = Pulse(voltage_v=1.5, width_s=500e-9, gate_v=1.2)
    write_verify: WriteVerify = WriteVerify()
    read_voltage_v: float = Field(
        default=0.1, gt=0, description="seed 000 Methods, Multi-bit vector-matrix multiplications: 0.1 V for a 1 bit"
    )
    read_gate_v: float = Field(
        default=DEFAULT_READ_GATE_V,
        gt=0,
        description="WL gate during reads and multiplies: transistors fully on (ours)",
    )
    forming_temperature_c: float = Field(
        default=120.0, description="seed 000 Results, Fig. 2h paragraph: forming at 120 degC"
    )
    clock_hz: float = Field(
        default=float(PL_CLOCK_HZ),
        ge=PL_CLOCK_HZ,
        le=PL_CLOCK_HZ,
        description="PL clock of the overlay: the protocol's PL_CLOCK_HZ, which the RTL, the emulator and the board "
        "time use too (ours); another value is refused (a bitstream for another clock changes protocol.toml)",
    )
    settle_cycles: int = Field(
        default=R.SETTLE_CYCLES_CYCLES.reset,  # 100 (ours: 1 us): the register's reset value
        ge=1,
        le=(1 << R.SETTLE_CYCLES_CYCLES.width) - 1,
        description="read settle time in PL cycles (ours: 1 us)",
    )
    on_saturation: Literal["warn", "raise", "ignore"] = Field(
        default="warn", description="what the chip API does when ADC samples clip (ours)"
    )
    poll_timeout_s: float = Field(default=30.0, gt=0, description="longest wait for one overlay operation (ours)")

    @model_validator(mode="after")
    def _inside_ratings(self) -> Self:
        r = self.ratings
        checks = [
            ("form.voltage_v (SL)", self.form.voltage_v, r.max_sl_voltage_v),
            ("reset.voltage_v (SL)", self.reset.voltage_v, r.max_sl_voltage_v),
            ("set.voltage_v (BL)", self.set.voltage_v, r.max_bl_voltage_v),
            ("program.voltage_v (BL/SL)", self.program.voltage_v, min(r.max_bl_voltage_v, r.max_sl_voltage_v)),
            ("read_voltage_v", self.read_voltage_v, r.max_read_voltage_v),
            ("read_gate_v (WL)", self.read_gate_v, r.max_wl_voltage_v),
            ("forming_temperature_c", self.forming_temperature_c, r.max_temperature_c),
        ]
        for p in ("form", "reset", "set", "program"):
            pulse: Pulse = getattr(self, p)
            checks.append((f"{p}.gate_v (WL)", pulse.gate_v, r.max_wl_voltage_v))
            if not r.min_pulse_width_s <= pulse.width_s <= r.max_pulse_width_s:
                raise ValueError(
                    f"{p}.width_s = {pulse.width_s} s is outside the rated "
                    f"{r.min_pulse_width_s}-{r.max_pulse_width_s} s"
                )
            if self.pulse_cycles(pulse.width_s) > MAX_PULSE_CYCLES:  # a clock_hz past the PL's: the overlay's cap
                raise ValueError(
                    f"{p}.width_s = {pulse.width_s} s is {self.pulse_cycles(pulse.width_s)} cycles of clock_hz = "
                    f"{self.clock_hz:g} Hz, past the overlay's {MAX_PULSE_CYCLES}-cycle pulse cap"
                )
        for name, value, limit in checks:
            if value > limit:
                raise ValueError(f"{name} = {value} exceeds the absolute maximum rating {limit}")
        return self

    def pulse_cycles(self, width_s: float) -> int:
        """Pulse width in PL clock cycles (rounded to the nearest cycle, at least one)."""
        return max(1, round(width_s * self.clock_hz))

    @classmethod
    def load(cls, path: str | Path | None) -> BoardConfig:
        """Read a TOML file; ``None`` gives the defaults.  The file's values go on top of the defaults
        (a section it names only partly keeps its other fields' defaults) and the result is validated
        as a whole: types, ratings, unknown keys.  Errors name the file and the field."""
        if path is None:
            return cls()
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"board config {p} does not exist") from e
        except OSError as e:  # a folder, a file that cannot be read
            raise ConfigError(f"board config {p} cannot be read ({e.strerror or e}); give a TOML file") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"board config {p} is not valid TOML: {e}") from e
        try:
            return cls.model_validate(_overlay(cls().model_dump(), data))
        except ValidationError as e:
            raise ConfigError(f"board config {p} is invalid:\n{e}") from e

    def with_changes(self, **changes: object) -> BoardConfig:
        """A validated copy with some top-level fields replaced (e.g. one pulse from the CLI)."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as e:
            raise ConfigError(str(e)) from e
