"""Typed errors for bad audio input."""

from __future__ import annotations

import errno


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


def os_error_reason(err: OSError) -> str:
    """A short, right reason for a file-system error: what a user can act on, not errno jargon.

    "System error" (libsndfile's word for any of these) and "file not found" for a symlink loop
    send users looking in the wrong place.
    """
    code = getattr(err, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ELOOP:
        return "symbolic link loop (the link resolves back to itself)"
    if code == errno.ENOENT:
        return "file not found"
    if code == errno.ENOTDIR:
        return "file not found (a part of the path is not a folder)"
    return err.strerror or str(err)
