"""The README's Python example runs as written (a newcomer copies it first)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["g_us"].shape == (64, 32)  # type: ignore[attr-defined]
    assert namespace["result"].codes.shape == (8, 32)  # type: ignore[attr-defined]
    assert (tmp_path / "chip.npz").stat().st_size > 0
