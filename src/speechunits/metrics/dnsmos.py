"""DNSMOS (Reddy et al., ICASSP 2022): non-intrusive MOS of speech quality from Microsoft's ONNX models.

The models are the ones the PyPI package ``speechmos==0.0.1.1`` ships (``pip install --no-deps
speechmos==0.0.1.1``): ``dnsmos_models/sig_bak_ovr.onnx`` (P.835: signal, background, overall)
and ``dnsmos_models/model_v8.onnx`` (P.808 overall). The files are found with
``importlib.util.find_spec`` (the package itself, which imports librosa, never runs), their
sha256 checked, and run with onnxruntime. The computation is ``speechmos.dnsmos`` (itself
Microsoft's ``dnsmos_local.py``) for ``personalized=False``:

- audio shorter than 9.01 s is repeated (doubled until long enough);
- segments of 9.01 s (144,160 samples) every 1 s, ``int(floor(len / 16000) - 9.01) + 1`` of them,
  bounded by ``int((i + 9.01) * 16000)`` in floating point: from the 8th on a segment comes out
  one sample short and the reference skips it, so we do too (scores match speechmos to 1e-6);
- P.835 model on the raw segment -> (sig, bak, ovr) raw, mapped by the polynomials
  ``sig = -0.08397278 x^2 + 1.22083953 x + 0.0052439``,
  ``bak = -0.13166888 x^2 + 1.60915514 x - 0.39604546``,
  ``ovrl = -0.06766283 x^2 + 1.11546468 x + 0.04602535``;
- P.808 model on ``(power_to_db(mel, ref=max) + 40) / 40`` of the segment less its last 160
  samples: librosa's ``melspectrogram(sr=16000, n_fft=321, hop_length=160, n_mels=120)`` (periodic
  Hann window of 321, centred frames with zero padding (librosa >= 0.10), |STFT|^2, Slaney mel
  filters on ``rfftfreq(321)`` bins, :func:`speechunits.encoders.whisper.melspec.mel_filters`) and
  ``power_to_db`` (amin 1e-10, top_db 80); 900 frames;
- each score is the mean over segments.

Example:
    >>> import numpy as np
    >>> scorer = Dnsmos.from_installed()  # doctest: +SKIP
    >>> scorer.score(np.zeros(16000, np.float32) + 0.01)  # doctest: +SKIP
    {'p808_mos': ..., 'sig': ..., 'bak': ..., 'ovrl': ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio.errors import AudioError
from ..encoders.hub import file_sha256, installed_file
from ..encoders.whisper.melspec import mel_filters

__all__ = ["DNSMOS_SHA256", "Dnsmos", "DnsmosError", "dnsmos_mel"]

SAMPLE_RATE = 16000
INPUT_LENGTH = 9.01  # seconds, as the reference
N_FFT = 321
HOP = 160
N_MELS = 120
INSTALL_HINT = "pip install --no-deps speechmos==0.0.1.1"
DNSMOS_SHA256 = {
    "sig_bak_ovr.onnx": "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
    "model_v8.onnx": "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
}
# personalized=False fits of speechmos / dnsmos_local.py (highest power first, as np.poly1d)
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVR = (-0.06766283, 1.11546468, 0.04602535)


class DnsmosError(ValueError):
    """The DNSMOS models are missing, altered or unreadable."""


def dnsmos_mel(segment: np.ndarray) -> np.ndarray:
    """``[frames, 120]`` P.808 input: ``(power_to_db(melspectrogram, ref=max) + 40) / 40``."""
    x = np.asarray(segment, dtype=np.float32)
    pad = N_FFT // 2
    padded = np.pad(x, (pad, pad))  # center=True, librosa >= 0.10 pads with zeros
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    mel = power.astype(np.float32) @ mel_filters(N_MELS, N_FFT, SAMPLE_RATE).numpy().T
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    db -= 10.0 * np.log10(max(1e-10, float(mel.max())))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


def _find_models() -> Path:
    d = installed_file("speechmos", "dnsmos_models")
    if d is None or not all((d / f).is_file() for f in DNSMOS_SHA256):
        raise DnsmosError(f"the DNSMOS ONNX models (speechmos) are not installed: run `{INSTALL_HINT}`")
    return d


def segments(wave: np.ndarray) -> list[np.ndarray]:
    """The 9.01-s segments every second that DNSMOS scores (short audio repeated first)."""
    audio = wave
    need = int(INPUT_LENGTH * SAMPLE_RATE)
    while len(audio) < need:
        audio = np.append(audio, audio)
    num_hops = int(np.floor(len(audio) / SAMPLE_RATE) - INPUT_LENGTH) + 1
    out = []
    for i in range(num_hops):  # the reference's float arithmetic for the bounds, kept as is
        seg = audio[int(i * SAMPLE_RATE): int((i + INPUT_LENGTH) * SAMPLE_RATE)]
        if len(seg) >= need:
            out.append(seg)
    return out


class Dnsmos:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS of 16 kHz speech.

    ``score(wave)`` -> ``{"p808_mos", "sig", "bak", "ovrl"}`` (each about 1-5, higher is better).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, model_dir: str | Path, check_sha256: bool = True, threads: int = 1) -> None:
        import onnxruntime as ort

        model_dir = Path(model_dir)
        for name, digest in DNSMOS_SHA256.items():
            path = model_dir / name
            if not path.is_file():
                raise DnsmosError(f"{path}: DNSMOS model not found; install it with `{INSTALL_HINT}`")
            if check_sha256 and file_sha256(path) != digest:
                raise DnsmosError(f"{path}: sha256 differs from the pinned {digest} of speechmos 0.0.1.1 (altered file)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._primary = ort.InferenceSession(str(model_dir / "sig_bak_ovr.onnx"), opts, providers=["CPUExecutionProvider"])
            self._p808 = ort.InferenceSession(str(model_dir / "model_v8.onnx"), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types
            raise DnsmosError(f"{model_dir}: DNSMOS models cannot be loaded ({e})") from None

    @classmethod
    def from_installed(cls, threads: int = 1) -> "Dnsmos":
        """The models of the installed ``speechmos`` package (sha256 checked)."""
        return cls(_find_models(), threads=threads)

    def score(self, wave: np.ndarray, name: str = "wave") -> dict[str, float]:
        """DNSMOS of one 16 kHz mono float waveform with samples in [-1, 1]."""
        w = np.asarray(wave)
        if w.ndim != 1 or w.size == 0:
            raise AudioError(name, f"expected a non-empty 1-D waveform at 16 kHz, got shape {w.shape}")
        if not np.isfinite(w).all():
            raise AudioError(name, "waveform contains NaN or infinite samples")
        if np.abs(w).max() > 1.0:
            raise AudioError(name, "samples outside [-1, 1]: DNSMOS expects float audio at full scale 1")
        segs = np.stack(segments(w.astype(np.float32)))
        raw = self._primary.run(None, {"input_1": segs})[0].astype(np.float64)  # [n, 3]
        mels = np.stack([dnsmos_mel(s[:-HOP]) for s in segs])
        p808 = self._p808.run(None, {"input_1": mels})[0][:, 0].astype(np.float64)
        sig = np.polyval(POLY_SIG, raw[:, 0])
        bak = np.polyval(POLY_BAK, raw[:, 1])
        ovr = np.polyval(POLY_OVR, raw[:, 2])
        return {"p808_mos": float(p808.mean()), "sig": float(sig.mean()), "bak": float(bak.mean()),
                "ovrl": float(ovr.mean())}

    def score_batch(self, waves: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[dict[str, float]]:
        names = list(names) if names is not None else [f"wave {i}" for i in range(len(waves))]
        return [self.score(w, n) for w, n in zip(waves, names)]
