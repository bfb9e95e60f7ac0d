"""The one exception hierarchy of rramctl.

Every error a user can cause or meet derives from :class:`RramctlError`; the CLI catches that
root (and ``OSError`` on the user's own paths) and prints one ``error:`` line. Anything else is a
bug and keeps its traceback. The subclasses say what kind of thing went wrong, not where:

- :class:`UsageError`: a request that is refused before anything changes: a value past the
  ratings, a cell outside the array, a malformed input or configuration file.
- :class:`DeviceError`: the overlay (board or emulator) refused or failed an operation.
- :class:`LinkError`: the link to the overlay failed (timeout, dropped link, refused request).
- :class:`StateError`: a file rramctl keeps between commands (emulator state, journal, run
  folder, checkpoint) is missing, malformed, locked by another process or inconsistent.

Modules keep their own narrower classes (``ConfigError``, ``GeometryError``, ...) as subclasses of
these, so a caller can catch as narrowly or as broadly as it needs.
"""

from __future__ import annotations


class RramctlError(Exception):
    """Root of every error rramctl raises on purpose."""


class UsageError(RramctlError, ValueError):
    """A request or input refused before anything changed (bad value, past the ratings, bad file)."""


class DeviceError(RramctlError, RuntimeError):
    """The overlay refused or failed an operation; ``code`` is the overlay's error code (0: none)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LinkError(RramctlError, RuntimeError):
    """The link to the overlay failed: timeout, dropped link, refused request, undecodable frame."""


class StateError(RramctlError, ValueError):
    """A file kept between commands is missing, malformed, in use by another process or inconsistent."""


__all__ = ["DeviceError", "LinkError", "RramctlError", "StateError", "UsageError"]
