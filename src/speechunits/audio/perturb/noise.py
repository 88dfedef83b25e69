"""Additive noise at a target SNR: white, pink (1/f) and babble.

SNR definition (used by :func:`add_noise` and :func:`measure_snr`)::

    SNR_dB = 10 * log10(P_speech / P_noise)

``P_speech`` is the ITU-T P.56 active speech level of the clean input (power over its active
samples, see :mod:`.level`), so leading and trailing silence do not change the SNR.
``P_noise`` is the mean power of the added noise over the whole output. The noise is scaled in
float64 so the realised SNR equals the target up to float32 rounding of the output.

Output is *not* clipped: at low SNR or with loud input the peak can exceed 1.0, in which case
an :class:`~speechunits.audio.AudioWarning` is issued and the samples are left as they are.

Example:
    >>> import numpy as np
    >>> from speechunits.audio.perturb.noise import add_noise, measure_snr
    >>> t = np.arange(16000) / 16000
    >>> clean = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    >>> noisy = add_noise(clean, snr_db=10.0, kind="pink", seed=0)
    >>> round(measure_snr(clean, noisy), 2)
    10.0
    >>> bool(np.array_equal(noisy, add_noise(clean, snr_db=10.0, kind="pink", seed=0)))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechunits.audio.errors import AudioError
from speechunits.audio.perturb._util import (
    as_audio,
    check_range,
    check_seed,
    check_sr,
    to_output,
)
from speechunits.audio.perturb.level import active_speech_level

NOISE_KINDS = ("white", "pink", "babble")
SNR_RANGE_DB = (-20.0, 60.0)
MAX_TALKERS = 64


def white_noise(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of zero-mean, unit-variance Gaussian white noise (float64)."""
    return _white(int(n), np.random.default_rng(check_seed(seed, "white_noise")))


