"""Where rramctl keeps its files between commands on the user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def state_file(env_var: str, name: str) -> Path:
    """``$env_var`` when set, else ``$XDG_STATE_HOME/rramctl/name`` (default ``~/.local/state/rramctl/name``)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "rramctl" / name
