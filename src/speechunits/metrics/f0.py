"""F0 error and voicing agreement between original and resynthesized speech (Praat via parselmouth).

F0 is Praat's autocorrelation pitch (``Sound.to_pitch``: 10-ms steps, floor 75 Hz, ceiling
600 Hz, Praat's defaults otherwise); 0 Hz means unvoiced. The two tracks are aligned either
frame by frame in time (``alignment="time"``, the shorter length; right for a vocoder that keeps
the durations) or along the DTW path of their mel-cepstra (``alignment="dtw"``, the default,
the same path as :func:`speechunits.metrics.mcd.mcd_dtw`; for predicted durations), each track
read at the 5-ms mel-cepstrum frames from its nearest Praat frame. Over the aligned pairs:

- ``vuv_agreement``: share of pairs where both are voiced or both unvoiced;
- ``f0_rmse_hz``: root mean square of ``f0_syn - f0_ref`` in Hz over pairs voiced in both;
- ``f0_rmse_cents``: the same on ``1200 log2(f0_syn / f0_ref)`` (independent of the speaker's
  register; 100 cents = a semitone);
- ``voiced_pairs``: how many pairs were voiced in both (the F0 errors are None when 0).

Example:
    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> x = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    >>> s = f0_scores(x, x, alignment="time")
    >>> s["f0_rmse_hz"], s["vuv_agreement"]
    (0.0, 1.0)
"""

from __future__ import annotations

import numpy as np

from ..audio.errors import AudioError
from .mcd import HOP, mcd_with_path

__all__ = ["f0_scores", "praat_f0"]

TIME_STEP = 0.01
PITCH_FLOOR = 75.0
PITCH_CEILING = 600.0


def praat_f0(wave: np.ndarray, sr: int = 16000, name: str = "wave") -> tuple[np.ndarray, np.ndarray]:
    """``(times s, f0 Hz)`` of Praat's pitch track (0 where unvoiced)."""
    import parselmouth

    w = np.asarray(wave, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all():
        raise AudioError(name, "expected a non-empty finite 1-D waveform")
    # Praat needs 3 periods of the floor (40 ms) for one analysis window
    if w.size < int(3.0 / PITCH_FLOOR * sr) + 1:
        raise AudioError(name, f"too short for pitch analysis ({w.size / sr * 1000:.0f} ms < 40 ms)")
    pitch = parselmouth.Sound(w, sampling_frequency=sr).to_pitch(
        time_step=TIME_STEP, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    return np.asarray(pitch.xs()), np.nan_to_num(pitch.selected_array["frequency"])


def _n_frames(wave: np.ndarray) -> int:
    """Frames of :func:`speechunits.metrics.mcd.mel_cepstrum` (centred, 5-ms hop)."""
    return 1 + len(wave) // HOP


def _at_frames(times: np.ndarray, f0: np.ndarray, n_frames: int, sr: int) -> np.ndarray:
    """F0 at the 5-ms mel-cepstrum frame centres from the nearest Praat frame (0 outside the track)."""
    t = np.arange(n_frames) * HOP / sr
    if len(times) == 0:
        return np.zeros(n_frames)
    step = times[1] - times[0] if len(times) > 1 else TIME_STEP
    idx = np.round((t - times[0]) / step).astype(int)
    inside = (idx >= 0) & (idx < len(f0))
    return np.where(inside, f0[np.clip(idx, 0, len(f0) - 1)], 0.0)


def f0_scores(ref: np.ndarray, syn: np.ndarray, sr: int = 16000, alignment: str = "dtw",
              path: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """``{f0_rmse_hz, f0_rmse_cents, vuv_agreement, voiced_pairs}`` of a resynthesized utterance.

    ``path``: the ``(reference frames, synthesized frames)`` of :func:`~speechunits.metrics.mcd.mcd_with_path`
    when already computed (``alignment="dtw"`` only).
    """
    if alignment not in ("dtw", "time"):
        raise ValueError(f"alignment must be 'dtw' or 'time', got {alignment!r}")
    fa = _at_frames(*praat_f0(ref, sr, "reference"), _n_frames(ref), sr)
    fb = _at_frames(*praat_f0(syn, sr, "synthesized"), _n_frames(syn), sr)
    if alignment == "dtw":
        rows, cols = path if path is not None else mcd_with_path(ref, syn, sr)[1:]
        fa, fb = fa[rows], fb[cols]
    else:
        n = min(len(fa), len(fb))
        fa, fb = fa[:n], fb[:n]
    va, vb = fa > 0, fb > 0
    both = va & vb
    out = {"vuv_agreement": float(np.mean(va == vb)), "voiced_pairs": int(both.sum()),
           "f0_rmse_hz": None, "f0_rmse_cents": None}
    if both.any():
        out["f0_rmse_hz"] = float(np.sqrt(np.mean((fb[both] - fa[both]) ** 2)))
        out["f0_rmse_cents"] = float(np.sqrt(np.mean((1200.0 * np.log2(fb[both] / fa[both])) ** 2)))
    return out
