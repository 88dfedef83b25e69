"""Parquet files and Hugging Face ``save_to_disk`` folders: rows with an audio column.

The audio column is the one the file's Hugging Face metadata marks ``Audio``, else one named
``audio``, else the only struct column with a ``bytes`` field. Its layout is the ``Audio``
feature's storage: ``struct<bytes: binary, path: string>``; a row with ``bytes`` is decoded from
them in memory, a row with only ``path`` names a file inside the container's folder (or
``root``). A plain ``binary`` column of encoded files is read too.

Listing reads only the id, speaker and text columns (``formats.common.ID_FIELDS`` ...); the audio is
read when the loader asks for a row: one Parquet row group at a time (the last two are kept, as
the loader asks in order), or from the memory-mapped Arrow files ``save_to_disk`` wrote (the
``state.json`` lists them; a ``DatasetDict`` folder has one per split, each read in the order
``dataset_dict.json`` gives).

Example:
    >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pq.write_table(pa.table({"id": ["a"], "audio": [{"bytes": b"RIFF", "path": None}]}), d / "x.parquet")
    >>> [u.id for u in read_parquet([d / "x.parquet"], source=d / "x.parquet")]
    ['a']
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from speechunits.audio.errors import AudioError, os_error_reason
from speechunits.data.formats.common import ID_FIELDS, SPEAKER_FIELDS, TEXT_FIELDS, pick_field, require
from speechunits.data.manifest import ManifestError, Utterance, _check_unique, inside_root


class _Cache:
    """A small thread-safe LRU of loaded values (row groups, mapped tables)."""

    def __init__(self, size: int) -> None:
        self.size, self.lock, self.items = size, threading.Lock(), OrderedDict()

    def get(self, key, make: Callable):
        with self.lock:  # loading under the lock: two decode threads never read one row group twice
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            value = make()
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return value


_ROW_GROUPS = _Cache(2)  # a row group of audio may be 100s of MB; the loader reads in order
_MAPPED = _Cache(8)  # memory-mapped Arrow files cost address space, not memory


class _Table:
    """One Parquet or Arrow file: its schema, its metadata columns, a row's audio value."""

    def __init__(self, path: Path, root: Path, parquet: bool) -> None:
        pa = require("pyarrow", str(path))
        self.path, self.root, self.parquet = path, root, parquet
        try:
            st = os.stat(path)
            # cached row groups and mapped files are keyed by this, so a file rewritten in place
            # (a notebook saving a dataset again) is read afresh
            self.key = (str(path), st.st_mtime_ns, st.st_size)
            if parquet:
                pq = require("pyarrow.parquet", str(path))
                meta = pq.ParquetFile(path).metadata
                self.schema = meta.schema.to_arrow_schema()
                self.starts = [0]
                for i in range(meta.num_row_groups):
                    self.starts.append(self.starts[-1] + meta.row_group(i).num_rows)
            else:
                self.schema = self._mapped().schema
        except FileNotFoundError as e:
            raise ManifestError(path, os_error_reason(e)) from None
        except (OSError, pa.ArrowException) as e:
            raise ManifestError(path, f"not a readable {'Parquet' if parquet else 'Arrow'} file ({_first_line(e)})") from None
        self.audio = _audio_column(self.schema, path)

    def columns(self, names: list[str]):
        if self.parquet:
            return require("pyarrow.parquet", str(self.path)).read_table(self.path, columns=names)
        return self._mapped().select(names)

    def audio_value(self, row: int):
        if self.parquet:
            g = bisect.bisect_right(self.starts, row) - 1
            col = _ROW_GROUPS.get((self.key, g), lambda: self._read_group(g))
            return col[row - self.starts[g]].as_py()
        return self._mapped().column(self.audio)[row].as_py()

    def _read_group(self, g: int):
        pq = require("pyarrow.parquet", str(self.path))
        return pq.ParquetFile(self.path).read_row_group(g, columns=[self.audio]).column(0)

    def _mapped(self):
        def open_stream():
            import pyarrow as pa

            source = pa.memory_map(str(self.path))
            try:
                return pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:  # the random-access file layout, as some writers use
                return pa.ipc.open_file(source).read_all()

        return _MAPPED.get(self.key, open_stream)


