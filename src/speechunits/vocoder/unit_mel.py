"""Units (one layer or several) -> 80-bin HiFi-GAN log-mel frames: a small non-autoregressive conv net.

Shape of the model, in the order data flows:

1. **Unit embeddings**, one table per unit layer. With several layers (the multi-layer tokens of
   arXiv 2406.10735) an MLP scores each layer's embedding per frame (Linear -> ReLU -> Linear to
   one score) and a softmax over the layers mixes them. **Layer dropout**: in training, each
   utterance keeps a random non-empty subset of layers (each kept with ``1 - layer_dropout``);
   the softmax runs over the kept ones only, so at inference any subset works without retraining.
2. Residual conv blocks at the unit rate (50 Hz), the context units need to be spoken.
3. **Upsampling to the mel rate** (86.13 Hz): each mel frame takes the unit frame nearest its
   centre (the unit frames' centres come from the tokenizer's framing), an exact, monotone map.
4. A **speaker embedding** (a d-vector) projected and added, then residual conv blocks at the mel
   rate and a linear layer to the mel bins.

Trained with L1 + L2 on the log-mels of the real audio (``mel_loss``), padding masked.

Example:
    >>> import torch
    >>> m = UnitToMel(UnitMelConfig(codebook_sizes=[50], dim=32, unit_blocks=1, mel_blocks=1, speaker_dim=0))
    >>> mel = m(torch.randint(0, 50, (2, 10, 1)), torch.tensor([10, 7]), mel_frames=torch.tensor([17, 12]))
    >>> mel.shape
    torch.Size([2, 80, 17])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechunits.tokens.embedding import LayerAttention


def mel_unit_index(mel_frames: int, unit_frames: int, unit_rate: float, unit_offset_s: float,
                   mel_rate: float, mel_offset_s: float) -> np.ndarray:
    """``[mel_frames]`` int64: the unit frame whose centre is nearest each mel frame's centre."""
    t = np.arange(mel_frames) / mel_rate + mel_offset_s
    return np.clip(np.round((t - unit_offset_s) * unit_rate), 0, max(unit_frames - 1, 0)).astype(np.int64)


@dataclass
class UnitMelConfig:
    """Sizes of a :class:`UnitToMel` and the framing it maps between."""

    codebook_sizes: list[int] = field(default_factory=lambda: [500])
    dim: int = 256
    unit_blocks: int = 3
    mel_blocks: int = 4
    kernel: int = 5
    dropout: float = 0.1
    layer_dropout: float = 0.5
    speaker_dim: int = 256
    n_mels: int = 80
    unit_rate: float = 50.0
    unit_offset_s: float = 0.0  # centre of unit frame 0, in seconds
    mel_rate: float = 22050 / 256
    mel_offset_s: float = 128 / 22050  # centre of mel frame 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UnitMelConfig":
        known = cls.__dataclass_fields__
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown unit-to-mel settings {unknown}")
        return cls(**d)


