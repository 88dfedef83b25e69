"""Running a transformers SSL model for training: layer outputs with gradients, and partial freezing.

Spin, DC-Spin and CTC fine-tuning train only the top transformer layers of an encoder (ours or a
real HuBERT / WavLM / wav2vec 2.0 checkpoint). Three rules, and why:

* **Same features as inference.** Layer outputs are taken with forward hooks on the transformer
  layers, exactly as :class:`~speechunits.encoders.HFEncoder` takes them (layer ``i`` = output
  of layer ``i``, no final encoder LayerNorm), so what a head is trained on is what the
  tokenizer later feeds it.
* **Frozen means frozen.** Everything below the trainable layers has ``requires_grad = False``,
  is left out of the optimizer (no weight decay can touch it) and runs in eval mode (no dropout:
  it is a fixed feature extractor). The CNN is always frozen.
* **Masks are explicit.** The model itself stays in eval mode, so transformers never draws its
  own SpecAugment masks from numpy's global RNG; a caller that wants time masking passes
  ``mask_time_indices`` (seeded, :func:`~speechunits.encoders.pretrain.model.span_mask`).

Example:
    >>> from speechunits.encoders.pretrain.model import build_model
    >>> m = build_model("tiny")
    >>> params = freeze_lower_layers(m, trainable_layers=1)
    >>> sorted({n.split(".")[2] for n in params})  # only layer 1 (of 0, 1) trains
    ['1']
    >>> set_train_mode(m, 1, True)
    >>> out = layer_outputs(m, torch.zeros(2, 16000), None, layers=[-1])
    >>> out[2].shape
    torch.Size([2, 49, 32])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from speechunits.encoders.layers import run_to_layers


def _top_layers(model: nn.Module, trainable_layers: int) -> list[nn.Module]:
    layers = list(model.encoder.layers)
    k = max(0, min(int(trainable_layers), len(layers)))
    return layers[len(layers) - k :]


def freeze_lower_layers(model: nn.Module, trainable_layers: int, *, train_mask_emb: bool = False) -> dict[str, nn.Parameter]:
    """Freeze all but the top ``trainable_layers`` transformer layers; return the trainable params.

    With ``trainable_layers >= num_layers`` the positional convolution, the encoder LayerNorm
    and the feature projection train too (everything above the CNN). ``train_mask_emb`` also
    trains the learned mask vector (when the model has one), for masked fine-tuning.
    """
    if not hasattr(getattr(model, "encoder", None), "layers"):
        raise TypeError(f"{type(model).__name__} is not a transformers SSL model (no encoder.layers)")
    model.requires_grad_(False)
    for layer in _top_layers(model, trainable_layers):
        layer.requires_grad_(True)
    if trainable_layers >= len(model.encoder.layers):
        for name in ("feature_projection",):
            if hasattr(model, name):
                getattr(model, name).requires_grad_(True)
        for name, mod in model.encoder.named_children():
            if name != "layers":
                mod.requires_grad_(True)
    if train_mask_emb and getattr(model, "masked_spec_embed", None) is not None:
        model.masked_spec_embed.requires_grad_(True)
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def set_train_mode(model: nn.Module, trainable_layers: int, training: bool) -> None:
    """Eval mode everywhere, then train mode on the trainable layers (dropout only where learning)."""
    model.eval()
    if training:
        for layer in _top_layers(model, trainable_layers):
            layer.train()
        if trainable_layers >= len(model.encoder.layers):
            for name, mod in model.encoder.named_children():
                if name != "layers":
                    mod.train()
            if hasattr(model, "feature_projection"):
                model.feature_projection.train()


def resolve_layer(model: nn.Module, layer: int) -> int:
    n = len(model.encoder.layers)
    idx = layer + n + 1 if layer < 0 else layer
    if not 0 <= idx <= n:
        raise ValueError(f"layer {layer} out of range 0..{n}")
    return idx


def layer_outputs(
    model: nn.Module,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    layers: Sequence[int] = (-1,),
    mask_time_indices: torch.Tensor | None = None,
) -> dict[int, torch.Tensor]:
    """``{layer: [B, frames, dim]}`` for a batch of (normalised) waves, with autograd.

    Layer 0 is the input of the first transformer layer, layer ``i`` the raw output of layer ``i``
    (the :class:`~speechunits.encoders.HFEncoder` convention). Layers above the highest requested
    one are skipped.
    """
    idx = sorted({resolve_layer(model, layer) for layer in layers})
    return run_to_layers(model, idx, input_values=x, attention_mask=attention_mask,
                         mask_time_indices=mask_time_indices)


def frame_valid_mask(lengths: Sequence[int], max_frames: int) -> torch.Tensor:
    """``[B, max_frames]`` bool: True on real frames (from per-item frame counts)."""
    return torch.arange(max_frames)[None, :] < torch.as_tensor(list(lengths))[:, None]
