"""The project's own HuBERT-style encoder: size presets, the pre-training head, span masks.

The encoder is a plain transformers ``HubertModel``, saved with ``save_pretrained`` (config +
safetensors + ``preprocessor_config.json``), so ``speechunits.encoders.load_encoder(dir)`` uses
it like any Hugging Face encoder. What differs from HuBERT Base, and why:

* **A lighter CNN.** Base's seven 512-channel convolutions (kernels 10,3,3,3,3,2,2, strides
  5,2,2,2,2,2,2) cost about 15x our whole transformer on 2 CPU cores (measured: 8.9 of 9.6
  CPU-seconds a step). :data:`LIGHT_CONV` starts at 800 Hz instead of 3200 Hz (kernel 40,
  stride 20) with 128-256 channels; its receptive field is still exactly a 400-sample window
  every 320 samples, and its frame count ``floor((n - 400) / 320) + 1`` for every ``n`` (checked
  layer by layer in the tests), so frame labels and every other 50 Hz encoder line up with it.
* **Layer-norm CNN** (``feat_extract_norm="layer"``): padding cannot change the features of the
  real frames, so padded batches with an attention mask are exact (group norm is not).
* ``layerdrop = 0`` (4-6 layers are too few to drop), SpecAugment feature masking off; time
  masks are always passed explicitly (:func:`span_mask`, seeded), never drawn by transformers
  from numpy's global RNG.

The pre-training head is fairseq HuBERT's: ``final_proj`` (hidden -> ``final_dim``) and one
embedding per cluster; logits are cosine similarities divided by a temperature of 0.1.

Example:
    >>> m = build_model("tiny")
    >>> type(m).__name__, m.config.hidden_size, m.config.num_hidden_layers
    ('HubertModel', 32, 2)
    >>> head = PretrainHead(32, num_classes=50, final_dim=16)
    >>> head(torch.zeros(7, 32)).shape
    torch.Size([7, 50])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# (kernels, strides): receptive field 400 samples, hop 320, at 16 kHz -> 25 ms windows at 50 Hz.
LIGHT_CONV = ((40, 3, 3, 2, 2), (20, 2, 2, 2, 2))

PRESETS: dict[str, dict] = {
    # Tests only: builds and runs in milliseconds.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16, 32, 32, 32, 32), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                 final_dim=16),
    # 4.3M parameters: ~1.0 CPU-second (one thread) a step of 8 x 3 s.
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                  conv_dim=(128, 256, 256, 256, 256), final_dim=256),
    # 5.9M parameters: ~1.1 CPU-seconds a step of 8 x 3 s. The default.
    "medium": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024,
                   conv_dim=(128, 256, 256, 256, 256), final_dim=256),
    # 12.5M parameters: ~1.8 CPU-seconds a step of 8 x 3 s.
    "large": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1536,
                  conv_dim=(128, 256, 256, 256, 256), final_dim=256),
}
DEFAULT_PRESET = "medium"

PREPROCESSOR_CONFIG = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": 16000,
}


# LIGHT_CONV at random init; a filterbank-initialised CNN (.frontend); a learnable log-mel
# filterbank in place of the CNN (speechunits.encoders.logmel_hubert.LogMelHubertModel).
FRONTENDS = ("cnn", "fbank", "logmel")
# 80 bands. Fewer would seem better -- k-means of 23 log-mel bands beats 80 on real speech (PNMI
# 0.667 vs 0.601, UED 0.685 vs 0.707: 80 narrow bands resolve harmonics) -- but the encoder reading
# 23 bands learned less (iteration-1 best layer PNMI 0.496 vs 0.535 on the same audio and steps);
# docs/results.md, "A log-mel front-end".
LOGMEL_BANDS = 80


def hubert_config(preset: str = DEFAULT_PRESET, frontend: str = "cnn", **overrides):
    """The ``HubertConfig`` of a preset and front-end (keyword arguments override any field);
    ``frontend="logmel"`` gives a :class:`~speechunits.encoders.logmel_hubert.LogMelHubertConfig`."""
    from transformers import HubertConfig

    from speechunits.encoders.logmel_hubert import LogMelHubertConfig
    from speechunits.encoders.pretrain.frontend import fbank_overrides

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if frontend not in FRONTENDS:
        raise ValueError(f"unknown front-end {frontend!r}; choose one of {', '.join(FRONTENDS)}")
    p = {k: v for k, v in PRESETS[preset].items() if k != "final_dim"}
    if frontend == "fbank":
        p.update(fbank_overrides(p["conv_dim"]))
    kernels, strides = LIGHT_CONV
    base = dict(
        conv_kernel=kernels, conv_stride=strides, conv_bias=True, feat_extract_norm="layer",
        feat_extract_activation="gelu", feat_proj_layer_norm=True, do_stable_layer_norm=False,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, feat_proj_dropout=0.1,
        final_dropout=0.0, layerdrop=0.0, apply_spec_augment=True,
        # mask_time_prob > 0 makes HubertModel create masked_spec_embed, the learned mask vector;
        # the masks themselves are always passed in explicitly.
        mask_time_prob=0.08, mask_time_length=10, mask_time_min_masks=2, mask_feature_prob=0.0,
    )
    base.update(p)
    if frontend == "logmel":
        # Log band powers go straight into the projection: a per-frame layer norm would remove
        # the frame's loudness, which tells silence and speech apart.
        base.update(feat_proj_layer_norm=False, n_mels=LOGMEL_BANDS)
        base.update(overrides)
        return LogMelHubertConfig(**base)
    base.update(overrides)
    return HubertConfig(**base)


def build_model(preset: str = DEFAULT_PRESET, seed: int = 0, frontend: str = "cnn", **overrides):
    """A freshly initialised ``HubertModel`` of ``preset`` (initialisation seeded by ``seed``);
    ``frontend="fbank"`` starts its CNN as a filterbank (:mod:`.frontend`), ``"logmel"`` replaces
    it with a learnable log-mel filterbank (a ``LogMelHubertModel``)."""
    from transformers import HubertModel

    from speechunits.encoders.logmel_hubert import LogMelHubertModel, register_auto_classes
    from speechunits.encoders.pretrain.frontend import init_fbank_frontend_

    register_auto_classes()
    cls = LogMelHubertModel if frontend == "logmel" else HubertModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(hubert_config(preset, frontend, **overrides))
    if frontend == "fbank":
        init_fbank_frontend_(model, seed)
    return model


def final_dim_of(preset: str) -> int:
    return int(PRESETS[preset]["final_dim"])


def save_encoder(
    model: nn.Module, directory: str | os.PathLike, extra: dict | None = None, *, normalize: bool = True
) -> Path:
    """``save_pretrained`` + ``preprocessor_config.json``, atomically (temp folder, then rename).

    ``normalize`` is recorded as ``do_normalize``: the input normalisation the model was trained
    with, which :class:`~speechunits.encoders.HFEncoder` then applies. ``extra`` goes into
    ``speechunits_training.json`` beside the weights (how the model was made).
    """
    import shutil

    import transformers

    from speechunits.data.atomic import replace_dir

    d = Path(directory)
    tmp = d.parent / f".{d.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model.save_pretrained(str(tmp))
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    pre = {**PREPROCESSOR_CONFIG, "do_normalize": bool(normalize)}
    (tmp / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    if extra is not None:
        (tmp / "speechunits_training.json").write_text(json.dumps(extra, indent=2) + "\n")
    return replace_dir(tmp, d)


class PretrainHead(nn.Module):
    """fairseq HuBERT's prediction head: ``cos(final_proj(h), label_emb_c) / temperature``."""

    def __init__(self, hidden_size: int, num_classes: int, final_dim: int = 256, temperature: float = 0.1) -> None:
        super().__init__()
        self.final_proj = nn.Linear(hidden_size, final_dim)
        self.label_embs = nn.Parameter(torch.empty(num_classes, final_dim).uniform_())  # fairseq's init
        self.temperature = float(temperature)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., num_classes]`` for hidden states ``[..., hidden_size]``."""
        z = F.normalize(self.final_proj(hidden), dim=-1)
        e = F.normalize(self.label_embs, dim=-1)
        return z @ e.T / self.temperature

    def config(self) -> dict:
        return {"hidden_size": self.final_proj.in_features, "num_classes": self.label_embs.shape[0],
                "final_dim": self.final_proj.out_features, "temperature": self.temperature}


def span_mask(
    lengths: list[int] | np.ndarray,
    rng: np.random.Generator,
    prob: float = 0.08,
    span: int = 10,
    min_masks: int = 2,
) -> torch.Tensor:
    """HuBERT / wav2vec 2.0 time masks ``[B, max(lengths)]``, seeded by ``rng``.

    ``prob`` is the papers' ``p``: the share of frames that *start* a masked span (HuBERT: p = 8%,
    l = 10; fairseq writes the same as ``mask_prob = p * l = 0.8``). Per utterance of ``T`` real
    frames, ``int(prob * T + u)`` starts (``u ~ U[0, 1)``, at least ``min_masks``) are drawn without
    replacement from ``0..T - span``; spans may overlap, so about ``1 - (1 - p)^l`` of the frames
    (~57% at the HuBERT defaults) end up masked. Padding frames are never masked.
    """
    lengths = [int(n) for n in lengths]
    out = np.zeros((len(lengths), max(lengths, default=0)), dtype=bool)
    if prob <= 0:
        return torch.from_numpy(out)
    for i, n in enumerate(lengths):
        span_i = min(span, n)
        if span_i < 1:
            continue
        choices = n - span_i + 1
        count = min(choices, max(min_masks, int(prob * n + rng.random())))
        starts = rng.choice(choices, size=count, replace=False)
        idx = (starts[:, None] + np.arange(span_i)[None, :]).reshape(-1)
        out[i, idx] = True
    return torch.from_numpy(out)


def frame_lengths(model: nn.Module, num_samples: list[int] | torch.Tensor) -> torch.Tensor:
    """Frames the model's CNN makes of each input length (0 below one window)."""
    from speechunits.encoders.base import conv_num_frames

    cfg = model.config
    return torch.tensor([conv_num_frames(int(n), cfg.conv_kernel, cfg.conv_stride) for n in num_samples], dtype=torch.long)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
