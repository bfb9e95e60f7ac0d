"""The CLI starts without torch: only ``prune`` and ``infer`` import the training runner and data loaders (which
import torch, about a second on a laptop), inside the commands (rramctl.cli.train_cmds)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_cli_and_a_chip_command_do_not_import_torch(tmp_path) -> None:
    code = (
        "import sys\n"
        "from rramctl.cli.main import app\n"
        "assert 'torch' not in sys.modules, 'importing the CLI imported torch'\n"
        "try:\n"
        f"    app(['--backend', 'emulator', '--state', {str(tmp_path / 'chip.npz')!r}, 'info'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'rramctl info imported torch'\n"
    )
    env = dict(os.environ, HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
