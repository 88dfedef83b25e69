"""Fit a (layer x k) grid of k-means from ONE pass over the features.

The encoder is by far the expensive part of a layer/k sweep (DESIGN.md: ~0.07 s per second of
audio on 2 cores), so :func:`fit_sweep` reads the feature stream once, keeps one shared uniform
sample of frames for all requested layers (same frames in every layer), and then fits every
(layer, k) KMeans from those samples: L layers x K sizes cost one encoder pass, not L x K.

Stream items: ``[frames, L, D]`` arrays/tensors (position ``i`` on axis 1 holds layer
``input_layers[i]``, default ``i``: the encoder's full hidden-state stack), mappings
``{layer: [frames, D]}`` or sequences of per-layer ``[frames, D]`` arrays.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stream = [rng.standard_normal((100, 4, 8)).astype(np.float32) for _ in range(5)]
    >>> fits = fit_sweep(stream, layers=[1, 3], ks=[4, 8], seed=0)
    >>> sorted(fits), fits[3, 8].fit_stats["frames_seen"]
    ([(1, 4), (1, 8), (3, 4), (3, 8)], 500)
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

from .kmeans import KMeans
from .layer_select import select_layers
from .sampling import FrameSample, FrameSampler

log = logging.getLogger("speechunits.quantizers.sweep")


def _views(item, layers: Sequence[int], input_layers: Sequence[int] | None) -> list:
    if input_layers is None and not isinstance(item, Mapping):  # default: position i is layer i
        count = len(item) if isinstance(item, (list, tuple)) else int(item.shape[1])
        input_layers = range(count)
    bad = [n for n in layers if not isinstance(item, Mapping) and n not in input_layers]
    if bad:
        raise ValueError(f"feature item holds layers {list(input_layers)}, sweep asks for {bad}")
    return select_layers(item, layers, list(input_layers) if input_layers is not None else None)


def fit_sweep(
    feature_stream: Iterable,
    layers: Sequence[int],
    ks: Sequence[int],
    *,
    input_layers: Sequence[int] | None = None,
    max_frames: int | None = None,
    max_bytes: int | None = None,
    percent: float | None = None,
    seed: int = 0,
    **kmeans_kwargs,
) -> dict[tuple[int, int], KMeans]:
    """Fit ``KMeans(k)`` for every ``layer in layers`` and ``k in ks``; the stream is read once.

    ``max_bytes`` bounds the samples of all layers together plus the working memory of the
    largest single fit (fits run one after another). ``kmeans_kwargs`` go to every
    :class:`KMeans` (``n_init``, ``max_iter``, ``device``, ...). Returns ``{(layer, k): KMeans}``;
    wrap a column in :class:`MultiLayerKMeans` for a multi-layer tokenizer.
    """
    layers = sorted(set(int(n) for n in layers))
    ks = sorted(set(int(k) for k in ks))
    if not layers or not ks:
        raise ValueError("fit_sweep needs at least one layer and one k")
    probes = [KMeans(k, seed=seed, **kmeans_kwargs) for k in ks]

    def overhead(dims: Sequence[int]) -> tuple[int, int]:
        fixed = max(p.working_bytes([max(dims)])[0] for p in probes)
        return fixed, probes[0].working_bytes([max(dims)])[1]

    sampler = FrameSampler(max_frames=max_frames, max_bytes=max_bytes, percent=percent, seed=seed,
                           overhead=overhead)
    for item in feature_stream:
        sampler.add(_views(item, layers, input_layers))
    sample = sampler.finish()
    log.info("sweep: sampled %d of %d frames for layers %s", len(sample), sample.frames_seen, layers)
    fits: dict[tuple[int, int], KMeans] = {}
    for layer, arr in zip(layers, sample.arrays):
        part = FrameSample([arr], sample.frames_seen, sample.capacity, sample.rate, sample.seed)
        for k in ks:
            km = KMeans(k, seed=seed, **kmeans_kwargs).fit_sample(part)
            km.fit_stats["layer"] = layer
            log.info("sweep: layer %d k=%d inertia/frame %.4f", layer, k, km.fit_stats["inertia_per_frame"])
            fits[layer, k] = km
    return fits
