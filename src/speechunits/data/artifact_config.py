"""The ``config.json`` of an artifact folder (vocoder, TTS model, ...), read as untrusted input.

One reader for every folder type, so each refuses the same things with the same one-line
errors: a missing folder or file, invalid JSON, another artifact type, another format version.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text(json.dumps({"type": "x", "format_version": 1}))
    >>> read_typed_config(d, "config.json", "x", 1, ValueError, "x model")["type"]
    'x'
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_typed_config(directory: str | os.PathLike, name: str, type_: str, format_version: int,
                      error: type[Exception], what: str) -> dict:
    """``directory/name`` as a dict of ``type`` ``type_`` and ``format_version``; else ``error``
    with ``"<file>: <reason>"`` (``what`` names the folder kind, e.g. ``"unit vocoder"``)."""
    d = Path(directory)
    cfg_file = d / name
    if not d.is_dir():
        raise error(f"{d}: not a {what} folder (no such directory)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{cfg_file}: missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{cfg_file}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise error(f"{cfg_file}: expected a JSON object")
    if config.get("type") != type_:
        raise error(f"{cfg_file}: not a speechunits {what} (type {config.get('type')!r})")
    if config.get("format_version") != format_version:
        raise error(f"{cfg_file}: format_version {config.get('format_version')!r} is not {format_version}")
    return config


def read_hashed_bytes(path: str | os.PathLike, expected_sha256: object, error: type[Exception]) -> bytes:
    """The bytes of ``path`` (the weights an artifact's config names by hash), refused with ``error``
    when missing or when their sha256 is not ``expected_sha256``: nothing is parsed before the check."""
    import hashlib

    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected_sha256:
        raise error(f"{path}: sha256 {digest[:16]}... does not match config.json "
                    f"({str(expected_sha256)[:16]}...): changed or damaged")
    return blob
