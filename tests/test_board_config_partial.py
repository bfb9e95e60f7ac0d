"""``rramctl --config FILE``: a board config file is the defaults with the file's values on top (a
partial section keeps its other fields' defaults), validated as a whole; the shipped template lists
every field of BoardConfig with its default."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from rramctl.config import BoardConfig, ConfigError, Pulse
from typer.testing import CliRunner

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TEMPLATE = Path(__file__).parents[1] / "host" / "rramctl" / "data" / "board.toml"


def _load(tmp_path: Path, text: str) -> BoardConfig:
    p = tmp_path / "over.toml"
    p.write_text(text)
    return BoardConfig.load(p)


def _sections() -> dict[str, type[BaseModel]]:
    """BoardConfig's fields that are themselves models (TOML tables), by name."""
    out = {}
    for name, field in BoardConfig.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out[name] = field.annotation
    return out


# ---- partial files ---------------------------------------------------------------------------------
def test_partial_section_keeps_other_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[form]\nvoltage_v = 3.0\n")
    default = BoardConfig()
    assert cfg.form == Pulse(voltage_v=3.0, width_s=default.form.width_s, gate_v=default.form.gate_v)
    assert cfg == default.with_changes(form=cfg.form)  # nothing else moved


def test_partial_files_in_several_sections(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        'read_gate_v = 2.0\non_saturation = "raise"\n[ratings]\nmax_read_voltage_v = 0.2\n'
        "[reset]\nwidth_s = 1e-6\n[write_verify]\nmax_pulses = 5\n",
    )
    default = BoardConfig()
    assert cfg.read_gate_v == 2.0 and cfg.on_saturation == "raise"
    assert cfg.ratings == default.ratings.model_copy(update={"max_read_voltage_v": 0.2})
    assert cfg.reset == default.reset.model_copy(update={"width_s": 1e-6})
    assert cfg.write_verify == default.write_verify.model_copy(update={"max_pulses": 5})
    assert (cfg.form, cfg.set, cfg.program, cfg.read_voltage_v) == (
        default.form,
        default.set,
        default.program,
        default.read_voltage_v,
    )


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == BoardConfig()
    assert _load(tmp_path, "[form]\n") == BoardConfig()


@pytest.mark.parametrize(
    ("toml", "field", "rating"),
    [
        ("[form]\nvoltage_v = 4.4\n", "form.voltage_v", "3.8"),
        ("[set]\ngate_v = 2.6\n", "set.gate_v", "2.5"),
        ("[program]\nwidth_s = 0.5\n", "program.width_s", "0.02"),
        # a lowered rating is checked against the defaults the file leaves alone
        ("[ratings]\nmax_sl_voltage_v = 3.0\n", "form.voltage_v", "3.0"),
    ],
)
def test_partial_section_past_a_rating_names_field_and_rating(
    tmp_path: Path, toml: str, field: str, rating: str
) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, toml)
    msg = str(e.value)
    assert "over.toml" in msg and field in msg and rating in msg, msg
    assert "Field required" not in msg and "missing" not in msg, msg


def test_partial_section_past_a_rating_on_the_command_line(tmp_path: Path) -> None:
    """The audit's case, end to end: the one error line names the file, the next the field and rating."""
    from rramctl.cli.main import app

    p = tmp_path / "over.toml"
    p.write_text("[form]\nvoltage_v = 4.4\n")
    args = ["--backend", "emulator", "--state", str(tmp_path / "s.npz"), "--config", str(p), "info"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "over.toml" in r.output and "form.voltage_v" in r.output and "3.8" in r.output, r.output
    assert "Field required" not in r.output, r.output


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("bogus = 1\n", "bogus"),
        ("[form]\nvoltage_v = 3.0\nbogus = 1\n", "form.bogus"),
        ("[ratings]\nmax_gate_v = 2\n", "ratings.max_gate_v"),
        ("[bogus_section]\nx = 1\n", "bogus_section"),
    ],
)
def test_unknown_keys_are_refused_by_name(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="Extra inputs are not permitted") as e:
        _load(tmp_path, toml)
    assert needle in str(e.value)
    assert "Field required" not in str(e.value)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[form]\nvoltage_v = 'x'\n", "form.voltage_v"),
        ("form = 3\n", "form"),
        ("[[form]]\nvoltage_v = 1\n", "form"),
        ('on_saturation = "loud"\n', "on_saturation"),
        ("[write_verify]\nmax_pulses = 0\n", "write_verify.max_pulses"),
    ],
)
def test_wrong_types_in_partial_files_are_refused(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="is invalid") as e:
        _load(tmp_path, toml)
    assert needle in str(e.value)


def test_loading_leaves_the_defaults_alone(tmp_path: Path) -> None:
    _load(tmp_path, "[form]\nvoltage_v = 3.0\n[ratings]\nmax_sl_voltage_v = 3.5\n")
    assert BoardConfig().form.voltage_v == 3.4 and BoardConfig().ratings.max_sl_voltage_v == 3.8


def test_with_changes_replaces_whole_sections() -> None:
    cfg = BoardConfig().with_changes(form=Pulse(voltage_v=3.0, width_s=1e-3, gate_v=1.0), read_gate_v=2.0)
    assert cfg.form == Pulse(voltage_v=3.0, width_s=1e-3, gate_v=1.0) and cfg.read_gate_v == 2.0
    with pytest.raises(ConfigError, match="absolute maximum"):
        BoardConfig().with_changes(form=Pulse(voltage_v=4.4, width_s=1e-3, gate_v=1.0))


# ---- the shipped template ----------------------------------------------------------------------------
def test_template_lists_every_field() -> None:
    data = tomllib.loads(TEMPLATE.read_text())
    sections = _sections()
    assert set(data) == set(BoardConfig.model_fields), "top level of board.toml differs from BoardConfig"
    for name, model in sections.items():
        assert isinstance(data[name], dict), f"[{name}] should be a table"
        assert set(data[name]) == set(model.model_fields), f"[{name}] of board.toml differs from {model.__name__}"
    for name in set(BoardConfig.model_fields) - set(sections):
        assert not isinstance(data[name], dict), f"{name} should be a value, not a table"


def test_template_values_are_the_defaults() -> None:
    assert tomllib.loads(TEMPLATE.read_text()) == BoardConfig().model_dump()
    assert BoardConfig.load(TEMPLATE) == BoardConfig()
