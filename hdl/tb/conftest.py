"""pytest configuration of the HDL benches: hdl/tb on sys.path, so that the per-module benches in
hdl/tb/<module>/ import the shared bench helpers (bench_util) as they do in the simulator (PYTHONPATH)."""

from __future__ import annotations

import sys
from pathlib import Path

TB = str(Path(__file__).resolve().parent)
if TB not in sys.path:
    sys.path.insert(0, TB)
