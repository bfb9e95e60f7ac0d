"""Save and load a whole emulated setup: chip model config, conductances, DAC80508 registers,
overlay registers and counters, op serial.  One .npz (no pickle: arrays plus JSON text).
:func:`dump` writes it to an open file; the host writes that file atomically
(``rramctl.fileio``: unique temporary file, fsync, rename), so separate CLI invocations continue
the same chip and a crash never leaves half a file.  Loading checks every part (format,
keys, types, array shapes and dtypes) and refuses anything else with one :class:`StateError` that
names the file and what to do.  Streams in flight are not state: saving while an operation waits
for its input is refused.
"""

from __future__ import annotations

import json
import math
import tokenize
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from rramsim.config import ChipModelConfig, field_errors
from rramsim.dac import Dac80508
from rramsim.energy import EnergyLedger
from rramsim.overlay import MAX_BOARD_TIME_S, Counters, EmulatedOverlay

FORMAT = "rramsim-state/1"
ARRAYS = (("g", np.int32), ("g_formed", np.int32), ("stuck", np.int8))
# Per-cell clocks of relaxation and drift (rramsim.device); a file without them: no cell pulsed yet.
CLOCK_ARRAYS = (("t_pulse_us", np.int64, -1), ("relax_ns", np.int32, 0))
WORD_MAX = 0xFFFF_FFFF


class StateError(ValueError):
    """A state file that is missing, malformed or from another format."""


def _meta(overlay: EmulatedOverlay) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": overlay.config.model_dump(mode="json"),
        "dac": overlay.dac.to_dict(),
        "regs": {str(k): v for k, v in overlay.regs.items()},
        "irq_en": overlay.irq_en,
        "status": {"done": overlay.done, "error": overlay.error, "err_code": overlay.err_code},
        "counters": asdict(overlay.counters),
    }


def dump(overlay: EmulatedOverlay, f: IO[bytes]) -> None:
    """Write the state to an open binary file (the host makes the write atomic: rramctl.fileio)."""
    if overlay.busy:
        raise StateError("cannot save the emulator while an operation is running")
    meta = _meta(overlay) | {"board_time_s": overlay.board_time_s, "ledger": overlay.ledger.to_dict()}
    xb = overlay.crossbar
    np.savez(f, meta=np.array(json.dumps(meta)), g=xb.g, g_formed=xb.g_formed, stuck=xb.stuck,
             t_pulse_us=xb.t_pulse_us, relax_ns=xb.relax_ns)  # fmt: skip


