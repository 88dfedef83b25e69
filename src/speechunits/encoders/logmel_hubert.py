"""``LogMelHubertModel``: a HuBERT whose front-end is a learnable log-mel filterbank.

Why it exists (docs/results.md, "Why the encoder did not learn"): on the DC-Spin recipe's hour
of audio a small HuBERT cannot learn its own front-end in the steps two CPU cores give it, and
the best a HuBERT CNN can start from, a filterbank of rectified band magnitudes, is missing the
compression that makes spectra phonetic (k-means PNMI 0.39 without a log, 0.56 with one). No
HuBERT CNN activation is a log, so this model replaces the CNN with one that has it:

    wave -> conv (kernel 400, stride 320, 2 x n_mels filters: a cos/sin pair per mel band)
         -> power per band (cos^2 + sin^2) -> log(power + log_floor)       [B, n_mels, frames]

The filters start as Hann-windowed mel-spaced quadrature pairs
(:func:`~speechunits.encoders.pretrain.frontend.mel_quadrature_filterbank`) and are trained
with the rest. Everything after the front-end is transformers' ``HubertModel`` unchanged
(feature projection, masking vector, positional convolution, transformer), and so are the
frame count ``floor((n - 400) / 320) + 1`` (config ``conv_kernel=(400,)``, ``conv_stride=(320,)``,
which transformers uses for lengths and attention masks) and padding safety: every frame sees
only its own 400 samples.

It is a ``PreTrainedModel`` with its own ``model_type`` (``"logmel-hubert"``), registered with
transformers' ``AutoConfig`` / ``AutoModel`` by :func:`register_auto_classes` (speechunits calls
it before every load), so ``save_pretrained`` / ``from_pretrained`` / ``AutoModel`` and
:class:`~speechunits.encoders.HFEncoder` treat it like any HF encoder. Plain transformers without
speechunits imported does not know the type.

Example:
    >>> import torch
    >>> cfg = LogMelHubertConfig(n_mels=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                          intermediate_size=32, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    >>> m = LogMelHubertModel(cfg).eval()
    >>> m(torch.zeros(1, 16000)).last_hidden_state.shape   # floor((16000 - 400) / 320) + 1 = 49
    torch.Size([1, 49, 16])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, HubertConfig, HubertModel

from speechunits.encoders.pretrain.frontend import HOP, WINDOW, mel_quadrature_filterbank

MODEL_TYPE = "logmel-hubert"


class LogMelHubertConfig(HubertConfig):
    """``HubertConfig`` plus ``n_mels`` and ``log_floor``; the CNN fields are fixed to one 400/320 window."""

    model_type = MODEL_TYPE

    def __init__(self, n_mels: int = 80, log_floor: float = 1e-6, **kwargs) -> None:
        for key in ("conv_dim", "conv_kernel", "conv_stride"):
            kwargs.pop(key, None)
        # The front-end is one 400-sample window every 320 samples with n_mels outputs: these
        # are the fields transformers reads for frame counts and the feature projection's width.
        kwargs.setdefault("feat_extract_norm", "layer")  # per-frame front-end: padded batches are exact
        super().__init__(conv_dim=(int(n_mels),), conv_kernel=(WINDOW,), conv_stride=(HOP,), **kwargs)
        self.n_mels = int(n_mels)
        self.log_floor = float(log_floor)


class LogMelFrontend(nn.Module):
    """``[B, samples]`` -> log band powers ``[B, n_mels, frames]`` (learnable quadrature filters)."""

    def __init__(self, config: LogMelHubertConfig) -> None:
        super().__init__()
        self.n_mels = int(config.n_mels)
        self.log_floor = float(config.log_floor)
        self.filters = nn.Conv1d(1, 2 * self.n_mels, WINDOW, stride=HOP, bias=False)
        self._requires_grad = True
        self.gradient_checkpointing = False

    def _freeze_parameters(self) -> None:  # HubertModel.freeze_feature_encoder calls this
        for p in self.parameters():
            p.requires_grad = False
        self._requires_grad = False

    def reset_filterbank_(self) -> None:
        """Set the filters to the mel-spaced quadrature pairs (cos for band b at b, sin at n_mels + b)."""
        cos, sin = mel_quadrature_filterbank(self.n_mels)
        w = torch.from_numpy(np.concatenate([cos, sin])).to(self.filters.weight)
        with torch.no_grad():
            self.filters.weight.copy_(w[:, None, :])

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        y = self.filters(input_values[:, None, :])
        cos, sin = y[:, : self.n_mels], y[:, self.n_mels :]
        return torch.log(cos * cos + sin * sin + self.log_floor)


class LogMelHubertModel(HubertModel):
    """transformers' ``HubertModel`` with :class:`LogMelFrontend` as its ``feature_extractor``."""

    config_class = LogMelHubertConfig

    def __init__(self, config: LogMelHubertConfig) -> None:
        super().__init__(config)
        self.feature_extractor = LogMelFrontend(config)
        self.feature_extractor.reset_filterbank_()


_registered = False


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` resolve ``model_type: "logmel-hubert"`` (idempotent)."""
    global _registered
    if _registered:
        return
    AutoConfig.register(MODEL_TYPE, LogMelHubertConfig, exist_ok=True)
    AutoModel.register(LogMelHubertConfig, LogMelHubertModel, exist_ok=True)
    _registered = True
