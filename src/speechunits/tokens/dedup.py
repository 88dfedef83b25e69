"""De-duplication: collapse runs of repeated units into (id, run length) pairs, and its inverse.

At 50 Hz a unit typically repeats for a few frames; language models over units usually see the
collapsed sequence (HuBERT-style "reduced" units, and the k-means -> de-dup -> BPE pipeline of the
discrete-vs-continuous study). The run lengths are kept as ``durations`` so that
``expand(dedup(u)) == u`` exactly, which a unit vocoder or a frame-level metric needs.

For ``[T, L]`` multi-layer ids a run is a run of identical rows (all L layers equal).

Example:
    >>> import numpy as np
    >>> ids, dur = dedup_ids(np.array([5, 5, 5, 2, 9, 9]))
    >>> ids.tolist(), dur.tolist()
    ([5, 2, 9], [3, 1, 2])
    >>> expand_ids(ids, dur).tolist()
    [5, 5, 5, 2, 9, 9]
"""

from __future__ import annotations

import numpy as np

from .units import Units, as_int_ids


def _run_starts(ids: np.ndarray) -> np.ndarray:
    """Indices where a new run begins (always includes 0 for a non-empty sequence)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    change = ids[1:] != ids[:-1]
    if ids.ndim == 2:
        change = change.any(axis=1)
    return np.concatenate(([0], np.flatnonzero(change) + 1)).astype(np.int64)


def dedup_ids(
    ids: np.ndarray, durations: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of equal ids (rows for ``[T, L]``); return ``(run_ids, run_lengths)``.

    If ``durations`` is given (ids already carry lengths), adjacent equal ids are merged and their
    durations summed, so de-duplicating twice is the same as once.
    """
    ids = as_int_ids(ids)
    starts = _run_starts(ids)
    if durations is None:
        bounds = np.append(starts, len(ids))
        return ids[starts], np.diff(bounds).astype(np.int64)
    durations = as_int_ids(durations, "durations")
    if durations.shape != (len(ids),):
        raise ValueError(f"durations shape {durations.shape} does not match ids {ids.shape}")
    if len(ids) == 0:
        return ids.copy(), durations.copy()
    return ids[starts], np.add.reduceat(durations, starts).astype(np.int64)


def expand_ids(ids: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Repeat each id (row) ``durations[i]`` times: the exact inverse of :func:`dedup_ids`."""
    ids = as_int_ids(ids)
    durations = as_int_ids(durations, "durations")
    if durations.shape != (len(ids),):
        raise ValueError(f"durations shape {durations.shape} does not match ids {ids.shape}")
    if durations.size and durations.min() < 1:
        raise ValueError("durations must all be >= 1")
    return np.repeat(ids, durations, axis=0)


def dedup(units: Units) -> Units:
    """De-duplicated copy of ``units`` (runs collapsed, run lengths in ``durations``).

    Already de-duplicated input is accepted: neighbouring equal ids are merged.

    >>> import numpy as np
    >>> dedup(Units(np.array([1, 1, 4]), frame_rate=50)).durations.tolist()
    [2, 1]
    """
    ids, dur = dedup_ids(units.ids, units.durations)
    return Units(ids, units.frame_rate, dur, dict(units.provenance), units.utt_id)


def expand(units: Units) -> Units:
    """Frame-level copy of ``units``: the exact inverse of :func:`dedup`.

    >>> import numpy as np
    >>> u = Units(np.array([1, 1, 4]), frame_rate=50)
    >>> expand(dedup(u)) == u
    True
    """
    if units.durations is None:
        ids = units.ids.copy()
    else:
        ids = expand_ids(units.ids, units.durations)
    return Units(ids, units.frame_rate, None, dict(units.provenance), units.utt_id)
