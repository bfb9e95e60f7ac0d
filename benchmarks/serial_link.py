"""Serial link speed: register round trips and a 512x512 4-bit multiply over the agent, side by side
with the direct emulator transport, printed as ratios.

Host and agent talk through a pseudo-terminal pair (agent in a thread, EmulatorTransport behind it).
A pty has no baud rate, so the wire is modelled: each end paces its writes so a frame is delivered
when its last byte would have arrived on an 8N1 UART at the given rate (PacedLink, 10 bits/byte).
"unpaced" is the bare pty: the protocol's own CPU cost.

    python benchmarks/serial_link.py            # ~1 minute on the shared 2-core machine
    python benchmarks/serial_link.py --quick
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from rramctl import regmap as R
from rramctl.driver import Driver
from rramctl.geometry import Region
from rramctl.transport import serial_link as L
from rramctl.transport.base import Transport
from rramctl.transport.emulator import EmulatorTransport
from rramctl.transport.serial import SerialTransport, open_port
from rramctl_agent.loopback import PacedLink, PtyAgent  # noqa: E402
from rramsim.config import ChipModelConfig

SEED = 5
BITS = 4
REGION = Region(0, 512, 0, 512)


def best_of(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(transport: Transport, reg_reps: int, mult_reps: dict[int, int]) -> dict[str, float]:
    """Seconds per register read, per register write, per multiply of each batch size."""
    driver = Driver(transport)
    driver.identify()
    rng = np.random.default_rng(SEED)
    out = {
        "read_reg": best_of(lambda: [transport.read_reg(R.STATUS) for _ in range(reg_reps)], 3) / reg_reps,
        "write_reg": best_of(lambda: [transport.write_reg(R.SETTLE_CYCLES, 100) for _ in range(reg_reps)], 3)
        / reg_reps,
    }
    for batch, reps in mult_reps.items():
        x = rng.integers(0, 1 << BITS, (batch, REGION.n_rows))
        driver.multiply(x, BITS, REGION, 6554)  # warm-up (DAC init on the first)
        out[f"multiply b={batch}"] = best_of(lambda x=x: driver.multiply(x, BITS, REGION, 6554), reps)
    return out


def multiply_wire_bytes(batch: int) -> int:
    """Bytes of the multiply's TRANSACT request and reply (the register traffic around it not counted)."""
    send = batch * BITS * 64 * 4
    recv = batch * REGION.n_cols * 4
    return send + recv + L.TRANSACT_HEAD.size + 2 * L.OVERHEAD_BYTES


def over_serial(baud: int | None, reg_reps: int, mult_reps: dict[int, int]) -> tuple[dict[str, float], int]:
    wrap = (lambda link: PacedLink(link, baud)) if baud else None
    with PtyAgent(EmulatorTransport(ChipModelConfig(seed=SEED)), wrap=wrap) as served:
        raw = open_port(served.path, baud or 3_000_000, 60.0)
        link = PacedLink(raw, baud) if baud else raw
        with SerialTransport(link, baud or 3_000_000, timeout=5.0) as st:
            result = measure(st, reg_reps, mult_reps)
            return result, st.retransmissions


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, no batch-16 at 115200")
    args = p.parse_args(argv)
    big = 16
    plans: dict[str, tuple[int | None, int, dict[int, int]]] = {
        "unpaced pty": (None, 200, {1: 5, big: 3}),
        "3 Mbaud": (3_000_000, 100, {1: 3, big: 2}),
        "115200 baud": (115_200, 20, {1: 2} if args.quick else {1: 2, big: 1}),
    }
    if args.quick:
        plans = {k: (b, max(10, n // 4), {bb: 1 for bb in m}) for k, (b, n, m) in plans.items()}
    direct = measure(EmulatorTransport(ChipModelConfig(seed=SEED)), 200, {1: 5, big: 3})
    print(f"direct EmulatorTransport vs SerialTransport -> pty -> agent -> EmulatorTransport, best of reps, "
          f"512x512 {BITS}-bit multiply, batch 1 and {big}")  # fmt: skip
    print(f"{'link':<13} {'operation':<14} {'direct':>10} {'serial':>10} {'serial/direct':>14} {'wire model':>11} "
          f"{'serial/wire':>12}")  # fmt: skip
    for name, (baud, reg_reps, mult_reps) in plans.items():
        res, retx = over_serial(baud, reg_reps, mult_reps)
        for op, t in res.items():
            if op.startswith("multiply"):
                wire = L.wire_seconds(multiply_wire_bytes(int(op.split("=")[1])), baud) if baud else 0.0
            else:  # request + reply of one register access: two frames, 8 payload bytes between them
                wire = L.wire_seconds(2 * L.OVERHEAD_BYTES + 8, baud) if baud else 0.0
            wire_s, eff = (f"{wire * 1e3:9.2f}ms", f"{t / wire:11.2f}x") if baud else ("-", "-")
            print(f"{name:<13} {op:<14} {direct[op] * 1e3:8.3f}ms {t * 1e3:8.2f}ms {t / direct[op]:13.1f}x "
                  f"{wire_s:>11} {eff:>12}")  # fmt: skip
        if retx:
            print(f"  ({retx} retransmissions on {name})")
    for op, t in direct.items():
        if op.startswith("multiply"):
            b = int(op.split("=")[1])
            print(f"direct {op}: {b / t:,.0f} vectors/s")


if __name__ == "__main__":
    main()
