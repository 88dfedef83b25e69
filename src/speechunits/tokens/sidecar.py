"""The tokenizer config written beside every unit file, and the checks that tie units to it.

Every unit file ``F`` (any format of :mod:`speechunits.tokens.io`) has ``F.config.json``, the
tokenizer config it was made with (it must hold ``frame_rate``; ``k`` bounds the ids), and, when a
batch job wrote it, ``F.job.json``, the options and inputs of that job. Units read back carry
``provenance = {"config_hash": config_hash(config)}``, so units of two tokenizers never meet in one
file or one batch unnoticed.

Example:
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
    >>> write_config(p, {"frame_rate": 50.0, "k": 500}).name
    'x.jsonl.config.json'
    >>> read_config(p)["k"]
    500
    >>> check_id_range(np.array([3, 500]), {"frame_rate": 50.0, "k": 500})
    Traceback (most recent call last):
    ...
    ValueError: unit id 500 out of range: the config allows ids 0..499
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..data.atomic import atomic_write_text
from .units import Units, config_hash

SIDECAR_SUFFIX = ".config.json"
JOB_SUFFIX = ".job.json"


class UnitsFileError(ValueError):
    """A unit file that cannot be read: ``"<file>[:<line>]: <reason>"``."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


# ---------------------------------------------------------------------- config sidecar
def config_path(path: str | Path) -> Path:
    """Where the tokenizer config of unit file ``path`` lives: ``<path>.config.json``."""
    return Path(str(path) + SIDECAR_SUFFIX)


def job_path(path: str | Path) -> Path:
    """Where the job record of unit file ``path`` lives: ``<path>.job.json`` (see UnitsWriter)."""
    return Path(str(path) + JOB_SUFFIX)


def write_job(path: str | Path, job: dict[str, Any]) -> Path:
    """Write the job record (options and inputs that made unit file ``path``) beside it, atomically."""
    side = job_path(path)
    atomic_write_text(side, json.dumps(job, indent=2, sort_keys=True) + "\n")
    return side


def provenance_for(config: dict[str, Any]) -> dict[str, Any]:
    """The ``provenance`` that units read from a file with this config carry."""
    return {"config_hash": config_hash(config)}


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check the config is a JSON-able dict with a positive ``frame_rate``; return it."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    fr = config.get("frame_rate")
    if not isinstance(fr, (int, float)) or isinstance(fr, bool) or not fr > 0 or not math.isfinite(fr):
        raise ValueError(f"config needs a positive 'frame_rate' (Hz), got {fr!r}")
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"config is not JSON-serialisable: {e}") from None
    return config


def write_config(path: str | Path, config: dict[str, Any]) -> Path:
    """Write ``config`` beside unit file ``path`` (atomically); return the sidecar path."""
    validate_config(config)
    side = config_path(path)
    atomic_write_text(side, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return side


def read_config(path: str | Path) -> dict[str, Any]:
    """The tokenizer config beside unit file ``path``; a clear error when absent or broken."""
    side = config_path(path)
    if not side.is_file():
        raise UnitsFileError(path, f"missing tokenizer config beside it (expected {side.name})")
    try:
        config = json.loads(side.read_text(encoding="utf-8"))
        return validate_config(config)
    except (ValueError, TypeError) as e:
        raise UnitsFileError(side, f"invalid tokenizer config: {e}") from None


def _check_writable(
    units: Iterable[Units], config: dict[str, Any], want_hash: str | None = None
) -> list[Units]:
    """Units that may go into one file with this config: ids set and unique, rates matching."""
    units = list(units)
    seen: set[str] = set()
    want = want_hash or provenance_for(config)["config_hash"]
    layers = config.get("num_layers")
    for i, u in enumerate(units):
        if not isinstance(u, Units):
            raise TypeError(f"item {i} is {type(u).__name__}, not Units")
        if not isinstance(u.utt_id, str) or not u.utt_id:
            raise ValueError(f"item {i}: Units.utt_id must be a non-empty string to be written")
        if u.utt_id in seen:
            raise ValueError(f"duplicate utterance id {u.utt_id!r}")
        seen.add(u.utt_id)
        if u.frame_rate != float(config["frame_rate"]):
            raise ValueError(
                f"{u.utt_id}: frame_rate {u.frame_rate} differs from config {config['frame_rate']}"
            )
        if layers is not None and len(u) and u.num_layers != layers:
            raise ValueError(f"{u.utt_id}: {u.num_layers} layer(s) but config says {layers}")
        try:
            check_id_range(u.ids, config)
        except ValueError as e:
            raise ValueError(f"{u.utt_id}: {e}") from None
        got = u.provenance.get("config_hash")
        if got is not None and got != want:
            raise ValueError(f"{u.utt_id}: made by another tokenizer config ({got} != {want})")
    return units


def _make_units(utt, ids, durations, config, path, line) -> Units:
    try:
        if not isinstance(ids, (list, np.ndarray)):
            raise ValueError(f"'units' must be a list, got {type(ids).__name__}")
        if durations is not None and not isinstance(durations, (list, np.ndarray)):
            raise ValueError(f"'durations' must be a list, got {type(durations).__name__}")
        ids = np.asarray(ids)
        layers = config.get("num_layers")
        if ids.size == 0 and isinstance(layers, int) and layers > 1:
            ids = np.zeros((0, layers), dtype=np.int64)  # "[]" alone cannot say [0, L]
        units = Units(
            ids,
            float(config["frame_rate"]),
            None if durations is None else np.asarray(durations),
            provenance_for(config),
            utt,
        )
        check_id_range(units.ids, config)
        return units
    except ValueError as e:  # numpy's ragged-array error is a ValueError too
        raise UnitsFileError(path, f"utterance {utt!r}: {e}", line) from None


def id_bounds(config: dict[str, Any]) -> list[int] | None:
    """Exclusive upper bound of the ids per codebook that a file with this config may hold.

    ``k`` (an int, or one per layer) bounds unit ids; a BPE (``bpe``: its config or its size)
    raises the single-codebook bound to its vocabulary, since BPE tokens may be written instead
    of units. ``None`` when the config states no ``k`` (nothing to check against).
    """
    k = config.get("k")
    ks = k if isinstance(k, list) else [k]
    if not ks or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in ks):
        return None
    bpe = config.get("bpe")
    size = bpe.get("actual_vocab_size") or bpe.get("vocab_size") if isinstance(bpe, dict) else bpe
    if len(ks) == 1 and isinstance(size, int) and not isinstance(size, bool):
        ks = [max(ks[0], size)]
    return [int(x) for x in ks]


def check_id_range(ids: np.ndarray, config: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a negative id or one at or above the codebook size in ``config``.

    An id out of range would index past the codebook (or the LM's embedding table) far from
    the file that held it, so it is refused where it is read or written.
    """
    if ids.size == 0:
        return
    if int(ids.min()) < 0:
        raise ValueError(f"negative unit id {int(ids.min())}")
    bounds = id_bounds(config)
    if bounds is None:
        return
    cols = [ids] if ids.ndim == 1 else [ids[:, j] for j in range(ids.shape[1])]
    per_col = bounds if len(bounds) == len(cols) else [max(bounds)] * len(cols)
    for j, (col, k) in enumerate(zip(cols, per_col)):
        top = int(col.max())
        if top >= k:
            where = f" in layer column {j}" if len(cols) > 1 else ""
            raise ValueError(f"unit id {top}{where} out of range: the config allows ids 0..{k - 1}")
