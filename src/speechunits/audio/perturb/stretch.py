"""Time stretch by WSOLA (waveform-similarity overlap-add), pitch kept.

Verhelst & Roelands (1993): output frames of ``WINDOW_S`` (Hann, 50% overlap) are taken from the
input at ``rate`` times the output hop, each shifted by up to ``TOLERANCE_S`` to the position
whose waveform best continues the previous frame (maximum cross-correlation with that frame's
natural continuation). Periods are copied whole, never resampled, so F0 and formants stay and
only the timing changes. Works on any signal, voiced or not; it needs no pitch analysis.

``rate`` > 1 shortens (faster speech): the output has exactly ``round(len(audio) / rate)``
samples. Deterministic, no randomness: the ``seed`` of a record is ignored.

The 10 ms tolerance covers a full period down to F0 = 50 Hz, so the search always finds a
period-aligned splice for speech.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.stretch import time_stretch
    >>> x = np.sin(2 * np.pi * 200 * np.arange(16000) / 16000).astype(np.float32)
    >>> y = time_stretch(x, rate=1.25)
    >>> y.shape
    (12800,)
    >>> int(np.argmax(np.abs(np.fft.rfft(y[1600:-1600])))) * 16000 // len(y[1600:-1600])
    200
"""

from __future__ import annotations

import numpy as np

from speechunits.audio.perturb._util import as_audio, check_range, check_sr, to_output

RATE_RANGE = (0.25, 4.0)
WINDOW_S = 0.03
TOLERANCE_S = 0.01


def time_stretch(audio: np.ndarray, rate: float, *, sr: int = 16000) -> np.ndarray:
    """Play ``audio`` ``rate`` times faster without changing its pitch.

    Args:
        audio: mono float waveform.
        rate: speed factor in [0.25, 4]; output length is ``round(len(audio) / rate)``.
    """
    op = "time_stretch"
    check_stretch_params(rate=rate)
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    rate = float(rate)
    out_len = max(int(round(x.shape[0] / rate)), 1)
    if rate == 1.0:
        return to_output(x, op)

    win_len = max(2 * int(round(WINDOW_S * sr / 2)), 4)  # even, so the hop is exactly half
    hop_out = win_len // 2
    hop_in = hop_out * rate
    tol = max(int(round(TOLERANCE_S * sr)), 1)
    window = np.hanning(win_len + 1)[:win_len]  # periodic Hann: 50% overlaps sum to one

    n_frames = int(np.ceil(out_len / hop_out)) + 2
    # Zero-pad so frame k, centred on input sample k * hop_in, may move by +-tol and still read
    # the "natural continuation" one output hop further on, at both ends of the signal.
    front = win_len // 2 + tol
    back = int(np.ceil(n_frames * hop_in)) + 2 * tol + 2 * win_len - x.shape[0]
    xp = np.concatenate([np.zeros(front), x, np.zeros(max(back, 0))])

    y = np.zeros((n_frames - 1) * hop_out + win_len)
    wsum = np.zeros_like(y)
    shift = 0
    for k in range(n_frames):
        pos = int(round(k * hop_in)) + tol + shift  # start of frame k in xp
        y[k * hop_out : k * hop_out + win_len] += window * xp[pos : pos + win_len]
        wsum[k * hop_out : k * hop_out + win_len] += window
        # Choose the next frame's shift so it best matches what would naturally follow.
        natural = xp[pos + hop_out : pos + hop_out + win_len]
        nominal = int(round((k + 1) * hop_in)) + tol
        region = xp[nominal - tol : nominal + tol + win_len]
        corr = np.correlate(region, natural, mode="valid")
        shift = int(np.argmax(corr)) - tol
    # Frames are centred, so output sample 0 sits half a window into the buffer.
    start = win_len // 2
    out = y[start : start + out_len] / np.maximum(wsum[start : start + out_len], 1e-8)
    return to_output(out, op)


def check_stretch_params(rate: float) -> None:
    """Raise ValueError if the parameters of :func:`time_stretch` are invalid."""
    check_range("rate", rate, *RATE_RANGE, "time_stretch")
