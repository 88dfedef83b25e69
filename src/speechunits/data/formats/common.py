"""What the container readers share: optional imports, and the fields rows name things by."""

from __future__ import annotations

import importlib
from typing import Iterable

from speechunits.data.manifest import ManifestError

INSTALL_HINT = "pip install 'speechunits[formats]'"

# Columns (or JSON keys) a container's rows may name their id, speaker and transcript by,
# tried in this order. An id is never taken from an audio file's name.
ID_FIELDS = ("id", "key", "__key__", "utt_id", "segment_id", "audio_id")
SPEAKER_FIELDS = ("speaker", "speaker_id", "client_id")
TEXT_FIELDS = ("text", "sentence", "transcription", "transcript", "normalized_text")


def require(module: str, what: str):
    """Import an optional library, or fail with the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ManifestError(what, f"reading this needs the '{module}' package ({INSTALL_HINT})") from None


def pick_field(names: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` present in ``names``."""
    have = set(names)
    return next((c for c in candidates if c in have), None)
