"""A FastSpeech-style text-to-units model: phones -> durations -> units of every frame.

In the order data flows (Ren et al., FastSpeech, 2019, with units in place of mels):

1. **Phone encoder**: phone embedding + sinusoidal positions, ``encoder_layers`` feed-forward
   transformer blocks (pre-norm self-attention, then a conv FFN: Conv1d ``kernel`` -> ReLU ->
   Conv1d 1), padding masked everywhere.
2. **Speaker**: a 256-dim d-vector (``encoders.speaker``, as the unit vocoder uses) projected
   and added to every phone.
3. **Duration predictor** (FastSpeech's variance predictor): 2 x (Conv1d -> ReLU -> LayerNorm ->
   dropout) -> linear, regressing ``log(1 + frames)`` of every phone.
4. **Length regulator**: each phone's vector repeated for its frames (the true durations in
   training, the rounded predictions at synthesis), plus frame positions and the frame's place
   inside its phone (``(j + 0.5) / d`` and ``log(1 + d)``, projected): a frame knows whether it
   is the start or the end of its phone without having to infer it from attention.
5. **Decoder**: ``decoder_layers`` blocks at the frame rate, then **one linear head per
   tokenizer layer** to that layer's codebook: ``[frames, layers]`` units (one layer is the
   one-layer case). Trained with cross-entropy per layer (mean over layers) + the duration MSE.

Example:
    >>> import torch
    >>> m = TextToUnits(TTSConfig(codebook_sizes=[20, 30], dim=32, heads=2, encoder_layers=1,
    ...                           decoder_layers=1, ffn_dim=64, speaker_dim=0))
    >>> out = m(torch.randint(1, 41, (2, 7)), torch.tensor([7, 5]), torch.full((2, 7), 3))
    >>> [tuple(x.shape) for x in out["logits"]], out["frames"].tolist()
    ([(2, 21, 20), (2, 21, 30)], [21, 15])
    >>> m.infer([1, 5, 9], None).shape[1]
    2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .text import PHONES


@dataclass
class TTSConfig:
    """Sizes of a :class:`TextToUnits` (stored in its ``config.json``)."""

    codebook_sizes: list[int] = field(default_factory=lambda: [500])
    phones: list[str] = field(default_factory=lambda: list(PHONES))
    dim: int = 192
    heads: int = 2
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn_dim: int = 384
    kernel: int = 3
    dropout: float = 0.1
    duration_kernel: int = 3
    speaker_dim: int = 256  # 0: no speaker conditioning
    frame_rate: float = 50.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TTSConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown text-to-units settings {unknown}")
        return cls(**d)


def sinusoids(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, dim]`` sinusoidal positions (Vaswani et al.)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


def lengths_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, size]`` bool: True on the real positions."""
    return torch.arange(size, device=lengths.device)[None] < lengths[:, None]


class FFTBlock(nn.Module):
    """Pre-norm self-attention + conv feed-forward (FastSpeech's FFT block); padding zeroed."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be a multiple of heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.conv1 = nn.Conv1d(dim, ffn_dim, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(ffn_dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x [B, T, D], mask [B, T]
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        # no dropout on the attention weights: on CPU its [B, H, T, T] mask cost 10 % of a step
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        m = mask[..., None].to(x.dtype)
        h = (self.norm2(x) * m).transpose(1, 2)
        h = self.conv2(F.relu(self.conv1(h))).transpose(1, 2)
        return (x + self.drop(h)) * m


class DurationPredictor(nn.Module):
    """FastSpeech's variance predictor: phone vectors ``[B, N, D]`` -> ``log(1 + frames)`` ``[B, N]``."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):
            x = self.drop(norm(F.relu(conv((x * m).transpose(1, 2)).transpose(1, 2))))
        return self.out(x).squeeze(-1) * mask


