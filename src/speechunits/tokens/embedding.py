"""Units (or features) of several layers -> one vector per frame: the layer attention of arXiv 2406.10735.

The multi-layer-tokens paper (and SpeechBrain's DASB) feeds a downstream model with k-means
tokens of several SSL layers: one embedding table per layer, then per frame an MLP scores each
layer's embedding (Linear -> ReLU -> Linear to one number) and a softmax over the layers mixes
them, so each task learns which layers it needs. The weights are returned with the mix, so a run
can report them. A ``keep [B, L]`` mask restricts the softmax to a subset of layers (layer
dropout in training; any subset at inference).

- :class:`LayerAttention`: discrete units ``[B, T, L]`` -> ``[B, T, D]``. Optionally each table
  starts from that layer's k-means centroids followed by a learned linear map to ``D`` (so
  the tokens start where the encoder put them, and the map adapts them to the task).
- :class:`FeatureLayerAttention`: the continuous baseline, the same attention over the layers'
  *features* ``[B, T, L, F]`` (standardised with the training frames' statistics, then a
  linear map per layer, instead of the tables).

Both the unit vocoder and the downstream probes use these modules.

Example:
    >>> import torch
    >>> att = LayerAttention([50, 60], dim=16)
    >>> x, w = att(torch.randint(0, 50, (2, 7, 2)))
    >>> tuple(x.shape), tuple(w.shape), bool(torch.allclose(w.sum(-1), torch.ones(2, 7)))
    ((2, 7, 16), (2, 7, 2), True)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class LayerMix(nn.Module):
    """The per-frame softmax over layers, scored by an MLP on each layer's vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, max(dim // 2, 1)), nn.ReLU(), nn.Linear(max(dim // 2, 1), 1))

    def mix(self, e: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``e [B, T, L, D]``, ``keep [B, L]`` bool -> (``[B, T, D]``, weights ``[B, T, L]``)."""
        if e.shape[2] == 1:
            return e[:, :, 0], torch.ones(e.shape[:3], device=e.device)
        s = self.score(e).squeeze(-1)  # B T L
        if keep is not None:
            s = s.masked_fill(~keep[:, None, :], float("-inf"))
        w = torch.softmax(s, dim=-1)
        return (w[..., None] * e).sum(2), w


class LayerAttention(LayerMix):
    """Discrete units ``[B, T, L]`` -> ``[B, T, D]`` through one embedding table per layer.

    ``centroids`` (one ``[K_l, F_l]`` array per layer) initialises each table with that layer's
    k-means centroids, followed by a learned ``Linear(F_l, dim)``; without it the tables are
    ``[K_l, dim]`` and random.
    """

    def __init__(self, codebook_sizes: Sequence[int], dim: int,
                 centroids: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__(dim)
        if centroids is None:
            self.embs = nn.ModuleList(nn.Embedding(int(k), dim) for k in codebook_sizes)
            self.proj = None
        else:
            if len(centroids) != len(codebook_sizes):
                raise ValueError(f"{len(centroids)} centroid tables for {len(codebook_sizes)} layers")
            for k, c in zip(codebook_sizes, centroids):
                if c.ndim != 2 or c.shape[0] != int(k):
                    raise ValueError(f"centroids of shape {tuple(c.shape)} do not match a codebook of {k}")
            self.embs = nn.ModuleList(nn.Embedding.from_pretrained(c.float().clone(), freeze=False) for c in centroids)
            self.proj = nn.ModuleList(nn.Linear(c.shape[1], dim) for c in centroids)

    @staticmethod
    def centroid_shapes(module: "LayerAttention") -> list[int] | None:
        """The centroid widths of a centroid-initialised module (to rebuild it from a config)."""
        return None if module.proj is None else [int(p.in_features) for p in module.proj]

    def forward(self, units: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``units [B, T, L]``, ``keep [B, L]`` bool -> (``[B, T, D]``, weights ``[B, T, L]``)."""
        if units.shape[-1] != len(self.embs):
            raise ValueError(f"units have {units.shape[-1]} layers, the embedding has {len(self.embs)}")
        if self.proj is None:
            e = [emb(units[..., i]) for i, emb in enumerate(self.embs)]
        else:
            e = [p(emb(units[..., i])) for i, (emb, p) in enumerate(zip(self.embs, self.proj))]
        return self.mix(torch.stack(e, dim=2), keep)


class FeatureLayerAttention(LayerMix):
    """Continuous features ``[B, T, L, F]`` -> ``[B, T, D]``: standardise + Linear per layer, then the mix.

    Each layer's features are standardised per dimension with statistics of the training frames
    (``mean``/``std`` buffers, saved with the weights; set them with :meth:`set_stats`), not with
    a per-frame LayerNorm: Whisper's hidden states carry a few dimensions tens of times larger
    than the rest, and a per-frame norm divides every other dimension by them. Measured on the
    phone probe (Whisper layers 2-4): with LayerNorm the CTC loss was still on its blank plateau
    after 600 steps; standardised, it left it by step 200 (docs/results.md, "Downstream probes").
    """

    def __init__(self, feature_dims: Sequence[int], dim: int) -> None:
        super().__init__(dim)
        if len(set(int(f) for f in feature_dims)) > 1:
            raise ValueError(f"feature widths {list(feature_dims)} differ; every layer must have the same width")
        L, F = len(feature_dims), int(feature_dims[0])
        self.register_buffer("mean", torch.zeros(L, F))
        self.register_buffer("std", torch.ones(L, F))
        self.proj = nn.ModuleList(nn.Linear(int(f), dim) for f in feature_dims)

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-layer, per-dimension statistics ``[L, F]`` of the training frames (std floored at 1e-5)."""
        if tuple(mean.shape) != tuple(self.mean.shape) or tuple(std.shape) != tuple(self.std.shape):
            raise ValueError(f"statistics of shape {tuple(mean.shape)}; expected {tuple(self.mean.shape)}")
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-5))

    def forward(self, feats: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if feats.ndim != 4 or feats.shape[2] != len(self.proj):
            raise ValueError(f"features of shape {tuple(feats.shape)}; expected [B, T, {len(self.proj)}, F]")
        z = (feats - self.mean) / self.std
        e = [p(z[:, :, i]) for i, p in enumerate(self.proj)]
        return self.mix(torch.stack(e, dim=2), keep)
