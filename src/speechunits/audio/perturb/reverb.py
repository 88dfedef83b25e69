"""Reverberation with a seeded synthetic room impulse response (RIR) of a given RT60.

The RIR is a statistical room model (Schroeder / Moorer style), not a geometric simulation:

* a direct path of amplitude 1 at lag 0 -- so the reverberant output stays time-aligned with
  the input, which matters for frame labels and unit alignments;
* ``N_EARLY`` discrete early reflections at random lags within the early window
  ``min(50 ms, RT60 / 4)``, random sign, amplitudes following the room's decay;
* a diffuse tail: Gaussian noise, low-pass coloured (random cutoff 2.5-6 kHz, for wall and air
  absorption), under the envelope ``exp(-3 ln(10) t / RT60)`` -- exactly 60 dB of energy decay
  in RT60 seconds -- faded in over the early window. The colouring is applied before the
  envelope so it cannot change the decay rate.

Early reflections carry 30% of the tail's energy; reflections + tail are then scaled to the
direct-to-reverberant ratio ``drr_db`` (default 0 dB, a talker a metre or two away).
The RIR is ``ceil(RT60 * sr)`` samples long: after RT60 the tail is 60 dB down, so truncating
there biases a Schroeder T30 by well under 1%.

:func:`reverberate` convolves and keeps the input length (the reverberant tail past the end
of the input is dropped) and rescales the output to the input's RMS.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.reverb import synthetic_rir, measure_rt60, reverberate
    >>> rir = synthetic_rir(0.5, seed=1)
    >>> abs(measure_rt60(rir, sr=16000) - 0.5) < 0.05
    True
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    >>> y = reverberate(x, rt60=0.5, seed=1)
    >>> y.shape == x.shape, bool(np.isclose(np.std(y), np.std(x), rtol=1e-3))
    (True, True)
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, lfilter

from speechunits.audio.perturb._util import (
    as_audio,
    check_range,
    check_seed,
    check_sr,
    to_output,
)

RT60_RANGE_S = (0.05, 4.0)
DRR_RANGE_DB = (-20.0, 30.0)
N_EARLY = 10
EARLY_TO_TAIL_ENERGY = 0.3
_EARLY_WINDOW_S = 0.05
_CUTOFF_RANGE_HZ = (2500.0, 6000.0)
# ISO 3382-1 evaluation ranges of the energy decay curve, in dB below its start.
_FIT_RANGES_DB = {"T20": (-5.0, -25.0), "T30": (-5.0, -35.0)}


def synthetic_rir(
    rt60: float, *, seed: int = 0, sr: int = 16000, drr_db: float = 0.0
) -> np.ndarray:
    """A seeded synthetic RIR (float32) with reverberation time ``rt60`` seconds."""
    op = "synthetic_rir"
    check_reverb_params(rt60=rt60, drr_db=drr_db)
    sr = check_sr(sr, op)
    rng = np.random.default_rng(check_seed(seed, op))
    return _rir(float(rt60), float(drr_db), sr, rng).astype(np.float32)


def reverberate(
    audio: np.ndarray,
    rt60: float,
    *,
    seed: int = 0,
    sr: int = 16000,
    drr_db: float = 0.0,
) -> np.ndarray:
    """Convolve ``audio`` with :func:`synthetic_rir` (same seed); same length and RMS as input.

    All-zero input is returned as zeros (reverberated silence is silence).
    """
    op = "reverberate"
    check_reverb_params(rt60=rt60, drr_db=drr_db)
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    rng = np.random.default_rng(check_seed(seed, op))
    rir = _rir(float(rt60), float(drr_db), sr, rng)
    y = fftconvolve(x, rir)[: x.shape[0]]
    rms_in = float(np.sqrt(np.mean(x**2)))
    rms_out = float(np.sqrt(np.mean(y**2)))
    if rms_in == 0.0 or rms_out == 0.0:
        return np.zeros(x.shape[0], dtype=np.float32)
    return to_output(y * (rms_in / rms_out), op)


def measure_rt60(rir: np.ndarray, sr: int = 16000, method: str = "T30") -> float:
    """Reverberation time of ``rir`` by Schroeder backward integration (ISO 3382-1).

    The energy decay curve ``EDC(t) = sum_{tau >= t} h(tau)^2`` is fitted by least squares in
    dB between -5 and -25 dB (``"T20"``) or -5 and -35 dB (``"T30"``), and the slope is
    extrapolated to 60 dB of decay.

    Raises:
        ValueError: unknown method, or an EDC that never falls to the end of the fit range.
    """
    op = "measure_rt60"
    if method not in _FIT_RANGES_DB:
        raise ValueError(f"{op}: method must be one of {tuple(_FIT_RANGES_DB)}, got {method!r}")
    h = as_audio(rir, op)
    sr = check_sr(sr, op)
    edc = np.cumsum((h**2)[::-1])[::-1]
    if edc[0] == 0.0:
        raise ValueError(f"{op}: impulse response is all zeros")
    with np.errstate(divide="ignore"):
        edc_db = 10.0 * np.log10(edc / edc[0])
    hi, lo = _FIT_RANGES_DB[method]
    if edc_db[-1] > lo:
        raise ValueError(
            f"{op}: decay reaches only {edc_db[-1]:.1f} dB, {method} needs {lo:.0f} dB"
        )
    # The fit window starts at the first crossing of `hi` and ends at the first of `lo`.
    start = int(np.argmax(edc_db <= hi))
    stop = int(np.argmax(edc_db <= lo))
    t = np.arange(start, stop + 1) / sr
    slope = np.polyfit(t, edc_db[start : stop + 1], 1)[0]  # dB per second, negative
    return float(-60.0 / slope)


def check_reverb_params(rt60: float, drr_db: float = 0.0) -> None:
    """Raise ValueError if the parameters of :func:`reverberate` are invalid."""
    check_range("rt60", rt60, *RT60_RANGE_S, "reverberate")
    check_range("drr_db", drr_db, *DRR_RANGE_DB, "reverberate")


def _rir(rt60: float, drr_db: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = max(int(np.ceil(rt60 * sr)), 2)
    t = np.arange(n) / sr
    decay = np.exp(-3.0 * np.log(10.0) * t / rt60)  # amplitude: -60 dB energy at t = rt60
    early_end = min(_EARLY_WINDOW_S, rt60 / 4.0)

    # Diffuse tail: coloured noise under the decay, faded in (raised cosine) over the window.
    cutoff = min(rng.uniform(*_CUTOFF_RANGE_HZ), 0.45 * sr)
    pole = np.exp(-2.0 * np.pi * cutoff / sr)
    noise = lfilter([1.0 - pole], [1.0, -pole], rng.standard_normal(n))
    fade = np.where(t < early_end, 0.5 - 0.5 * np.cos(np.pi * t / early_end), 1.0)
    tail = noise * decay * fade
    tail[0] = 0.0  # lag 0 belongs to the direct path
    tail /= np.sqrt(np.sum(tail**2))

    # Early reflections: sparse, strong, signed; at least one sample after the direct path.
    lags = rng.integers(1, max(int(early_end * sr), 2), size=N_EARLY)
    amps = rng.uniform(0.3, 1.0, size=N_EARLY) * rng.choice([-1.0, 1.0], size=N_EARLY)
    early = np.zeros(n)
    np.add.at(early, lags, amps * decay[lags])
    early *= np.sqrt(EARLY_TO_TAIL_ENERGY / np.sum(early**2))

    reverb = tail + early
    reverb *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(reverb**2))
    reverb[0] = 1.0  # direct path, energy 1 -> DRR = drr_db
    return reverb
