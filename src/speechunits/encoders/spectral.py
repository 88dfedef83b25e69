"""Log-mel filterbank and MFCC features, Kaldi-compatible, in plain torch (no torchaudio).

The pipeline is Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` with its defaults, the
same as ``torchaudio.compliance.kaldi.fbank`` / ``.mfcc`` (which fairseq's HuBERT recipe uses
for its first-iteration MFCC targets), except that the frame shift defaults to 20 ms:

1. frames of 25 ms (400 samples) every ``16000 / frame_rate`` samples, "snip edges" (no padding),
   so at 50 Hz the count is ``floor((n - 400) / 320) + 1``, exactly that of the SSL encoders;
2. per frame: remove the DC offset, pre-emphasis 0.97 (first sample against itself), Povey window
   (Hann ** 0.85), zero-pad to 512, power spectrum;
3. triangular mel filters that are triangles on the mel scale ``1127 ln(1 + f / 700)`` between
   20 Hz and Nyquist, natural log floored at float32 epsilon  -> ``logmel`` (80 bins);
4. MFCC: orthonormal DCT-II of 23 log-mel energies, first 13 coefficients, sinusoidal liftering
   (Q = 22); then deltas and delta-deltas (regression over +-2 frames with edge replication, as
   ``torchaudio.functional.compute_deltas``): 13 -> 39 dims.

Long inputs are computed in windows of ``max_seconds`` (30 s) planned by
:func:`speechunits.encoders.windows.plan_windows`, as the HF encoders do: every window starts on
a hop, so its frames are the file's frames, and consecutive windows overlap by the frames the
deltas read (2 per delta order), so the stitched features equal a whole-file computation frame
for frame. Memory is then the float32 output plus one window's work (a few MB), whatever the
length; the whole-file computation held the file's frames several times over in float64.

Optional per-utterance CMVN (mean and variance normalisation over the utterance's frames) is
off by default so the features equal Kaldi's and fairseq's; k-means over corpora with varied
channels usually benefits from ``cmvn=True``.

Example:
    >>> import numpy as np
    >>> enc = SpectralEncoder("mfcc")
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    >>> enc.encode([x])[0].shape
    torch.Size([49, 1, 39])
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from speechunits.encoders.base import Encoder, Wave, as_wave
from speechunits.encoders.windows import plan_windows

KINDS = ("mfcc", "logmel")


def mel_scale(freq: np.ndarray | float) -> np.ndarray | float:
    """Kaldi/HTK mel scale: 1127 * ln(1 + f / 700)."""
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, low_freq: float = 20.0, high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's triangular filters ``[n_mels, n_fft // 2 + 1]`` (triangles in the mel domain).

    ``high_freq <= 0`` is relative to Nyquist, as in Kaldi. The Nyquist bin gets weight 0 (Kaldi
    builds ``n_fft / 2`` bins and pads one zero column).
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel range: low_freq={low_freq}, high_freq={high_freq}, Nyquist {nyquist}")
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (n_mels + 1)
    edges = mel_low + delta * np.arange(n_mels + 2)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = mel_scale(np.arange(n_fft // 2) * sample_rate / n_fft)[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a ``[n_in, n_out]`` matrix (right-multiply log energies by it)."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    m[:, 0] = math.sqrt(1.0 / n_in)
    return m.astype(np.float32)


def deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over ``+-width`` frames of ``x [frames, dims]``, edges replicated."""
    if x.shape[0] == 0:
        return x.clone()
    denom = 2 * sum(i * i for i in range(1, width + 1))
    padded = torch.cat([x[:1].expand(width, -1), x, x[-1:].expand(width, -1)])
    n = x.shape[0]
    out = torch.zeros_like(x)
    for i in range(1, width + 1):
        out += i * (padded[width + i : width + i + n] - padded[width - i : width - i + n])
    return out / denom


