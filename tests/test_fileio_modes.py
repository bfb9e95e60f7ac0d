"""Files rramctl writes get the permissions a plain open would give: 0666 less the umask for a new file, the old
file's own mode for an overwrite (mkstemp's 0600 made every output private before)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rramctl.fileio import atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "g.npy", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "g.npy").stat().st_mode) == 0o666 & ~umask


def test_an_overwrite_keeps_the_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_text(target, '{"a": 1}')
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == '{"a": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_a_target_that_is_not_a_regular_file_is_refused_and_kept(tmp_path: Path) -> None:
    """The one writer refuses a FIFO or folder target (the rename replaced a FIFO, or /dev/null for root, by a
    file: every writer of rramctl had the defect, the CLI and the chip API checked only their own paths)."""
    from rramctl.errors import UsageError
    from rramctl.transport.emulator import EmulatorTransport

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        atomic_write_text(fifo, "x")
    with pytest.raises(UsageError, match="not a regular file"):
        atomic_write_bytes(tmp_path, b"x")
    with EmulatorTransport.open(state_path=None, seed=0) as t, pytest.raises(UsageError, match="not a regular file"):
        t.save_state(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not [p for p in tmp_path.iterdir() if p.name != "pipe"]


def test_a_symlinked_target_writes_the_file_it_names_and_keeps_the_link(tmp_path: Path) -> None:
    """An output given as a symlink (a results file linked into another folder): the file the link names gets the
    new contents and the link stays a link (the rename replaced the link by a new file, leaving the target old)."""
    real = tmp_path / "data" / "g.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "g.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and link.read_text() == "new"
