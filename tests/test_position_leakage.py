"""Position leakage: units that encode where a frame is are measured and flagged."""

from __future__ import annotations

import numpy as np
import pytest

from speechunits.evaluation.quality import position_section
from speechunits.metrics import position_nmi


def test_positional_units_score_high_and_phonetic_units_near_chance():
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 400, 30)
    positional = [np.minimum(np.arange(n) // 20, 15) for n in lengths]  # a code per 0.4 s of position
    phonetic = [rng.integers(0, 50, n) for n in lengths]
    pos, pho = position_nmi(positional, 50.0), position_nmi(phonetic, 50.0)
    assert pos["margin"] > 0.7
    assert abs(pho["margin"]) < 0.05
    assert pho["nmi"] > pho["margin"]  # the plug-in NMI alone is biased upwards: the floor matters
    with pytest.raises(ValueError):
        position_nmi([np.array([], dtype=int)], 50.0)


def test_position_section_flags_units_that_know_position_better_than_phones():
    rng = np.random.default_rng(1)
    positional = [np.minimum(np.arange(300) // 25, 11) for _ in range(20)]
    weak_phones = {"nmi": 0.30, "nmi_chance": 0.10}
    flagged = position_section(positional, 50.0, weak_phones)
    assert flagged["flagged"] and flagged["phone_margin"] == pytest.approx(0.2)
    mixed = [rng.integers(0, 100, 300) for _ in range(20)]
    assert not position_section(mixed, 50.0, weak_phones)["flagged"]
    assert position_section(positional, 50.0, None)["flagged"]  # no alignments: absolute threshold
    assert not position_section(mixed, 50.0, {"skipped": True, "reason": "x"})["flagged"]
