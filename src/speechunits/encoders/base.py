"""The one interface every frame-feature encoder implements.

An encoder maps waveforms (float32 mono at ``sample_rate``) to frame features at a fixed frame
rate, for one or more *layers*. Every encoder returns, per utterance, a float32 CPU tensor
``[frames, len(layers), dim]`` whose frame count is exactly ``num_frames(len(wave))``, so
features (and the units made from them) line up with frame labels without guessing.

Frame convention (all built-in encoders at 50 Hz): frame ``i`` is computed from samples
``[i * hop, i * hop + window)``; with ``hop = 320`` and ``window = 400`` (16 kHz) the count is
``floor((n - 400) / 320) + 1`` for ``n >= 400`` and 0 below (no padding at either end, the
"snip edges" convention of Kaldi and of the wav2vec 2.0 / HuBERT CNN).

Layer convention: layer 0 is the input of the first transformer layer (for SSL models the CNN +
positional-conv output, ``hidden_states[0]`` in transformers), layer ``i`` the output of
transformer layer ``i``; ``-1`` (and other negative indices, Python style) counts from the top, so
``-1`` is ``num_layers``. Encoders without layers (spectral) have ``num_layers = 0``.

Example:
    >>> import numpy as np
    >>> from speechunits.encoders import load_encoder
    >>> enc = load_encoder("mfcc")
    >>> feats = enc.encode([np.zeros(16000, dtype=np.float32)], layers=[0])
    >>> feats[0].shape, enc.num_frames(16000)
    (torch.Size([49, 1, 39]), 49)
"""

from __future__ import annotations

import abc
from typing import Sequence, Union

import numpy as np
import torch

Wave = Union[np.ndarray, torch.Tensor]


class Encoder(abc.ABC):
    """Waveforms in, per-utterance ``[frames, layers, dim]`` float32 features out."""

    name: str
    sample_rate: int = 16000
    frame_rate: float
    num_layers: int  # selectable layers are 0..num_layers
    dim: int
    device: torch.device

    @abc.abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """The exact number of frames ``encode`` returns for ``num_samples`` samples (0 if too short)."""

    @abc.abstractmethod
    def encode(self, waves: Sequence[Wave], layers: Sequence[int] = (-1,)) -> list[torch.Tensor]:
        """One float32 CPU tensor ``[num_frames(len(w)), len(layers), dim]`` per wave."""

    @abc.abstractmethod
    def config(self) -> dict:
        """JSON-serialisable provenance: enough to reproduce these features."""

    # -- shared helpers ------------------------------------------------------------------
    def resolve_layers(self, layers: Sequence[int]) -> list[int]:
        """Map layer indices (negative = from the top) to ``0..num_layers``, validating them."""
        if isinstance(layers, int):
            layers = [layers]
        if len(layers) == 0:
            raise ValueError("no layers requested")
        out = []
        for layer in layers:
            if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
                raise TypeError(f"layer indices must be integers, got {layer!r}")
            idx = int(layer) + self.num_layers + 1 if layer < 0 else int(layer)
            if not 0 <= idx <= self.num_layers:
                raise ValueError(
                    f"layer {layer} out of range for {self.name}: choose 0..{self.num_layers} "
                    f"(or -1 for the final layer)"
                )
            out.append(idx)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, layers=0..{self.num_layers}, dim={self.dim}, "
            f"frame_rate={self.frame_rate:g}, device={self.device})"
        )


_FINITE_BLOCK = 1 << 20


def as_wave(wave: Wave, index: int = 0) -> torch.Tensor:
    """A 1-D float32 CPU tensor from a numpy array or tensor, rejecting what cannot be audio.

    Integer PCM is refused rather than silently scaled: the caller must know its full scale
    (``speechunits.audio.load`` does that).
    """
    t = torch.from_numpy(np.ascontiguousarray(wave)) if isinstance(wave, np.ndarray) else wave
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"wave {index}: expected a numpy array or torch tensor, got {type(wave).__name__}")
    if not (t.is_floating_point()):
        raise TypeError(f"wave {index}: expected float samples in [-1, 1], got dtype {t.dtype}")
    if t.dim() == 2 and 1 in t.shape:
        t = t.reshape(-1)
    if t.dim() != 1:
        raise ValueError(f"wave {index}: expected a mono 1-D waveform, got shape {tuple(t.shape)}")
    t = t.detach().to(device="cpu", dtype=torch.float32)
    # In blocks: torch.isfinite builds |x| and three masks the size of the input (~400 MB for
    # an hour), more than the features themselves take.
    for s in range(0, t.numel(), _FINITE_BLOCK):
        if not bool(torch.isfinite(t[s : s + _FINITE_BLOCK]).all()):
            raise ValueError(f"wave {index}: contains NaN or inf samples")
    return t


def conv_num_frames(num_samples: int, kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Output length of a stack of unpadded 1-D convolutions (0 when the input is too short).

    This is the formula the wav2vec 2.0 CNN follows layer by layer; computing it per layer (not
    from the overall receptive field) is what the model itself does, so it is exact by construction.
    """
    n = int(num_samples)
    for k, s in zip(kernels, strides):
        if n < k:
            return 0
        n = (n - k) // s + 1
    return n


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """``(window, hop)`` in samples of one output frame of a conv stack: (400, 320) for wav2vec 2.0."""
    window, hop = 1, 1
    for k, s in zip(kernels, strides):
        window += (k - 1) * hop
        hop *= s
    return window, hop
