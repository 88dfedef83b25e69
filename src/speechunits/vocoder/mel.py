"""The log-mel frames a HiFi-GAN V1 generator expects, from 16 kHz speech, and its waveform back.

HiFi-GAN's own ``mel_spectrogram`` (meldataset.py): speech at 22.05 kHz, reflect padding of
``(n_fft - hop) / 2`` = 384 samples each side, STFT with ``center=False`` (Hann window 1024,
hop 256), magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 80 Slaney mel bands 0-8000 Hz, ``log`` clamped
at 1e-5. ``n`` samples at 22.05 kHz give ``n // 256`` frames; frame ``j`` is centred on sample
``256 j + 128``. The copy-synthesis topline is
``to_16k(generator(log_mel(wave)))``.

Example:
    >>> import numpy as np
    >>> log_mel(np.zeros(16000, dtype=np.float32)).shape   # 1 s: 22050 // 256 frames
    torch.Size([80, 86])
"""

from __future__ import annotations

import numpy as np
import soxr
import torch

from speechunits.encoders.whisper.melspec import mel_filters

from .hifigan import HiFiGANConfig

SOURCE_RATE = 16000


def resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    """soxr's high-quality resampler (float32 in, float32 out)."""
    if src == dst:
        return np.asarray(wave, dtype=np.float32)
    return soxr.resample(np.asarray(wave, dtype=np.float32), src, dst, quality="HQ").astype(np.float32)


def num_frames(num_samples_16k: int, config: HiFiGANConfig | None = None) -> int:
    """Mel frames for ``num_samples_16k`` samples of 16 kHz speech (``n22 // hop``)."""
    c = config or HiFiGANConfig()
    n22 = int(round(num_samples_16k * c.sampling_rate / SOURCE_RATE))
    return n22 // c.hop_size


def log_mel(wave: np.ndarray | torch.Tensor, config: HiFiGANConfig | None = None,
            sample_rate: int = SOURCE_RATE) -> torch.Tensor:
    """``[80, frames]`` float32 log-mel of a mono waveform (resampled to the generator's rate)."""
    c = config or HiFiGANConfig()
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = torch.from_numpy(resample(x.reshape(-1), sample_rate, c.sampling_rate))
    pad = (c.n_fft - c.hop_size) // 2
    if x.numel() <= pad:  # reflect padding needs more samples than it pads
        return torch.zeros(c.num_mels, 0)
    x = torch.nn.functional.pad(x[None, None], (pad, pad), mode="reflect")[0, 0]
    spec = torch.stft(x, c.n_fft, c.hop_size, c.win_size, window=torch.hann_window(c.win_size),
                      center=False, return_complex=True)
    mag = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = mel_filters(c.num_mels, c.n_fft, c.sampling_rate, c.fmin, c.fmax) @ mag
    return torch.log(torch.clamp(mel, min=1e-5))


def to_16k(wave22: torch.Tensor | np.ndarray, config: HiFiGANConfig | None = None) -> np.ndarray:
    """A generator's output (any shape holding one waveform) as 16 kHz float32 numpy."""
    c = config or HiFiGANConfig()
    x = wave22.detach().cpu().float().numpy() if isinstance(wave22, torch.Tensor) else np.asarray(wave22)
    return resample(x.reshape(-1), c.sampling_rate, SOURCE_RATE)
