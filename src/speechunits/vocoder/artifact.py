"""A trained unit vocoder as a directory: ``config.json`` + ``model.safetensors``, hashes checked.

``config.json`` holds the unit-to-mel and duration settings, the sha256 of ``model.safetensors``
(checked before the tensors are read), the back end (the pinned universal HiFi-GAN) and the
*tokenizer fingerprint*: a hash of the encoder weights, layers, k and codebooks the vocoder was
trained on. Units from another tokenizer would be spoken as noise, so loading with a tokenizer
whose fingerprint differs is refused. No pickle anywhere; the folder is untrusted input.
A unit HiFi-GAN (``"arch": "code-hifigan"``, :func:`save_code_hifigan`) has its generator in
place of the unit-to-mel model and no back end.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from speechunits.data.artifact_config import read_hashed_bytes, read_typed_config
from speechunits.data.atomic import atomic_write_bytes, atomic_write_text

from .code_hifigan import CodeGenerator, CodeHiFiGANConfig
from .duration import DurationConfig, DurationPredictor
from .hifigan import UNIVERSAL
from .unit_mel import UnitMelConfig, UnitToMel

VOCODER_TYPE = "speechunits-unit-vocoder"
FORMAT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
ARCHS = ("unit-mel", "code-hifigan")  # units -> mel -> universal HiFi-GAN; units -> waveform (a unit HiFi-GAN)
BACKEND = {"name": "hifigan-universal-v1", **{k: UNIVERSAL[k] for k in ("package", "file", "sha256")},
           "sampling_rate": 22050, "hop_size": 256}


class VocoderError(ValueError):
    """A vocoder folder that cannot be used: ``"<file>: <reason>"``."""


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides a tokenizer's units: encoder weights and name, layers, k, codebooks."""
    enc = tokenizer.encoder.config()
    h = hashlib.sha256(json.dumps({"encoder": enc.get("name"), "weights": enc.get("weights_sha256"),
                                   "kind": enc.get("kind"), "layers": list(tokenizer.layers),
                                   "k": tokenizer.config().get("k")}, sort_keys=True).encode())
    q = tokenizer.quantizer
    if hasattr(q, "quantizers"):  # k-means per layer: the centroids
        for layer in tokenizer.layers:
            h.update(q.quantizers[layer].centroids.detach().cpu().float().numpy().tobytes())
    else:  # Spin / DC-Spin and any other quantizer: every tensor it holds, by name
        tensors = {k: v for k, v in vars(q).items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise ValueError(f"cannot fingerprint a {type(q).__name__} quantizer (it holds no tensors)")
        for name in sorted(tensors):
            h.update(name.encode())
            h.update(tensors[name].detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


def unit_framing(tokenizer) -> tuple[float, float]:
    """(frame rate, centre of frame 0 in seconds) of a tokenizer's units."""
    enc = tokenizer.encoder.config()
    rate = float(tokenizer.encoder.frame_rate)
    window = float(enc.get("window_samples") or 0)
    return rate, window / 2 / float(enc.get("sample_rate", 16000))


def save(directory: str | os.PathLike, mel_model: UnitToMel, duration: DurationPredictor | None,
         speaker_mean: torch.Tensor | None, meta: dict, dtype: torch.dtype = torch.float16) -> Path:
    """Write the tensors (in ``dtype``) then ``config.json`` naming their sha256."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"mel.{k}": v.detach().cpu().to(dtype).contiguous() for k, v in mel_model.state_dict().items()}
    if duration is not None:
        tensors.update({f"duration.{k}": v.detach().cpu().to(dtype).contiguous()
                        for k, v in duration.state_dict().items()})
    if speaker_mean is not None:
        tensors["speaker_mean"] = speaker_mean.detach().cpu().float().contiguous()
    blob = st_save(tensors, metadata={"format": "pt"})
    atomic_write_bytes(d / WEIGHTS_NAME, blob)
    config = {"type": VOCODER_TYPE, "format_version": FORMAT_VERSION,
              "weights_sha256": hashlib.sha256(blob).hexdigest(), "backend": BACKEND,
              "unit_mel": mel_model.config.to_dict(),
              "duration": None if duration is None else duration.config.to_dict(), **meta}
    atomic_write_text(d / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return d


def load(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(config, UnitToMel, DurationPredictor | None, speaker_mean | None)`` from a vocoder folder
    (for ``"arch": "code-hifigan"`` a :class:`~.code_hifigan.CodeGenerator` in place of the UnitToMel)."""
    d = Path(directory)
    cfg_file, st_file = d / CONFIG_NAME, d / WEIGHTS_NAME
    config = read_typed_config(d, CONFIG_NAME, VOCODER_TYPE, FORMAT_VERSION, VocoderError, "unit vocoder")
    arch = config.get("arch", "unit-mel")  # code-hifigan: see code_hifigan.py
    if arch not in ARCHS:
        raise VocoderError(f"{cfg_file}: unknown vocoder arch {arch!r} (known: {', '.join(ARCHS)})")
    if arch == "unit-mel" and (config.get("backend") or {}).get("sha256") != UNIVERSAL["sha256"]:
        raise VocoderError(f"{cfg_file}: trained for another HiFi-GAN back end than the pinned universal one")
    blob = read_hashed_bytes(st_file, config.get("weights_sha256"), VocoderError)
    try:
        tensors = st_load(blob)
        if arch == "code-hifigan":
            mel = CodeGenerator(CodeHiFiGANConfig.from_dict(config["code_hifigan"]))
            mel.load_state_dict({k[10:]: v.float() for k, v in tensors.items() if k.startswith("generator.")})
        else:
            mel = UnitToMel(UnitMelConfig.from_dict(config["unit_mel"]))
            mel.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("mel.")})
        dur = None
        if config.get("duration"):
            dur = DurationPredictor(DurationConfig.from_dict(config["duration"]))
            dur.load_state_dict({k[9:]: v.float() for k, v in tensors.items() if k.startswith("duration.")})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise VocoderError(f"{d}: config and weights do not make a vocoder ({str(e).splitlines()[0]})") from None
    spk = tensors.get("speaker_mean")
    return config, mel.eval().to(device), None if dur is None else dur.eval().to(device), spk


