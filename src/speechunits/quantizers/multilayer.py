"""Multi-layer k-means tokens: one :class:`KMeans` per chosen SSL layer (paper 3, arXiv 2406.10735).

``assign(features)`` takes the chosen layers' features ``[frames, L, D]`` with ``L ==
len(layers)`` in the order of ``self.layers`` (ascending), or a mapping ``{layer: [frames, D]}``,
and returns ``[frames, L]`` unit ids (column ``j`` from layer ``layers[j]``). Given a full
hidden-state stack, pass ``input_layers`` to say which layer each position of axis 1 holds.

Saved like a single KMeans: one ``model.safetensors`` with ``layer{n}.centroids`` tensors and a
``config.json`` holding each layer's KMeans config under ``"layers": {"n": {...}}``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.standard_normal((300, 13, 8)).astype(np.float32)   # [frames, all layers, D]
    >>> ml = MultiLayerKMeans.fit_layers(feats, layers=[3, 9], k=5, seed=0)
    >>> ml.assign(feats, input_layers=range(13)).shape
    torch.Size([300, 2])
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import torch

from .. import __version__
from .checkpoint import CheckpointError, load_dir, save_dir
from .kmeans import KMeans
from .layer_select import select_layers
from .sweep import fit_sweep

FORMAT_VERSION = 1


class MultiLayerKMeans:
    """One KMeans per layer, keyed by layer index (ascending)."""

    def __init__(self, quantizers: Mapping[int, KMeans]) -> None:
        if not quantizers:
            raise ValueError("MultiLayerKMeans needs at least one layer")
        self.quantizers: dict[int, KMeans] = {int(n): quantizers[n] for n in sorted(quantizers)}

    @property
    def layers(self) -> list[int]:
        return list(self.quantizers)

    @property
    def ks(self) -> list[int]:
        """Codebook size of each layer, in the order of :attr:`layers`."""
        return [q.k for q in self.quantizers.values()]

    @classmethod
    def fit_layers(cls, data, layers: Sequence[int], k: int | Mapping[int, int], *,
                   input_layers: Sequence[int] | None = None, max_frames: int | None = None,
                   max_bytes: int | None = None, percent: float | None = None, **kmeans_kwargs) -> "MultiLayerKMeans":
        """Fit every layer from one pass over ``data`` (one ``[frames, L, D]`` item or a stream).

        All layers share the sampled frames; ``max_bytes`` is split evenly across layers.
        ``input_layers`` defaults to ``range(L)`` here (features are the encoder's full stack).
        """
        ks = {n: (k[n] if isinstance(k, Mapping) else k) for n in layers}
        stream = [data] if isinstance(data, (np.ndarray, torch.Tensor)) else data
        fits = fit_sweep(stream, layers, sorted(set(ks.values())), input_layers=input_layers, max_frames=max_frames,
                         max_bytes=max_bytes, percent=percent, **kmeans_kwargs)
        return cls({n: fits[n, ks[n]] for n in layers})

    @torch.no_grad()
    def assign(self, features, *, input_layers: Sequence[int] | None = None) -> torch.Tensor:
        """Unit ids ``[frames, L]``, column ``j`` from layer ``self.layers[j]``."""
        views = select_layers(features, self.layers, input_layers)
        return torch.stack([self.quantizers[n].assign(v) for n, v in zip(self.layers, views)], dim=1)

    def to(self, device: str | torch.device) -> "MultiLayerKMeans":
        for q in self.quantizers.values():
            q.to(device)
        return self

    # ------------------------------------------------------------------ save / load
    def config(self) -> dict:
        return {"type": "multilayer_kmeans", "format_version": FORMAT_VERSION, "speechunits_version": __version__,
                "layers": {str(n): q.config() for n, q in self.quantizers.items()}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"layer{n}.centroids": q.state_dict()["centroids"] for n, q in self.quantizers.items()}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor], *, device: str | torch.device = "cpu",
                   source: object = "<state>") -> "MultiLayerKMeans":
        if config.get("type") != "multilayer_kmeans":
            raise CheckpointError(source, f"config type is {config.get('type')!r}, expected 'multilayer_kmeans'")
        layers = config.get("layers")
        if not isinstance(layers, dict) or not layers:
            raise CheckpointError(source, "config has no 'layers' mapping")
        quantizers = {}
        for key, cfg in layers.items():
            if not key.lstrip("-").isdigit() or not isinstance(cfg, dict):
                raise CheckpointError(source, f"bad layer entry {key!r} in config")
            name = f"layer{key}.centroids"
            if name not in tensors:
                raise CheckpointError(source, f"missing tensor {name!r} (has {sorted(tensors)})")
            quantizers[int(key)] = KMeans.from_state(cfg, {"centroids": tensors[name]}, device=device,
                                                     source=f"{source} [{name}]")
        extra = set(tensors) - {f"layer{n}.centroids" for n in layers}
        if extra:
            raise CheckpointError(source, f"unexpected tensor(s) {sorted(extra)} not in the config's layers")
        return cls(quantizers)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_dir(path, self.config(), self.state_dict())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "MultiLayerKMeans":
        config, tensors = load_dir(path, expected_type="multilayer_kmeans")
        return cls.from_state(config, tensors, device=device, source=os.path.join(path, "model.safetensors"))

    def __repr__(self) -> str:
        return "MultiLayerKMeans(" + ", ".join(f"{n}: k={q.k}" for n, q in self.quantizers.items()) + ")"
