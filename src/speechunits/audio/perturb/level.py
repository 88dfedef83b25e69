"""Active speech level (ITU-T P.56, method B), the reference level for every SNR here.

Plain mean power under-states the level of speech with pauses: the same utterance with one more
second of silence would get a different SNR for the same noise. P.56 measures the power of the
*active* part only, which is what "speech at X dB SNR" conventionally means.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.level import active_speech_level
    >>> t = np.arange(32000) / 16000
    >>> tone = 0.5 * np.sin(2 * np.pi * 200 * t)           # power 0.125 = -9.0 dB
    >>> x = np.concatenate([tone, np.zeros(32000)])        # 2 s tone + 2 s silence
    >>> round(float(10 * np.log10(np.mean(x**2))), 1)      # plain mean power counts the pause
    -12.0
    >>> lvl = active_speech_level(x, sr=16000)
    >>> round(lvl.db, 1), round(lvl.activity, 2)           # pause excluded but for the hangover
    (-9.6, 0.57)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.signal import lfilter

from speechunits.audio.errors import AudioError
from speechunits.audio.perturb._util import as_audio, check_sr

# P.56 constants: envelope time constant, hangover, and the margin between the active level and
# the activity threshold.
_TIME_CONSTANT_S = 0.03
_HANGOVER_S = 0.2
_MARGIN_DB = 15.9
# Thresholds are scanned every 0.25 dB over 120 dB below the envelope peak; P.56 itself uses
# 6 dB steps with linear interpolation, the finer grid only removes interpolation error.
_STEP_DB = 0.25
_RANGE_DB = 120.0


class ActiveLevel(NamedTuple):
    """Result of :func:`active_speech_level`."""

    power: float  # mean power of x over the active samples (linear, x in full-scale units)
    activity: float  # fraction of samples judged active, in (0, 1]

    @property
    def db(self) -> float:
        """Active level in dB relative to full-scale power 1.0."""
        return float(10.0 * np.log10(self.power))


def active_speech_level(audio: np.ndarray, sr: int = 16000) -> ActiveLevel:
    """ITU-T P.56 method B active speech level of ``audio``.

    A two-stage exponential envelope ``q`` (time constant 0.03 s) of ``|x|`` is compared with a
    ladder of thresholds ``c``; a sample is active for ``c`` when ``q`` exceeded ``c`` within
    the last 0.2 s (hangover). The active level is the power over the active samples at the
    threshold that lies 15.9 dB below that power.

    If no threshold meets the margin (a signal that never rests, such as a steady tone, can
    land just outside the ladder's top) the mean power of the whole signal is returned with
    activity 1.0.

    Raises:
        AudioError: empty, non-finite or all-zero input (the level is undefined).
    """
    op = "active_speech_level"
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    energy = float(np.dot(x, x))
    if energy == 0.0:
        raise AudioError(op, "input is silent (all zeros): active speech level is undefined")
    n = x.shape[0]

    g = np.exp(-1.0 / (sr * _TIME_CONSTANT_S))
    p = lfilter([1.0 - g], [1.0, -g], np.abs(x))
    q = lfilter([1.0 - g], [1.0, -g], p)
    # With hangover H samples, sample i is active for threshold c iff max(q[i-H .. i]) >= c
    # (the P.56 hangover counter, written as a running maximum). The active count for every
    # threshold then comes from one sort.
    hang = int(round(_HANGOVER_S * sr))
    qmax = maximum_filter1d(q, size=hang + 1, origin=hang // 2, mode="constant", cval=0.0)
    qmax_sorted = np.sort(qmax)

    top_db = 20.0 * np.log10(qmax_sorted[-1])
    c_db = top_db - np.arange(_RANGE_DB, -_STEP_DB / 2, -_STEP_DB)  # increasing thresholds
    counts = n - np.searchsorted(qmax_sorted, 10.0 ** (c_db / 20.0), side="left")
    valid = counts > 0
    c_db, counts = c_db[valid], counts[valid]
    a_db = 10.0 * np.log10(energy / counts)
    diff = a_db - c_db  # decreases as the threshold rises
    below = np.nonzero(diff <= _MARGIN_DB)[0]
    if below.size == 0 or below[0] == 0:
        return ActiveLevel(power=energy / n, activity=1.0)
    j = int(below[0])
    # Linear interpolation between thresholds j-1 and j for the point where diff == margin.
    frac = (diff[j - 1] - _MARGIN_DB) / (diff[j - 1] - diff[j])
    level_db = a_db[j - 1] + frac * (a_db[j] - a_db[j - 1])
    power = 10.0 ** (level_db / 10.0)
    return ActiveLevel(power=float(power), activity=float(min(1.0, energy / power / n)))
