"""Append-only JSONL unit writer with resume, for long tokenize jobs that may be killed.

``UnitsWriter(path, config, resume=True)`` writes the tokenizer config beside the file
(``<path>.config.json``, atomically) and then appends one JSONL line per utterance, each line in a
single write followed by a flush (and an fsync every ``fsync_every`` lines and on close). A job
killed mid-line leaves at most one partial last line (no trailing newline). On reopen with
``resume=True`` the writer checks the config is the same, truncates that partial line, and knows
which ids are done (``utt_id in writer``), so the resumed job writes each remaining utterance
exactly once: nothing lost, nothing duplicated. ``resume=False`` starts the file afresh.

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
    parse_json_line,
    provenance_for,
    units_to_json_line,
    validate_config,
    write_config,
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
    ) -> None:
        self.path = Path(path)
        self.config = validate_config(config)
        self.fsync_every = max(1, int(fsync_every))
        self._hash = provenance_for(self.config)["config_hash"]
        self._done: set[str] = set()
        self._since_sync = 0
        self.truncated_bytes = 0  # size of the partial line dropped on resume, if any
        if resume and self.path.exists():
            self._check_same_config()
            self._scan_and_repair()
        else:
            write_config(self.path, self.config)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")
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
    def _check_same_config(self) -> None:
        side = config_path(self.path)
        if not side.is_file():
            raise UnitsFileError(self.path, f"cannot resume: missing tokenizer config {side.name}")
        try:
            old = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UnitsFileError(side, f"invalid tokenizer config: {e}") from None
        # Compare as JSON would store it (tuples become lists, etc.).
        if old != json.loads(json.dumps(self.config)):
            raise UnitsFileError(
                self.path, "cannot resume: written with a different tokenizer config "
                "(use resume=False to start over, or another output path)"
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
