"""``rramctl-agent`` / ``python -m rramctl_agent``: serve the overlay on a serial port.

On the board: ``rramctl-agent --port /dev/ttyPS0 --baud 115200 --backend pynq`` (systemd unit:
firmware/agent/rramctl-agent.service).  Without a board: ``rramctl-agent --pty --backend emulator``
prints a pty path to give the host as ``--backend serial:PATH``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rramctl.backends import OpenOptions, open_transport, resolve
from rramctl.config import BoardConfig
from rramctl.errors import RramctlError
from rramctl.paths import agent_state_path
from rramctl.transport.base import TransportError
from rramctl.transport.serial import open_port

from rramctl_agent.agent import Agent, AgentConfig
from rramctl_agent.loopback import PtyAgent


def parse_args(argv: Sequence[str] | None) -> AgentConfig:
    p = argparse.ArgumentParser(prog="rramctl-agent", description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial device to serve, e.g. /dev/ttyPS0")
    where.add_argument("--pty", action="store_true", help="serve a new pseudo-terminal and print its path")
    p.add_argument("--baud", type=int, default=AgentConfig.model_fields["baudrate"].default, dest="baudrate")
    p.add_argument("--backend", choices=["auto", "emulator", "pynq"], default="auto")
    p.add_argument("--state", type=Path, help="emulator state file (default: $RRAMCTL_AGENT_STATE, else "
                   "~/.local/state/rramctl/agent-emulator.npz: the agent's own chip)")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed of a new emulated chip (default 0; ignored once its state file "
                   "exists, with a note where it differs)")  # fmt: skip
    p.add_argument("--bitfile", type=Path, help="overlay bitstream (pynq)")
    p.add_argument("--cache-depth", type=int, default=AgentConfig.model_fields["cache_depth"].default)
    p.add_argument("--keepalive", type=float, default=AgentConfig.model_fields["keepalive_s"].default,
                   dest="keepalive_s")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")
    ns = vars(p.parse_args(argv))
    logging.basicConfig(level=logging.INFO if ns.pop("verbose") else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")  # fmt: skip
    try:
        return AgentConfig(**{k: v for k, v in ns.items() if v is not None})
    except ValidationError as e:
        p.error(str(e))
        raise  # unreachable: p.error exits


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        spec = resolve(config.backend)
        state = config.state
        if state is None and spec.kind == "emulator":  # its own chip, never the user's rramctl chip
            state = agent_state_path()
        existed = state is not None and state.exists()
        transport = open_transport(spec, OpenOptions(BoardConfig(), state, config.seed, config.bitfile))
    except RramctlError as e:
        print(f"rramctl-agent: {e}", file=sys.stderr)
        return 1
    held = transport.chip_model() if existed else None
    if held is not None and "seed" in config.model_fields_set and held.seed != config.seed:
        print(f"rramctl-agent: note: --seed {config.seed} ignored: {state} holds a chip of seed {held.seed} (--seed "
              "applies to a new chip: another --state, or move that file away)", file=sys.stderr)  # fmt: skip
    with transport:
        agent_kwargs = dict(cache_depth=config.cache_depth, cache_bytes=config.cache_bytes,
                            max_sessions=config.max_sessions, keepalive_s=config.keepalive_s)  # fmt: skip
        if config.pty:
            with PtyAgent(transport, **agent_kwargs) as served:
                print(served.path, flush=True)
                stop.wait()
            return 0
        assert config.port is not None
        try:
            link = open_port(config.port, config.baudrate, write_timeout_s=5.0)
        except TransportError as e:
            print(f"rramctl-agent: {e}", file=sys.stderr)
            return 1
        try:
            Agent.from_config(transport, link, config).serve(stop)
        except OSError as e:  # the port went away (USB unplugged): exit non-zero, systemd restarts us
            print(f"rramctl-agent: serial port {config.port} failed: {e}", file=sys.stderr)
            return 1
        finally:
            link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
