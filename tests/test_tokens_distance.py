"""Unit edit distance: both backends against a reference DP; normalisation; speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from speechunits.tokens import corpus_unit_edit_distance, edit_distance, unit_edit_distance
from speechunits.tokens import distance as distance_mod


def _dp(a, b):
    """Textbook O(n*m) Levenshtein, the reference."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


BACKENDS = ["python"] + (["rapidfuzz"] if distance_mod._rf_lev is not None else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference_dp(backend):
    rng = np.random.default_rng(1)
    for trial in range(300):
        n, m = rng.integers(0, 70, size=2) if trial > 3 else (trial % 2, trial // 2)
        k = int(rng.integers(1, 6))
        a, b = rng.integers(0, k, n), rng.integers(0, k, m)
        assert edit_distance(a, b, backend=backend) == _dp(a.tolist(), b.tolist())
    # Large ids and ids beyond 2**32 are symbols like any other.
    assert edit_distance([2**40, 5], [2**40, 6], backend=backend) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_multilayer_rows_compare_whole(backend):
    a = np.array([[1, 2], [3, 4], [5, 6]])
    b = np.array([[1, 2], [3, 9], [5, 6], [7, 7]])
    assert edit_distance(a, b, backend=backend) == 2
    assert edit_distance(a, [], backend=backend) == 3
    with pytest.raises(ValueError, match="shapes"):
        edit_distance(a, np.array([[1, 2, 3]]), backend=backend)


def test_normalisation():
    assert unit_edit_distance([1, 2, 3, 4], [1, 2, 3, 4]) == 0.0
    assert unit_edit_distance([1, 2, 3, 4], [4, 3]) == pytest.approx(3 / 4)
    assert unit_edit_distance([1, 2], [3, 4, 5, 6, 7]) == 2.5  # can exceed 1, like WER
    assert unit_edit_distance([1, 2, 3, 4], [4, 3], normalize=False) == 3.0
    assert unit_edit_distance([], []) == 0.0
    with pytest.raises(ValueError, match="empty reference"):
        unit_edit_distance([], [1])
    assert corpus_unit_edit_distance([[1, 2], [1, 2, 3, 4, 5, 6]], [[1], [1, 2, 3, 4, 5, 6]]) == 1 / 8
    with pytest.raises(ValueError, match="hypotheses"):
        corpus_unit_edit_distance([[1]], [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_10k_by_10k_is_fast(backend):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2000, 10_000)
    b = a.copy()
    b[::10] = rng.integers(0, 2000, len(b[::10]))  # ~10% substitutions
    b = np.delete(b, np.arange(5, len(b), 97))  # and some deletions
    t0 = time.perf_counter()
    d = edit_distance(a, b, backend=backend)
    elapsed = time.perf_counter() - t0
    assert 103 <= d <= 1000 + 103 + 5
    assert elapsed < 1.0, f"{backend}: {elapsed:.2f}s"
