"""Test-wide settings: caches go to a temporary folder, never to the user's ~/.cache."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRAMCTL_CACHE", str(tmp_path_factory.getbasetemp() / "rramctl-cache"))


@pytest.fixture(autouse=True)
def _private_serial_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serial sessions that tests leave open must not reach the user's journal (or the next test)."""
    monkeypatch.setenv("RRAMCTL_SERIAL_JOURNAL", str(tmp_path / "serial-sessions.json"))