class RowAudio:
    """The audio of one row: its bytes, or the file its ``path`` names (an ``AudioRef``)."""

    __slots__ = ("table", "row")

    def __init__(self, table: _Table, row: int) -> None:
        self.table, self.row = table, row

    def __str__(self) -> str:
        return f"{self.table.path}: row {self.row}"

    def read(self) -> bytes | Path:
        value = self.table.audio_value(self.row)
        data, rel = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
        if data:
            return bytes(data)
        if rel:
            try:
                return inside_root(self.table.root, rel, self.table.path)
            except ManifestError as e:
                raise AudioError(self, e.reason) from None
        raise AudioError(self, "no audio in this row (its bytes and path are both empty)")


def read_parquet(files: list[Path], source: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """Utterances of Parquet ``files`` (one input, ``source``, for errors); paths in rows are
    relative to ``root`` (default: each file's folder)."""
    tables = [_Table(Path(f), Path(root) if root is not None else Path(f).parent, parquet=True) for f in files]
    return _utterances(tables, Path(source))


def is_saved_dataset(folder: Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file())


def read_saved_dataset(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """Utterances of a ``save_to_disk`` folder (every split of a ``DatasetDict``, in order)."""
    folder = Path(folder)
    base = Path(root) if root is not None else folder
    splits = [folder]
    if (folder / "dataset_dict.json").is_file():
        names = _read_json(folder / "dataset_dict.json").get("splits")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ManifestError(folder / "dataset_dict.json", "expected {\"splits\": [names]}")
        splits = [folder / n for n in names]
    tables = []
    for split in splits:
        state = _read_json(split / "state.json")
        files = state.get("_data_files")
        if not isinstance(files, list) or not files:
            raise ManifestError(split / "state.json", "no '_data_files' listed")
        for f in files:
            name = f.get("filename") if isinstance(f, dict) else None
            if not isinstance(name, str):
                raise ManifestError(split / "state.json", f"bad '_data_files' entry {f!r}")
            tables.append(_Table(inside_root(split, name, split / "state.json"), base, parquet=False))
    return _utterances(tables, folder)


def _utterances(tables: list[_Table], source: Path) -> list[Utterance]:
    out: list[Utterance] = []
    seen: dict[str, str] = {}
    for t in tables:
        names = t.schema.names
        id_col = pick_field(names, ID_FIELDS)
        if id_col is None:
            raise ManifestError(t.path, f"no id column (one of {', '.join(ID_FIELDS)}); it has {', '.join(names)}")
        spk, txt = pick_field(names, SPEAKER_FIELDS), pick_field(names, TEXT_FIELDS)
        meta = t.columns([c for c in (id_col, spk, txt) if c is not None])
        ids = meta.column(id_col).to_pylist()
        speakers = meta.column(spk).to_pylist() if spk else [None] * len(ids)
        texts = meta.column(txt).to_pylist() if txt else [None] * len(ids)
        for row, (uid, speaker, text) in enumerate(zip(ids, speakers, texts)):
            if uid is None or uid == "":
                raise ManifestError(t.path, f"row {row} has no {id_col!r}")
            uid = str(uid)
            _check_unique(uid, f"{t.path.name} row {row}", seen, source, None)
            out.append(Utterance(uid, t.path, speaker=None if speaker is None else str(speaker),
                                 text=None if text is None else str(text), audio=RowAudio(t, row)))
    if not out:
        raise ManifestError(source, "no rows")
    return out


def _audio_column(schema, path: Path) -> str:
    """The audio column: marked ``Audio`` in the Hugging Face metadata, else named ``audio``, else
    the only struct column with a ``bytes`` field."""
    import pyarrow as pa

    def usable(name: str) -> bool:
        t = schema.field(name).type
        return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
            pa.types.is_struct(t) and any(t.field(i).name in ("bytes", "path") for i in range(t.num_fields)))

    marked = []
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw:
        try:
            features = json.loads(raw).get("info", {}).get("features", {})
            marked = [n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == "Audio"]
        except (ValueError, AttributeError):
            pass
    candidates = [n for n in marked if n in schema.names and usable(n)]
    if not candidates and "audio" in schema.names and usable("audio"):
        candidates = ["audio"]
    if not candidates:
        candidates = [n for n in schema.names if pa.types.is_struct(schema.field(n).type) and usable(n)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ManifestError(path, f"several audio columns ({', '.join(candidates)}); keep one")
    raise ManifestError(path, "no audio column (a struct with 'bytes' and/or 'path', as the "
                              f"Hugging Face Audio feature stores it); it has {', '.join(schema.names)}")


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(path, e.strerror or str(e)) from None
    except ValueError as e:
        raise ManifestError(path, f"invalid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ManifestError(path, "expected a JSON object")
    return d


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
