"""Frame features from speech: SSL models (HF transformers) at any layer(s), log-mel and MFCC.

``load_encoder(spec)`` is the one entry point: ``"mfcc"`` and ``"logmel"`` build the spectral
encoder; anything else is a Hugging Face model (hub name in the local cache, or a directory).
Every encoder follows :class:`Encoder`: ``encode(waves, layers)`` returns, per utterance, a float32
tensor ``[num_frames(len(wave)), len(layers), dim]``.

Example:
    >>> import numpy as np
    >>> from speechunits.encoders import load_encoder
    >>> enc = load_encoder("logmel")
    >>> enc.encode([np.zeros(16000, dtype=np.float32)])[0].shape
    torch.Size([49, 1, 80])
"""

from __future__ import annotations

import torch

from speechunits.encoders.base import Encoder, Wave
from speechunits.encoders.dump import FeatureShard, dump_features, shard_range
from speechunits.encoders.hf import EncoderNotFoundError, HFEncoder
from speechunits.encoders.spectral import KINDS as SPECTRAL_KINDS
from speechunits.encoders.spectral import SpectralEncoder

__all__ = [
    "Encoder",
    "EncoderNotFoundError",
    "FeatureShard",
    "HFEncoder",
    "SpectralEncoder",
    "Wave",
    "dump_features",
    "load_encoder",
    "shard_range",
]


def load_encoder(spec: str, device: str | torch.device = "cpu", **kwargs) -> Encoder:
    """An encoder from its name: ``"mfcc"``, ``"logmel"``, a Whisper (``"whisper-tiny.en"``, or a
    transformers / OpenAI ``.pt`` / CTranslate2 checkpoint), or a HF SSL model name or directory.

    Keyword arguments go to :class:`SpectralEncoder` (``frame_rate``, ``n_mels``, ``cmvn``...) or
    to :meth:`HFEncoder.from_pretrained` (``allow_download``, ``revision``, ``normalize``,
    ``max_seconds``, ``overlap_seconds``, ``batch_size``...).
    """
    key = str(spec).strip()
    if key.lower() in SPECTRAL_KINDS:
        return SpectralEncoder(key.lower(), device=device, **kwargs)
    from speechunits.encoders.whisper import WhisperEncoder, is_whisper

    if is_whisper(key):
        return WhisperEncoder.from_pretrained(key, device=device, **kwargs)
    return HFEncoder.from_pretrained(key, device=device, **kwargs)

