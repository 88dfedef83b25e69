"""A random Spin/ContentVec speaker perturbation, drawn from a seed and returned as its record.

This sits above :mod:`.record` (it builds :class:`~.record.Perturbation` records) and above
:mod:`.speaker` and :mod:`.eq` (whose ranges it draws from), so imports flow one way:
speaker, eq -> record -> random_speaker.

Example:
    >>> from speechunits.audio.perturb.random_speaker import random_speaker_perturbation
    >>> p = random_speaker_perturbation(seed=7)
    >>> [s.name for s in p.params["steps"]]
    ['speaker', 'eq']
"""

from __future__ import annotations

import numpy as np

from speechunits.audio.perturb._util import check_range, check_seed
from speechunits.audio.perturb.eq import random_eq_params
from speechunits.audio.perturb.record import Perturbation, chain
from speechunits.audio.perturb.speaker import (
    F0_RATIO_RANGE,
    FORMANT_RATIO_RANGE,
    PITCH_RANGE_RATIO_RANGE,
    SPIN_F0_MAX,
    SPIN_FORMANT_MAX,
    SPIN_PITCH_RANGE_MAX,
)


def random_speaker_perturbation(
    seed: int,
    *,
    eq: bool = True,
    formant_max: float = SPIN_FORMANT_MAX,
    f0_max: float = SPIN_F0_MAX,
    pitch_range_max: float = SPIN_PITCH_RANGE_MAX,
    pitch_floor: float = 75.0,
    pitch_ceiling: float = 600.0,
) -> Perturbation:
    """Draw a Spin/ContentVec speaker perturbation from ``seed``; returns its record.

    The drawn ratios (and EQ gains/Qs) are stored in the record together with ``seed`` (which
    also seeds Praat's PSOLA), so the JSON record alone reproduces the output. With
    ``eq=True`` (as in Spin) the record is a chain ``speaker -> eq``.
    """
    op = "random_speaker_perturbation"
    seed = check_seed(seed, op)
    check_range("formant_max", formant_max, 1.0, FORMANT_RATIO_RANGE[1], op)
    check_range("f0_max", f0_max, 1.0, F0_RATIO_RANGE[1], op)
    check_range("pitch_range_max", pitch_range_max, 1.0, PITCH_RANGE_RATIO_RANGE[1], op)
    rng = np.random.default_rng(seed)

    def draw(hi: float) -> float:
        r = float(rng.uniform(1.0, hi))
        return r if rng.random() > 0.5 else 1.0 / r

    # Draw order follows Spin (formant, F0, range, then EQ) so the streams line up.
    params = {
        "formant_ratio": draw(formant_max),
        "f0_ratio": draw(f0_max),
        "pitch_range_ratio": draw(pitch_range_max),
        "pitch_floor": float(pitch_floor),
        "pitch_ceiling": float(pitch_ceiling),
    }
    speaker = Perturbation("speaker", params, seed)
    if not eq:
        return speaker
    return chain(speaker, Perturbation("eq", random_eq_params(rng), seed))
