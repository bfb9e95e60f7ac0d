"""rramsim: the bit-exact emulator of the RRAM chip, its board periphery and the PL overlay."""
