"""The Whisper audio encoder as a plain torch module, with transformers' parameter names.

Conv stem (``conv1``: k 3, ``conv2``: k 3 stride 2, both GELU) -> + sinusoidal positions
(``embed_positions``) -> pre-LN transformer layers -> ``layer_norm``. The parameter names are
those of transformers' ``WhisperEncoder`` (``layers.{i}.self_attn.q_proj``...), so a state dict
moves between the two unchanged, and a test checks both give the same output.

Why our own module rather than transformers' forward: transformers' ``WhisperEncoder`` insists on
30-s inputs (3000 mel frames) and has no padding mask. Here an input of any length up to 30 s
runs on its own frames with the positional table sliced, and a batch of unequal lengths is
exact: mel frames past each input's end are zeroed before each convolution (the zero padding the
convolution would have seen), and attention ignores padded frames. So batched = unbatched, and
the forward stops after the highest layer asked for.

Layers: 0 = conv stem + positions (input of layer 1), ``i`` = output of layer ``i``, and
``num_layers + 1`` = the final layer norm (transformers' ``last_hidden_state``).

Example:
    >>> import torch
    >>> dims = WhisperDims(n_mels=80, d_model=32, layers=2, heads=2, ffn=64, max_positions=1500)
    >>> m = WhisperEncoderModel(dims).eval()
    >>> out = m(torch.zeros(1, 80, 100), torch.tensor([100]), [0, 3])
    >>> tuple(out[3].shape)
    (1, 50, 32)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WhisperDims", "WhisperEncoderModel", "encoder_frames", "sinusoids"]


@dataclass(frozen=True)
class WhisperDims:
    """The shape of a Whisper encoder (transformers' ``WhisperConfig`` encoder fields)."""

    n_mels: int = 80
    d_model: int = 384
    layers: int = 4
    heads: int = 6
    ffn: int = 1536
    max_positions: int = 1500

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "WhisperDims":
        """From a transformers ``config.json`` of model type ``whisper``."""
        return cls(
            n_mels=int(cfg.get("num_mel_bins", 80)),
            d_model=int(cfg["d_model"]),
            layers=int(cfg["encoder_layers"]),
            heads=int(cfg["encoder_attention_heads"]),
            ffn=int(cfg["encoder_ffn_dim"]),
            max_positions=int(cfg.get("max_source_positions", 1500)),
        )

    def as_dict(self) -> dict:
        return asdict(self)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's positional table: sin then cos over log-spaced timescales (``[length, channels]``)."""
    half = channels // 2
    inc = torch.log(torch.tensor(max_timescale)) / (half - 1)
    inv = torch.exp(-inc * torch.arange(half, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def encoder_frames(mel_frames: int) -> int:
    """Encoder frames from mel frames: ``conv2`` (kernel 3, stride 2, padding 1) gives ``ceil(n / 2)``."""
    return (int(mel_frames) + 1) // 2


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)  # Whisper's key projection has no bias
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)),
                                           attn_mask=key_mask)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class _Layer(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.self_attn = _Attention(dims.d_model, dims.heads)
        self.self_attn_layer_norm = nn.LayerNorm(dims.d_model)
        self.fc1 = nn.Linear(dims.d_model, dims.ffn)
        self.fc2 = nn.Linear(dims.ffn, dims.d_model)
        self.final_layer_norm = nn.LayerNorm(dims.d_model)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoderModel(nn.Module):
    """Whisper's encoder; ``forward(mel, mel_lengths, layers)`` returns ``{layer: [B, T, d]}``."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, dims.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.d_model, dims.d_model, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(dims.max_positions, dims.d_model)
        with torch.no_grad():
            self.embed_positions.weight.copy_(sinusoids(dims.max_positions, dims.d_model))
        self.layers = nn.ModuleList(_Layer(dims) for _ in range(dims.layers))
        self.layer_norm = nn.LayerNorm(dims.d_model)

    @property
    def final_norm_layer(self) -> int:
        """The index of the final layer norm in the layer convention (``layers + 1``)."""
        return self.dims.layers + 1

    def forward(
        self, mel: torch.Tensor, mel_lengths: torch.Tensor, layers: Sequence[int], position_offset: int = 0
    ) -> dict[int, torch.Tensor]:
        """Hidden states of ``layers`` for ``mel`` ``[B, n_mels, L]`` with true lengths ``mel_lengths``.

        ``position_offset`` shifts every frame's position (a view encoded as if it started later:
        Spin's guard against codes that encode position); it must keep frames inside the table.
        """
        wanted = sorted(set(int(i) for i in layers))
        b, _, length = mel.shape
        frames = encoder_frames(length)
        if frames + position_offset > self.dims.max_positions:
            raise ValueError(
                f"{frames} frames at position offset {position_offset} exceed Whisper's "
                f"{self.dims.max_positions} positions (30 s): encode longer audio in windows"
            )
        mel_lengths = mel_lengths.to(mel.device)
        ragged = bool((mel_lengths != length).any())
        if ragged:  # zero what lies past each input's end, as the convolution's own padding would
            mel = mel * (torch.arange(length, device=mel.device)[None, None, :] < mel_lengths[:, None, None])
        x = F.gelu(self.conv1(mel))
        if ragged:
            x = x * (torch.arange(length, device=mel.device)[None, None, :] < mel_lengths[:, None, None])
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.embed_positions.weight[position_offset : position_offset + frames]
        key_mask = None
        if ragged:
            valid = torch.arange(frames, device=mel.device)[None, :] < ((mel_lengths + 1) // 2)[:, None]
            key_mask = valid[:, None, None, :]
        out: dict[int, torch.Tensor] = {}
        if 0 in wanted:
            out[0] = x
        top = wanted[-1]
        for i, layer in enumerate(self.layers[: min(top, self.dims.layers)], start=1):
            x = layer(x, key_mask)
            if i in wanted:
                out[i] = x
        if top == self.final_norm_layer:
            out[top] = self.layer_norm(x)
        return out
