"""Unit edit distance: Levenshtein distance between two unit sequences.

``unit_edit_distance(ref, hyp)`` is the distance divided by ``len(ref)``, the normalisation used
for unit robustness in NAST and DC-Spin (units of clean speech as the reference, units of the
distorted or streamed speech as the hypothesis). Like WER it can exceed 1 when the hypothesis is
much longer than the reference. Over a set, :func:`corpus_unit_edit_distance` sums distances and
reference lengths before dividing (so long utterances weigh more), again as WER does.

The distance uses ``rapidfuzz`` (C++, bit-parallel) when installed, otherwise a pure-Python
bit-parallel Myers/Hyyrö algorithm on Python big ints (no O(n*m) table; about 0.1-0.3 s for
10k x 10k). ``[T, L]`` multi-layer ids compare whole rows.

Example:
    >>> edit_distance([1, 2, 3, 4], [1, 3, 4, 5])
    2
    >>> unit_edit_distance([1, 2, 3, 4], [1, 3, 4, 5])
    0.5
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .units import as_int_ids

try:  # optional accelerator; the fallback gives identical results
    from rapidfuzz.distance import Levenshtein as _rf_lev
except ImportError:  # pragma: no cover - exercised by forcing backend="python" in tests
    _rf_lev = None


def _as_symbols(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> tuple[list, list]:
    """Both sequences as Python int lists; ``[T, L]`` rows become one int per distinct row."""
    a, b = as_int_ids(a, "ref"), as_int_ids(b, "hyp")
    if a.ndim == 2 or b.ndim == 2:
        width = a.shape[1] if a.ndim == 2 else b.shape[1]
        for x in (a, b):  # an empty [] is compatible with any width
            if len(x) and (x.ndim != 2 or x.shape[1] != width):
                raise ValueError(f"cannot compare units of shapes {a.shape} and {b.shape}")
        rows = np.concatenate([a.reshape(-1, width), b.reshape(-1, width)])
        _, inv = np.unique(rows, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        return inv[: len(a)].tolist(), inv[len(a) :].tolist()
    return a.tolist(), b.tolist()


def _myers(a: list, b: list) -> int:
    """Levenshtein distance, Hyyro's bit-vector form of Myers' algorithm (column = one of ``b``)."""
    if len(a) < len(b):
        a, b = b, a  # shorter text -> fewer loop iterations; bit width = len(a)
    m = len(a)
    if not b:  # also covers both empty, since len(a) >= len(b)
        return m
    peq: dict[int, int] = {}
    for i, c in enumerate(a):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << m) - 1
    last = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for c in b:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        # Shift in a 1 at the bottom: the top row of the DP table is D[0][j] = j.
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def edit_distance(
    ref: Sequence[int] | np.ndarray, hyp: Sequence[int] | np.ndarray, backend: str = "auto"
) -> int:
    """Levenshtein distance (unit cost insert/delete/substitute) between two id sequences.

    ``backend``: ``"auto"`` (rapidfuzz if installed), ``"rapidfuzz"`` or ``"python"``.
    """
    a, b = _as_symbols(ref, hyp)
    if backend == "rapidfuzz" or (backend == "auto" and _rf_lev is not None):
        if _rf_lev is None:
            raise ImportError("backend='rapidfuzz' needs `pip install rapidfuzz`")
        return int(_rf_lev.distance(a, b))
    if backend not in ("auto", "python"):
        raise ValueError(f"unknown backend {backend!r}")
    return _myers(a, b)


def unit_edit_distance(
    ref: Sequence[int] | np.ndarray, hyp: Sequence[int] | np.ndarray, normalize: bool = True
) -> float:
    """Edit distance from ``ref`` to ``hyp``, divided by ``len(ref)`` when ``normalize``.

    An empty reference gives 0.0 against an empty hypothesis and raises ``ValueError`` otherwise
    (the ratio is undefined).

    >>> unit_edit_distance([7, 7, 7, 7], [7, 7, 9, 7])
    0.25
    """
    dist = edit_distance(ref, hyp)
    if not normalize:
        return float(dist)
    n = len(as_int_ids(ref, "ref"))
    if n == 0:
        if dist == 0:
            return 0.0
        raise ValueError("unit edit distance is undefined for an empty reference")
    return dist / n


def corpus_unit_edit_distance(
    refs: Iterable[Sequence[int] | np.ndarray], hyps: Iterable[Sequence[int] | np.ndarray]
) -> float:
    """Sum of distances over sum of reference lengths, over paired sequences.

    >>> corpus_unit_edit_distance([[1, 2], [3, 4, 5, 6]], [[1, 2], [3, 0, 5, 6]])
    0.16666666666666666
    """
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = sum(len(as_int_ids(r, "ref")) for r in refs)
    dist = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    if total == 0:
        if dist == 0:
            return 0.0
        raise ValueError("unit edit distance is undefined for empty references")
    return dist / total
