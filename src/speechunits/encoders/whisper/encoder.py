"""Whisper's audio encoder as a speechunits :class:`~speechunits.encoders.base.Encoder`.

Loads any Whisper (tiny ... large, English-only or multilingual) from a transformers directory or
hub-cache name (``openai/whisper-small``), an OpenAI ``.pt`` file, a CTranslate2 directory, or the
name ``whisper-tiny.en`` (see :mod:`~speechunits.encoders.whisper.registry`). Formats other than
transformers' are converted once into a transformers directory (config + safetensors), which is
what a tokenizer stores and what :meth:`WhisperEncoder.from_pretrained` reads back.

Two ways to encode (``mode``):

* ``"exact"`` (default): each utterance is encoded on its own frames only, the positional table
  sliced to its length. 50 frames a second, frame ``i`` centred on sample ``320 i`` (``ceil(n /
  320)`` frames for ``n`` samples, from ``n // 160`` mel frames). About 5x faster than padding to
  30 s on short utterances.
* ``"padded"``: what Whisper and transformers do, every input padded with zeros to 30 s and the
  features of its own frames kept; slower, for comparison.

Audio longer than ``max_seconds`` (at most 30 s, the positional table) runs in overlapping
windows aligned on frames (:mod:`speechunits.encoders.windows`), each encoded as its own input;
no frame is dropped or doubled. Batched and unbatched runs give the same features (see
:mod:`~speechunits.encoders.whisper.model`).

Layers: 0 = conv stem + positions, ``i`` = output of layer ``i``, ``num_layers`` (= ``-1``) = the
final layer norm. Warning: layer 0, layer 1 and the final layer norm of tiny.en mostly encode
*where* a frame is (the positional table); ``speechunits eval`` measures this (position leakage).

Example (a tiny random Whisper; the real one loads with ``load_encoder("whisper-tiny.en")``):
    >>> import numpy as np
    >>> from speechunits.encoders.whisper.model import WhisperDims, WhisperEncoderModel
    >>> enc = WhisperEncoder(WhisperEncoderModel(WhisperDims(d_model=32, layers=2, heads=2, ffn=64)))
    >>> enc.num_frames(16000), enc.encode([np.zeros(16000, np.float32)], layers=[2])[0].shape
    (50, torch.Size([50, 1, 32]))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from speechunits.encoders.base import Encoder, Wave, as_wave
from speechunits.encoders.hub import EncoderNotFoundError, file_sha256, hub_cache, snapshot_dir, state_dict_sha256
from speechunits.encoders.whisper.convert import (
    detect_format,
    encoder_state,
    is_converted,
    read_any,
    read_hf_dir,
    save_hf_dir,
)
from speechunits.encoders.whisper.melspec import HOP, log_mel, num_mel_frames
from speechunits.encoders.whisper.model import WhisperDims, WhisperEncoderModel, encoder_frames
from speechunits.encoders.whisper.registry import KNOWN, cache_root, resolve_named
from speechunits.encoders.windows import plan_windows

MODES = ("exact", "padded")
FRAME_HOP = 2 * HOP  # 320 samples: 50 frames a second
__all__ = ["MODES", "WhisperEncoder", "is_whisper"]


def is_whisper(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a Whisper checkpoint (a known name, a Whisper path, or ``*whisper*`` in the HF cache)."""
    s = os.fspath(spec)
    if s in KNOWN:
        return True
    p = Path(s).expanduser()
    if p.exists():
        return detect_format(p) is not None
    return "whisper" in s.lower() and snapshot_dir(s, None, None) is not None


@dataclass(frozen=True)
class _Segment:
    utt: int
    a: int  # samples [a, b) of the utterance
    b: int
    keep: tuple[int, int]  # frames kept, relative to the segment's first frame
    out: int  # where they go in the utterance's output


