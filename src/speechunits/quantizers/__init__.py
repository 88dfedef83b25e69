"""Quantizers: frames -> unit ids. K-means (single and multi-layer), fitted from a feature stream.

- :class:`KMeans`: streamed, seeded, budgeted fit (k-means++ restarts + Lloyd in torch),
  exact chunked assignment, safetensors save/load.
- :class:`MultiLayerKMeans`: one KMeans per layer, ``[frames, L, D] -> [frames, L]``.
- :func:`fit_sweep`: every (layer, k) of a sweep from one pass over the features.
- :func:`sample_frames` / :class:`FrameSampler`: the seeded uniform reservoir behind the fits.
"""

from .checkpoint import CheckpointError
from .kmeans import KMeans
from .multilayer import MultiLayerKMeans
from .sampling import FrameSample, FrameSampler, sample_frames
from .sweep import fit_sweep

__all__ = [
    "CheckpointError",
    "FrameSample",
    "FrameSampler",
    "KMeans",
    "MultiLayerKMeans",
    "fit_sweep",
    "sample_frames",
]
