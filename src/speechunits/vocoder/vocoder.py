"""``UnitVocoder``: units (frame-level or de-duplicated, one layer or several) -> 16 kHz speech.

units --(duration predictor, for de-duplicated units)--> frame units --(UnitToMel, + speaker
d-vector)--> 80-bin log-mel --(universal HiFi-GAN V1, 22.05 kHz)--> resampled to 16 kHz.

The speaker is a Resemblyzer d-vector: of the input audio when resynthesizing (same voice), of a
reference recording to speak in another voice, or the mean training speaker when neither is given.

Example (a trained vocoder folder ``V`` and its tokenizer ``T``)::

    voc = UnitVocoder.from_pretrained("V", tokenizer=tok)   # refuses units of another tokenizer
    wave16k = voc.resynthesize(audio, tok)                  # same voice
    wave16k = voc.synthesize(units, speaker_wave=ref)       # another voice
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import artifact
from .backend import get_backend
from .duration import expand, runs
from .mel import num_frames, to_16k


class UnitVocoder:
    """A unit-to-mel model (+ duration predictor) in front of the universal HiFi-GAN."""

    def __init__(self, config: dict, mel_model, duration=None, speaker_mean: torch.Tensor | None = None,
                 device: str | torch.device = "cpu", path: Path | None = None) -> None:
        self.config, self.mel_model, self.duration = config, mel_model, duration
        self.speaker_mean = speaker_mean
        self.device = torch.device(device)
        self.path = path
        self._speaker_encoder = None
        self.backend: str | None = None  # HiFi-GAN runner (backend.KINDS); None: $SPEECHUNITS_VOCODER_BACKEND or auto

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, tokenizer=None, device: str | torch.device = "cpu") -> "UnitVocoder":
        """Load a vocoder folder; with ``tokenizer``, refuse one trained on other units."""
        config, mel, dur, spk = artifact.load(path, device)
        if config.get("arch") == "code-hifigan" and cls is UnitVocoder:  # units -> waveform, no mel
            cls = CodeHiFiGANVocoder
        voc = cls(config, mel, dur, spk, device, Path(path))
        if tokenizer is not None:
            voc.check_tokenizer(tokenizer)
        return voc

    def check_tokenizer(self, tokenizer) -> None:
        want = self.config.get("tokenizer", {}).get("fingerprint")
        got = artifact.tokenizer_fingerprint(tokenizer)
        if want != got:
            raise artifact.VocoderError(
                f"{self.path}: trained for the tokenizer {self.config.get('tokenizer', {}).get('source')!r} "
                f"(fingerprint {str(want)[:12]}...), not for this one ({got[:12]}...); train a vocoder for it "
                "with `speechunits vocoder train`")

    @property
    def num_layers(self) -> int:
        return self.mel_model.num_layers

    @property
    def sample_rate(self) -> int:
        return 16000

    # -- speaker ---------------------------------------------------------------------------
    def speaker_embedding(self, wave: np.ndarray | None) -> torch.Tensor | None:
        """The d-vector of ``wave`` (16 kHz), or the mean training speaker when ``wave`` is None."""
        if not self.mel_model.config.speaker_dim:
            return None
        if wave is None:
            if self.speaker_mean is None:
                raise artifact.VocoderError(f"{self.path}: no mean speaker stored; give a reference recording")
            return self.speaker_mean.float()
        if self._speaker_encoder is None:
            from speechunits.encoders.speaker import SpeakerEncoder

            self._speaker_encoder = SpeakerEncoder.from_installed(self.device)
        return torch.from_numpy(np.asarray(self._speaker_encoder.embed(wave), dtype=np.float32))

    # -- synthesis -------------------------------------------------------------------------
    def select_layers(self, units: np.ndarray) -> np.ndarray:
        """The columns this vocoder speaks, from units with all of the tokenizer's layers."""
        u = np.asarray(units)
        tok = self.config.get("tokenizer", {})
        cols, n_tok = tok.get("unit_layers"), len(tok.get("layers") or [])
        if u.ndim == 2 and cols is not None and u.shape[1] == n_tok and n_tok != self.num_layers:
            return u[:, cols]
        if u.ndim == 1 and cols is not None and n_tok > 1:
            raise ValueError(f"one layer of units given; this vocoder was trained on the tokenizer's layers {cols}")
        return u

    def frame_units(self, units: np.ndarray, dedup: bool = False, speaker: torch.Tensor | None = None,
                    speed: float = 1.0) -> np.ndarray:
        """Frame-level ``[T, L]`` units; de-duplicated input is expanded by the duration predictor."""
        u = self.select_layers(units)
        if u.ndim == 1:
            u = u[:, None]
        if u.ndim != 2 or u.shape[1] != self.num_layers:
            raise ValueError(f"units of shape {list(np.shape(units))} do not fit a {self.num_layers}-layer vocoder")
        if len(u) == 0:
            raise ValueError("no units to speak")
        sizes = self.mel_model.config.codebook_sizes
        for i, k in enumerate(sizes):
            if u[:, i].min() < 0 or u[:, i].max() >= k:
                raise ValueError(f"unit ids of layer {i} must be in 0..{k - 1}, got {int(u[:, i].min())}..{int(u[:, i].max())}")
        if not dedup:
            return u
        if self.duration is None:
            raise artifact.VocoderError(f"{self.path}: has no duration predictor, so de-duplicated units cannot be spoken")
        if self.num_layers != 1:
            raise ValueError("durations are predicted for single-layer units only")
        base, _ = runs(u[:, 0])  # a de-duplicated file may still hold repeats after BPE expansion
        d = self.duration.predict(base, None if speaker is None else speaker.numpy(), speed)
        return expand(base, d)[:, None]

    @torch.inference_mode()
    def units_to_mel(self, units: np.ndarray, speaker: torch.Tensor | None = None,
                     layers: Sequence[int] | None = None, mel_frames: int | None = None) -> torch.Tensor:
        """``[80, M]`` log-mel for frame-level ``[T, L]`` units."""
        u = torch.as_tensor(np.asarray(units), dtype=torch.long, device=self.device)
        u = u[:, None] if u.ndim == 1 else u
        M = mel_frames or self.mel_model.mel_frames_for(len(u))
        spk = None if speaker is None else speaker.to(self.device)[None]
        mel = self.mel_model(u[None], torch.tensor([len(u)], device=self.device), torch.tensor([M], device=self.device),
                             spk, layers=None if layers is None else list(layers))
        return mel[0]

    def mel_to_wave(self, mel: torch.Tensor) -> np.ndarray:
        """16 kHz float32 speech from ``[80, M]`` log-mel through the universal HiFi-GAN."""
        # resampling can overshoot the generator's tanh range by a hair: keep full scale 1
        return np.clip(to_16k(get_backend(self.device, self.backend)(mel)[0]), -1.0, 1.0)

    def synthesize(self, units: np.ndarray, *, dedup: bool = False, speaker_wave: np.ndarray | None = None,
                   layers: Sequence[int] | None = None, speed: float = 1.0) -> np.ndarray:
        """16 kHz speech for ``units`` (``dedup``: run lengths are predicted), in the voice of
        ``speaker_wave`` (or the mean training voice)."""
        spk = self.speaker_embedding(speaker_wave)
        frames = self.frame_units(units, dedup=dedup, speaker=spk, speed=speed)
        c = self.mel_model.config
        samples = int(round(len(frames) / c.unit_rate * self.sample_rate))  # what the units span
        mel = self.units_to_mel(frames, spk, layers, mel_frames=int(np.ceil(len(frames) / c.unit_rate * c.mel_rate)) + 1)
        return self.mel_to_wave(mel)[:samples]

    def resynthesize(self, wave: np.ndarray, tokenizer, *, speaker_wave: np.ndarray | None = None,
                     layers: Sequence[int] | None = None) -> np.ndarray:
        """Audio -> the tokenizer's frame units -> speech of the same length, in the voice of
        ``wave`` itself unless ``speaker_wave`` is given."""
        units = self.select_layers(tokenizer.frame_units([wave])[0])
        spk = self.speaker_embedding(wave if speaker_wave is None else speaker_wave)
        # one mel frame more than the input's own mels, so the output covers every input sample
        mel = self.units_to_mel(units, spk, layers, mel_frames=num_frames(len(wave)) + 1)
        out = self.mel_to_wave(mel)
        return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)]


# -- code-hifigan: a unit HiFi-GAN folder (see code_hifigan.py, docs/code_hifigan.md) -------------------
class CodeHiFiGANVocoder(UnitVocoder):
    """Frame units (+ speaker) -> 16 kHz waveform through a trained unit HiFi-GAN
    (:class:`~speechunits.vocoder.code_hifigan.CodeGenerator`; ``vocoder train --arch code-hifigan``).

    Speaker handling, unit checks and de-duplicated units (duration predictor) are the
    :class:`UnitVocoder`'s; only the synthesis differs. ``mel_to_wave`` is inherited: the
    universal HiFi-GAN's copy-synthesis stays available as the evaluation's topline.
    """

    @property
    def generator(self):
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
