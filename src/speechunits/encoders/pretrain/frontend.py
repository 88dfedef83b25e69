"""The ``fbank`` front-end: a HuBERT CNN that starts as a mel-spaced quadrature filterbank.

Measured on the DC-Spin recipe's data (docs/results.md, "Why the encoder did not learn"): with
the light CNN of :data:`~.model.LIGHT_CONV`, 1,000 steps of masked prediction did not make the
CNN output any more phonetic than at random initialisation (PNMI of k-means units 0.296 against
0.301), while k-means on MFCCs scores 0.602. A tiny model on an hour of audio cannot learn its
filterbank in the steps it gets, so this front-end starts from one; it is still a plain
``HubertModel`` (same config fields, same 400-sample window every 320 samples), initialised
differently and trained end to end:

* conv 0 (kernel 400, stride 320): for each of ``n`` mel-spaced bands (60 Hz - 7.6 kHz) four
  filters, ``+cos, -cos, +sin, -sin``: a Hann-windowed envelope one band wide on the band
  centre's carrier (a quadrature pair, unit energy), then layer norm and GELU as in any
  layer-norm HuBERT CNN; GELU ~ ReLU makes the four channels the rectified parts of both phases;
* conv 1 (kernel 1): channel ``2b`` sums band ``b``'s four rectified phases, ``|cos| + |sin|``,
  its envelope magnitude, and channel ``2b + 1`` is its negation (so the following layer norm +
  GELU keep the information on both sides of the mean); the remaining channels are random.

What the architecture cannot do is compress: a log of the band magnitudes takes k-means PNMI
from 0.39 to 0.56 on the same frames, and no HuBERT CNN activation is a log: the ``logmel``
front-end (:mod:`speechunits.encoders.logmel_hubert`) is the one that has it.

Example:
    >>> m = build_model("tiny", frontend="fbank")
    >>> m.config.conv_kernel, m.config.conv_stride
    ([400, 1], [320, 1])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_RATE, WINDOW, HOP = 16000, 400, 320
FBANK_CONV = ((WINDOW, 1), (HOP, 1))  # receptive field 400, hop 320: the 50 Hz convention


def mel_quadrature_filterbank(n_bands: int, lo: float = 60.0, hi: float = 7600.0) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)`` filters ``[n_bands, 400]``; ``|cos * x| + |sin * x|`` is a band's envelope."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def imel(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = imel(np.linspace(mel(lo), mel(hi), n_bands + 2))
    t = np.arange(WINDOW) - (WINDOW - 1) / 2
    cos, sin = np.empty((n_bands, WINDOW)), np.empty((n_bands, WINDOW))
    for b in range(n_bands):
        centre, half = (edges[b] + edges[b + 2]) / 2, (edges[b + 2] - edges[b]) / 2
        env = np.sinc(2 * half / SAMPLE_RATE * t) * np.hanning(WINDOW)
        c = env * np.cos(2 * np.pi * centre / SAMPLE_RATE * t)
        s = env * np.sin(2 * np.pi * centre / SAMPLE_RATE * t)
        norm = np.sqrt((c**2).sum() + (s**2).sum())
        cos[b], sin[b] = c / norm, s / norm
    return cos, sin


def fbank_overrides(conv_dim: tuple[int, ...]) -> dict:
    """Config fields of the ``fbank`` front-end for a preset whose CNN ends with ``conv_dim[-1]`` channels."""
    out = int(conv_dim[-1])
    n_bands = out // 4
    return {"conv_kernel": FBANK_CONV[0], "conv_stride": FBANK_CONV[1], "conv_dim": (4 * n_bands, out)}


def init_fbank_frontend_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Set the two conv layers of an ``fbank`` HubertModel to the filterbank (see the module docstring)."""
    convs = [layer.conv for layer in model.feature_extractor.conv_layers]
    if len(convs) != 2 or convs[0].kernel_size != (WINDOW,) or convs[0].stride != (HOP,):
        raise ValueError("not an fbank front-end: expected conv kernels (400, 1), strides (320, 1)")
    n_bands = convs[0].out_channels // 4
    if convs[1].out_channels < 2 * n_bands:
        raise ValueError(f"conv 1 needs at least {2 * n_bands} channels for {n_bands} bands")
    cos, sin = mel_quadrature_filterbank(n_bands)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        w0 = torch.from_numpy(np.concatenate([cos, -cos, sin, -sin])).float()
        convs[0].weight.copy_(w0[:, None, :])
        convs[0].bias.zero_()
        fan_in = convs[1].in_channels
        w1 = torch.randn(convs[1].out_channels, fan_in, 1, generator=gen) / fan_in**0.5
        w1[: 2 * n_bands] = 0.0
        for b in range(n_bands):
            phases = [b, n_bands + b, 2 * n_bands + b, 3 * n_bands + b]
            w1[2 * b, phases, 0] = 1.0
            w1[2 * b + 1, phases, 0] = -1.0
        convs[1].weight.copy_(w1)
        convs[1].bias.zero_()
    return model
