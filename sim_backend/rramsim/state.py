"""Save and load a whole emulated setup: chip model config, conductances, DAC80508 registers,
overlay registers and counters, op serial.  One .npz (no pickle: arrays plus JSON text), written
atomically (temp file in the same folder + os.replace), so separate CLI invocations continue the
same chip and a crash never leaves half a file.  Streams in flight are not state: saving while an
operation waits for its input is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rramsim.config import ChipModelConfig
from rramsim.dac import Dac80508
from rramsim.overlay import Counters, EmulatedOverlay

FORMAT = "rramsim-state/1"


class StateError(ValueError):
    """A state file that is missing, malformed or from another format."""


def save(overlay: EmulatedOverlay, path: str | Path) -> None:
    if overlay.busy:
        raise StateError("cannot save the emulator while an operation is running")
    path = Path(path)
    meta = {
        "format": FORMAT,
        "config": overlay.config.model_dump(mode="json"),
        "dac": overlay.dac.to_dict(),
        "regs": {str(k): v for k, v in overlay.regs.items()},
        "irq_en": overlay.irq_en,
        "status": {"done": overlay.done, "error": overlay.error, "err_code": overlay.err_code},
        "counters": asdict(overlay.counters),
    }
    xb = overlay.crossbar
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), g=xb.g, g_formed=xb.g_formed, stuck=xb.stuck)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> EmulatedOverlay:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("g", "g_formed", "stuck")}
    except FileNotFoundError as e:
        raise StateError(f"emulator state {path} does not exist") from e
    except (OSError, ValueError, KeyError) as e:
        raise StateError(f"emulator state {path} is not a readable rramsim state: {e}") from e
    if meta.get("format") != FORMAT:
        raise StateError(f"emulator state {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    config = ChipModelConfig.model_validate(meta["config"])
    overlay = EmulatedOverlay(config)
    shape = (config.rows, config.cols)
    for name, dtype in (("g", np.int32), ("g_formed", np.int32), ("stuck", np.int8)):
        a = arrays[name]
        if a.shape != shape or a.dtype != dtype:
            raise StateError(f"emulator state {path}: {name} is {a.dtype}{a.shape}, expected {np.dtype(dtype)}{shape}")
        setattr(overlay.crossbar, name, a.copy())
    overlay.dac = Dac80508.from_dict(meta["dac"])
    overlay.regs = {int(k): int(v) for k, v in meta["regs"].items()}
    overlay.irq_en = int(meta["irq_en"])
    st = meta["status"]
    overlay.done, overlay.error, overlay.err_code = bool(st["done"]), bool(st["error"]), int(st["err_code"])
    overlay.counters = Counters(**meta["counters"])
    return overlay
