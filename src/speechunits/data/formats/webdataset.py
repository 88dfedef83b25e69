"""WebDataset tar shards: one utterance per sample (members grouped by key).

Members are grouped the way WebDataset groups them (``webdataset.tariterators``): the key of
``dir/a.b.flac`` is ``dir/a`` (the name up to the first dot of its last part), its suffix
``b.flac``; consecutive members with one key form a sample; members that are not regular files,
names without a dot and top-level ``__*__`` metadata are skipped. A sample's audio is its one
``flac``, ``wav``, ``mp3``, ``ogg`` or ``opus`` member (the suffix's last part); ``json`` (an
object: speaker and text from the keys in ``formats.common.SPEAKER_FIELDS``/``TEXT_FIELDS``) and
``txt`` (the transcript) members are read while the tar is indexed. The id is the key.

The tar is indexed once (headers only; audio is read later by seeking to the member), so it
must be an uncompressed ``.tar``. A key that occurs in two samples, or twice in one, is refused.
Damage costs only what it touches: a sample without exactly one audio member, or whose audio is
cut off by the end of the file, is a failed utterance; a shard that ends early (a broken header,
or no end-of-archive block after the last member) adds one failed entry, id
``<shard name>@<byte offset>``, saying from where members may be lost.

Example:
    >>> import io, tarfile, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "shard.tar"
    >>> with tarfile.open(p, "w") as tf:
    ...     for name, data in (("s1.flac", b"fLaC"), ("s1.txt", b"hello")):
    ...         ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    >>> [(u.id, u.text) for u in read_webdataset(p)]
    [('s1', 'hello')]
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from speechunits.audio.errors import AudioError, os_error_reason
from speechunits.data.formats.common import SPEAKER_FIELDS, TEXT_FIELDS, pick_field
from speechunits.data.manifest import ManifestError, Utterance, _duplicate_message

AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg", "opus")
MAX_META_BYTES = 1 << 20  # a .json/.txt member larger than this is not metadata; it is ignored
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset.tariterators.base_plus_ext


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int  # of its data
    size: int


class TarMember:
    """One member's bytes, read by seeking in the shard (an ``AudioRef``)."""

    __slots__ = ("tar", "member")

    def __init__(self, tar: Path, member: _Member) -> None:
        self.tar, self.member = tar, member

    def __str__(self) -> str:
        return f"{self.tar}:{self.member.name}"

    def read(self) -> bytes:
        try:
            with open(self.tar, "rb") as f:
                f.seek(self.member.offset)
                data = f.read(self.member.size)
        except OSError as e:
            raise AudioError(self, os_error_reason(e)) from None
        if len(data) < self.member.size:
            raise AudioError(self, f"truncated: the tar ends {self.member.size - len(data)} bytes into this member")
        return data


def read_webdataset(path: str | os.PathLike) -> list[Utterance]:
    """Utterances of one uncompressed WebDataset shard (see the module docstring)."""
    path = Path(path)
    members, size, damage = _index(path)
    out: list[Utterance] = []
    seen: dict[str, str] = {}
    samples: list[tuple[str, dict[str, _Member]]] = []
    for m in members:
        match = _KEY.match(m.name)
        if match is None:
            continue
        key, suffix = match.group(1), match.group(2).lower()
        if not samples or samples[-1][0] != key:
            if key in seen:
                raise ManifestError(path, _duplicate_message(key, seen[key], f"a later sample at {m.name}"))
            seen[key] = f"the sample at {m.name}"
            samples.append((key, {}))
        if suffix in samples[-1][1]:
            raise ManifestError(path, _duplicate_message(key, samples[-1][1][suffix].name, f"another {m.name}"))
        samples[-1][1][suffix] = m
    with open(path, "rb") as f:
        for key, parts in samples:
            audio = [m for s, m in parts.items() if s.rsplit(".", 1)[-1] in AUDIO_EXTENSIONS]
            u = Utterance(key, path)
            u.speaker, u.text = _metadata(f, parts)
            if len(audio) != 1:
                found = ", ".join(sorted(m.name for m in audio)) if audio else "none"
                u.error = (f"expected one audio member ({', '.join('.' + e for e in AUDIO_EXTENSIONS)}) "
                           f"in sample {key!r}, found {found}")
            elif audio[0].offset + audio[0].size > size:
                u.error = (f"{audio[0].name}: truncated: the tar ends "
                           f"{audio[0].offset + audio[0].size - size} bytes into this member")
            else:
                u.audio = TarMember(path, audio[0])
            out.append(u)
    if damage is not None:
        out.append(Utterance(f"{path.name}@{damage[0]}", path, error=damage[1]))
    if not out:
        raise ManifestError(path, "no samples in this tar")
    return out


def _index(path: Path) -> tuple[list[_Member], int, tuple[int, str] | None]:
    """Regular members in order, the file size, and where and why the tar ends early (if so)."""
    try:
        size = os.path.getsize(path)
        tf = tarfile.open(path, mode="r:")
    except tarfile.TarError as e:
        raise ManifestError(path, f"not a readable uncompressed tar ({e})") from None
    except OSError as e:
        raise ManifestError(path, os_error_reason(e)) from None
    members: list[_Member] = []
    damage = None
    with tf:
        while True:
            try:
                m = tf.next()
            except (tarfile.TarError, OSError) as e:
                damage = (tf.offset, f"truncated or corrupt tar from byte {tf.offset} on ({e}); "
                                     "members after it are lost")
                break
            if m is None:
                break
            if not m.isreg() or ("/" not in m.name and m.name.startswith("__") and m.name.endswith("__")):
                continue
            members.append(_Member(m.name, m.offset_data, m.size))
        end = tf.offset
        # tarfile also stops quietly at a header cut short or garbled: a complete tar has a zero
        # block where the next header would be.
        if damage is None:
            tf.fileobj.seek(end)
            block = tf.fileobj.read(tarfile.BLOCKSIZE)
            if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
                damage = (end, f"truncated or corrupt tar: no end-of-archive block at byte {end}; "
                               "members after it are lost")
    return members, size, damage


def _metadata(f, parts: dict[str, _Member]) -> tuple[str | None, str | None]:
    """Speaker and text from a sample's ``json`` and ``txt`` members (missing or unusable: None)."""
    speaker = text = None
    meta = parts.get("json")
    if meta is not None and meta.size <= MAX_META_BYTES:
        try:
            f.seek(meta.offset)
            d = json.loads(f.read(meta.size).decode("utf-8"))
        except (ValueError, OSError):
            d = None
        if isinstance(d, dict):
            s, t = pick_field(d, SPEAKER_FIELDS), pick_field(d, TEXT_FIELDS)
            speaker = None if s is None or d[s] is None else str(d[s])
            text = None if t is None or d[t] is None else str(d[t])
    txt = parts.get("txt")
    if txt is not None and txt.size <= MAX_META_BYTES and text is None:
        try:
            f.seek(txt.offset)
            text = f.read(txt.size).decode("utf-8").strip()
        except (UnicodeDecodeError, OSError):
            pass
    return speaker, text
