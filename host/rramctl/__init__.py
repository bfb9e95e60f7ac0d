"""rramctl: host control of RRAM in-memory-computing chips on ZYNQ/PYNQ boards, and a bit-exact emulator."""

__version__ = "0.1.0"
