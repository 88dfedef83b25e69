"""Append-only JSONL unit writer with resume, for long tokenize jobs that may be killed.

``UnitsWriter(path, config, resume=True)`` writes the tokenizer config beside the file
(``<path>.config.json``, atomically) and then appends one JSONL line per utterance, each line in a
single write followed by a flush (and an fsync every ``fsync_every`` lines and on close). A job
killed mid-line leaves at most one partial last line (no trailing newline). On reopen with
``resume=True`` the writer checks the config is the same, truncates that partial line, and knows
which ids are done (``utt_id in writer``), so the resumed job writes each remaining utterance
exactly once: nothing lost, nothing duplicated. ``resume=False`` starts the file afresh.

``job`` (optional, JSON-able) describes everything else that decides what the lines hold: the
post-processing options, the output format, the input list. It is written beside the file as
``<path>.job.json`` *after* the data file is (re)started, so its presence marks a file whose
options are known; on resume it must be equal, or the writer refuses, naming what differs.
Units written with other options never end up in one file with these.

Example:
    >>> import numpy as np, tempfile, os
    >>> from speechunits.tokens import Units, read_jsonl
    >>> p = os.path.join(tempfile.mkdtemp(), "units.jsonl")
    >>> cfg = {"frame_rate": 50.0}
    >>> with UnitsWriter(p, cfg) as w:
    ...     w.write(Units(np.array([1, 2]), 50.0, utt_id="a"))
    >>> with UnitsWriter(p, cfg, resume=True) as w:
    ...     "a" in w, len(w)
    (True, 1)
    >>> [u.utt_id for u in read_jsonl(p)]
    ['a']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .io import (
    UnitsFileError,
    _check_writable,
    config_path,
    job_path,
    parse_json_line,
    provenance_for,
    units_to_json_line,
    validate_config,
    write_config,
    write_job,
)
from .units import Units


class UnitsWriter:
    """Append utterances to a JSONL unit file; resumable after a kill (see module docstring)."""

    def __init__(
        self,
        path: str | Path,
        config: dict[str, Any],
        resume: bool = True,
        fsync_every: int = 64,
        job: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = validate_config(config)
        self.job = None if job is None else json.loads(json.dumps(job))  # as stored: lists, not tuples
        self.fsync_every = max(1, int(fsync_every))
        self._hash = provenance_for(self.config)["config_hash"]
        self._done: set[str] = set()
        self._since_sync = 0
        self.truncated_bytes = 0  # size of the partial line dropped on resume, if any
        self.resumed = resume and self.path.is_file() and self.path.stat().st_size > 0
        if self.resumed:
            self._check_same_job()
            self._scan_and_repair()
        else:
            # The old job record goes first and the new one comes last: a kill in between
            # leaves no record, and a file without one is never resumed as if it matched.
            job_path(self.path).unlink(missing_ok=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")
            write_config(self.path, self.config)
            if self.job is not None:
                write_job(self.path, self.job)
        # Unbuffered: each line goes to the OS in one write, nothing sits in a Python buffer.
        self._f = open(self.path, "ab", buffering=0)

    # ------------------------------------------------------------------ public API
    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._done

    def __len__(self) -> int:
        return len(self._done)

    @property
    def done(self) -> frozenset[str]:
        """Ids already in the file (including those found on resume)."""
        return frozenset(self._done)

    def write(self, units: Units) -> None:
        """Append one utterance; an id already written raises ``ValueError``."""
        if self._f.closed:
            raise ValueError(f"{self.path}: writer is closed")
        (units,) = _check_writable([units], self.config, self._hash)
        if units.utt_id in self._done:
            raise ValueError(f"{self.path}: utterance {units.utt_id!r} already written")
        data = memoryview(units_to_json_line(units).encode("utf-8"))
        while data:  # FileIO.write may write less than asked
            data = data[self._f.write(data) :]
        self._done.add(units.utt_id)
        self._since_sync += 1
        if self._since_sync >= self.fsync_every:
            os.fsync(self._f.fileno())
            self._since_sync = 0

    def close(self) -> None:
        if not self._f.closed:
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> "UnitsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ resume
    def _check_same_job(self) -> None:
        """Refuse to append unless the config (and job, when given) equal those of the file."""
        side = config_path(self.path)
        if not side.is_file():
            raise UnitsFileError(self.path, f"cannot resume: missing tokenizer config {side.name}")
        try:
            old = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UnitsFileError(side, f"invalid tokenizer config: {e}") from None
        # Compare as JSON would store it (tuples become lists, etc.).
        diffs = describe_differences(old, json.loads(json.dumps(self.config)), "tokenizer config")
        if self.job is not None:
            jp = job_path(self.path)
            if not jp.is_file():
                diffs.append(f"no job record ({jp.name}): its options are unknown")
            else:
                try:
                    old_job = json.loads(jp.read_text(encoding="utf-8"))
                except json.JSONDecodeError as e:
                    raise UnitsFileError(jp, f"invalid job record: {e}") from None
                diffs += describe_differences(old_job, self.job, "")
        if diffs:
            raise UnitsFileError(
                self.path, "cannot resume, it was written differently: " + "; ".join(diffs)
                + " (start over with --no-resume / resume=False, or write to another output path)"
            )

    def _scan_and_repair(self) -> None:
        """Collect done ids; truncate a partial last line; refuse a corrupt complete line."""
        good_end = 0
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.endswith(b"\n"):
                    break  # partial line from a kill: dropped below
                good_end += len(raw)
                text = raw.decode("utf-8", errors="replace")
                if not text.strip():
                    continue
                u = parse_json_line(text, self.config, self.path, lineno)
                if u.utt_id in self._done:
                    raise UnitsFileError(self.path, f"duplicate utterance id {u.utt_id!r}", lineno)
                self._done.add(u.utt_id)
        size = self.path.stat().st_size
        if size > good_end:
            self.truncated_bytes = size - good_end
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())


def describe_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Short ``key: before -> now`` lines for the keys where two JSON-like dicts differ.

    >>> describe_differences({"dedup": False, "k": 5}, {"dedup": True, "k": 5})
    ['dedup: False before, True now']
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{where or 'value'}: {_short(old)} before, {_short(new)} now"]
    out = []
    for key in sorted(set(old) | set(new), key=str):
        name = f"{where}.{key}" if where else str(key)
        if key not in old:
            out.append(f"{name}: absent before, {_short(new[key])} now")
        elif key not in new:
            out.append(f"{name}: {_short(old[key])} before, absent now")
        elif old[key] != new[key]:
            out += describe_differences(old[key], new[key], name)
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
