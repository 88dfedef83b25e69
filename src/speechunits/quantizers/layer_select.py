"""Picking the chosen layers out of one item of features, whatever its shape.

Shared by the sweep (which fits from a feature stream) and :class:`.multilayer.MultiLayerKMeans`
(which assigns units): the sweep is the lower module, and both need the same reading of an item.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch


def select_layers(features, layers: Sequence[int], input_layers: Sequence[int] | None) -> list:
    """Per-layer ``[frames, D]`` views of one item, in the order of ``layers``.

    ``features``: a mapping ``{layer: [frames, D]}``, a sequence of ``[frames, D]`` arrays or a
    ``[frames, L, D]`` array/tensor whose position ``i`` holds layer ``input_layers[i]``
    (``input_layers=None``: position ``i`` is ``layers[i]``).
    """
    if isinstance(features, Mapping):
        missing = [n for n in layers if n not in features]
        if missing:
            raise ValueError(f"features lack layer(s) {missing} (have {sorted(features)})")
        return [features[n] for n in layers]
    if isinstance(features, (list, tuple)):
        pos_of = {n: i for i, n in enumerate(input_layers if input_layers is not None else layers)}
        return [features[pos_of[n]] for n in layers]
    t = features if isinstance(features, torch.Tensor) else np.asarray(features)
    if t.ndim != 3:
        raise ValueError(f"expected [frames, layers, dim] features, got shape {tuple(t.shape)}")
    order = list(input_layers) if input_layers is not None else list(layers)
    if input_layers is None and t.shape[1] != len(layers):
        raise ValueError(f"features hold {t.shape[1]} layers but the quantizer has {len(layers)} "
                         f"({list(layers)}); pass input_layers= for a full hidden-state stack")
    if len(order) != t.shape[1]:
        raise ValueError(f"input_layers names {len(order)} layers, features hold {t.shape[1]}")
    try:
        return [t[:, order.index(n)] for n in layers]
    except ValueError:
        raise ValueError(f"input_layers {order} lack some of {list(layers)}") from None
