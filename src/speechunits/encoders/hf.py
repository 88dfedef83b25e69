"""Self-supervised speech encoders from Hugging Face transformers, at any layer(s).

HuBERT, WavLM, wav2vec 2.0 (and XLS-R, which is a wav2vec 2.0 model) and data2vec-audio load
through ``AutoModel.from_pretrained`` from a local directory or the local Hugging Face cache;
nothing is downloaded unless ``allow_download=True``.

What this module gets right, and why:

* **Layers.** Layer 0 is the input of the first transformer layer (CNN + positional conv; for
  post-LN "Base" models after the encoder LayerNorm), layer ``i`` the output of transformer layer
  ``i``, taken with hooks on the layers themselves. For pre-LN ("Large", XLS-R) models the top
  layer is the raw output of the last layer, *without* the encoder's final LayerNorm, as
  fairseq's ``output_layer`` and transformers 5's ``hidden_states[-1]``. The forward stops right
  after the highest requested layer (layer 6 of 12 costs about 60% of the full model).
* **Normalisation.** The model's own input normalisation: ``do_normalize`` from
  ``preprocessor_config.json`` when present (else on for layer-norm feature extractors, the
  fairseq convention, off for group-norm ones), zero mean and unit variance over the real
  samples of each utterance, exactly as ``Wav2Vec2FeatureExtractor`` computes it.
* **Padding.** A group-norm CNN (``feat_extract_norm="group"``, the Base models) normalises each
  channel over the whole input, padding included, and data2vec-audio's stacked positional convs
  let padding leak into the last frames; for those, batches only group inputs of exactly equal
  length (so with ``batch_size=1``, the CPU default, every utterance runs alone). Layer-norm
  wav2vec 2.0 / HuBERT / WavLM models are padded and masked with ``attention_mask``. Either way
  batched and unbatched runs agree to float tolerance.
* **Long audio.** Inputs over ``max_seconds`` run in equal, hop-aligned, overlapping windows
  (:mod:`speechunits.encoders.windows`) so memory stays bounded; the frame count stays exact.

Example (a real checkpoint loads with ``HFEncoder.from_pretrained("facebook/hubert-base-ls960")``
once it is in the local cache; here a tiny random HuBERT with the real 50 Hz CNN):
    >>> import numpy as np
    >>> from transformers import HubertConfig, HubertModel
    >>> cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    ...                    conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    >>> enc = HFEncoder(HubertModel(cfg))
    >>> enc.encode([np.zeros(16000, np.float32)], layers=[0, -1])[0].shape
    torch.Size([49, 2, 32])
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from speechunits.encoders.base import (
    Encoder,
    Wave,
    as_wave,
    conv_num_frames,
    receptive_field,
)
from speechunits.encoders.hub import (
    EncoderNotFoundError,
    file_sha256,
    hub_cache,
    read_preprocessor,
    snapshot_dir,
    state_dict_sha256,
)
from speechunits.encoders.layers import run_to_layers
from speechunits.encoders.windows import plan_windows
from speechunits.security import safe_from_pretrained

SUPPORTED_TYPES = ("hubert", "wav2vec2", "wavlm", "data2vec-audio", "logmel-hubert")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
__all__ = ["EncoderNotFoundError", "HFEncoder", "SUPPORTED_TYPES"]


@dataclass(frozen=True)
class _Segment:
    utt: int  # index of the utterance
    a: int  # samples [a, b) of the (normalised) utterance
    b: int
    keep: tuple[int, int]  # frames kept, relative to the segment's first frame
    out: int  # where the kept frames go in the utterance's output


class HFEncoder(Encoder):
    """A transformers SSL model as an :class:`Encoder`; build it with :meth:`from_pretrained`.

    Args:
        model: a loaded ``HubertModel`` / ``Wav2Vec2Model`` / ``WavLMModel`` / ``Data2VecAudioModel``.
        name: its hub name or directory (recorded in ``config()``).
        normalize: zero-mean unit-variance input normalisation (see the module docstring).
        max_seconds: longer inputs run in windows of this length.
        overlap_seconds: overlap of consecutive windows; each kept frame has at least half of it
            as context on both sides.
        batch_size: inputs per forward pass; default 1 on CPU (batching is slower there), 16 on GPU.
        max_batch_seconds: bound on padded audio per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str = "<in-memory>",
        normalize: bool | None = None,
        normalize_source: str = "argument",
        sample_rate: int = 16000,
        device: str | torch.device = "cpu",
        max_seconds: float = 30.0,
        overlap_seconds: float = 4.0,
        batch_size: int | None = None,
        max_batch_seconds: float = 320.0,
        source_dir: str | os.PathLike | None = None,
        revision: str | None = None,
    ) -> None:
        cfg = model.config
        if cfg.model_type not in SUPPORTED_TYPES or not hasattr(getattr(model, "encoder", None), "layers"):
            raise ValueError(
                f"{name}: model type {cfg.model_type!r} ({type(model).__name__}) is not a supported speech "
                f"encoder; supported: {', '.join(SUPPORTED_TYPES)} (base models, e.g. via AutoModel)"
            )
        self.device = check_device(device)
        self.model = model.to(device=self.device, dtype=torch.float32).eval().requires_grad_(False)
        self.name = str(name)
        self.sample_rate = int(sample_rate)
        self.num_layers = len(model.encoder.layers)
        self.dim = int(cfg.hidden_size)
        self._kernels, self._strides = tuple(cfg.conv_kernel), tuple(cfg.conv_stride)
        self.window, self.hop = receptive_field(self._kernels, self._strides)
        self.frame_rate = self.sample_rate / self.hop
        self.feat_extract_norm = getattr(cfg, "feat_extract_norm", "layer")  # data2vec-audio: always layer
        if normalize is None:
            normalize, normalize_source = self.feat_extract_norm == "layer", "default (layer-norm CNN)"
        self.normalize = bool(normalize)
        self.normalize_source = normalize_source
        self.pad_safe = self.feat_extract_norm == "layer" and cfg.model_type != "data2vec-audio"
        self.max_seconds, self.overlap_seconds = float(max_seconds), float(overlap_seconds)
        self._window_frames = self.num_frames(int(round(self.max_seconds * self.sample_rate)))
        self._context_frames = int(round(self.overlap_seconds * self.frame_rate / 2))
        if self._window_frames - 2 * self._context_frames < 1:
            raise ValueError(f"overlap_seconds={overlap_seconds} must be well below max_seconds={max_seconds}")
        self.batch_size = int(batch_size or (1 if self.device.type == "cpu" else 16))
        self.max_batch_samples = int(max_batch_seconds * self.sample_rate)
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self.revision = revision or getattr(cfg, "_commit_hash", None)
        self._weights_sha256: dict | None = None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        *,
        revision: str | None = None,
        allow_download: bool = False,
        cache_dir: str | os.PathLike | None = None,
        normalize: bool | None = None,
        hub_only: bool = False,
        **kwargs,
    ) -> "HFEncoder":
        """Load a base SSL model from a directory or hub name (local cache only by default).

        A hub name is resolved to its snapshot directory in the cache (``cache_dir``, default the
        standard HF cache) *before* transformers sees it, so an offline load makes no network
        request at all (transformers 5 still probes the Hub for adapters given a hub name).
        ``normalize=None`` follows the checkpoint's ``preprocessor_config.json``. ``hub_only``: the
        name is a hub model id, never a local folder (a tokenizer config naming its encoder must not
        reach into the current directory). A folder whose config asks to run its own Python code
        (``auto_map``) is refused (:func:`speechunits.security.safe_from_pretrained`). Other keyword
        arguments go to the constructor (``max_seconds``, ``overlap_seconds``, ``batch_size``...).
        """
        try:
            import transformers
            from transformers import AutoModel
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("Hugging Face encoders need transformers: pip install 'speechunits[hf]'") from e
        from speechunits.encoders.logmel_hubert import register_auto_classes

        register_auto_classes()  # our own encoders' model type ("logmel-hubert")
        check_device(device)
        name = os.fspath(name_or_path)
        local = Path(name).expanduser()
        is_local = local.is_dir() and not hub_only
        if is_local:
            source_dir: Path | None = local
        elif not hub_only and (local.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1):
            raise FileNotFoundError(f"{name}: no such model directory")
        else:
            source_dir = snapshot_dir(name, revision, cache_dir)
            if source_dir is None and not allow_download:
                raise EncoderNotFoundError(
                    f"{name!r} is not a local directory and is not in the local Hugging Face cache "
                    f"({cache_dir or hub_cache()}); download it once with allow_download=True "
                    "(CLI: --allow-download), or pass the path of a downloaded checkpoint directory"
                )
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # one bar per load is noise in batch logs
        try:
            if source_dir is not None:
                model = safe_from_pretrained(AutoModel, source_dir, local_files_only=True)
            else:
                model = safe_from_pretrained(AutoModel, name, revision=revision, cache_dir=cache_dir)
                source_dir = snapshot_dir(name, revision, cache_dir)
        except OSError as e:
            if source_dir is not None:
                raise OSError(f"{name}: not a loadable Hugging Face model directory ({source_dir}): {e}") from e
            raise EncoderNotFoundError(f"{name}: could not be downloaded from the Hugging Face Hub: {e}") from e
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        pre = read_preprocessor(source_dir, name, revision, cache_dir, fetch=allow_download and not is_local)
        source = "argument"
        if normalize is None and pre is not None and "do_normalize" in pre:
            normalize, source = bool(pre["do_normalize"]), "preprocessor_config.json"
        in_cache = source_dir is not None and source_dir.parent.name == "snapshots"
        rev = getattr(model.config, "_commit_hash", None) or (source_dir.name if in_cache else None)
        return cls(
            model,
            name=name,
            normalize=normalize,
            normalize_source=source,
            sample_rate=int((pre or {}).get("sampling_rate", 16000)),
            device=device,
            source_dir=source_dir,
            revision=rev,
            **kwargs,
        )

    # -- the interface ---------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """Exactly what the CNN produces: ``floor((n - 400) / 320) + 1`` for the standard CNN, 0 below 400."""
        return conv_num_frames(num_samples, self._kernels, self._strides)

    def encode(self, waves: Sequence[Wave], layers: Sequence[int] = (-1,)) -> list[torch.Tensor]:
        """Features ``[num_frames(len(w)), len(layers), dim]`` (float32, CPU) for each wave.

        Inputs shorter than one frame (400 samples) give 0 frames, not an error.
        """
        idx = self.resolve_layers(layers)
        prepared = [self._prepare(as_wave(w, i)) for i, w in enumerate(waves)]
        outputs = [torch.empty(self.num_frames(len(w)), len(idx), self.dim) for w in prepared]
        segments = [s for i, w in enumerate(prepared) for s in self._segments(i, len(w))]
        with torch.inference_mode():
            for batch in self._batches(segments):
                feats = self._forward([prepared[s.utt][s.a : s.b] for s in batch], sorted(set(idx)))
                for j, s in enumerate(batch):
                    k0, k1 = s.keep
                    for col, layer in enumerate(idx):
                        outputs[s.utt][s.out : s.out + k1 - k0, col] = feats[layer][j, k0:k1].float().cpu()
        return outputs

    def config(self) -> dict:
        import transformers

        cfg = self.model.config
        return {
            "type": "hf",
            "name": self.name,
            "model_type": cfg.model_type,
            "architecture": type(self.model).__name__,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256(),
            "num_layers": self.num_layers,
            "layers_available": list(range(self.num_layers + 1)),
            "layer_convention": "0 = input of transformer layer 1 (CNN + positional conv), i = output of layer i, "
            "no final encoder LayerNorm",
            "dim": self.dim,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "window_samples": self.window,
            "hop_samples": self.hop,
            "normalize": self.normalize,
            "normalize_source": self.normalize_source,
            "feat_extract_norm": self.feat_extract_norm,
            "do_stable_layer_norm": bool(getattr(cfg, "do_stable_layer_norm", False)),
            "batching": "padded + attention_mask" if self.pad_safe else "equal-length inputs only",
            "max_seconds": self.max_seconds,
            "overlap_seconds": self.overlap_seconds,
            "dtype": "float32",
            "transformers_version": transformers.__version__,
        }

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of each weights file (or, for an in-memory model, of its state dict); cached."""
        if self._weights_sha256 is None:
            files = []
            if self.source_dir is not None:
                files = sorted(p for p in self.source_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
                if any(p.suffix == ".safetensors" for p in files):  # transformers loads these first
                    files = [p for p in files if p.suffix == ".safetensors"]
            if files:
                self._weights_sha256 = {p.name: file_sha256(p) for p in files}
            else:
                self._weights_sha256 = {"state_dict": state_dict_sha256(self.model)}
        return self._weights_sha256

    # -- internals -------------------------------------------------------------------------
    def _prepare(self, wave: torch.Tensor) -> torch.Tensor:
        if not self.normalize or wave.numel() == 0:
            return wave
        # Statistics over the real samples only (padding is added later), in float64 for
        # accuracy; the 1e-7 is Wav2Vec2FeatureExtractor's.
        w = wave.double()
        return ((w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)).float()

    def _segments(self, utt: int, n: int) -> list[_Segment]:
        plan = plan_windows(self.num_frames(n), self._window_frames, self._context_frames)
        if len(plan) == 1:  # whole input: trailing samples still count in group-norm statistics
            return [_Segment(utt, 0, n, (0, plan[0].stop), 0)]
        out = []
        for w in plan:
            a, b = w.samples(self.window, self.hop)
            out.append(_Segment(utt, a, b, (w.keep_start - w.start, w.keep_stop - w.start), w.keep_start))
        return out

    def _batches(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """Length-sorted batches; padded ones only for models whose features padding cannot change."""
        groups: dict[int, list[_Segment]] = defaultdict(list)
        for s in sorted(segments, key=lambda s: (s.b - s.a, s.utt, s.a)):
            groups[0 if self.pad_safe else s.b - s.a].append(s)
        batches = []
        for group in groups.values():
            batch: list[_Segment] = []
            for s in group:
                longest = s.b - s.a  # sorted ascending, so the newest is the longest
                if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * longest > self.max_batch_samples):
                    batches.append(batch)
                    batch = []
                batch.append(s)
            if batch:
                batches.append(batch)
        return batches

    def _forward(self, chunks: list[torch.Tensor], layers: list[int]) -> dict[int, torch.Tensor]:
        """Run the model on one batch up to ``max(layers)``; ``{layer: [B, frames, dim]}``."""
        lengths = [len(c) for c in chunks]
        x = torch.zeros(len(chunks), max(lengths))
        for i, c in enumerate(chunks):
            x[i, : len(c)] = c
        mask = None
        if min(lengths) != max(lengths):
            mask = (torch.arange(x.shape[1])[None, :] < torch.tensor(lengths)[:, None]).long().to(self.device)
        return run_to_layers(self.model, layers, input_values=x.to(self.device), attention_mask=mask)


# -- helpers -------------------------------------------------------------------------------


def check_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, or a ValueError naming it when it is not a device name or asks for
    CUDA on a machine without."""
    try:
        dev = torch.device(device)
    except RuntimeError as err:  # torch's message lists the valid device types
        raise ValueError(f"device {device!r} is not a torch device: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return dev
