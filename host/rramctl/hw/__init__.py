"""Bit-level codecs of the board's parts, shared by the driver, the emulator and the HDL benches.

Each module here is the single place where one datasheet encoding lives:
``dac80508`` (SPI frames), ``linedrive`` (SN74HC595 chain + CD4051B selects),
``adc`` (TIA + ADS8324 transfer function and serial frame).
"""
