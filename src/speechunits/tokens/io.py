"""Unit files: JSONL, Parquet, fairseq ``.km`` and the ``<|u12|>`` LLM text form.

Every file is self-describing through the tokenizer config written *beside it* as
``<file>.config.json`` (e.g. ``train.jsonl`` -> ``train.jsonl.config.json``): one sidecar per file,
so files made by different tokenizers can share a folder. The config is the caller's JSON-able
dict and must hold ``frame_rate``; readers refuse a file whose sidecar is missing. Units read back
carry ``provenance = {"config_hash": config_hash(config)}`` (see :func:`provenance_for`). For
multi-layer units put ``num_layers`` in the config: writers check it, and readers need it to give an
empty utterance the shape ``[0, L]`` (an empty list alone reads back as ``[0]``).

Formats (one utterance per line/row, in the order given):

- JSONL: ``{"id": str, "units": [..], "durations": [..]}``; ``durations`` only for de-duplicated
  units; multi-layer ``[T, L]`` units as a list of lists.
- Parquet: columns ``id`` (string), ``units`` (list<int64>, or list<list<int64>> for [T, L]),
  ``durations`` (list<int64>, null when frame-level).
- fairseq ``.km``: space-separated units per line, plus ``<file>.ids`` (one id per line) since
  ``.km`` has none. Single codebook only; de-duplicated units are expanded to frames by default.
- unit text: ``id<TAB><|u12|><|u7|>...`` per line (single codebook, the string as an LLM sees it).

Writers write the sidecar first, then the data, each atomically (temp file + rename), so a killed
job leaves either the old file or the whole new one. For appending utterance by utterance with
resume, use :class:`speechunits.tokens.writer.UnitsWriter`. Readers raise :class:`UnitsFileError`
naming the file and line (or row) of a malformed entry.

Example:
    >>> import numpy as np, tempfile, os
    >>> cfg = {"frame_rate": 50.0, "k": 500}
    >>> u = Units(np.array([3, 3, 9]), 50.0, provenance=provenance_for(cfg), utt_id="a")
    >>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> write_jsonl(p, [u], cfg)
    >>> read_jsonl(p) == [u]
    True
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..data.atomic import atomic_open
from .dedup import expand
from .sidecar import (  # noqa: F401  (re-exported: the sidecar API was defined here first)
    JOB_SUFFIX,
    SIDECAR_SUFFIX,
    UnitsFileError,
    _check_writable,
    _make_units,
    check_id_range,
    config_path,
    id_bounds,
    job_path,
    provenance_for,
    read_config,
    validate_config,
    write_config,
    write_job,
)
from .units import Units

IDS_SUFFIX = ".ids"
_UNIT_TOKEN = re.compile(r"<\|u(\d+)\|>")


# ---------------------------------------------------------------------- JSONL
def units_to_json_line(u: Units) -> str:
    """One JSONL line (with its newline) for ``u``."""
    rec: dict[str, Any] = {"id": u.utt_id, "units": u.ids.tolist()}
    if u.durations is not None:
        rec["durations"] = u.durations.tolist()
    return json.dumps(rec, separators=(",", ":")) + "\n"


def parse_json_line(text: str, config: dict[str, Any], path: str | Path, line: int) -> Units:
    """Parse and validate one JSONL line; errors name ``path:line``."""
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnitsFileError(path, f"invalid JSON ({e.msg} at column {e.colno})", line) from None
    if not isinstance(rec, dict):
        raise UnitsFileError(path, "expected a JSON object", line)
    for key in ("id", "units"):
        if key not in rec:
            raise UnitsFileError(path, f"missing key {key!r}", line)
    if not isinstance(rec["id"], str) or not rec["id"]:
        raise UnitsFileError(path, f"'id' must be a non-empty string, got {rec['id']!r}", line)
    return _make_units(rec["id"], rec["units"], rec.get("durations"), config, path, line)


def write_jsonl(path: str | Path, units: Iterable[Units], config: dict[str, Any]) -> None:
    """Write all ``units`` to a JSONL file (atomically), with the config beside it."""
    units = _check_writable(units, validate_config(config))
    write_config(path, config)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        for u in units:
            f.write(units_to_json_line(u))


def iter_jsonl(path: str | Path) -> Iterator[Units]:
    """Yield the utterances of a JSONL unit file, validating each line."""
    config = read_config(path)
    seen: set[str] = set()
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue  # blank lines carry nothing
            if not text.endswith("\n"):
                try:
                    json.loads(text)
                except json.JSONDecodeError:
                    raise UnitsFileError(
                        path, "truncated last line (killed writer? reopen it with "
                        "UnitsWriter(resume=True) to repair)", lineno) from None
            u = parse_json_line(text, config, path, lineno)
            if u.utt_id in seen:
                raise UnitsFileError(path, f"duplicate utterance id {u.utt_id!r}", lineno)
            seen.add(u.utt_id)
            yield u


def read_jsonl(path: str | Path) -> list[Units]:
    """All utterances of a JSONL unit file."""
    return list(iter_jsonl(path))


# ---------------------------------------------------------------------- Parquet
def write_parquet(path: str | Path, units: Iterable[Units], config: dict[str, Any]) -> None:
    """Write ``units`` to Parquet (columns id, units, durations), config beside it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    units = _check_writable(units, validate_config(config))
    ranks = {u.ids.ndim for u in units}
    if len(ranks) > 1:
        raise ValueError("cannot mix [T] and [T, L] units in one Parquet file")
    inner = pa.int64() if ranks != {2} else pa.list_(pa.int64())
    table = pa.table(
        {
            "id": pa.array([u.utt_id for u in units], pa.string()),
            "units": pa.array([u.ids.tolist() for u in units], pa.list_(inner)),
            "durations": pa.array(
                [None if u.durations is None else u.durations.tolist() for u in units],
                pa.list_(pa.int64()),
            ),
        }
    )
    write_config(path, config)
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f)