class ConvBlock(nn.Module):
    """Pre-norm residual block: LayerNorm -> Conv1d -> GELU -> dropout (time kept, padding zeroed)."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x [B, T, D], mask [B, T]
        h = self.norm(x) * mask[..., None]
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        return (x + self.drop(F.gelu(h))) * mask[..., None]


class UnitToMel(nn.Module):
    """``units [B, T, L]`` (+ lengths, mel lengths, speaker ``[B, S]``) -> log-mel ``[B, n_mels, M]``."""

    def __init__(self, config: UnitMelConfig) -> None:
        super().__init__()
        c = self.config = config
        self.layers = LayerAttention(c.codebook_sizes, c.dim)
        self.unit_blocks = nn.ModuleList(ConvBlock(c.dim, c.kernel, c.dropout) for _ in range(c.unit_blocks))
        self.speaker = nn.Linear(c.speaker_dim, c.dim) if c.speaker_dim else None
        self.mel_blocks = nn.ModuleList(ConvBlock(c.dim, c.kernel, c.dropout) for _ in range(c.mel_blocks))
        self.out_norm = nn.LayerNorm(c.dim)
        self.out = nn.Linear(c.dim, c.n_mels)

    @property
    def num_layers(self) -> int:
        return len(self.config.codebook_sizes)

    def mel_frames_for(self, unit_frames: int) -> int:
        """Mel frames covering ``unit_frames`` unit frames (for synthesis without a reference)."""
        return max(1, int(round(unit_frames / self.config.unit_rate * self.config.mel_rate)))

    def unit_index(self, mel_frames: int, unit_frames: torch.Tensor) -> torch.Tensor:
        """``[B, M]``: the unit frame whose centre is nearest each mel frame's centre."""
        c = self.config
        rows = [mel_unit_index(mel_frames, int(n), c.unit_rate, c.unit_offset_s, c.mel_rate, c.mel_offset_s)
                for n in unit_frames.tolist()]
        return torch.from_numpy(np.stack(rows)).to(unit_frames.device)

    def layer_keep(self, batch: int, layers: list[int] | None, generator: torch.Generator | None,
                   device: torch.device) -> torch.Tensor | None:
        """Which layers each utterance uses: the given subset, or (training) a random one."""
        n = self.num_layers
        if layers is not None:
            if not layers or any(not 0 <= i < n for i in layers):
                raise ValueError(f"layer subset {layers} is not a non-empty subset of 0..{n - 1}")
            keep = torch.zeros(batch, n, dtype=torch.bool, device=device)
            keep[:, list(layers)] = True
            return keep
        if not self.training or n == 1 or self.config.layer_dropout <= 0:
            return None
        keep = torch.rand(batch, n, generator=generator) >= self.config.layer_dropout
        none = ~keep.any(1)
        keep[none, torch.randint(0, n, (int(none.sum()),), generator=generator)] = True
        return keep.to(device)

    def forward(self, units: torch.Tensor, lengths: torch.Tensor, mel_frames: torch.Tensor,
                speaker: torch.Tensor | None = None, layers: list[int] | None = None,
                generator: torch.Generator | None = None, return_weights: bool = False,
                index: torch.Tensor | None = None):
        """``index [B, M]``: the unit frame each mel frame reads (training crops pass the
        utterance's own map); by default computed from the two framings."""
        if units.ndim == 2:
            units = units[..., None]
        B, T, L = units.shape
        if L != self.num_layers:
            raise ValueError(f"units have {L} layers, the model was built for {self.num_layers}")
        unit_mask = (torch.arange(T, device=units.device)[None] < lengths[:, None]).float()
        x, weights = self.layers(units, self.layer_keep(B, layers, generator, units.device))
        x = x * unit_mask[..., None]
        for blk in self.unit_blocks:
            x = blk(x, unit_mask)
        M = int(mel_frames.max())
        idx = self.unit_index(M, lengths) if index is None else index[:, :M]
        x = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))
        if self.speaker is not None:
            if speaker is None:
                raise ValueError("this model is conditioned on a speaker embedding; give one")
            x = x + self.speaker(speaker)[:, None, :]
        mel_mask = (torch.arange(M, device=units.device)[None] < mel_frames[:, None]).float()
        x = x * mel_mask[..., None]
        for blk in self.mel_blocks:
            x = blk(x, mel_mask)
        mel = self.out(self.out_norm(x)).transpose(1, 2)  # B n_mels M
        return (mel, weights) if return_weights else mel


def mel_loss(pred: torch.Tensor, target: torch.Tensor, mel_frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """L1 + L2 over the real frames of ``[B, n_mels, M]`` log-mels."""
    M = pred.shape[-1]
    mask = (torch.arange(M, device=pred.device)[None] < mel_frames[:, None]).float()[:, None, :]
    n = mask.sum() * pred.shape[1]
    diff = (pred - target[..., :M]) * mask
    l1, l2 = diff.abs().sum() / n, (diff**2).sum() / n
    return l1 + l2, {"l1": l1.detach(), "l2": l2.detach()}
