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


API = README.parent / "docs" / "api.md"


def test_docs_api_names_every_public_chip_method_and_its_example_runs(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """docs/api.md, the Python API's reference: every public member of Chip is there, and its example runs."""
    from rramctl.chip import Chip

    text = API.read_text(encoding="utf-8")
    public = [name for name in vars(Chip) if not name.startswith("_")]
    missing = [name for name in public if not re.search(rf"[.`]{name}\b", text)]
    assert not missing, f"docs/api.md does not describe {missing}"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(re.findall(r"```python\n(.*?)```", text, flags=re.S)[0], str(API), "exec"), namespace)  # noqa: S102
    assert namespace["true_ns"].shape == namespace["read_us"].shape == (8, 8)  # type: ignore[attr-defined]
