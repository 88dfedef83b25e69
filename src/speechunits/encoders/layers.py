"""Run a transformers SSL model up to the layers asked for, capturing their hidden states.

Layer 0 is the input of the first transformer layer (CNN + positional conv), layer ``i`` the raw
output of transformer layer ``i``. Hooks capture them, and a pre-hook on the first layer above
the highest one requested stops the forward pass there, so stopping at layer 6 of 12 costs about
half the forward. The model itself is not changed. Used with autograd (pre-training, Spin) and
without (``HFEncoder``).

Example:
    >>> import torch
    >>> from transformers import HubertConfig, HubertModel
    >>> m = HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
    ...                              intermediate_size=32, conv_dim=(16,) * 7)).eval()
    >>> out = run_to_layers(m, [0, 2], input_values=torch.zeros(1, 16000))
    >>> sorted(out), tuple(out[2].shape)
    ([0, 2], (1, 49, 16))
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the pre-hook above the highest requested layer; caught below."""


def run_to_layers(model: nn.Module, layers: Sequence[int], **forward_kwargs) -> dict[int, torch.Tensor]:
    """``{layer: [B, frames, dim]}`` for ``model(**forward_kwargs)``; layers are absolute indices."""
    blocks = model.encoder.layers
    wanted = sorted(set(int(i) for i in layers))
    got: dict[int, torch.Tensor] = {}

    def grab_input(module, args, kwargs):
        got[0] = args[0] if args else kwargs["hidden_states"]

    def grab_output(i):
        def hook(module, args, output):
            got[i] = output[0] if isinstance(output, tuple) else output

        return hook

    def stop(module, args, kwargs):
        raise _StopForward

    handles = []
    try:
        if 0 in wanted:
            handles.append(blocks[0].register_forward_pre_hook(grab_input, with_kwargs=True))
        for i in wanted:
            if i > 0:
                handles.append(blocks[i - 1].register_forward_hook(grab_output(i)))
        if wanted[-1] < len(blocks):  # skip every layer above the highest one requested
            handles.append(blocks[wanted[-1]].register_forward_pre_hook(stop, with_kwargs=True))
        try:
            with warnings.catch_warnings():
                # WavLM's own attention mixes a bool padding mask with a float bias: harmless.
                warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
                model(**forward_kwargs)
        except _StopForward:
            pass
    finally:
        for h in handles:
            h.remove()
    return got
