"""A downstream probe: the layer-attention front-end of arXiv 2406.10735 and a task head.

- Front-end: discrete units ``[B, T, L]`` through one embedding table per layer (optionally
  started from the k-means centroids) or the continuous features ``[B, T, L, F]`` of the same
  layers through a linear map per layer; then the per-frame softmax attention over layers
  (``tokens.embedding``). The weights come back with every forward, so a run reports which
  layers its task attends to.
- Sequence head (ASR, phones): a 2-layer BiLSTM and a linear layer to the symbols + the CTC
  blank (index 0), as in DASB's discrete-token ASR recipes.
- Frame head (enhancement): the same BiLSTM and one linear layer per predicted codebook: the
  clean unit of every layer at every frame.
- Utterance head (speaker, keyword, any label): a frame-wise linear + ReLU, attentive statistics
  pooling (weighted mean and standard deviation over the real frames) and a linear classifier.

Saved as an HF-style folder: ``config.json`` (the :class:`ProbeConfig`, symbols included) and
``model.safetensors``.

Example:
    >>> import torch
    >>> cfg = ProbeConfig(task="sid", kind="utterance", input="discrete", codebook_sizes=[20, 20],
    ...                   symbols=["a", "b", "c"], dim=16, hidden=8)
    >>> logits, w = ProbeModel(cfg)(torch.randint(0, 20, (2, 9, 2)), torch.tensor([9, 5]))
    >>> tuple(logits.shape), tuple(w.shape)
    ((2, 3), (2, 9, 2))
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechunits.data.atomic import atomic_write_text
from speechunits.tokens.embedding import FeatureLayerAttention, LayerAttention

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


@dataclass
class ProbeConfig:
    """Everything that rebuilds a probe: task, input, layers, sizes and the symbol inventory."""

    task: str
    kind: str  # "sequence" | "utterance" | "frames"
    input: str  # "discrete" | "continuous"
    symbols: list[str]  # CTC symbols (blank not included) or class labels (frames: none)
    codebook_sizes: list[int] = field(default_factory=list)  # discrete: one per layer used
    feature_dims: list[int] = field(default_factory=list)  # continuous: one per layer used
    centroid_dims: list[int] | None = None  # discrete, centroid-initialised tables
    columns: list[int] = field(default_factory=list)  # positions in the tokenizer's layer list
    layers: list[int] = field(default_factory=list)  # the encoder layers those are
    target_sizes: list[int] = field(default_factory=list)  # frames: the codebooks predicted
    dim: int = 256
    hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.1
    downsample: int = 1  # sequence head: frames stacked k at a time before the BiLSTM (CPU budgets)
    tokenizer: dict = field(default_factory=dict)  # fingerprint, source, frame rate

    @property
    def num_layers(self) -> int:
        return len(self.codebook_sizes) if self.input == "discrete" else len(self.feature_dims)

    def to_dict(self) -> dict:
        return {"type": "speechunits-probe", "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict, source: object = "<config>") -> "ProbeConfig":
        if d.get("type") != "speechunits-probe":
            raise ValueError(f"{source}: not a speechunits probe (type {d.get('type')!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{source}: probe format_version {d.get('format_version')!r}, this version reads {FORMAT_VERSION}")
        known = set(cls.__dataclass_fields__)
        body = {k: v for k, v in d.items() if k not in ("type", "format_version")}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"{source}: unknown probe settings {unknown}")
        cfg = cls(**body)
        if cfg.kind not in ("sequence", "utterance", "frames") or cfg.input not in ("discrete", "continuous"):
            raise ValueError(f"{source}: kind {cfg.kind!r} / input {cfg.input!r} not understood")
        if (not cfg.target_sizes if cfg.kind == "frames" else not cfg.symbols) or cfg.num_layers < 1:
            raise ValueError(f"{source}: a probe needs symbols (or target codebooks) and at least one layer")
        return cfg


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over the real frames (x-vector style)."""

    def __init__(self, dim: int, bottleneck: int = 64) -> None:
        super().__init__()
        self.att = nn.Sequential(nn.Linear(dim, bottleneck), nn.Tanh(), nn.Linear(bottleneck, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x [B, T, D], mask [B, T] bool
        a = self.att(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(a, dim=1)[..., None]
        mean = (w * x).sum(1)
        var = (w * (x - mean[:, None]) ** 2).sum(1)
        return torch.cat([mean, torch.sqrt(var.clamp_min(1e-6))], dim=-1)


class ProbeModel(nn.Module):
    """Front-end + head. ``forward(inputs, lengths, keep=None) -> (logits, layer weights [B, T, L])``.

    Sequence tasks give ``[B, T, symbols + 1]`` log-probabilities (blank first); utterance tasks
    ``[B, classes]`` logits.
    """

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.input == "discrete":
            cents = None if c.centroid_dims is None else [torch.zeros(k, d) for k, d in zip(c.codebook_sizes, c.centroid_dims)]
            self.frontend: nn.Module = LayerAttention(c.codebook_sizes, c.dim, centroids=cents)
        else:
            self.frontend = FeatureLayerAttention(c.feature_dims, c.dim)
        self.drop = nn.Dropout(c.dropout)
        if c.kind in ("sequence", "frames"):
            self.stack = nn.Linear(c.downsample * c.dim, c.dim) if c.downsample > 1 else None
            self.rnn = nn.LSTM(c.dim, c.hidden, num_layers=c.lstm_layers, batch_first=True, bidirectional=True,
                               dropout=c.dropout if c.lstm_layers > 1 else 0.0)
            self.out = nn.Linear(2 * c.hidden, sum(c.target_sizes) if c.kind == "frames" else len(c.symbols) + 1)
        else:
            self.frame = nn.Sequential(nn.Linear(c.dim, c.hidden), nn.ReLU())
            self.pool = AttentiveStatsPool(c.hidden)
            self.out = nn.Linear(2 * c.hidden, len(c.symbols))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        T = inputs.shape[1]
        mask = torch.arange(T, device=inputs.device)[None] < lengths[:, None]
        x, w = self.frontend(inputs, keep)
        x = self.drop(x) * mask[..., None]
        if self.config.kind in ("sequence", "frames"):
            x, lengths, T = self._downsample(x, lengths)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=T)
            logits = self.out(self.drop(h))
            return (logits if self.config.kind == "frames" else F.log_softmax(logits, dim=-1)), w
        h = self.frame(x)
        return self.out(self.drop(self.pool(h, mask))), w

    def _downsample(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Stack ``downsample`` consecutive frames (zero-padded at the end) into one."""
        k = self.config.downsample
        if k <= 1:
            return x, lengths, x.shape[1]
        B, T, D = x.shape
        pad = (-T) % k
        x = F.pad(x, (0, 0, 0, pad)).reshape(B, (T + pad) // k, k * D)
        return self.stack(x), (lengths + k - 1) // k, (T + pad) // k

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of the head's output for input ``lengths`` (CTC needs them)."""
        k = self.config.downsample if self.config.kind in ("sequence", "frames") else 1
        return (lengths + k - 1) // k

    # -- artifact ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (WEIGHTS + ".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        os.replace(tmp, d / WEIGHTS)
        atomic_write_text(d / CONFIG, json.dumps(self.config.to_dict(), indent=2) + "\n")
        return d

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "ProbeModel":
        """Load a saved probe (safetensors only; the config is checked before any tensor is read)."""
        from safetensors.torch import load_file

        d = Path(directory)
        try:
            raw = json.loads((d / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{d / CONFIG}: cannot read the probe config ({e})") from None
        model = cls(ProbeConfig.from_dict(raw, d / CONFIG))
        try:
            state = load_file(str(d / WEIGHTS))
        except Exception as e:  # a truncated or foreign file: one line naming it
            raise ValueError(f"{d / WEIGHTS}: not readable safetensors ({e})") from None
        mine = model.state_dict()
        if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
            raise ValueError(f"{d / WEIGHTS}: the weights do not match the probe described by {CONFIG}")
        model.load_state_dict(state)
        return model.to(device).eval()