class SpectralEncoder(Encoder):
    """Kaldi-style log-mel (``"logmel"``) or MFCC + deltas (``"mfcc"``) frames; no weights.

    Args:
        kind: ``"mfcc"`` or ``"logmel"``.
        frame_rate: frames per second; the hop ``sample_rate / frame_rate`` must be whole samples.
        window_ms: analysis window (25 ms).
        n_mels: mel bins (default 23 for MFCC, 80 for log-mel, Kaldi's and the usual choice).
        n_ceps: cepstra kept (13) for MFCC.
        delta_order: 0, 1 or 2 (default 2 for MFCC, 0 for log-mel).
        cmvn: per-utterance mean and variance normalisation of every dimension (default off).
        device: where the arithmetic runs.
        max_seconds: longer inputs are computed window by window (the result is the same; only
            the working memory depends on it, so it is not part of ``config()``).
    """

    def __init__(
        self,
        kind: str = "mfcc",
        *,
        sample_rate: int = 16000,
        frame_rate: float = 50.0,
        window_ms: float = 25.0,
        n_mels: int | None = None,
        n_ceps: int = 13,
        delta_order: int | None = None,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        preemphasis: float = 0.97,
        cepstral_lifter: float = 22.0,
        cmvn: bool = False,
        device: str | torch.device = "cpu",
        max_seconds: float = 30.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown spectral feature {kind!r}: choose one of {KINDS}")
        hop = sample_rate / frame_rate
        if abs(hop - round(hop)) > 1e-9:
            raise ValueError(f"frame_rate {frame_rate} gives a hop of {hop} samples at {sample_rate} Hz; it must be whole")
        self.kind = kind
        self.name = kind
        self.sample_rate = int(sample_rate)
        self.frame_rate = float(frame_rate)
        self.hop = int(round(hop))
        self.window = int(round(sample_rate * window_ms / 1000.0))
        self.n_fft = 1 << (self.window - 1).bit_length()  # Kaldi rounds the window to a power of two
        self.n_mels = int(n_mels if n_mels is not None else (23 if kind == "mfcc" else 80))
        self.n_ceps = int(n_ceps)
        self.delta_order = int(delta_order if delta_order is not None else (2 if kind == "mfcc" else 0))
        if self.delta_order not in (0, 1, 2):
            raise ValueError("delta_order must be 0, 1 or 2")
        if kind == "mfcc" and not 1 <= self.n_ceps <= self.n_mels:
            raise ValueError(f"n_ceps must be in 1..n_mels ({self.n_mels})")
        self.low_freq, self.high_freq = float(low_freq), float(high_freq)
        self.preemphasis = float(preemphasis)
        self.cepstral_lifter = float(cepstral_lifter)
        self.cmvn = bool(cmvn)
        self.num_layers = 0
        base = self.n_ceps if kind == "mfcc" else self.n_mels
        self.dim = base * (1 + self.delta_order)
        from speechunits.encoders.hf import check_device  # a clear error for "cuda" without CUDA

        self.device = check_device(device)
        # Each delta order reads +-2 frames, so a kept frame needs 2 * order frames of real
        # context inside its window to equal the whole-file value.
        self._context_frames = 2 * self.delta_order
        self._window_frames = max(self.num_frames(int(round(max_seconds * self.sample_rate))), 2 * self._context_frames + 1)

        win = torch.hann_window(self.window, periodic=False, dtype=torch.float64).pow(0.85)
        self._window = win.to(torch.float32).to(self.device)
        banks = mel_filterbank(self.n_mels, self.n_fft, self.sample_rate, self.low_freq, self.high_freq)
        self._banks_t = torch.from_numpy(banks).T.contiguous().to(self.device)  # [bins, mels]
        if kind == "mfcc":
            lifter = 1.0 + 0.5 * self.cepstral_lifter * np.sin(np.pi * np.arange(self.n_ceps) / self.cepstral_lifter)
            dct = dct_matrix(self.n_mels, self.n_ceps) * lifter[None, :].astype(np.float32)
            self._dct = torch.from_numpy(dct).to(self.device)

    def num_frames(self, num_samples: int) -> int:
        """``floor((n - window) / hop) + 1``, or 0 below one window (Kaldi's snip-edges)."""
        return 0 if num_samples < self.window else (int(num_samples) - self.window) // self.hop + 1

    def encode(self, waves: Sequence[Wave], layers: Sequence[int] = (0,)) -> list[torch.Tensor]:
        """Features ``[frames, len(layers), dim]`` per wave; the only layer is 0 (or -1)."""
        n_layers = len(self.resolve_layers(layers))
        out = []
        with torch.inference_mode():
            for i, w in enumerate(waves):
                feats = self._features(as_wave(w, i).to(self.device))
                out.append(feats.cpu()[:, None, :].expand(-1, n_layers, -1).contiguous())
        return out

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.num_frames(x.shape[0])
        out = torch.empty(n, self.dim, dtype=torch.float32, device=x.device)
        for w in plan_windows(n, self._window_frames, self._context_frames):
            a, b = w.samples(self.window, self.hop)
            feats = self._window_features(x[a:b])
            out[w.keep_start : w.keep_stop] = feats[w.keep_start - w.start : w.keep_stop - w.start]
        if self.cmvn and n > 0:
            # In place: an hour's features are ~28 MB, and a normalised copy would double them.
            mean, std = out.mean(0), out.std(0, unbiased=False).clamp_min(1e-5)
            out.sub_(mean).div_(std)
        return out

    def _window_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features of every frame of ``x`` (deltas with edges replicated at ``x``'s ends)."""
        n = self.num_frames(x.shape[0])
        # Double precision for the DC removal and pre-emphasis keeps features equal to Kaldi's
        # to ~1e-5 on quiet input, where float32 cancellation would show in the log; it is one
        # window's frames (~5 MB at 30 s), never the file's.
        frames = x[: (n - 1) * self.hop + self.window].unfold(0, self.window, self.hop).double()
        frames = frames - frames.mean(dim=1, keepdim=True)
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = (frames - self.preemphasis * prev).float() * self._window
        spec = torch.fft.rfft(frames, n=self.n_fft)
        power = spec.real.square() + spec.imag.square()
        logmel = (power @ self._banks_t).clamp_min(torch.finfo(torch.float32).eps).log()
        feats = logmel @ self._dct if self.kind == "mfcc" else logmel
        parts = [feats]
        for _ in range(self.delta_order):
            parts.append(deltas(parts[-1]))
        return torch.cat(parts, dim=1)

    def config(self) -> dict:
        return {
            "type": "spectral",
            "name": self.kind,
            "implementation": "kaldi-compatible (torchaudio.compliance.kaldi defaults), speechunits torch",
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "window_samples": self.window,
            "hop_samples": self.hop,
            "n_fft": self.n_fft,
            "window_type": "povey",
            "preemphasis": self.preemphasis,
            "n_mels": self.n_mels,
            "mel_range_hz": [self.low_freq, self.high_freq if self.high_freq > 0 else self.sample_rate / 2 + self.high_freq],
            "n_ceps": self.n_ceps if self.kind == "mfcc" else None,
            "cepstral_lifter": self.cepstral_lifter if self.kind == "mfcc" else None,
            "delta_order": self.delta_order,
            "cmvn": self.cmvn,
            "dim": self.dim,
            "num_layers": 0,
            "layers_available": [0],
            "frame_convention": "frame i = samples [i*hop, i*hop + window), no padding",
        }
