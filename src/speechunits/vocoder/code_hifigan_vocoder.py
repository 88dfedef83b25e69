"""A trained unit HiFi-GAN as a vocoder folder, and the :class:`UnitVocoder` that speaks with it.

The folder is the one of every speechunits vocoder (``config.json`` + ``model.safetensors``, the
weights' sha256 and the tokenizer fingerprint in the config, checked by
:func:`speechunits.vocoder.artifact.load`), with ``"arch": "code-hifigan"``, the generator's
settings under ``"code_hifigan"`` and no HiFi-GAN back end: the generator itself is the waveform
model. Its tensors are ``generator.*`` (weight norm folded into plain float32 weights),
``duration.*`` (the duration predictor, when trained) and ``speaker_mean``.

``UnitVocoder.from_pretrained`` returns a :class:`CodeHiFiGANVocoder` for such a folder: frame
units (+ a speaker d-vector) -> 16 kHz waveform in one pass, no mel.

Example (a folder ``V`` written by ``speechunits vocoder train --arch code-hifigan``)::

    voc = UnitVocoder.from_pretrained("V", tokenizer=tok)
    wave16k = voc.resynthesize(audio, tok)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import save as st_save

from speechunits.data.atomic import atomic_write_bytes, atomic_write_text

from . import artifact
from .code_hifigan import CodeGenerator, CodeHiFiGANConfig
from .duration import DurationConfig, DurationPredictor
from .vocoder import UnitVocoder

ARCH = "code-hifigan"


def save(directory: str | os.PathLike, generator: CodeGenerator, duration: DurationPredictor | None,
         speaker_mean: torch.Tensor | None, meta: dict) -> Path:
    """Write the plain (weight-norm-free) generator's tensors, then ``config.json`` naming their sha256."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"generator.{k}": v.detach().cpu().float().contiguous() for k, v in generator.state_dict().items()}
    if duration is not None:
        tensors.update({f"duration.{k}": v.detach().cpu().float().contiguous() for k, v in duration.state_dict().items()})
    if speaker_mean is not None:
        tensors["speaker_mean"] = speaker_mean.detach().cpu().float().contiguous()
    blob = st_save(tensors, metadata={"format": "pt"})
    atomic_write_bytes(d / artifact.WEIGHTS_NAME, blob)
    config = {"type": artifact.VOCODER_TYPE, "format_version": artifact.FORMAT_VERSION, "arch": ARCH,
              "weights_sha256": hashlib.sha256(blob).hexdigest(), "backend": None,
              "code_hifigan": generator.config.to_dict(),
              "duration": None if duration is None else duration.config.to_dict(), **meta}
    atomic_write_text(d / artifact.CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return d


def build(config: dict, tensors: dict[str, torch.Tensor], device: str | torch.device = "cpu"):
    """``(generator, duration | None, speaker_mean | None)`` from a checked config and its tensors
    (raises KeyError/TypeError/ValueError/RuntimeError on a mismatch; ``artifact.load`` names the folder)."""
    gen = CodeGenerator(CodeHiFiGANConfig.from_dict(config["code_hifigan"]))
    gen.load_state_dict({k[10:]: v.float() for k, v in tensors.items() if k.startswith("generator.")})
    dur = None
    if config.get("duration"):
        dur = DurationPredictor(DurationConfig.from_dict(config["duration"]))
        dur.load_state_dict({k[9:]: v.float() for k, v in tensors.items() if k.startswith("duration.")})
        dur = dur.eval().to(device)
    return gen.eval().to(device), dur, tensors.get("speaker_mean")


class CodeHiFiGANVocoder(UnitVocoder):
    """Frame units (+ speaker) -> 16 kHz waveform through a trained :class:`CodeGenerator`.

    Speaker handling, unit checks and de-duplicated units (duration predictor) are the
    :class:`UnitVocoder`'s; only the synthesis differs. ``mel_to_wave`` is inherited: the
    universal HiFi-GAN's copy-synthesis stays available as the evaluation's topline.
    """

    @property
    def generator(self) -> CodeGenerator:
        return self.mel_model

    def units_to_mel(self, *args, **kwargs):
        raise artifact.VocoderError(f"{self.path}: a code-hifigan vocoder makes the waveform directly (no mel)")

    @torch.inference_mode()
    def units_to_wave(self, units: np.ndarray, speaker: torch.Tensor | None = None,
                      layers: Sequence[int] | None = None, frames: int | None = None) -> np.ndarray:
        """Float32 waveform of ``frames * hop`` samples for frame-level ``[T, L]`` units; with
        ``frames`` above ``T`` the last unit is held (to cover the tail of an input)."""
        u = torch.as_tensor(np.asarray(units), dtype=torch.long)
        u = u[:, None] if u.ndim == 1 else u
        if frames is not None and frames > len(u):
            u = torch.cat([u, u[-1:].expand(frames - len(u), -1)])
        g = self.generator
        keep = None if layers is None else g.layer_keep(1, list(layers), device=self.device)
        spk = None if speaker is None else speaker.float().to(self.device)[None]
        y = g(u[None].to(self.device), spk, keep)
        return np.clip(y[0, 0].float().cpu().numpy(), -1.0, 1.0)

    def synthesize(self, units: np.ndarray, *, dedup: bool = False, speaker_wave: np.ndarray | None = None,
                   layers: Sequence[int] | None = None, speed: float = 1.0) -> np.ndarray:
        """16 kHz speech for ``units`` (``dedup``: run lengths are predicted): ``hop`` samples a frame."""
        spk = self.speaker_embedding(speaker_wave)
        frames = self.frame_units(units, dedup=dedup, speaker=spk, speed=speed)
        return self.units_to_wave(frames, spk, layers)

    def resynthesize(self, wave: np.ndarray, tokenizer, *, speaker_wave: np.ndarray | None = None,
                     layers: Sequence[int] | None = None) -> np.ndarray:
        """Audio -> the tokenizer's frame units -> speech of the same length, time-aligned with the
        input (the output of unit ``i`` is placed where its window was centred)."""
        units = self.frame_units(self.select_layers(tokenizer.frame_units([wave])[0]))
        spk = self.speaker_embedding(wave if speaker_wave is None else speaker_wave)
        c = self.generator.config
        shift = c.shift
        frames = max(len(units), -(-(len(wave) - shift) // c.hop))  # cover every input sample
        out = self.units_to_wave(units, spk, layers, frames)
        out = out[-shift:] if shift < 0 else np.pad(out, (shift, 0))
        return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)]
