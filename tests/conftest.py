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


# Which optional part of the project each skip reason stands for, and what installs it.
_COVERAGE = (
    ("pynq", "pynq board transport (mocked board)", "pip install -e '.[pynq]'"),
    ("cocotb", "HDL benches", "pip install -e '.[hdl]'"),
    ("peakrdl", "generated register files", "pip install -e '.[hdl]'"),
    ("verilator", "HDL benches (Verilator)", "apt-get install verilator"),
    ("icarus", "HDL benches (Icarus Verilog)", "apt-get install iverilog"),
    ("fashion-mnist", "full Fashion-MNIST data", "apt-get install dataset-fashion-mnist (or set $RRAMCTL_DATA)"),
    ("fsdd", "full spoken-digit data", "set $RRAMCTL_DATA to the FSDD recordings"),
    ("librosa", "spoken-digit features", "pip install -e '.[audio]'"),
    ("soundfile", "spoken-digit recordings", "pip install -e '.[audio]'"),
)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End the run by naming the coverage that did not run, why, and what installs it."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if isinstance(r, pytest.TestReport)]
    if not skipped:
        return
    by_reason: dict[str, int] = {}
    for r in skipped:
        reason = _skip_reason(r)
        by_reason[reason] = by_reason.get(reason, 0) + 1
    terminalreporter.section("not covered in this run (skipped)")
    for reason, n in sorted(by_reason.items(), key=lambda kv: -kv[1]):
        hint = next(((what, fix) for key, what, fix in _COVERAGE if key in reason.lower()), None)
        line = f"{n:4d} skipped: {reason}"
        if hint is not None:
            line += f"  -> {hint[0]}: {hint[1]}"
        terminalreporter.write_line(line)
