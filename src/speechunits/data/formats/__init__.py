"""Corpora stored in containers: Parquet and Hugging Face datasets, WebDataset tar shards, Lhotse cuts.

:func:`read_input` turns one input (a path, or a brace/glob pattern through
:func:`expand_pattern`) into utterances. Besides everything :func:`read_manifest` reads it takes:

- a ``.parquet`` file, or a folder of them (searched recursively) holding no audio files: rows
  with an audio column in the Hugging Face ``Audio`` layout (a struct with ``bytes`` and/or
  ``path``), ids from an ``id`` column (``formats.arrow``);
- a folder written by ``datasets.Dataset.save_to_disk`` (or ``DatasetDict``: every split);
- a WebDataset ``.tar`` shard: members grouped by key as WebDataset does, ``KEY.flac`` (or
  ``.wav``, ``.mp3``, ``.ogg``, ``.opus``) plus optional ``KEY.json``/``KEY.txt``
  (``formats.webdataset``);
- a Lhotse cuts (or recordings) manifest, ``.jsonl.gz`` or ``.jsonl`` (``formats.lhotse``).

Audio inside a container is never a file of its own: such an utterance's ``path`` is the
container and its ``audio`` an :class:`~speechunits.data.manifest.AudioRef` that the loader
reads lazily (bytes decoded from memory, nothing written to disk). Ids come from the
container's id or key fields and must be unique within it; paths a container names stay inside
its folder (``inside_root``). A row or member that cannot be used (no audio, a truncated member)
becomes a failed utterance with its reason, like an unreadable folder in a scan.

Example:
    >>> import tempfile, pathlib, numpy as np, soundfile as sf
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sf.write(d / "a.wav", np.zeros(1600, np.float32), 16000)
    >>> [u.id for u in read_input(d)]
    ['a']
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from speechunits.data.formats.common import require
from speechunits.data.manifest import AUDIO_SUFFIXES, ManifestError, Utterance, read_manifest
from speechunits.data.scan import ScanError, walk

_PATTERN_CHARS = "*?[{"


def expand_pattern(item: str) -> list[Path]:
    """``item`` as paths: itself when it exists or has no pattern; else its brace (``{0..9}``,
    ``{a,b}``, as WebDataset shard lists are written) and glob (``*``, ``?``, ``[..]``)
    expansions, each sorted. A pattern that matches nothing raises ``ManifestError``."""
    if os.path.lexists(item) or not any(c in item for c in _PATTERN_CHARS):
        return [Path(item)]
    parts = [item]
    if "{" in item:
        braceexpand = require("braceexpand", item)
        parts = list(braceexpand.braceexpand(item))
    out: list[Path] = []
    for part in parts:
        if any(c in part for c in "*?["):
            out += [Path(p) for p in sorted(glob.glob(part))]
        elif os.path.lexists(part):
            out.append(Path(part))
        else:  # a brace list names each shard: a missing one is an error, not a skip
            raise ManifestError(part, f"not found (from the pattern {item!r})")
    if not out:
        raise ManifestError(item, "no file matches this pattern")
    return out


_COMPRESSED_TAR = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


def is_container(path: Path) -> bool:
    """True when the name of file ``path`` is one of this package's formats (a ``.jsonl`` is a
    manifest either way; folders are told apart by :func:`read_input`)."""
    return path.name.lower().endswith((".parquet", ".tar", ".jsonl.gz", *_COMPRESSED_TAR))


def read_input(source: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """Utterances of one container or manifest (see the module docstring); ``root``: the folder
    paths inside it are relative to (default: the container's folder)."""
    path = Path(source)
    if path.is_dir():
        from speechunits.data.formats import arrow

        if arrow.is_saved_dataset(path):
            return arrow.read_saved_dataset(path, root=root)
        try:
            return read_manifest(path)
        except ManifestError:
            parquet = _parquet_only(path)
            if not parquet:
                raise
            return arrow.read_parquet(parquet, source=path, root=root if root is not None else path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        from speechunits.data.formats import arrow

        return arrow.read_parquet([path], source=path, root=root)
    if name.endswith(_COMPRESSED_TAR):
        raise ManifestError(path, "compressed tar shards are not read (the loader seeks to each member); "
                                  "decompress it to a plain .tar")
    if name.endswith(".tar"):
        from speechunits.data.formats import webdataset

        return webdataset.read_webdataset(path)
    if name.endswith(".jsonl.gz") or (name.endswith(".jsonl") and _is_lhotse_jsonl(path)):
        from speechunits.data.formats import lhotse

        return lhotse.read_lhotse(path, root=root)
    return read_manifest(path, root=root)


def _is_lhotse_jsonl(path: Path) -> bool:
    """A ``.jsonl`` whose first object is a Lhotse cut or recording (no ``path``, which every
    speechunits JSONL manifest line has)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    first = json.loads(line)
                    break
            else:
                return False
    except (OSError, ValueError):
        return False  # read_manifest then says what is wrong with it
    return isinstance(first, dict) and "path" not in first and ("recording" in first or "sources" in first
                                                                 or str(first.get("type", "")).endswith("Cut"))


def _parquet_only(folder: Path) -> list[Path]:
    """The ``.parquet`` files under a folder that holds no audio files (else ``[]``)."""
    try:
        files = [e.path for e in walk(folder) if e.problem is None]
    except ScanError:
        return []
    if any(p.suffix.lower() in AUDIO_SUFFIXES for p in files):
        return []
    return sorted(p for p in files if p.suffix.lower() == ".parquet")
