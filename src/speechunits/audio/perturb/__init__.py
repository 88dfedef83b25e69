"""Seeded, recorded audio perturbations for robustness tests and speaker-invariant training.

Every perturbation is a pure function of (float mono audio, parameters, seed) -> new float32
array: the same inputs give bit-identical output, randomness comes only from
``numpy.random.default_rng(seed)`` and the global RNG is never touched. Output is never clipped.
Each also exists as a JSON-able :class:`Perturbation` record (``build_perturbation``) that
applies itself, so what was done to an utterance can be stored next to its units.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb import build_perturbation, add_noise
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    >>> p = build_perturbation("noise", snr_db=5.0, kind="white", seed=1)
    >>> bool(np.array_equal(p.apply(x), add_noise(x, 5.0, "white", seed=1)))
    True
"""

from speechunits.audio.perturb.eq import EQ_FREQS_HZ, parametric_eq, random_eq_params
from speechunits.audio.perturb.level import ActiveLevel, active_speech_level
from speechunits.audio.perturb.noise import (
    add_noise,
    babble_noise,
    measure_snr,
    pink_noise,
    white_noise,
)
from speechunits.audio.perturb.pitch import median_f0, pitch_shift
from speechunits.audio.perturb.record import (
    Perturbation,
    available_perturbations,
    build_perturbation,
    chain,
)
from speechunits.audio.perturb.reverb import measure_rt60, reverberate, synthetic_rir
from speechunits.audio.perturb.random_speaker import random_speaker_perturbation
from speechunits.audio.perturb.speaker import speaker_perturb
from speechunits.audio.perturb.stretch import time_stretch

__all__ = [
    "EQ_FREQS_HZ",
    "ActiveLevel",
    "Perturbation",
    "active_speech_level",
    "add_noise",
    "available_perturbations",
    "babble_noise",
    "build_perturbation",
    "chain",
    "measure_rt60",
    "measure_snr",
    "median_f0",
    "parametric_eq",
    "pink_noise",
    "pitch_shift",
    "random_eq_params",
    "random_speaker_perturbation",
    "reverberate",
    "speaker_perturb",
    "synthetic_rir",
    "time_stretch",
    "white_noise",
]
