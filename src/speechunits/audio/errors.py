"""Typed errors for bad audio input."""

from __future__ import annotations


class AudioError(ValueError):
    """Audio that cannot be used, with the input named and the reason stated.

    ``str(err)`` is a one-line message ``"<source>: <reason>"`` suitable for a batch log.
    """

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class AudioWarning(UserWarning):
    """Audio that loads but is suspicious (all silent, clipped)."""
