"""The ``Units`` record: one utterance's discrete units plus what is needed to interpret them.

A ``Units`` holds frame-level ids (``durations is None``) or de-duplicated ids with the run
length of each (``durations`` given, see :mod:`speechunits.tokens.dedup`). Ids are ``[T]`` for
one codebook or ``[T, L]`` for L layers/codebooks read at the same frame.

Example:
    >>> import numpy as np
    >>> u = Units(np.array([3, 3, 7]), frame_rate=50.0, utt_id="a")
    >>> u.num_frames, u.duration_s, u.is_deduplicated
    (3, 0.06, False)
    >>> Units.from_dict(u.to_dict()) == u
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def config_hash(config: dict[str, Any]) -> str:
    """Short stable hash of a JSON-able config (sorted keys), for ``provenance``.

    >>> config_hash({"k": 2000, "layer": 6}) == config_hash({"layer": 6, "k": 2000})
    True
    """
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def as_int_ids(values: Any, what: str = "ids") -> np.ndarray:
    """``values`` as an int64 array of rank 1 or 2, refusing floats that are not whole numbers."""
    arr = np.asarray(values)
    if arr.size == 0:
        # An empty list has no dtype information; keep the rank the caller gave.
        return np.zeros(arr.shape if arr.ndim in (1, 2) else (0,), dtype=np.int64)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{what} must be integers, got non-integral floats")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{what} must have shape [T] or [T, L], got {arr.shape}")
    return arr.astype(np.int64, copy=False)


@dataclass(eq=False)
class Units:
    """Discrete units of one utterance.

    Attributes:
        ids: int64 ``[T]`` (one codebook) or ``[T, L]`` (L layers per frame).
        durations: int64 ``[T]`` frames covered by each id (all >= 1), present only after
            de-duplication; ``None`` means one id per frame.
        frame_rate: Hz of the underlying frames (50.0 for HuBERT-style encoders).
        provenance: what produced the units (tokenizer config hash/summary); JSON-able.
        utt_id: the utterance id, if known.
    """

    ids: np.ndarray
    frame_rate: float
    durations: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    utt_id: str | None = None

    def __post_init__(self) -> None:
        self.ids = as_int_ids(self.ids, "ids")
        if not (float(self.frame_rate) > 0 and np.isfinite(self.frame_rate)):
            raise ValueError(f"frame_rate must be a positive number, got {self.frame_rate!r}")
        self.frame_rate = float(self.frame_rate)
        if self.durations is not None:
            d = as_int_ids(self.durations, "durations")
            if d.ndim != 1 or len(d) != len(self.ids):
                raise ValueError(
                    f"durations must have shape [{len(self.ids)}] to match ids, got {d.shape}"
                )
            if d.size and d.min() < 1:
                raise ValueError("durations must all be >= 1 frame")
            self.durations = d
        if not isinstance(self.provenance, dict):
            raise ValueError("provenance must be a dict")

    @property
    def num_layers(self) -> int:
        """L for ``[T, L]`` ids, 1 for ``[T]``."""
        return 1 if self.ids.ndim == 1 else int(self.ids.shape[1])

    @property
    def num_frames(self) -> int:
        """Frames covered: ``sum(durations)`` after de-duplication, else ``len(ids)``."""
        return int(self.durations.sum()) if self.durations is not None else int(len(self.ids))

    @property
    def duration_s(self) -> float:
        """Seconds covered: ``num_frames / frame_rate``."""
        return self.num_frames / self.frame_rate

    @property
    def is_deduplicated(self) -> bool:
        return self.durations is not None

    def __len__(self) -> int:
        return int(len(self.ids))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Units):
            return NotImplemented
        same_d = (self.durations is None and other.durations is None) or (
            self.durations is not None
            and other.durations is not None
            and np.array_equal(self.durations, other.durations)
        )
        return (
            self.ids.shape == other.ids.shape
            and np.array_equal(self.ids, other.ids)
            and same_d
            and self.frame_rate == other.frame_rate
            and self.provenance == other.provenance
            and self.utt_id == other.utt_id
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; ``[T, L]`` ids become a list of lists."""
        out: dict[str, Any] = {
            "utt_id": self.utt_id,
            "ids": self.ids.tolist(),
            "frame_rate": self.frame_rate,
            "provenance": self.provenance,
        }
        if self.ids.ndim == 2 and len(self.ids) == 0:
            # [] would read back as rank 1; keep the layer count.
            out["num_layers"] = self.num_layers
        if self.durations is not None:
            out["durations"] = self.durations.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Units":
        """Inverse of :meth:`to_dict`."""
        try:
            ids = np.asarray(d["ids"])
            if ids.size == 0 and "num_layers" in d:
                ids = np.zeros((0, int(d["num_layers"])), dtype=np.int64)
            return cls(
                ids=ids,
                frame_rate=d["frame_rate"],
                durations=None if d.get("durations") is None else np.asarray(d["durations"]),
                provenance=dict(d.get("provenance") or {}),
                utt_id=d.get("utt_id"),
            )
        except KeyError as e:
            raise ValueError(f"Units dict lacks key {e.args[0]!r}") from None
