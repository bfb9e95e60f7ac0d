"""Test-wide settings: caches go to a temporary folder, never to the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRAMCTL_CACHE", str(tmp_path_factory.getbasetemp() / "rramctl-cache"))
