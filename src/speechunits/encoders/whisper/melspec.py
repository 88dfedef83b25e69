"""Whisper's log-mel front end, computed exactly as OpenAI's ``whisper.audio.log_mel_spectrogram``.

Hann window of 400 samples, hop 160 (100 frames a second at 16 kHz), centred frames with reflect
padding, the last STFT frame dropped, power spectrum through a Slaney-normalised mel filterbank
(librosa's ``filters.mel(sr=16000, n_fft=400, n_mels=N)``), ``log10`` clamped at 1e-10, floored
at 8 below the maximum of the input, then ``(x + 4) / 4``. ``n`` samples give ``n // 160``
frames. The filterbank is computed here (no librosa); a test checks it against transformers'.

Example:
    >>> import torch
    >>> log_mel(torch.zeros(16000)).shape
    torch.Size([80, 100])
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
__all__ = ["HOP", "N_FFT", "SAMPLE_RATE", "log_mel", "mel_filters", "num_mel_frames"]


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's ``htk=False``)."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_region = f >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    hz = m * (200.0 / 3)
    return np.where(m >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0)), hz)


@functools.lru_cache(maxsize=8)
def mel_filters(n_mels: int = 80, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """``[n_mels, n_fft // 2 + 1]`` float32 triangular filters with Slaney area normalisation
    between ``fmin`` and ``fmax`` (default Nyquist): librosa's ``filters.mel`` defaults.

    The FFT bins are librosa's ``rfftfreq(n_fft)``: for an odd ``n_fft`` (DNSMOS uses 321) the last
    one stops short of Nyquist while the mel points still run to ``fmax``.
    """
    fmax = sample_rate / 2 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"bad mel range {fmin}..{fmax} Hz for a sample rate of {sample_rate} Hz")
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def num_mel_frames(num_samples: int) -> int:
    """Frames :func:`log_mel` returns: ``n // 160`` (0 when the input is too short to reflect-pad)."""
    return int(num_samples) // HOP if num_samples > N_FFT // 2 else 0


def log_mel(wave: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """``[n_mels, n // 160]`` Whisper log-mel of a 1-D float waveform at 16 kHz (on its device)."""
    n = wave.shape[-1]
    if num_mel_frames(n) == 0:
        return wave.new_zeros(n_mels, 0)
    window = torch.hann_window(N_FFT, device=wave.device)
    spec = torch.stft(wave.float(), N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = mel_filters(n_mels).to(wave.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