class WhisperEncoder(Encoder):
    """A Whisper audio encoder; build it with :meth:`from_pretrained` or from a :class:`WhisperEncoderModel`.

    Args:
        model: the encoder module.
        name: what it was loaded from (recorded in ``config()``).
        mode: ``"exact"`` (own frames only) or ``"padded"`` (to 30 s, as Whisper itself).
        max_seconds: longer audio runs in windows of this length (at most 30).
        overlap_seconds: overlap of consecutive windows.
        batch_size: inputs per forward pass (1 on CPU, where batching does not pay; 16 on GPU).
    """

    def __init__(
        self,
        model: WhisperEncoderModel,
        *,
        name: str = "<in-memory>",
        mode: str = "exact",
        device: str | torch.device = "cpu",
        max_seconds: float = 30.0,
        overlap_seconds: float = 4.0,
        batch_size: int | None = None,
        source_dir: str | os.PathLike | None = None,
        source_format: str = "in-memory",
        num_layers_original: int | None = None,
    ) -> None:
        from speechunits.encoders.hf import check_device

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.device = check_device(device)
        self.model = model.to(device=self.device, dtype=torch.float32).eval().requires_grad_(False)
        self.name = str(name)
        self.mode = mode
        self.frame_rate = self.sample_rate / FRAME_HOP
        self.num_layers = model.dims.layers + 1  # the final layer norm is the top "layer"
        self.dim = model.dims.d_model
        max_frames = model.dims.max_positions
        self.max_seconds = min(float(max_seconds), max_frames * FRAME_HOP / self.sample_rate)
        self.overlap_seconds = float(overlap_seconds)
        self._window_frames = int(self.max_seconds * self.frame_rate)
        self._context_frames = int(round(self.overlap_seconds * self.frame_rate / 2))
        if self._window_frames - 2 * self._context_frames < 1:
            raise ValueError(f"overlap_seconds={overlap_seconds} must be well below max_seconds={max_seconds}")
        self.batch_size = int(batch_size or (1 if self.device.type == "cpu" else 16))
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self.source_format = source_format
        self.num_layers_original = num_layers_original or model.dims.layers
        self._weights_sha256: dict | None = None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        *,
        cache_dir: str | os.PathLike | None = None,
        revision: str | None = None,
        **kwargs,
    ) -> "WhisperEncoder":
        """Load from a known name, a transformers directory or hub-cache name, an OpenAI ``.pt`` or a
        CTranslate2 directory (the last two converted once into the speechunits cache)."""
        kwargs.pop("normalize", None)  # Whisper has its own input normalisation (the log-mel)
        kwargs.pop("allow_download", None)  # nothing is downloaded for Whisper: local files only
        name = os.fspath(name_or_path)
        if name in KNOWN:
            source, fmt = resolve_named(name), "ctranslate2 (" + KNOWN[name].package + ")"
        else:
            local = Path(name).expanduser()
            if local.exists():
                fmt = detect_format(local)
                if fmt is None:
                    raise EncoderNotFoundError(f"{name}: not a Whisper checkpoint")
                source = local if fmt == "hf" else _converted(local, fmt)
            else:
                snap = snapshot_dir(name, revision, cache_dir)
                if snap is None:
                    raise EncoderNotFoundError(
                        f"{name!r}: not a known Whisper name ({', '.join(KNOWN)}), not a local path and not in "
                        f"the local Hugging Face cache ({cache_dir or hub_cache()})"
                    )
                source, fmt = snap, "hf"
        cfg, state = read_hf_dir(source)
        dims = WhisperDims.from_hf_config(cfg)
        model = WhisperEncoderModel(dims)
        enc_state = encoder_state(state)
        missing, unexpected = model.load_state_dict(enc_state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{source}: Whisper encoder tensors do not match its config "
                             f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
        origin = cfg.get("speechunits_source")
        if isinstance(origin, str):  # a copy stored by speechunits keeps the name it was loaded by
            name = origin
        return cls(model, name=name, device=device, source_dir=source, source_format=fmt,
                   num_layers_original=int(cfg.get("speechunits_layers_original", dims.layers)), **kwargs)

    def save_encoder_dir(self, directory: str | os.PathLike, layers: Sequence[int] | None = None,
                         dtype: torch.dtype = torch.float16) -> Path:
        """Write the encoder alone as a transformers directory, truncated to what ``layers`` need.

        A tokenizer that uses layer 3 stores layers 1-3 only (and the final norm only when asked for).
        """
        top = self.model.dims.layers if layers is None else max(self.resolve_layers(layers))
        keep = min(top, self.model.dims.layers)
        state = {f"model.encoder.{k}": v for k, v in self.model.state_dict().items()
                 if not k.startswith("layers.") or int(k.split(".")[1]) < keep}
        d = self.model.dims
        config = {
            "model_type": "whisper", "architectures": ["WhisperEncoder"], "num_mel_bins": d.n_mels,
            "d_model": d.d_model, "encoder_layers": keep, "encoder_attention_heads": d.heads,
            "encoder_ffn_dim": d.ffn, "max_source_positions": d.max_positions, "decoder_layers": 0,
            "activation_function": "gelu", "speechunits_layers_original": self.num_layers_original,
            "speechunits_source": str(self.name),
        }
        if top <= self.model.dims.layers:  # final norm not used: keep its tensors (the module needs them)
            config["speechunits_note"] = f"truncated to layers 0..{keep}; the final layer norm is not Whisper's output"
        return save_hf_dir(directory, config, state, dtype=dtype)

    # -- the interface ---------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """``ceil((n // 160) / 2)`` frames (0 for inputs of 200 samples or fewer)."""
        return encoder_frames(num_mel_frames(num_samples))

    def encode(self, waves: Sequence[Wave], layers: Sequence[int] = (-1,)) -> list[torch.Tensor]:
        idx = self.resolve_layers(layers)
        prepared = [as_wave(w, i) for i, w in enumerate(waves)]
        outputs = [torch.empty(self.num_frames(len(w)), len(idx), self.dim) for w in prepared]
        segments = [s for i, w in enumerate(prepared) for s in self._segments(i, len(w))]
        with torch.inference_mode():
            for batch in self._batches(segments):
                feats = self.forward_segments([prepared[s.utt][s.a : s.b] for s in batch], idx)
                for j, s in enumerate(batch):
                    k0, k1 = s.keep
                    for col, layer in enumerate(idx):
                        outputs[s.utt][s.out : s.out + k1 - k0, col] = feats[layer][j, k0:k1].float().cpu()
        return outputs

    def forward_segments(self, chunks: list[torch.Tensor], layers: Sequence[int],
                         position_offset: int = 0) -> dict[int, torch.Tensor]:
        """``{layer: [B, frames, dim]}`` for up-to-30-s waveforms (autograd-friendly; used by Spin)."""
        if self.mode == "padded":
            full = int(self.model.dims.max_positions * FRAME_HOP)
            chunks = [torch.nn.functional.pad(c, (0, full - len(c))) for c in chunks]
        mels = [log_mel(c.to(self.device), self.model.dims.n_mels) for c in chunks]
        lengths = torch.tensor([m.shape[1] for m in mels])
        mel = torch.zeros(len(mels), self.model.dims.n_mels, int(lengths.max()), device=self.device)
        for i, m in enumerate(mels):
            mel[i, :, : m.shape[1]] = m
        return self.model(mel, lengths, layers, position_offset=position_offset)

    def config(self) -> dict:
        return {
            "type": "whisper",
            "name": self.name,
            "model_type": "whisper",
            "source_format": self.source_format,
            "weights_sha256": self.weights_sha256(),
            "num_layers": self.num_layers,
            "encoder_layers_original": self.num_layers_original,
            "layers_available": list(range(self.num_layers + 1)),
            "layer_convention": f"0 = conv stem + sinusoidal positions, i = output of layer i, "
                                f"{self.num_layers} = final layer norm" + (
                                    "" if self.num_layers_original == self.model.dims.layers else
                                    f" (a copy truncated to {self.model.dims.layers} of {self.num_layers_original} "
                                    f"layers: its final norm is not Whisper's output)"),
            "dim": self.dim,
            "n_mels": self.model.dims.n_mels,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            # Frame i is centred on sample 320 i (centred STFT, stride-2 conv): a zero-width "window"
            # puts frame centres where the alignment metrics must look for them.
            "window_samples": 0,
            "hop_samples": FRAME_HOP,
            "mode": self.mode,
            "max_seconds": self.max_seconds,
            "overlap_seconds": self.overlap_seconds,
            "dtype": "float32",
        }

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of the safetensors files it was loaded from (or of its state dict in memory)."""
        if self._weights_sha256 is None:
            files = sorted(self.source_dir.glob("*.safetensors")) if self.source_dir is not None else []
            self._weights_sha256 = ({p.name: file_sha256(p) for p in files} if files
                                    else {"state_dict": state_dict_sha256(self.model)})
        return self._weights_sha256

    # -- internals -------------------------------------------------------------------------
    def _segments(self, utt: int, n: int) -> list[_Segment]:
        total = self.num_frames(n)
        plan = plan_windows(total, self._window_frames, self._context_frames)
        out = []
        for w in plan:
            a, b = w.start * FRAME_HOP, min(n, w.stop * FRAME_HOP)
            out.append(_Segment(utt, a, b, (w.keep_start - w.start, w.keep_stop - w.start), w.keep_start))
        return out

    def _batches(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """Length-sorted batches (padding is exact here, sorting only saves compute)."""
        ordered = sorted(segments, key=lambda s: (s.b - s.a, s.utt, s.a))
        return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]


def _converted(path: Path, fmt: str) -> Path:
    """A transformers directory for an OpenAI or CTranslate2 checkpoint, converted once and cached."""
    digest = file_sha256(path if path.is_file() else path / "model.bin")
    target = cache_root() / "whisper" / f"{fmt}-{digest[:16]}"
    if is_converted(target):
        return target
    _, cfg, state = read_any(path)
    cfg["speechunits_source"] = {"path": str(path), "format": fmt, "sha256": digest}
    return save_hf_dir(target, cfg, state, dtype=torch.float32)  # as read: the test compares weights exactly
