"""Transports: how the driver reaches the overlay's registers and DMA streams."""

from rramctl.transport.base import RegWrite, Transport, TransportError

__all__ = ["RegWrite", "Transport", "TransportError"]