# -- code-hifigan (``"arch": "code-hifigan"``): the generator is the waveform model ------------------
def save_code_hifigan(directory: str | os.PathLike, generator: CodeGenerator, duration: DurationPredictor | None,
                      speaker_mean: torch.Tensor | None, meta: dict) -> Path:
    """A unit HiFi-GAN folder: ``generator.*`` (weight norm folded, float32), ``duration.*``,
    ``speaker_mean``; ``config.json`` with ``"arch": "code-hifigan"``, no back end, the generator's
    settings under ``"code_hifigan"`` and the weights' sha256. ``load`` reads it back."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"generator.{k}": v.detach().cpu().float().contiguous() for k, v in generator.state_dict().items()}
    if duration is not None:
        tensors.update({f"duration.{k}": v.detach().cpu().float().contiguous()
                        for k, v in duration.state_dict().items()})
    if speaker_mean is not None:
        tensors["speaker_mean"] = speaker_mean.detach().cpu().float().contiguous()
    blob = st_save(tensors, metadata={"format": "pt"})
    atomic_write_bytes(d / WEIGHTS_NAME, blob)
    config = {"type": VOCODER_TYPE, "format_version": FORMAT_VERSION, "arch": "code-hifigan",
              "weights_sha256": hashlib.sha256(blob).hexdigest(), "backend": None,
              "code_hifigan": generator.config.to_dict(),
              "duration": None if duration is None else duration.config.to_dict(), **meta}
    atomic_write_text(d / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return d
