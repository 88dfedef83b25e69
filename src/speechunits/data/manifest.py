"""Manifests: lists of utterances, read from and written to the formats the field uses.

- fairseq ``.tsv``: first line the root folder, then ``relpath<TAB>num_samples`` per line.
- JSONL: one object a line with ``id``, ``path`` (relative to the manifest's folder unless a
  ``root`` is given) and optional ``speaker``, ``text``, ``alignment``, ``num_samples``, ``split``.
- a folder: audio files found recursively (sorted, ids are the relative paths without suffix),
  links followed but each real file once (``data.scan``); a sub-folder that cannot be listed
  becomes an entry with its ``error`` ("permission denied") that loaders count as failed; two
  files with one id (``a.wav`` and ``a.flac``) and a folder without audio are errors.
- a LibriSpeech tree: ``<speaker>/<chapter>/<spk>-<chap>-<n>.flac`` with ``*.trans.txt``
  transcripts and ``SPEAKERS.TXT`` metadata; flatter copies (``<speaker>/<utt>.flac`` or
  ``<utt>.flac``) are read too, the speaker then taken from the utterance id, whose first field
  LibriSpeech defines as the speaker id.

Every path stays inside the root it is relative to: ``..`` escapes and absolute paths outside
the root are refused. A malformed line raises ``ManifestError`` naming the file and line. One
rule for ids everywhere (:func:`check_unique_ids`, used by the CLI too): an id names one file.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "m.jsonl").write_text('{"id": "a", "path": "a.wav", "speaker": "s1"}\\n')
    >>> [u.id for u in read_manifest(d / "m.jsonl")]
    ['a']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

from speechunits.audio.errors import os_error_reason
from speechunits.data.atomic import atomic_open
from speechunits.data.scan import Entry, ScanError, walk

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
_KNOWN_KEYS = ("id", "path", "speaker", "text", "alignment", "num_samples")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and, where known, the line."""

    def __init__(self, source: object, reason: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else str(source)
        self.source, self.line, self.reason = str(source), line, reason
        super().__init__(f"{where}: {reason}")


class AudioRef(Protocol):
    """Audio that is not a file of its own: bytes inside a container (a Parquet row, a tar
    member) or a span of a file (a Lhotse cut); see ``speechunits.data.formats``.

    ``read()`` returns the encoded file as bytes, a file path, or ``(samples, sample_rate)``,
    and raises ``AudioError`` with the reason; ``str()`` names it in failure records."""

    def read(self) -> bytes | Path | tuple[Any, int]: ...


@dataclass
class Utterance:
    """One entry of a manifest; ``path`` and ``alignment`` are absolute, inside the root."""

    id: str
    path: Path
    num_samples: int | None = None
    speaker: str | None = None
    text: str | None = None
    alignment: Path | None = None
    extra: dict = field(default_factory=dict)
    # Set when a folder scan found this entry but cannot read it (a sub-folder it may not list):
    # loaders record it as failed with this reason instead of opening ``path``.
    error: str | None = None
    # Set when the audio lives inside the container ``path`` names (``data.formats``): loaders
    # read it from here instead of opening ``path``.
    audio: AudioRef | None = None


def inside_root(root: Path, rel: str | os.PathLike, source: object, line: int | None = None) -> Path:
    """Join ``rel`` to ``root`` and refuse any result that leaves ``root``.

    The check is lexical (after normalising ``..``), so a dataset folder of symlinks still works
    while a manifest cannot name a file outside the folder it declares.
    """
    root_n = Path(os.path.normpath(os.path.abspath(root)))
    p = Path(rel)
    full = Path(os.path.normpath(p if p.is_absolute() else root_n / p))
    if full != root_n and root_n not in full.parents:
        raise ManifestError(source, f"path {str(rel)!r} lies outside the root {str(root_n)!r}", line)
    return full


# -- reading ------------------------------------------------------------------------------


def read_manifest(source: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """Read any supported manifest: ``.tsv``, ``.jsonl``, a LibriSpeech tree or a folder."""
    path = Path(source)
    if not path.exists():
        raise ManifestError(path, input_missing_reason(path, "manifest not found"))
    if path.is_dir():
        return read_librispeech(path) if is_librispeech(path) else read_folder(path)
    if path.suffix == ".tsv":
        return read_tsv(path)
    if path.suffix in (".jsonl", ".json"):
        return read_jsonl(path, root=root)
    raise ManifestError(path, "unknown manifest type (expected .tsv, .jsonl or a folder)")


def read_tsv(path: str | os.PathLike) -> list[Utterance]:
    """fairseq manifest: root on the first line, then ``relpath<TAB>num_samples``."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines or not lines[0].strip():
        raise ManifestError(path, "empty manifest: the first line must be the root folder", 1)
    # Without this check a manifest missing its root line loses its first utterance, read as
    # the root of the others.
    if "\t" in lines[0]:
        raise ManifestError(path, f"the first line must be the root folder, got {lines[0]!r} "
                                  "(a TAB: is the root line missing?)", 1)
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = path.parent / root
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ManifestError(path, f"the root folder on the first line, {str(root)!r}, {what}", 1)
    out: list[Utterance] = []
    seen: dict[str, str] = {}
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        if len(cols) != 2:
            raise ManifestError(path, f"expected 'relpath<TAB>num_samples', got {len(cols)} column(s)", no)
        rel, n = cols
        try:
            num = int(n)
        except ValueError:
            raise ManifestError(path, f"num_samples {n!r} is not an integer", no) from None
        if num < 0:
            raise ManifestError(path, f"num_samples {num} is negative", no)
        full = inside_root(root, rel, path, no)
        uid = _strip_suffix(rel)
        _check_unique(uid, f"{rel} (line {no})", seen, path, no)
        out.append(Utterance(uid, full, num_samples=num))
    return out


def read_jsonl(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """JSONL manifest; relative paths are resolved against ``root`` (default: its folder)."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    out: list[Utterance] = []
    seen: dict[str, str] = {}
    for no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(path, f"invalid JSON ({e.msg})", no) from None
        if not isinstance(d, dict):
            raise ManifestError(path, "each line must be a JSON object", no)
        for key in ("id", "path"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ManifestError(path, f"missing or non-string {key!r}", no)
        num = d.get("num_samples")
        if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 0):
            raise ManifestError(path, f"num_samples must be a non-negative integer, got {num!r}", no)
        _check_unique(d["id"], f"{d['path']} (line {no})", seen, path, no)
        ali = d.get("alignment")
        out.append(
            Utterance(
                id=d["id"],
                path=inside_root(base, d["path"], path, no),
                num_samples=num,
                speaker=None if d.get("speaker") is None else str(d["speaker"]),
                text=d.get("text"),
                alignment=None if ali is None else inside_root(base, ali, path, no),
                extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
            )
        )
    return out


def read_folder(folder: str | os.PathLike, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> list[Utterance]:
    """Audio files under ``folder``, recursively, in sorted order (see the module docstring).

    Sidecar files with the same stem are attached: ``<stem>.txt`` as the transcript and
    ``<stem>.alignment.json`` (ours) or ``<stem>.phone.json`` (pocketsphinx) as the alignment.
    """
    folder = Path(folder)
    suf = tuple(s.lower() for s in suffixes)
    entries = _scan(folder)
    files = sorted(e.path for e in entries if e.problem is None and e.path.suffix.lower() in suf)
    out = []
    for p in files:
        u = Utterance(_strip_suffix(p.relative_to(folder).as_posix()), p)
        txt = p.with_suffix(".txt")
        if txt.is_file():
            u.text = txt.read_text(encoding="utf-8").strip()
        for ali in (p.with_suffix(".alignment.json"), p.with_suffix(".phone.json")):
            if ali.is_file():
                u.alignment = ali
                break
        out.append(u)
    check_unique_ids(out, folder)
    out += _unreadable(entries, folder)
    if not out:
        raise ManifestError(folder, f"no audio files ({', '.join(suf)}) in this folder or below")
    return out


def is_librispeech(folder: str | os.PathLike) -> bool:
    """True when the folder follows LibriSpeech naming: ``<spk>-<chap>-<n>.flac`` files."""
    try:
        for e in walk(folder):
            if e.problem is None and e.path.suffix == ".flac":
                return _librispeech_id(e.path.stem) is not None
    except ScanError as e:
        raise ManifestError(e.folder, e.reason) from None
    return False


def read_librispeech(folder: str | os.PathLike) -> list[Utterance]:
    """A LibriSpeech tree (or a subset/flattened copy); adds transcripts and speaker sex."""
    folder = Path(folder)
    entries = _scan(folder)
    speakers = _read_speakers_txt(folder)
    texts: dict[str, str] = {}
    for trans in sorted(e.path for e in entries if e.problem is None and e.path.name.endswith(".trans.txt")):
        for no, line in enumerate(_read_lines(trans), start=1):
            if line.strip():
                uid, _, text = line.strip().partition(" ")
                if not text:
                    raise ManifestError(trans, "expected '<utterance-id> <TRANSCRIPT>'", no)
                texts[uid] = text
    out: list[Utterance] = []
    for p in sorted(e.path for e in entries if e.problem is None and e.path.suffix == ".flac"):
        fields = _librispeech_id(p.stem)
        if fields is None:
            raise ManifestError(p, "not a LibriSpeech file name (<speaker>-<chapter>-<utterance>.flac)")
        spk = fields[0]
        # In the full tree the folder names are the speaker and chapter: they must agree.
        rel = p.relative_to(folder).parts
        if len(rel) >= 3 and rel[-3].isdigit() and (rel[-3], rel[-2]) != fields[:2]:
            raise ManifestError(p, f"file name disagrees with its folders {rel[-3]}/{rel[-2]}")
        extra = {"subset": rel[0]} if len(rel) > 1 and not rel[0].isdigit() else {}
        if spk in speakers:
            extra.update(speakers[spk])
        out.append(Utterance(p.stem, p, speaker=spk, text=texts.get(p.stem), extra=extra))
    check_unique_ids(out, folder)
    return out + _unreadable(entries, folder)


def input_missing_reason(path: Path, not_found: str = "input not found") -> str:
    """Why ``path.exists()`` is False: not found, or a link loop / permission problem on the way."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"{not_found} (broken symbolic link)" if os.path.islink(path) else not_found
    except OSError as e:
        return os_error_reason(e)
    return not_found


def check_unique_ids(utts: Iterable[Utterance], source: object = "<inputs>") -> list[Utterance]:
    """The one rule for ids: an id names one file. The same file under the same id twice is kept
    once; two different files with one id (``a.wav`` and ``a.flac``) raise ``ManifestError``
    naming both. Returns the utterances, each id once, in order."""
    seen: dict[str, Utterance] = {}
    for u in utts:
        first = seen.get(u.id)
        if first is None:
            seen[u.id] = u
        elif first.path != u.path:
            raise ManifestError(source, _duplicate_message(u.id, str(first.path), str(u.path)))
    return list(seen.values())


def _librispeech_id(stem: str) -> tuple[str, str, str] | None:
    parts = stem.split("-")
    if len(parts) == 3 and all(x.isdigit() for x in parts):
        return parts[0], parts[1], parts[2]
    return None


def _read_speakers_txt(folder: Path) -> dict[str, dict]:
    """``SPEAKERS.TXT`` of LibriSpeech: ``ID | SEX | SUBSET | MINUTES | NAME``; ';' comments."""
    for cand in (folder / "SPEAKERS.TXT", folder.parent / "SPEAKERS.TXT"):
        if cand.is_file():
            out = {}
            for line in _read_lines(cand):
                if line.startswith(";") or "|" not in line:
                    continue
                cols = [c.strip() for c in line.split("|")]
                if len(cols) >= 3 and cols[0].isdigit():
                    out[cols[0]] = {"sex": cols[1], "speaker_subset": cols[2]}
            return out
    return {}


# -- writing ------------------------------------------------------------------------------


def write_tsv(utts: Iterable[Utterance], path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Write a fairseq manifest; every utterance needs ``num_samples`` and a path inside ``root``."""
    path, root = Path(path), Path(os.path.abspath(root))
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(f"{root}\n")
        for u in utts:
            _check_readable(u, path)
            if u.num_samples is None:
                raise ManifestError(path, f"utterance {u.id!r} has no num_samples (fairseq needs it)")
            rel = _relative(u.path, root, path)
            f.write(f"{rel}\t{u.num_samples}\n")


def write_jsonl(utts: Iterable[Utterance], path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Write a JSONL manifest with paths relative to ``root`` (default: the manifest's folder)."""
    path = Path(path)
    base = Path(os.path.abspath(root if root is not None else path.parent))
    with atomic_open(path, "w", encoding="utf-8") as f:
        for u in utts:
            _check_readable(u, path)
            d: dict = {"id": u.id, "path": _relative(u.path, base, path)}
            for key in ("num_samples", "speaker", "text"):
                if getattr(u, key) is not None:
                    d[key] = getattr(u, key)
            if u.alignment is not None:
                d["alignment"] = _relative(u.alignment, base, path)
            d.update(u.extra)
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


def fill_num_samples(utts: list[Utterance]) -> list[Utterance]:
    """Fill missing ``num_samples`` from file headers (samples after resampling to 16 kHz)."""
    from speechunits.audio import info, num_samples_at

    for u in utts:
        if u.num_samples is None and u.error is None:
            i = info(u.path)
            u.num_samples = num_samples_at(i.frames, i.sample_rate)
    return utts


# -- helpers ------------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ManifestError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:  # not found, permission denied, a link loop: say which
        raise ManifestError(path, os_error_reason(e)) from None


def _scan(folder: Path) -> list[Entry]:
    try:
        return list(walk(folder))
    except ScanError as e:
        raise ManifestError(e.folder, e.reason) from None


def _unreadable(entries: list[Entry], folder: Path) -> list[Utterance]:
    """Folders the scan could not list, as failed entries (id: the folder's path and a slash)."""
    out = []
    for e in entries:
        if e.problem is not None:
            out.append(Utterance(e.path.relative_to(folder).as_posix() + "/", e.path, error=e.problem))
    return out


def _check_readable(u: Utterance, manifest: Path) -> None:
    if u.error is not None:
        raise ManifestError(manifest, f"utterance {u.id!r} ({u.path}) could not be read ({u.error}); leave it out")
    if u.audio is not None:  # a manifest line names an audio file, not a row of a container
        raise ManifestError(manifest, f"utterance {u.id!r}: its audio is inside {u.path} ({u.audio}), "
                                      "which a manifest cannot name")


def _strip_suffix(rel: str) -> str:
    return rel[: -len(Path(rel).suffix)] if Path(rel).suffix else rel


def _duplicate_message(uid: str, first: str, second: str) -> str:
    return f"duplicate utterance id {uid!r}: {first} and {second} (ids must be unique; rename or remove one)"


def _check_unique(uid: str, where: str, seen: dict[str, str], source: Path, line: int) -> None:
    if uid in seen:
        raise ManifestError(source, _duplicate_message(uid, seen[uid], where), line)
    seen[uid] = where


def _relative(p: Path, root: Path, manifest: Path) -> str:
    full = inside_root(root, p, manifest)
    return full.relative_to(Path(os.path.normpath(root))).as_posix()