def _same_shape(value: object, template: object, where: str) -> None:
    """``value`` has the JSON shape of ``template``: the same keys, list lengths and value types
    (a ``None`` in the template admits an integer or None); integers are 32-bit words."""
    if template is None:
        ok = value is None or (type(value) is int and 0 <= value <= WORD_MAX)
        if not ok:
            raise StateError(f"{where} is {value!r}, expected a 32-bit word or null")
        return
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise StateError(f"{where} has keys {got}, expected {sorted(template)}")
        for k in template:
            _same_shape(value[k], template[k], f"{where}.{k}")
        return
    if isinstance(template, list):
        if not isinstance(value, list) or len(value) != len(template):
            raise StateError(f"{where} is not a list of {len(template)} values")
        for i, (v, t) in enumerate(zip(value, template, strict=True)):
            _same_shape(v, t, f"{where}[{i}]")
        return
    if type(value) is not type(template):
        raise StateError(f"{where} is {type(value).__name__}, expected {type(template).__name__}")
    if type(value) is int and not 0 <= value <= WORD_MAX:
        raise StateError(f"{where} = {value} is not a 32-bit word")


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if path.exists() and not path.is_file():  # checked before opening it: np.load would block on a FIFO
        raise StateError("it is a folder, not a state file" if path.is_dir() else
                         "it is not a regular file (a FIFO or device), not a state file")  # fmt: skip
    try:
        loaded = np.load(path, allow_pickle=False)  # a plain .npy gives an array, not an archive to enter
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise StateError("it is a single array, not an .npz archive")
        with loaded as z:
            missing = {"meta", *(n for n, _ in ARRAYS)} - set(z.files)
            if missing:
                raise StateError(f"it lacks {', '.join(sorted(missing))}")
            meta_arr = z["meta"]
            if meta_arr.dtype.kind != "U" or meta_arr.shape != ():
                raise StateError("its meta entry is not one text")
            meta = json.loads(str(meta_arr))
            arrays = {n: z[n] for n, _ in ARRAYS}
            arrays |= {n: z[n] for n, _, _ in CLOCK_ARRAYS if n in z.files}
    except (FileNotFoundError, StateError):  # ours already say what is wrong
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        SyntaxError,
        tokenize.TokenError,
        OverflowError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
    ) as e:  # what numpy and zipfile raise on a damaged file
        raise StateError(f"it is not a readable .npz archive ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict):
        raise StateError("its meta entry is not a JSON object")
    return meta, arrays


def load(path: str | Path) -> EmulatedOverlay:
    path = Path(path)
    advice = "give another state file (--state), or move this one away (a fresh chip is then made in its place)"
    try:
        meta, arrays = _read(path)
        if meta.get("format") != FORMAT:
            raise StateError(f"it has format {meta.get('format')!r}, expected {FORMAT!r}")
        config = ChipModelConfig.model_validate(meta.get("config"))
        shape = (config.rows, config.cols)
        for name, dtype, fill in CLOCK_ARRAYS:
            arrays.setdefault(name, np.full(shape, fill, dtype))
        board_time_s = meta.pop("board_time_s", 0.0)
        if (
            not isinstance(board_time_s, (int, float))
            or not math.isfinite(board_time_s)
            or not 0 <= board_time_s <= MAX_BOARD_TIME_S
        ):
            raise StateError(f"board_time_s is {board_time_s!r}, expected seconds 0-{MAX_BOARD_TIME_S:g}")
        ledger_data = meta.pop("ledger", {})
        try:
            ledger = EnergyLedger.from_dict(ledger_data if isinstance(ledger_data, dict) else {"?": ledger_data})
        except ValueError as e:
            raise StateError(str(e)) from e
        expected: list[tuple[str, type[np.generic]]] = [*ARRAYS, *((n, d) for n, d, _ in CLOCK_ARRAYS)]
        for name, want in expected:
            a = arrays[name]
            if a.shape != shape or a.dtype != want:
                raise StateError(f"{name} is {a.dtype}{a.shape}, expected {np.dtype(want)}{shape}")
        overlay = EmulatedOverlay(config)
        regs = meta.get("regs")
        if isinstance(regs, dict):  # a register the file lacks (saved before it existed) takes its reset value
            for k, v in _meta(overlay)["regs"].items():
                regs.setdefault(k, v)
        _same_shape({k: v for k, v in meta.items() if k != "config"},
                    {k: v for k, v in _meta(overlay).items() if k != "config"}, "meta")  # fmt: skip
    except FileNotFoundError as e:
        raise StateError(f"emulator state {path} does not exist") from e
    except ValidationError as e:
        fields = "; ".join(field_errors(e))
        raise StateError(f"emulator state {path} holds an invalid chip model ({fields}); {advice}") from e
    except StateError as e:
        raise StateError(f"emulator state {path} is damaged or not an rramsim state: {e}; {advice}") from e
    for name in (*(n for n, _ in ARRAYS), *(n for n, _, _ in CLOCK_ARRAYS)):
        setattr(overlay.crossbar, name, arrays[name].copy())
    overlay.board_time_s = float(board_time_s)
    overlay.crossbar.now_us = round(overlay.board_time_s * 1e6)
    overlay.ledger = ledger
    overlay.dac = Dac80508.from_dict(meta["dac"])
    overlay.regs = {int(k): int(v) for k, v in meta["regs"].items()}
    overlay.irq_en = int(meta["irq_en"])
    st = meta["status"]
    overlay.done, overlay.error, overlay.err_code = bool(st["done"]), bool(st["error"]), int(st["err_code"])
    overlay.counters = Counters(**meta["counters"])
    return overlay
