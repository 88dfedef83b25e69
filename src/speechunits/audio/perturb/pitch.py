"""Pitch shift in semitones by TD-PSOLA (Praat), keeping duration and formants.

Praat's manipulation analysis marks the glottal pulses of voiced parts; each pulse-synchronous
two-period grain is re-spaced at the new period, so the spectral envelope (formants) and the
timing stay where they were and only F0 moves. Unvoiced stretches are copied untouched, and an
input with no voiced frame at all is returned unchanged (PSOLA has nothing to shift there);
so is one shorter than three periods of ``pitch_floor`` (40 ms at 75 Hz), too short for Praat's
pitch analysis to find a voiced frame.

Deterministic: no randomness is involved, the ``seed`` of a record is ignored.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.pitch import pitch_shift, median_f0
    >>> t = np.arange(16000) / 16000
    >>> x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 16)).astype(np.float32) * 0.2
    >>> y = pitch_shift(x, semitones=4.0)
    >>> y.shape == x.shape
    True
    >>> round(median_f0(y) / median_f0(x), 3), round(2 ** (4 / 12), 3)
    (1.26, 1.26)
"""

from __future__ import annotations

import warnings

import numpy as np
import parselmouth
from parselmouth.praat import call

from speechunits.audio.perturb._util import as_audio, check_range, check_sr, fix_length, to_output

SEMITONE_RANGE = (-24.0, 24.0)
PITCH_FLOOR_RANGE_HZ = (30.0, 300.0)
PITCH_CEILING_RANGE_HZ = (100.0, 1500.0)
_TIME_STEP_S = 0.01  # Praat's standard analysis step for To Manipulation


def pitch_shift(
    audio: np.ndarray,
    semitones: float,
    *,
    sr: int = 16000,
    pitch_floor: float = 75.0,
    pitch_ceiling: float = 600.0,
) -> np.ndarray:
    """Multiply F0 by ``2 ** (semitones / 12)``; same length, same formants.

    Args:
        audio: mono float waveform.
        semitones: shift in [-24, 24]; 12 is one octave up.
        pitch_floor, pitch_ceiling: F0 search range in Hz of the pulse analysis (Praat's
            defaults 75 and 600 suit adult speech).
    """
    op = "pitch_shift"
    check_pitch_params(semitones=semitones, pitch_floor=pitch_floor, pitch_ceiling=pitch_ceiling)
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    if semitones == 0 or not np.any(x) or too_short_for_pitch(x.shape[0], sr, pitch_floor):
        return x.astype(np.float32)
    snd = parselmouth.Sound(x, sampling_frequency=sr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        manip = call(snd, "To Manipulation", _TIME_STEP_S, float(pitch_floor), float(pitch_ceiling))
        tier = call(manip, "Extract pitch tier")
        if call(tier, "Get number of points") == 0:  # nothing voiced
            return x.astype(np.float32)
        call(tier, "Multiply frequencies", snd.xmin, snd.xmax, 2.0 ** (float(semitones) / 12.0))
        call([tier, manip], "Replace pitch tier")
        y = call(manip, "Get resynthesis (overlap-add)").values[0]
    # Praat keeps the sample count; fix_length guards the contract against version drift.
    return to_output(fix_length(y, x.shape[0]), op)


def median_f0(
    audio: np.ndarray,
    sr: int = 16000,
    *,
    pitch_floor: float = 75.0,
    pitch_ceiling: float = 600.0,
) -> float:
    """Median F0 in Hz over the voiced frames (Praat autocorrelation pitch).

    NaN if nothing is voiced or the input is shorter than three periods of ``pitch_floor``.
    """
    x = as_audio(audio, "median_f0")
    sr = check_sr(sr, "median_f0")
    if too_short_for_pitch(x.shape[0], sr, pitch_floor):
        return float("nan")
    snd = parselmouth.Sound(x, sampling_frequency=sr)
    f0 = snd.to_pitch_ac(pitch_floor=pitch_floor, pitch_ceiling=pitch_ceiling).selected_array[
        "frequency"
    ]
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else float("nan")


def too_short_for_pitch(n: int, sr: int, pitch_floor: float) -> bool:
    """Praat's pitch analysis needs at least three periods of the floor frequency."""
    return n * float(pitch_floor) < 3 * sr


def check_pitch_params(
    semitones: float, pitch_floor: float = 75.0, pitch_ceiling: float = 600.0
) -> None:
    """Raise ValueError if the parameters of :func:`pitch_shift` are invalid."""
    check_range("semitones", semitones, *SEMITONE_RANGE, "pitch_shift")
    check_f0_search(pitch_floor, pitch_ceiling, "pitch_shift")


def check_f0_search(pitch_floor: float, pitch_ceiling: float, op: str) -> None:
    """Shared check of an F0 search range (floor < ceiling, both plausible)."""
    lo = check_range("pitch_floor", pitch_floor, *PITCH_FLOOR_RANGE_HZ, op)
    hi = check_range("pitch_ceiling", pitch_ceiling, *PITCH_CEILING_RANGE_HZ, op)
    if lo >= hi:
        raise ValueError(f"{op}: pitch_floor={lo} must be below pitch_ceiling={hi}")
