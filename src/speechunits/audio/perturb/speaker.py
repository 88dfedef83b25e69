"""Speaker perturbation: scale formants and F0 separately (Praat "Change gender").

This is the perturbation that NANSY, ContentVec and Spin train with to make units speaker
invariant. Praat resamples the sound by ``formant_ratio`` (scaling the whole spectral
envelope, i.e. the vocal-tract length), then PSOLA restores the duration and sets the pitch
contour to median ``median_f0 * f0_ratio`` with its excursions around the median scaled by
``pitch_range_ratio``. The median is measured the ContentVec/Spin way: Praat autocorrelation
pitch with time step ``0.8 / pitch_floor``.

Input with no voiced frame still gets the formant scaling (the F0 settings then have no
effect); all-zero input, and input shorter than three periods of ``pitch_floor`` (40 ms at
75 Hz, too short for the pitch analysis), are returned unchanged.

Seeding: Praat's duration-aware PSOLA draws random numbers (for unvoiced stretches), so two
calls of "Change gender" on the same input differ -- by up to 0.3 in sample value on speech.
:func:`speaker_perturb` therefore seeds Praat's own generator from ``seed`` (through
``numpy.random.default_rng(seed)``) just for that call, under a lock, and puts Praat back on
unpredictable seeding afterwards. Same input + parameters + seed -> identical output. Other code
drawing Praat random numbers from another thread at the same moment could still interleave;
use processes, not threads, for parallel augmentation.

Random ranges (:func:`.random_speaker.random_speaker_perturbation`), as in the Spin and ContentVec training code
(``random_formant_f0`` + ``random_eq``): each ratio ``r ~ U(1, max)`` is inverted with
probability 1/2, with ``max`` = 1.4 for formants, 2.0 for F0 and 1.5 for the pitch range;
then a random 10-band EQ (see :mod:`.eq`).

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.speaker import speaker_perturb
    >>> from speechunits.audio.perturb.random_speaker import random_speaker_perturbation
    >>> from speechunits.audio.perturb.pitch import median_f0
    >>> t = np.arange(16000) / 16000
    >>> x = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30)).astype(np.float32) * 0.2
    >>> y = speaker_perturb(x, formant_ratio=1.2, f0_ratio=1.5)
    >>> y.shape == x.shape, round(median_f0(y) / median_f0(x), 2)
    (True, 1.5)
    >>> p = random_speaker_perturbation(seed=7)
    >>> [s.name for s in p.params["steps"]]
    ['speaker', 'eq']
    >>> p.apply(x).shape == x.shape
    True
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import parselmouth
from parselmouth.praat import call, run

from speechunits.audio.errors import AudioError
from speechunits.audio.perturb._util import (
    as_audio,
    check_range,
    check_seed,
    check_sr,
    fix_length,
    to_output,
)
from speechunits.audio.perturb.pitch import check_f0_search, too_short_for_pitch

FORMANT_RATIO_RANGE = (0.5, 2.0)
F0_RATIO_RANGE = (0.25, 4.0)
PITCH_RANGE_RATIO_RANGE = (0.0, 4.0)  # 0 flattens the contour to a monotone
# Spin / ContentVec draw limits: r ~ U(1, max), inverted with probability 1/2.
SPIN_FORMANT_MAX = 1.4
SPIN_F0_MAX = 2.0
SPIN_PITCH_RANGE_MAX = 1.5
_PRAAT_RNG_LOCK = threading.Lock()


def speaker_perturb(
    audio: np.ndarray,
    formant_ratio: float = 1.0,
    f0_ratio: float = 1.0,
    pitch_range_ratio: float = 1.0,
    *,
    seed: int = 0,
    sr: int = 16000,
    pitch_floor: float = 75.0,
    pitch_ceiling: float = 600.0,
) -> np.ndarray:
    """Scale formants by ``formant_ratio`` and median F0 by ``f0_ratio``; same length.

    Args:
        audio: mono float waveform.
        formant_ratio: spectral-envelope scale in [0.5, 2] (1.1 is roughly male -> female).
        f0_ratio: new median F0 / old median F0, in [0.25, 4].
        pitch_range_ratio: scale of F0 excursions around the median, in [0, 4].
        seed: seeds Praat's PSOLA randomness (see the module docstring).
        pitch_floor, pitch_ceiling: F0 search range in Hz.
    """
    op = "speaker_perturb"
    check_speaker_params(
        formant_ratio=formant_ratio,
        f0_ratio=f0_ratio,
        pitch_range_ratio=pitch_range_ratio,
        pitch_floor=pitch_floor,
        pitch_ceiling=pitch_ceiling,
    )
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    praat_seed = int(np.random.default_rng(check_seed(seed, op)).integers(1, 2**31 - 1))
    if not np.any(x) or too_short_for_pitch(x.shape[0], sr, pitch_floor):
        return x.astype(np.float32)
    snd = parselmouth.Sound(x, sampling_frequency=sr)
    with warnings.catch_warnings():
        # "no voiced segments" is expected for unvoiced input; the formant shift still applies.
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        pitch = snd.to_pitch_ac(
            time_step=0.8 / pitch_floor, pitch_floor=pitch_floor, pitch_ceiling=pitch_ceiling
        )
        f0 = pitch.selected_array["frequency"]
        voiced = f0[f0 > 0]
        # 0 is Praat's "keep the original median" (the only option without voiced frames).
        new_median = float(np.median(voiced)) * float(f0_ratio) if voiced.size else 0.0
        with _PRAAT_RNG_LOCK:
            run(f"random_initializeWithSeedUnsafelyButPredictably ({praat_seed})\n")
            try:
                y = call(
                    [snd, pitch],
                    "Change gender",
                    float(formant_ratio),
                    new_median,
                    float(pitch_range_ratio),
                    1.0,  # duration factor: timing must not move (units stay aligned)
                ).values[0]
            except parselmouth.PraatError as err:  # e.g. a near-silent crop: Praat's median is undefined
                reason = " ".join(str(err).split())[:160]
                raise AudioError(op, f"Praat could not change the voice of this audio ({reason})") from None
            finally:
                run("random_initializeSafelyAndUnpredictably ()\n")
    return to_output(fix_length(y, x.shape[0]), op)


def check_speaker_params(
    formant_ratio: float = 1.0,
    f0_ratio: float = 1.0,
    pitch_range_ratio: float = 1.0,
    pitch_floor: float = 75.0,
    pitch_ceiling: float = 600.0,
) -> None:
    """Raise ValueError if the parameters of :func:`speaker_perturb` are invalid."""
    op = "speaker_perturb"
    check_range("formant_ratio", formant_ratio, *FORMANT_RATIO_RANGE, op)
    check_range("f0_ratio", f0_ratio, *F0_RATIO_RANGE, op)
    check_range("pitch_range_ratio", pitch_range_ratio, *PITCH_RANGE_RATIO_RANGE, op)
    check_f0_search(pitch_floor, pitch_ceiling, op)
