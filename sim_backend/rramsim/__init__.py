"""rramsim: the bit-exact emulator of the RRAM chip, its board periphery and the PL overlay.

Reached through the registers and streams of docs/protocol.md (rramsim.overlay.EmulatedOverlay,
rramctl.transport.emulator.EmulatorTransport); the physics has a per-event API for the cocotb
benches (rramsim.crossbar).  See docs/emulator.md.
"""
