"""docs/emulator.md's table of chip-model fields is the one tools/gen_model_table.py makes from the model now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _gen():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("gen_model_table", ROOT / "tools" / "gen_model_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_model_field_table_is_fresh() -> None:
    assert _gen().main(["--check"]) == 0, "run python tools/gen_model_table.py and commit docs/emulator.md"


def test_every_field_of_the_model_is_in_the_table() -> None:
    from rramsim.config import ChipModelConfig

    gen = _gen()
    text = gen.table()
    for name, field in ChipModelConfig.model_fields.items():
        for key in getattr(field.annotation, "model_fields", {}):
            assert f"| `{name}.{key}` |" in text
    assert "| `readout.offset_sigma_pa` | pA | 0 | **10,000** |" in text  # a value of paper-40nm, in bold
