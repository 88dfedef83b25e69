"""Shared argument checks for the perturbations (private).

Every perturbation validates its input the same way so that a bad call fails with one clear
message naming the operation and the reason, whichever function it came through.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np

from speechunits.audio.errors import AudioError, AudioWarning


def as_audio(audio: object, op: str) -> np.ndarray:
    """Return ``audio`` as a 1-D float64 working copy, or raise :class:`AudioError`.

    Work is done in float64 so that float32 rounding happens once, at the end.
    """
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise AudioError(op, f"expected mono audio as a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise AudioError(op, "input audio is empty (0 samples)")
    if not np.issubdtype(arr.dtype, np.floating):
        # Integer PCM would be silently treated as +-32768 full scale; make the caller convert.
        raise AudioError(op, f"expected float audio (full scale 1.0), got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=True)
    if not np.all(np.isfinite(out)):
        raise AudioError(op, "input audio contains NaN or infinite samples")
    return out


def to_output(y: np.ndarray, op: str) -> np.ndarray:
    """Cast to float32; warn (never clip) when the result leaves [-1, 1].

    Clipping would add distortion that is not in the record; callers who need the range can
    rescale knowing exactly what happened.
    """
    out = np.ascontiguousarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        warnings.warn(
            f"{op}: output peak {peak:.3f} exceeds 1.0 (not clipped)", AudioWarning, stacklevel=3
        )
    return out


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """Truncate or zero-pad ``y`` to exactly ``n`` samples."""
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.shape[0], dtype=y.dtype)])


def check_sr(sr: object, op: str) -> int:
    if isinstance(sr, bool) or not isinstance(sr, Integral) or int(sr) <= 0:
        raise ValueError(f"{op}: sample rate must be a positive integer, got {sr!r}")
    return int(sr)


def check_seed(seed: object, op: str) -> int:
    # numpy's default_rng accepts any non-negative int; bools and floats are almost always bugs.
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ValueError(f"{op}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_range(name: str, value: object, lo: float, hi: float, op: str) -> float:
    """``value`` as a float in the closed interval [lo, hi], or ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{op}: {name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi:
        raise ValueError(f"{op}: {name}={value!r} is outside the allowed range [{lo}, {hi}]")
    return v