def pink_noise(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of unit-variance pink noise: power spectral density proportional to 1/f."""
    return _pink(int(n), np.random.default_rng(check_seed(seed, "pink_noise")))


def babble_noise(
    n: int,
    sources: Sequence[np.ndarray],
    seed: int = 0,
    *,
    n_talkers: int | None = None,
    sr: int = 16000,
) -> np.ndarray:
    """``n`` samples of babble: ``n_talkers`` of ``sources`` summed, each at unit active level.

    Each talker is normalised to active level 1.0 (P.56) so no single voice dominates, starts at
    a random offset and is looped to length ``n``. ``n_talkers=None`` uses every source;
    otherwise that many distinct sources are drawn. Sources must share the sample rate ``sr``.
    """
    rng = np.random.default_rng(check_seed(seed, "babble_noise"))
    return _babble(int(n), sources, rng, n_talkers, check_sr(sr, "babble_noise"))


def add_noise(
    audio: np.ndarray,
    snr_db: float,
    kind: str = "white",
    *,
    seed: int = 0,
    sr: int = 16000,
    sources: Sequence[np.ndarray] | None = None,
    n_talkers: int | None = None,
) -> np.ndarray:
    """Return ``audio`` plus ``kind`` noise scaled to ``snr_db`` (see the module docstring).

    Args:
        audio: mono float waveform.
        snr_db: target SNR in dB, in [-20, 60].
        kind: ``"white"``, ``"pink"`` or ``"babble"``.
        seed: the only source of randomness (noise samples, talker choice and offsets).
        sources: for babble, the other utterances (1-D arrays at ``sr``) to mix.
        n_talkers: for babble, how many of ``sources`` to draw (default all).

    Raises:
        AudioError: empty, non-finite or silent ``audio``, or silent babble sources.
        ValueError: parameters out of range, unknown kind, missing babble sources.
    """
    op = "add_noise"
    check_noise_params(snr_db=snr_db, kind=kind, n_talkers=n_talkers)
    x = as_audio(audio, op)
    sr = check_sr(sr, op)
    rng = np.random.default_rng(check_seed(seed, op))
    try:
        speech_power = active_speech_level(x, sr).power
    except AudioError as err:
        raise AudioError(op, f"cannot set an SNR: {err.reason}") from None
    n = x.shape[0]
    if kind == "white":
        noise = _white(n, rng)
    elif kind == "pink":
        noise = _pink(n, rng)
    else:
        if sources is None:
            raise ValueError(f"{op}: kind='babble' needs `sources` (other utterances as arrays)")
        noise = _babble(n, sources, rng, n_talkers, sr)
    noise_power = float(np.mean(noise**2))
    if noise_power == 0.0:  # possible only for a 1-sample pink noise (DC removed)
        raise AudioError(op, f"generated {kind} noise is silent for {n} samples")
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (float(snr_db) / 10.0)))
    return to_output(x + gain * noise, op)


def measure_snr(clean: np.ndarray, noisy: np.ndarray, sr: int = 16000) -> float:
    """SNR in dB of ``noisy`` against ``clean``, by the definition of this module."""
    c = as_audio(clean, "measure_snr")
    d = as_audio(noisy, "measure_snr")
    if c.shape != d.shape:
        raise ValueError(f"measure_snr: shapes differ: {c.shape} vs {d.shape}")
    added = d - c  # the noise actually added, including the output's float32 rounding
    return float(10.0 * np.log10(active_speech_level(c, sr).power / np.mean(added**2)))


def check_noise_params(snr_db: float, kind: str = "white", n_talkers: int | None = None) -> None:
    """Raise ValueError if the parameters of :func:`add_noise` are invalid."""
    op = "add_noise"
    check_range("snr_db", snr_db, *SNR_RANGE_DB, op)
    if kind not in NOISE_KINDS:
        raise ValueError(f"{op}: kind must be one of {NOISE_KINDS}, got {kind!r}")
    if n_talkers is not None:
        if kind != "babble":
            raise ValueError(f"{op}: n_talkers only applies to kind='babble'")
        check_range("n_talkers", n_talkers, 1, MAX_TALKERS, op)
        if int(n_talkers) != n_talkers:
            raise ValueError(f"{op}: n_talkers must be an integer, got {n_talkers!r}")


def _white(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    # Spectral shaping of white Gaussian noise: amplitude 1/sqrt(f) gives power 1/f at every
    # FFT bin exactly (no IIR approximation error); DC is removed since 1/f diverges there.
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = np.inf
    y = np.fft.irfft(spec / np.sqrt(f), n=n)
    std = float(np.std(y))
    return y / std if std > 0 else y


def _babble(
    n: int,
    sources: Sequence[np.ndarray],
    rng: np.random.Generator,
    n_talkers: int | None,
    sr: int,
) -> np.ndarray:
    op = "add_noise(babble)"
    if isinstance(sources, np.ndarray) and sources.ndim == 1:
        raise ValueError(f"{op}: `sources` must be a sequence of 1-D arrays, not one array")
    srcs = list(sources)
    if not srcs:
        raise ValueError(f"{op}: `sources` is empty")
    k = len(srcs) if n_talkers is None else int(n_talkers)
    if k > len(srcs):
        raise ValueError(f"{op}: n_talkers={k} but only {len(srcs)} sources were given")
    chosen = sorted(rng.choice(len(srcs), size=k, replace=False).tolist())
    out = np.zeros(n, dtype=np.float64)
    for i in chosen:
        s = as_audio(srcs[i], f"{op} source {i}")
        try:
            level = active_speech_level(s, sr).power
        except AudioError:
            raise AudioError(op, f"source {i} is silent") from None
        # Random start, then loop: every output sample gets speech-like material even when a
        # source is shorter than the input.
        start = int(rng.integers(s.shape[0]))
        idx = (start + np.arange(n)) % s.shape[0]
        out += s[idx] / np.sqrt(level)
    return out
