"""A trained text-to-units model as a folder: ``config.json`` + ``model.safetensors``, hash checked.

``config.json`` (type ``speechunits-tts``) holds the model sizes, the sha256 of
``model.safetensors`` (checked before any tensor is read), the training record and the
**tokenizer** the units belong to: its config hash (``fingerprint``, as every ``Units`` it makes
carries; another tokenizer is refused at load) and the unit vocoder's fingerprint of it
(``units_fingerprint``: encoder weights, layers, k and codebooks, as ``vocoder/artifact.py``
records it), so a vocoder for other units is refused before anything is spoken. No pickle, no
code from the folder: it is untrusted input.

:class:`TextToSpeech` is the loaded model: text -> phones -> units ``[T, L]`` -> a vocoder.

Example (a folder ``M`` from ``speechunits tts train``)::

    tts = TextToSpeech.from_pretrained("M")
    units = tts.units("Hello world.")                         # [frames, layers] int64
    voc = UnitVocoder.from_pretrained("V")
    wave16k = tts.say("Hello world.", voc, speaker_wave=ref)  # refuses a vocoder of other units
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from speechunits.data.artifact_config import read_hashed_bytes, read_typed_config
from speechunits.data.atomic import atomic_write_bytes, atomic_write_text

from .model import TextToUnits, TTSConfig
from .text import phone_ids, text_to_phones

TTS_TYPE = "speechunits-tts"
FORMAT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class TTSModelError(ValueError):
    """A TTS folder that cannot be used, or a tokenizer / vocoder it does not fit: one line."""


def save(directory: str | os.PathLike, model: TextToUnits, speaker_mean: torch.Tensor | None, meta: dict) -> Path:
    """Write the float32 tensors, then ``config.json`` naming their sha256."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
    if speaker_mean is not None:
        tensors["speaker_mean"] = speaker_mean.detach().cpu().float().contiguous()
    blob = st_save(tensors, metadata={"format": "pt"})
    atomic_write_bytes(d / WEIGHTS_NAME, blob)
    config = {"type": TTS_TYPE, "format_version": FORMAT_VERSION, "weights_sha256": hashlib.sha256(blob).hexdigest(),
              "model": model.config.to_dict(), **meta}
    atomic_write_text(d / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return d


def load(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, TextToUnits, torch.Tensor | None]:
    """``(config, model, speaker_mean | None)`` from a folder, every check done first."""
    d = Path(directory)
    cfg_file, st_file = d / CONFIG_NAME, d / WEIGHTS_NAME
    config = read_typed_config(d, CONFIG_NAME, TTS_TYPE, FORMAT_VERSION, TTSModelError, "TTS model")
    try:
        mcfg = TTSConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise TTSModelError(f"{cfg_file}: bad model settings ({str(e).splitlines()[0]})") from None
    blob = read_hashed_bytes(st_file, config.get("weights_sha256"), TTSModelError)
    try:
        tensors = st_load(blob)
        model = TextToUnits(mcfg)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise TTSModelError(f"{d}: config and weights do not make a TTS model ({str(e).splitlines()[0]})") from None
    return config, model.eval().to(device), tensors.get("speaker_mean")


class TextToSpeech:
    """A loaded text-to-units model: text -> units, and through a unit vocoder -> 16 kHz speech."""

    def __init__(self, config: dict, model: TextToUnits, speaker_mean: torch.Tensor | None,
                 device: str | torch.device = "cpu", path: Path | None = None) -> None:
        self.config, self.model, self.speaker_mean = config, model, speaker_mean
        self.device, self.path = torch.device(device), path
        self._speaker_encoder = None

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, tokenizer=None, device: str | torch.device = "cpu") -> "TextToSpeech":
        """Load a folder; with ``tokenizer``, refuse a model trained for other units."""
        config, model, spk = load(path, device)
        tts = cls(config, model, spk, device, Path(path))
        if tokenizer is not None:
            tts.check_tokenizer(tokenizer)
        return tts

    @property
    def tokenizer_info(self) -> dict:
        return dict(self.config.get("tokenizer") or {})

    def check_tokenizer(self, tokenizer) -> None:
        from ..prepare import tokenizer_fingerprint

        want, got = self.tokenizer_info.get("fingerprint"), tokenizer_fingerprint(tokenizer)
        if want != got:
            raise TTSModelError(f"{self.path}: trained for the tokenizer {self.tokenizer_info.get('source')!r} "
                                f"(fingerprint {str(want)[:12]}...), not for this one ({str(got)[:12]}...)")

    def check_vocoder(self, vocoder) -> None:
        """Refuse a vocoder trained on other units than this model makes (one line)."""
        want = self.tokenizer_info.get("units_fingerprint")
        got = (vocoder.config.get("tokenizer") or {}).get("fingerprint")
        if want != got:
            raise TTSModelError(f"{vocoder.path}: a vocoder for the tokenizer "
                                f"{(vocoder.config.get('tokenizer') or {}).get('source')!r}; this TTS model makes units "
                                f"of {self.tokenizer_info.get('source')!r} (fingerprints {str(got)[:12]}... vs "
                                f"{str(want)[:12]}...): train a vocoder for that tokenizer")

    # -- speaker ---------------------------------------------------------------------------
    def speaker_vector(self, wave: np.ndarray | None) -> np.ndarray | None:
        """The d-vector of ``wave`` (16 kHz), or the mean training voice when ``wave`` is None."""
        if not self.model.config.speaker_dim:
            return None
        if wave is None:
            if self.speaker_mean is None:
                raise TTSModelError(f"{self.path}: no mean voice stored; give a reference recording")
            return self.speaker_mean.numpy()
        if self._speaker_encoder is None:
            from speechunits.encoders.speaker import SpeakerEncoder

            self._speaker_encoder = SpeakerEncoder.from_installed(self.device)
        return np.asarray(self._speaker_encoder.embed(wave), dtype=np.float32)

    # -- synthesis -------------------------------------------------------------------------
    def phones(self, text: str, voice: str = "us1") -> list[str]:
        return text_to_phones(text, voice)

    def units(self, text: str | None = None, *, phones: Sequence[str] | None = None, speaker_wave: np.ndarray | None = None,
              speaker: np.ndarray | None = None, voice: str = "us1", speed: float = 1.0) -> np.ndarray:
        """Frame units ``[T, L]`` of ``text`` (or of ``phones``) in the voice of ``speaker_wave``
        (or the d-vector ``speaker``, or the mean training voice)."""
        labels = list(phones) if phones is not None else self.phones(text or "", voice)
        spk = speaker if speaker is not None else self.speaker_vector(speaker_wave)
        return self.model.infer(phone_ids(labels), spk, speed=speed)

    def say(self, text: str, vocoder, *, speaker_wave: np.ndarray | None = None, voice: str = "us1",
            speed: float = 1.0, layers: Sequence[int] | None = None) -> np.ndarray:
        """16 kHz float32 speech of ``text`` through ``vocoder`` (checked against the units first)."""
        self.check_vocoder(vocoder)
        units = self.units(text, speaker_wave=speaker_wave, voice=voice, speed=speed)
        return vocoder.synthesize(units, speaker_wave=speaker_wave, layers=layers)