def read_parquet(path: str | Path) -> list[Units]:
    """All utterances of a Parquet unit file, validated (errors name the row)."""
    import pyarrow.parquet as pq

    config = read_config(path)
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UnitsFileError(path, f"not a readable Parquet file ({e})") from None
    missing = {"id", "units"} - set(table.column_names)
    if missing:
        raise UnitsFileError(path, f"missing column(s) {sorted(missing)}")
    ids = table.column("id").to_pylist()
    units = table.column("units").to_pylist()
    durs = table.column("durations").to_pylist() if "durations" in table.column_names else [None] * len(ids)
    out, seen = [], set()
    for row, (utt, u, d) in enumerate(zip(ids, units, durs)):
        where = f"row {row}"
        if not isinstance(utt, str) or not utt:
            raise UnitsFileError(path, f"{where}: 'id' must be a non-empty string, got {utt!r}")
        if utt in seen:
            raise UnitsFileError(path, f"{where}: duplicate utterance id {utt!r}")
        if u is None:
            raise UnitsFileError(path, f"{where}: 'units' is null")
        seen.add(utt)
        out.append(_make_units(utt, u, d, config, f"{path} ({where})", None))
    return out


# ---------------------------------------------------------------------- fairseq .km
def write_km(
    path: str | Path, units: Iterable[Units], config: dict[str, Any], expand_runs: bool = True
) -> None:
    """fairseq ``.km`` (space-separated units per line) plus ``<path>.ids``, config beside.

    ``.km`` files hold frame-level units, so de-duplicated units are expanded first; with
    ``expand_runs=False`` the collapsed ids are written and their durations dropped.
    """
    units = _check_writable(units, validate_config(config))
    lines, names = [], []
    for u in units:
        if u.ids.ndim != 1:
            raise ValueError(f"{u.utt_id}: .km holds one codebook, got ids of shape {u.ids.shape}")
        ids = expand(u).ids if expand_runs else u.ids
        lines.append(" ".join(map(str, ids.tolist())) + "\n")
        names.append(u.utt_id + "\n")
    write_config(path, config)
    with atomic_open(Path(str(path) + IDS_SUFFIX), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(names)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)