def regulate(h: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Length regulator: phone vectors ``[B, N, D]`` repeated by ``durations [B, N]`` (padding
    phones have 0) -> frames ``[B, T, D]``, frame counts ``[B]`` and per frame ``(j + 0.5) / d``
    and ``log(1 + d)`` of its phone ``[B, T, 2]``."""
    B, N, D = h.shape
    frames = durations.sum(1)
    T = max(int(frames.max()), 1)
    out = h.new_zeros(B, T, D)
    place = h.new_zeros(B, T, 2)
    for b in range(B):
        d = durations[b]
        idx = torch.repeat_interleave(torch.arange(N, device=h.device), d)
        n = len(idx)
        out[b, :n] = h[b, idx]
        start = torch.cumsum(d, 0) - d
        j = torch.arange(n, device=h.device) - start[idx]
        dd = d[idx].to(h.dtype)
        place[b, :n, 0] = (j.to(h.dtype) + 0.5) / dd
        place[b, :n, 1] = torch.log1p(dd)
    return out, frames, place


class TextToUnits(nn.Module):
    """Phones ``[B, N]`` (+ speaker ``[B, S]``) -> duration predictions and unit logits per layer."""

    def __init__(self, config: TTSConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(len(c.phones), c.dim, padding_idx=0)
        block = lambda: FFTBlock(c.dim, c.heads, c.ffn_dim, c.kernel, c.dropout)  # noqa: E731
        self.encoder = nn.ModuleList(block() for _ in range(c.encoder_layers))
        self.speaker = nn.Linear(c.speaker_dim, c.dim) if c.speaker_dim else None
        self.duration = DurationPredictor(c.dim, c.duration_kernel, c.dropout)
        self.place = nn.Linear(2, c.dim)
        self.decoder = nn.ModuleList(block() for _ in range(c.decoder_layers))
        self.out_norm = nn.LayerNorm(c.dim)
        self.heads = nn.ModuleList(nn.Linear(c.dim, k) for k in c.codebook_sizes)

    @property
    def num_layers(self) -> int:
        return len(self.config.codebook_sizes)

    def encode(self, phones: torch.Tensor, n_phones: torch.Tensor, speaker: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_mask(n_phones, phones.shape[1])
        x = self.embed(phones) + sinusoids(phones.shape[1], self.config.dim, phones.device)[None]
        x = x * mask[..., None]
        for blk in self.encoder:
            x = blk(x, mask)
        if self.speaker is not None:
            if speaker is None:
                raise ValueError("this model is speaker-conditioned: give a d-vector (or its mean training voice)")
            x = x + self.speaker(speaker)[:, None, :] * mask[..., None]
        return x, mask

    def decode(self, h: torch.Tensor, durations: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x, frames, place = regulate(h, durations)
        fmask = lengths_mask(frames, x.shape[1])
        x = (x + self.place(place) + sinusoids(x.shape[1], self.config.dim, x.device)[None]) * fmask[..., None]
        for blk in self.decoder:
            x = blk(x, fmask)
        x = self.out_norm(x)
        return [head(x) for head in self.heads], frames

    def forward(self, phones: torch.Tensor, n_phones: torch.Tensor, durations: torch.Tensor,
                speaker: torch.Tensor | None = None) -> dict:
        """Teacher-forced: the decoder reads the true ``durations``; returns ``log_durations``
        ``[B, N]``, ``logits`` (one ``[B, T, K_l]`` per layer) and ``frames`` ``[B]``."""
        h, mask = self.encode(phones, n_phones, speaker)
        logd = self.duration(h, mask)
        logits, frames = self.decode(h, durations * mask.long())
        return {"log_durations": logd, "logits": logits, "frames": frames}

    @torch.no_grad()
    def predict_durations(self, phones: torch.Tensor, n_phones: torch.Tensor, speaker: torch.Tensor | None,
                          speed: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Rounded frames per phone (>= 0; at least one frame in all) and the encoder output."""
        h, mask = self.encode(phones, n_phones, speaker)
        d = torch.clamp(torch.round(torch.expm1(self.duration(h, mask)) / speed), min=0).long() * mask.long()
        for b in range(len(d)):
            if int(d[b].sum()) == 0:
                d[b, 0] = 1
        return d, h

    @torch.no_grad()
    def infer(self, phones: Sequence[int], speaker: np.ndarray | torch.Tensor | None, speed: float = 1.0,
              durations: Sequence[int] | None = None) -> np.ndarray:
        """Frame units ``[T, L]`` (int64, argmax of every head) for one phone-id sequence;
        ``durations`` (frames per phone) replaces the predicted ones when given."""
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        p = torch.as_tensor(np.asarray(phones), dtype=torch.long, device=dev)[None]
        n = torch.tensor([p.shape[1]], device=dev)
        spk = None if speaker is None else torch.as_tensor(np.asarray(speaker), dtype=torch.float32, device=dev)[None]
        if durations is None:
            d, h = self.predict_durations(p, n, spk, speed)
        else:
            h, _ = self.encode(p, n, spk)
            d = torch.as_tensor(np.asarray(durations), dtype=torch.long, device=dev)[None]
        logits, frames = self.decode(h, d)
        self.train(was)
        T = int(frames[0])
        return torch.stack([lg[0, :T].argmax(-1) for lg in logits], -1).cpu().numpy()


def tts_loss(model: TextToUnits, out: dict, units: torch.Tensor, durations: torch.Tensor,
             n_phones: torch.Tensor, duration_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of every layer's units (mean over layers, padding ignored) + the MSE of
    ``log(1 + frames)``; metrics: per-layer CE and accuracy, duration MSE."""
    metrics: dict = {}
    ce_total = 0.0
    T = units.shape[1]
    fmask = lengths_mask(out["frames"], T)
    for j, lg in enumerate(out["logits"]):
        target = units[..., j].masked_fill(~fmask, -100)
        ce = F.cross_entropy(lg[:, :T].reshape(-1, lg.shape[-1]), target.reshape(-1), ignore_index=-100)
        ce_total = ce_total + ce
        metrics[f"ce_{j}"] = ce.detach()
        metrics[f"acc_{j}"] = ((lg[:, :T].argmax(-1) == units[..., j]) & fmask).sum().float() / fmask.sum().clamp_min(1)
    ce_mean = ce_total / len(out["logits"])
    pmask = lengths_mask(n_phones, durations.shape[1]).float()
    dmse = (((out["log_durations"] - torch.log1p(durations.float())) * pmask) ** 2).sum() / pmask.sum().clamp_min(1)
    metrics["ce"], metrics["duration_mse"] = ce_mean.detach(), dmse.detach()
    return ce_mean + duration_weight * dmse, metrics
