"""Units record and de-duplication."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

from speechunits.tokens import Units, dedup, dedup_ids, expand, expand_ids

MODULES = ["", ".units", ".dedup", ".bpe", ".distance", ".streaming", ".io", ".sidecar", ".writer"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    # importlib: the package re-exports the function `dedup`, which shadows the submodule name.
    mod = importlib.import_module("speechunits.tokens" + name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_units_properties_and_dict_round_trip():
    u = Units(np.array([5, 5, 2]), frame_rate=50, provenance={"config_hash": "ab"}, utt_id="x")
    assert u.ids.dtype == np.int64 and u.num_frames == 3 and not u.is_deduplicated
    assert u.duration_s == pytest.approx(0.06)
    d = dedup(u)
    assert d.is_deduplicated and d.num_frames == 3 and len(d) == 2
    for v in (u, d):
        back = Units.from_dict(json.loads(json.dumps(v.to_dict())))
        assert back == v
    ml = Units(np.zeros((0, 3), dtype=np.int64), 50.0)
    assert Units.from_dict(json.loads(json.dumps(ml.to_dict()))).ids.shape == (0, 3)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"ids": np.array([1.5]), "frame_rate": 50}, "integers"),
        ({"ids": np.zeros((2, 2, 2)), "frame_rate": 50}, "shape"),
        ({"ids": [1, 2], "frame_rate": 0}, "frame_rate"),
        ({"ids": [1, 2], "frame_rate": 50, "durations": [1]}, "durations"),
        ({"ids": [1, 2], "frame_rate": 50, "durations": [1, 0]}, ">= 1"),
        ({"ids": ["a"], "frame_rate": 50}, "integers"),
    ],
)
def test_units_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Units(**kwargs)


def test_from_dict_missing_key():
    with pytest.raises(ValueError, match="frame_rate"):
        Units.from_dict({"ids": [1]})


def _random_runs(rng, n, k, layers=None):
    """Sequences with real runs: ids drawn per run, run lengths 1..5."""
    lens = rng.integers(1, 6, size=n)
    shape = (n,) if layers is None else (n, layers)
    vals = rng.integers(0, k, size=shape)
    return np.repeat(vals, lens, axis=0)


@pytest.mark.parametrize("layers", [None, 3])
def test_expand_is_exact_inverse_of_dedup(layers):
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(0, 40)) if trial > 2 else trial  # includes 0, 1, 2 runs
        k = int(rng.integers(1, 5))  # small k: neighbouring runs often share ids
        ids = _random_runs(rng, n, k, layers)
        if layers is not None and n == 0:
            ids = np.zeros((0, layers), dtype=np.int64)
        u = Units(ids, 50.0, utt_id=f"u{trial}")
        d = dedup(u)
        assert expand(d) == u
        assert d.num_frames == u.num_frames
        # No two neighbouring de-duplicated entries are equal.
        if len(d.ids) > 1:
            diff = d.ids[1:] != d.ids[:-1]
            assert (diff.any(axis=1) if layers else diff).all()
        assert dedup(d) == d  # idempotent


def test_dedup_values_and_multilayer_rows():
    ids, dur = dedup_ids(np.array([7, 7, 7, 1, 7, 7]))
    assert ids.tolist() == [7, 1, 7] and dur.tolist() == [3, 1, 2]
    rows = np.array([[1, 2], [1, 2], [1, 3], [1, 3], [1, 2]])
    ids, dur = dedup_ids(rows)
    assert ids.tolist() == [[1, 2], [1, 3], [1, 2]] and dur.tolist() == [2, 2, 1]
    assert expand_ids(ids, dur).tolist() == rows.tolist()
    # Already-collapsed ids with equal neighbours merge and sum durations.
    ids, dur = dedup_ids(np.array([4, 4, 9]), np.array([2, 3, 1]))
    assert ids.tolist() == [4, 9] and dur.tolist() == [5, 1]
    assert dedup_ids(np.array([], dtype=np.int64))[0].shape == (0,)
    u = Units(np.array([3]), 50.0)
    assert dedup(u).durations.tolist() == [1] and expand(dedup(u)) == u
    with pytest.raises(ValueError, match="durations"):
        expand_ids(np.array([1, 2]), np.array([1]))