def read_km(path: str | Path) -> list[Units]:
    """Read a ``.km`` file and its ``.ids`` file into frame-level ``Units``."""
    config = read_config(path)
    ids_path = Path(str(path) + IDS_SUFFIX)
    if not ids_path.is_file():
        raise UnitsFileError(path, f"missing utterance ids file beside it ({ids_path.name})")
    names = ids_path.read_text(encoding="utf-8").splitlines()
    rows = Path(path).read_text(encoding="utf-8").split("\n")
    if rows and rows[-1] == "":
        rows.pop()  # the final newline
    if len(rows) != len(names):
        raise UnitsFileError(path, f"{len(rows)} lines but {ids_path.name} has {len(names)} ids")
    out, seen = [], set()
    for lineno, (name, row) in enumerate(zip(names, rows), start=1):
        if not name or name in seen:
            raise UnitsFileError(ids_path, f"empty or duplicate id {name!r}", lineno)
        seen.add(name)
        toks = row.split()
        if not all(t.isdigit() for t in toks):
            bad = next(t for t in toks if not t.isdigit())
            raise UnitsFileError(path, f"not a non-negative integer unit: {bad!r}", lineno)
        out.append(_make_units(name, [int(t) for t in toks], None, config, path, lineno))
    return out


# ---------------------------------------------------------------------- <|u12|> text form
def to_unit_text(ids: np.ndarray | Iterable[int]) -> str:
    """Unit ids -> ``"<|u12|><|u7|>..."`` (one codebook).

    >>> to_unit_text([12, 7])
    '<|u12|><|u7|>'
    """
    ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if ids.ndim != 1 or (ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0)):
        raise ValueError("unit text takes non-negative integer ids of shape [T]")
    return "".join(f"<|u{int(i)}|>" for i in ids.tolist())


def parse_unit_text(text: str) -> np.ndarray:
    """``"<|u12|><|u7|>"`` -> ``array([12, 7])``; anything else in the string is an error.

    >>> parse_unit_text("<|u12|><|u7|>").tolist()
    [12, 7]
    """
    pos, ids = 0, []
    for m in _UNIT_TOKEN.finditer(text):
        if m.start() != pos:
            break
        ids.append(int(m.group(1)))
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"not a unit token at character {pos}: {text[pos:pos + 20]!r}")
    return np.asarray(ids, dtype=np.int64)


def write_unit_text(
    path: str | Path, units: Iterable[Units], config: dict[str, Any], expand_runs: bool = False
) -> None:
    """``id<TAB><|u..|>...`` per line, config beside. De-duplicated units stay collapsed unless
    ``expand_runs`` (LLMs usually see de-duplicated units); durations are not written."""
    units = _check_writable(units, validate_config(config))
    lines = []
    for u in units:
        if "\t" in u.utt_id or "\n" in u.utt_id:
            raise ValueError(f"utterance id {u.utt_id!r} contains a tab or newline")
        ids = expand(u).ids if expand_runs else u.ids
        lines.append(f"{u.utt_id}\t{to_unit_text(ids)}\n")
    write_config(path, config)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)


def read_unit_text(path: str | Path) -> list[Units]:
    """Read a unit text file written by :func:`write_unit_text` (ids as written, no durations)."""
    config = read_config(path)
    out, seen = [], set()
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            name, tab, text = line.partition("\t")
            if not tab or not name:
                raise UnitsFileError(path, "expected 'id<TAB><|u..|>...'", lineno)
            if name in seen:
                raise UnitsFileError(path, f"duplicate utterance id {name!r}", lineno)
            seen.add(name)
            try:
                ids = parse_unit_text(text)
            except ValueError as e:
                raise UnitsFileError(path, str(e), lineno) from None
            out.append(_make_units(name, ids, None, config, path, lineno))
    return out


def read_units(path: str | Path) -> list[Units]:
    """All utterances of a unit file, by suffix: ``.jsonl`` (default), ``.parquet``, ``.km``,
    ``.txt`` (``<|u12|>`` text)."""
    p = Path(path)
    if not p.is_file():
        raise UnitsFileError(p, "no such units file")
    reader = {".parquet": read_parquet, ".km": read_km, ".txt": read_unit_text}.get(
        p.suffix.lower(), read_jsonl)
    return reader(p)
