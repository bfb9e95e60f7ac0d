"""Fault injection: a seeded lossy link on both ends of the pty drops, corrupts, duplicates, reorders and
stalls frames and adds line noise.  Results must equal the direct emulator, no request may execute
twice (PULSE_COUNT / OP_COUNT equal the direct run), and every run ends in success or a TransportError."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
from rramctl.transport import serial_link as L
from rramctl.transport.base import TransportError
from rramctl.transport.serial import SerialTransport, open_port
from rramctl_agent.loopback import PtyAgent
from test_serial_agent import SEED, assert_same, emulator, run_scenario

FAULTS = ("drop", "corrupt", "duplicate", "reorder", "stall", "noise")


class LossyLink:
    """Wraps a ByteLink; each write (one frame) suffers at most one fault, drawn from ``rng``."""

    def __init__(self, link: L.ByteLink, rng: np.random.Generator, rate: float, stall_s: float = 0.08) -> None:
        self.link, self.rng, self.rate, self.stall_s = link, rng, rate, stall_s
        self.held: bytes | None = None
        self.tally: Counter[str] = Counter()
        self._lock = threading.Lock()  # the agent's keepalive thread writes too

    def read(self, size: int = 1) -> bytes:
        return self.link.read(size)

    def write(self, data: bytes) -> int:
        with self._lock:
            fault = FAULTS[self.rng.integers(len(FAULTS))] if self.rng.random() < self.rate else None
            if fault:
                self.tally[fault] += 1
            out: list[bytes] = []
            if fault == "corrupt":
                bit = int(self.rng.integers(len(data) * 8))
                wire = bytearray(data)
                wire[bit // 8] ^= 1 << (bit % 8)
                out.append(bytes(wire))
            elif fault == "duplicate":
                out += [data, data]
            elif fault == "reorder" and self.held is None:
                self.held = data  # goes out after the next frame
            elif fault == "noise":
                out += [self.rng.integers(0, 256, int(self.rng.integers(1, 40)), dtype=np.uint8).tobytes(), data]
            elif fault == "stall":
                time.sleep(self.stall_s)
                out.append(data)
            elif fault != "drop":
                out.append(data)
            if out and self.held is not None:
                out.append(self.held)
                self.held = None
            for chunk in out:
                self.link.write(chunk)
            return len(data)

    def close(self) -> None:
        self.link.close()


def lossy_pair(seed: int, rate: float) -> tuple[PtyAgent, list[LossyLink]]:
    links: list[LossyLink] = []

    def wrap(link: L.ByteLink) -> LossyLink:
        links.append(LossyLink(link, np.random.default_rng([seed, 1]), rate))
        return links[-1]

    return PtyAgent(emulator(), wrap=wrap, keepalive_s=0.1), links


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_link_gives_the_direct_results_and_never_repeats_an_operation(seed: int) -> None:
    direct = run_scenario(emulator(), SEED)
    served, links = lossy_pair(seed, rate=0.06)
    with served:
        host = LossyLink(open_port(served.path, 3_000_000, 2.0), np.random.default_rng([seed, 2]), rate=0.06)
        links.append(host)
        with SerialTransport(host, timeout=0.05, retries=40) as st:
            remote = run_scenario(st, SEED)
            assert served.agent.executed == st.last_seq  # each request executed once: none twice, none lost
            assert st.retransmissions > 0
    assert_same(remote, direct)  # includes OP_COUNT and PULSE_COUNT: no pulse applied twice
    tally = sum((link.tally for link in links), Counter())
    assert sum(tally.values()) >= 10 and len(tally) >= 4, tally


@pytest.mark.parametrize("seed", [4, 5])
def test_hopeless_link_ends_in_a_clear_error_without_repeating_anything(seed: int) -> None:
    direct = run_scenario(emulator(), SEED)
    served, links = lossy_pair(seed, rate=0.6)
    with served:
        host = LossyLink(open_port(served.path, 3_000_000, 2.0), np.random.default_rng([seed, 2]), rate=0.6)
        outcome: dict[str, np.ndarray] | TransportError
        st: SerialTransport | None = None
        try:
            st = SerialTransport(host, timeout=0.03, retries=2)
            outcome = run_scenario(st, SEED)
        except TransportError as e:
            outcome = e
        finally:
            sent = st.last_seq if st is not None else 0
            if st is not None:
                st.close()
        executed = served.agent.executed
        counters = served.agent.transport.overlay.counters
    if isinstance(outcome, TransportError):
        assert "no reply" in str(outcome) or "refused" in str(outcome)
    else:
        assert_same(outcome, direct)
    assert executed <= sent
    assert counters.op_count <= direct["counters"][0] and counters.pulse_count <= direct["counters"][1]
