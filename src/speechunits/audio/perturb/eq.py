"""Parametric equaliser: a cascade of RBJ biquads (low shelf, peaking bands, high shelf).

This is the random EQ that ContentVec and Spin apply after their formant/F0 perturbation, so
that channel colouring is not a speaker cue either: 10 bands at centre frequencies spaced
logarithmically from 60 Hz to 7.6 kHz, gains uniform in [-12, 12] dB, Q log-uniform in
[2, 5] (the first band a low shelf, the last a high shelf). Filter equations are from Robert
Bristow-Johnson's *Audio EQ Cookbook*.

Gains up to +12 dB can push the output past 1.0; it is not clipped (a warning is issued).

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.eq import parametric_eq
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05
    >>> y = parametric_eq(x, gains_db=[0.0] * 10, qs=[3.0] * 10)
    >>> float(np.max(np.abs(y - x))) < 1e-6          # 0 dB everywhere is the identity
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import sosfilt

from speechunits.audio.perturb._util import as_audio, check_range, check_sr, to_output

EQ_FREQS_HZ: tuple[float, ...] = tuple(float(f) for f in np.geomspace(60.0, 7600.0, 10))
EQ_GAIN_RANGE_DB = (-12.0, 12.0)  # the range random_eq_params draws from (Spin / ContentVec)
EQ_Q_RANGE = (2.0, 5.0)
_GAIN_LIMIT_DB = 24.0  # what parametric_eq accepts
_Q_LIMIT = (0.1, 20.0)


def parametric_eq(
    audio: np.ndarray,
    gains_db: Sequence[float],
    qs: Sequence[float],
    *,
    freqs_hz: Sequence[float] = EQ_FREQS_HZ,
    sr: int = 16000,
) -> np.ndarray:
    """Filter ``audio`` through the shelf/peaking cascade with per-band gains and Qs.

    ``freqs_hz`` defaults to :data:`EQ_FREQS_HZ`; all three sequences must have one entry per
    band (at least two bands: the shelves) and every frequency must lie below Nyquist.
    """
    op = "parametric_eq"
    sr = check_sr(sr, op)
    freqs = tuple(freqs_hz)
    check_eq_params(gains_db=gains_db, qs=qs, freqs_hz=freqs, sr=sr)
    x = as_audio(audio, op)
    sos = _sos(list(map(float, gains_db)), list(map(float, qs)), list(map(float, freqs)), sr)
    return to_output(sosfilt(sos, x), op)


def random_eq_params(rng: np.random.Generator, n_bands: int = 10) -> dict[str, list[float]]:
    """Draw Spin/ContentVec EQ settings: gains U(-12, 12) dB, Q = 2 * 2.5**U(0, 1)."""
    z = rng.uniform(0.0, 1.0, size=n_bands)
    qs = EQ_Q_RANGE[0] * (EQ_Q_RANGE[1] / EQ_Q_RANGE[0]) ** z
    gains = rng.uniform(*EQ_GAIN_RANGE_DB, size=n_bands)
    return {"gains_db": [float(g) for g in gains], "qs": [float(q) for q in qs]}


def check_eq_params(
    gains_db: Sequence[float],
    qs: Sequence[float],
    freqs_hz: Sequence[float] = EQ_FREQS_HZ,
    sr: int | None = None,
) -> None:
    """Raise ValueError if the parameters of :func:`parametric_eq` are invalid.

    ``sr=None`` skips the below-Nyquist check (a record is checked before its rate is known).
    """
    op = "parametric_eq"
    freqs = tuple(freqs_hz)
    for name, seq in (("gains_db", gains_db), ("qs", qs), ("freqs_hz", freqs_hz)):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise ValueError(f"{op}: {name} must be a sequence of numbers, got {seq!r}")
    if not (len(gains_db) == len(qs) == len(freqs)) or len(freqs) < 2:
        raise ValueError(
            f"{op}: need one gain, Q and frequency per band (>= 2 bands), got "
            f"{len(gains_db)} gains, {len(qs)} Qs, {len(freqs)} frequencies"
        )
    for g in gains_db:
        check_range("gain_db", g, -_GAIN_LIMIT_DB, _GAIN_LIMIT_DB, op)
    for q in qs:
        check_range("q", q, *_Q_LIMIT, op)
    for f in freqs:
        check_range("freq_hz", f, 1.0, 0.499 * sr if sr is not None else 1e6, op)


def _sos(gains: list[float], qs: list[float], freqs: list[float], sr: int) -> np.ndarray:
    rows = []
    last = len(freqs) - 1
    for i, (g, q, f) in enumerate(zip(gains, qs, freqs, strict=True)):
        a = 10.0 ** (g / 40.0)
        w0 = 2.0 * np.pi * f / sr
        cw, alpha = np.cos(w0), np.sin(w0) / (2.0 * q)
        if i == 0 or i == last:
            sign = 1.0 if i == 0 else -1.0  # low shelf / high shelf differ by these signs
            k = 2.0 * np.sqrt(a) * alpha
            b0 = a * ((a + 1) - sign * (a - 1) * cw + k)
            b1 = sign * 2 * a * ((a - 1) - sign * (a + 1) * cw)
            b2 = a * ((a + 1) - sign * (a - 1) * cw - k)
            a0 = (a + 1) + sign * (a - 1) * cw + k
            a1 = -sign * 2 * ((a - 1) + sign * (a + 1) * cw)
            a2 = (a + 1) + sign * (a - 1) * cw - k
        else:  # peaking
            b0, b1, b2 = 1 + alpha * a, -2 * cw, 1 - alpha * a
            a0, a1, a2 = 1 + alpha / a, -2 * cw, 1 - alpha / a
        rows.append([b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0])
    return np.asarray(rows)
