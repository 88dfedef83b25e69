"""Rebuilding a tokenizer's parts from its checked ``config.json``: the quantizer and the encoder.

The config has already been checked field by field and file by file
(:mod:`speechunits.tokenizer_config`); this module turns it into objects and checks that what
it built is what the config describes (dimensions, frame geometry, weights' hashes).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from speechunits.encoders import Encoder, HFEncoder, SpectralEncoder
from speechunits.quantizers import MultiLayerKMeans
from speechunits.tokenizer_config import CONFIG_FILE, TokenizerError, UnhashedFilesWarning, encoder_reference

# Encoder config fields that must agree between the config and the encoder actually built.
_GEOMETRY = ("dim", "sample_rate", "window_samples", "hop_samples")


def quantizer_from_state(config: dict, tensors: dict, *, source: object, device: str | torch.device = "cpu") -> Any:
    """The quantizer a tokenizer recorded, by its config's ``type``."""
    kind = config.get("type")
    if kind == "multilayer_kmeans":
        return MultiLayerKMeans.from_state(config, tensors, source=source, device=device)
    if kind == "spin":
        from speechunits.quantizers.spin import SpinQuantizer

        return SpinQuantizer.from_state(config, tensors, source=source, device=device)
    raise TokenizerError(f"{source}: unknown quantizer type {kind!r}")


def encoder_from_config(
    cfg: dict,
    directory: Path,
    *,
    device: str | torch.device = "cpu",
    verify: bool = True,
    encoder: str | os.PathLike | Encoder | None = None,
    allow_unhashed: bool = False,
) -> Encoder:
    """The encoder a tokenizer recorded: spectral from its recipe, HF from files + hash check.

    ``encoder`` (a model directory or an :class:`Encoder`) replaces the one the config names; an
    HF encoder named by a path in the config is only used that way.
    """
    ecfg, cfg_path = cfg["encoder"], directory / CONFIG_FILE
    kind, where = encoder_reference(directory, cfg)
    if encoder is not None:
        enc = encoder if isinstance(encoder, Encoder) else _model(os.fspath(encoder), ecfg, device, cfg_path)
    elif kind == "spectral":
        enc = _spectral(ecfg, cfg_path, device)
    elif kind == "path":
        raise TokenizerError(
            f"{cfg_path}: field 'encoder.name' is {ecfg['name']!r}, a path on the machine that fitted this "
            "tokenizer; a tokenizer may only name a Hugging Face hub model or store its encoder. If you trust "
            "that encoder, pass it explicitly: Tokenizer.from_pretrained(..., encoder=PATH) (CLI: --encoder PATH)"
        )
    else:
        enc = _model(os.fspath(where), ecfg, device, cfg_path, stored=kind == "stored", hub_only=kind == "hub")
    built = enc.config()
    if built.get("type") != ecfg["type"]:
        raise TokenizerError(f"{cfg_path}: field 'encoder.type' is {ecfg['type']!r} but the encoder given is "
                             f"{built.get('type')!r}")
    for key in _GEOMETRY:
        if key in ecfg and built.get(key) != ecfg[key]:
            raise TokenizerError(f"{cfg_path}: field 'encoder.{key}' is {ecfg[key]!r} but the encoder "
                                 f"{enc.name} has {built.get(key)!r}; units would not be reproducible")
    if ecfg["type"] in ("hf", "whisper") and verify:
        _check_weights(enc, ecfg, cfg_path, stored=kind == "stored" and encoder is None, allow_unhashed=allow_unhashed)
    return enc


def _spectral(ecfg: dict, cfg_path: Path, device: str | torch.device) -> Encoder:
    params = {k: ecfg[k] for k in ("sample_rate", "frame_rate", "n_mels", "delta_order", "preemphasis", "cmvn") if k in ecfg}
    if ecfg["name"] == "mfcc":
        params.update({k: ecfg[k] for k in ("n_ceps", "cepstral_lifter") if ecfg.get(k) is not None})
    lo, _ = ecfg.get("mel_range_hz", [20.0, 0.0])
    params["low_freq"] = lo
    params["window_ms"] = 1000.0 * ecfg["window_samples"] / ecfg["sample_rate"]
    try:
        enc = SpectralEncoder(ecfg["name"], device=device, **params)
    except (TypeError, ValueError) as e:
        raise TokenizerError(f"{cfg_path}: the spectral encoder it describes cannot be built ({e})") from None
    mismatch = {k for k in ("dim", "hop_samples", "window_samples", "n_fft") if enc.config().get(k) != ecfg.get(k)}
    if mismatch:
        raise TokenizerError(f"{cfg_path}: spectral encoder rebuilt differently ({sorted(mismatch)})")
    return enc


def _model(name: str, ecfg: dict, device: str | torch.device, cfg_path: Path, *, stored: bool = False,
           hub_only: bool = False) -> Encoder:
    """An encoder with weights (HF SSL or Whisper, by the config's type) from a folder or name."""
    if ecfg["type"] == "whisper":
        return _whisper(name, ecfg, device, cfg_path, stored=stored)
    return _hf(name, ecfg, device, cfg_path, stored=stored, hub_only=hub_only)


def _whisper(name: str, ecfg: dict, device: str | torch.device, cfg_path: Path, *, stored: bool) -> Encoder:
    from speechunits.encoders.whisper import WhisperEncoder, WhisperFormatError

    try:  # config.json + safetensors, read as data: no model code is ever imported or run
        return WhisperEncoder.from_pretrained(name, device=device, mode=ecfg.get("mode", "exact"),
                                              max_seconds=ecfg.get("max_seconds", 30.0),
                                              overlap_seconds=ecfg.get("overlap_seconds", 4.0))
    except (WhisperFormatError, ValueError, OSError) as e:
        what = "the stored Whisper encoder" if stored else "the Whisper encoder"
        raise TokenizerError(f"{cfg_path}: {what} {name} cannot be used: {e}") from None


def _hf(name: str, ecfg: dict, device: str | torch.device, cfg_path: Path, *, stored: bool = False,
        hub_only: bool = False) -> HFEncoder:
    try:
        return HFEncoder.from_pretrained(
            name, device=device, revision=ecfg.get("revision") if hub_only else None, hub_only=hub_only,
            normalize=ecfg.get("normalize"), max_seconds=ecfg.get("max_seconds", 30.0),
            overlap_seconds=ecfg.get("overlap_seconds", 4.0),
        )
    except ValueError as e:  # refused model code (security.UntrustedCodeError), unsupported model type...
        what = "the stored encoder" if stored else "the encoder"
        raise TokenizerError(f"{cfg_path}: {what} {name} cannot be used: {e}") from None


def _check_weights(enc: Encoder, ecfg: dict, cfg_path: Path, *, stored: bool, allow_unhashed: bool) -> None:
    expected = ecfg.get("weights_sha256")
    if not expected:
        if stored:  # a stored encoder's files are covered by config.json's 'files' hashes
            return
        message = f"{cfg_path}: field 'encoder.weights_sha256' is missing; the encoder's weights cannot be checked"
        if not allow_unhashed:
            raise TokenizerError(message + " (allow_unhashed=True / --allow-unhashed loads it anyway)")
        warnings.warn(message + "; loading it unverified as asked (allow_unhashed)", UnhashedFilesWarning, stacklevel=4)
        return
    weights = getattr(enc, "weights_sha256", None)
    if weights is None or weights() != expected:
        raise TokenizerError(
            f"{enc.name}: encoder weights differ from those the tokenizer at {cfg_path.parent} was fitted with "
            "(sha256 mismatch); units would not be reproducible"
        )
