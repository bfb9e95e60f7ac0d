"""A state path under a file (FILE/x.npz) is one UsageError from the API, not mkdir's bare FileExistsError."""

from pathlib import Path

import pytest
from rramctl.chip import Chip
from rramctl.errors import UsageError


def test_path_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "good.npz"
    blocker.write_bytes(b"keep")
    with pytest.raises(UsageError, match="needs a folder"):
        Chip.open("emulator", state=blocker / "x.npz")
    with Chip.open("emulator", autosave=False) as chip:
        with pytest.raises(UsageError, match="needs a folder"):
            chip.save_state(blocker / "sub" / "x.npz")
        chip.save_state(tmp_path / "new" / "x.npz")  # a missing folder is still made
    assert blocker.read_bytes() == b"keep"
    assert (tmp_path / "new" / "x.npz").is_file()
