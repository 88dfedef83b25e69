"""Durations for de-duplicated units: regress ``log(1 + run length)`` per unit, then expand.

De-duplicated units (``--dedup`` files, a unit LM's output) have lost how long each unit lasted.
As fairseq speech-resynthesis' ``DurationCodeGenerator`` (its ``VariancePredictor``), a small conv
net reads the unit sequence and predicts the log of each run's length in frames (MSE on
``log(1 + d)``); at synthesis the prediction is rounded (at least 1 frame) and each unit repeated.

Example:
    >>> import numpy as np
    >>> runs(np.array([3, 3, 3, 7, 1, 1]))
    (array([3, 7, 1]), array([3, 1, 2]))
    >>> expand(np.array([3, 7]), np.array([2, 1])).tolist()
    [3, 3, 7]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding of a 1-D unit sequence: (units, lengths)."""
    ids = np.asarray(ids).reshape(-1)
    if len(ids) == 0:
        return ids.copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[starts], np.diff(np.r_[starts, len(ids)]).astype(np.int64)


def expand(units: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Repeat each unit by its duration (frames)."""
    d = np.asarray(durations, dtype=np.int64)
    if len(d) != len(units) or (d < 0).any():
        raise ValueError(f"{len(units)} units need as many non-negative durations, got {d.tolist()[:10]}...")
    return np.repeat(np.asarray(units), d)


@dataclass
class DurationConfig:
    codebook_size: int = 500
    dim: int = 128
    kernel: int = 3
    layers: int = 2
    dropout: float = 0.1
    speaker_dim: int = 256

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DurationConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown duration-predictor settings {unknown}")
        return cls(**d)


class DurationPredictor(nn.Module):
    """``units [B, N]`` (de-duplicated) -> ``log(1 + frames)`` per unit ``[B, N]``."""

    def __init__(self, config: DurationConfig) -> None:
        super().__init__()
        c = self.config = config
        self.emb = nn.Embedding(c.codebook_size, c.dim)
        self.speaker = nn.Linear(c.speaker_dim, c.dim) if c.speaker_dim else None
        self.convs = nn.ModuleList(nn.Conv1d(c.dim, c.dim, c.kernel, padding=c.kernel // 2) for _ in range(c.layers))
        self.norms = nn.ModuleList(nn.LayerNorm(c.dim) for _ in range(c.layers))
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.dim, 1)

    def forward(self, units: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        mask = (torch.arange(units.shape[1], device=units.device)[None] < lengths[:, None]).float()[..., None]
        x = self.emb(units)
        if self.speaker is not None and speaker is not None:
            x = x + self.speaker(speaker)[:, None, :]
        for conv, norm in zip(self.convs, self.norms):
            x = x * mask
            x = self.drop(norm(F.relu(conv(x.transpose(1, 2)).transpose(1, 2))))
        return self.out(x).squeeze(-1) * mask[..., 0]

    @torch.no_grad()
    def predict(self, units: np.ndarray, speaker: np.ndarray | None = None, speed: float = 1.0) -> np.ndarray:
        """Frames per unit (int, >= 1) for one de-duplicated sequence; ``speed`` > 1 speaks faster."""
        if len(units) == 0:
            return np.zeros(0, dtype=np.int64)
        dev = next(self.parameters()).device
        u = torch.as_tensor(np.asarray(units), dtype=torch.long, device=dev)[None]
        spk = None if speaker is None else torch.as_tensor(speaker, dtype=torch.float32, device=dev)[None]
        was = self.training
        self.eval()
        logd = self.forward(u, torch.tensor([u.shape[1]], device=dev), spk)[0]
        self.train(was)
        return torch.clamp(torch.round(torch.expm1(logd) / speed), min=1).long().cpu().numpy()


def run_length_batch(store, which: np.ndarray, device: torch.device) -> dict:
    """Whole utterances of a feature store as de-duplicated units, run lengths and speakers."""
    seqs, durs, spk = [], [], []
    for i in which:
        ex = store.get(int(i))
        u, d = runs(ex.units[:, 0].numpy())
        seqs.append(torch.from_numpy(u))
        durs.append(torch.from_numpy(d))
        spk.append(ex.speaker)
    n = max(len(u) for u in seqs)
    U, D = torch.zeros(len(seqs), n, dtype=torch.long), torch.zeros(len(seqs), n, dtype=torch.long)
    for i, (u, d) in enumerate(zip(seqs, durs)):
        U[i, : len(u)], D[i, : len(d)] = u, d
    return {"units": U.to(device), "durations": D.to(device),
            "lengths": torch.tensor([len(u) for u in seqs], device=device),
            "speaker": torch.stack(spk).to(device) if spk[0] is not None else None}


def duration_loss(pred: torch.Tensor, durations: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """MSE between predicted and true ``log(1 + d)`` over the real units."""
    mask = (torch.arange(pred.shape[1], device=pred.device)[None] < lengths[:, None]).float()
    return (((pred - torch.log1p(durations.float())) * mask) ** 2).sum() / mask.sum().clamp_min(1)
