"""Fit tokenizers: one encoder pass over the data feeds every (layer, k) k-means of a sweep.

The audio is decoded ahead in a background thread, encoded once at every requested layer, and
a seeded reservoir keeps a uniform sample of frames within the budget (``max_frames``,
``percent`` or ``max_bytes``): the features of the whole corpus are never held in memory. Each
k-means is then fitted on the sample. ``joint=True`` gives one tokenizer per k whose units are
``[frames, layers]`` (a codebook per layer); ``joint=False`` gives one tokenizer per (layer, k).

Example:
    >>> import numpy as np
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.fit import fit_tokenizers
    >>> rng = np.random.default_rng(0)
    >>> waves = [0.1 * rng.standard_normal(16000).astype("float32") for _ in range(3)]
    >>> toks = fit_tokenizers(load_encoder("mfcc"), waves, layers=[0], ks=[4, 8], seed=0)
    >>> [t.vocab_sizes for t in toks]
    [[4], [8]]
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechunits.data.loader import describe_failure, iter_audio
from speechunits.data.manifest import Utterance
from speechunits.encoders import Encoder
from speechunits.quantizers import MultiLayerKMeans, fit_sweep
from speechunits.tokenizer import Tokenizer

log = logging.getLogger(__name__)


class NoUtterancesError(ValueError):
    """Not one utterance of the data could be decoded and encoded."""


class _Stats:
    def __init__(self, failures: list[dict] | None = None, warnings: list[dict] | None = None) -> None:
        self.utterances = 0
        self.seconds = 0.0
        self.failed: list[dict] = failures if failures is not None else []
        self.warnings: list[dict] = warnings if warnings is not None else []
        self.ids = hashlib.sha256()

    def nothing_encoded(self) -> str:
        return f"no utterance could be encoded ({len(self.failed)} failed): nothing to fit k-means on"


def _as_utterances(data: Iterable[Any]) -> Iterator[Utterance | np.ndarray]:
    for item in data:
        if isinstance(item, (str, os.PathLike)):
            yield Utterance(Path(item).stem, Path(item))
        else:
            yield item


def _feature_stream(encoder: Encoder, data: Iterable[Any], layers: list[int], stats: _Stats,
                    progress: bool) -> Iterator[torch.Tensor]:
    """Features ``[frames, L, D]`` per utterance; bad files are counted and skipped."""
    items = list(_as_utterances(data))
    utts = [x for x in items if isinstance(x, Utterance)]
    arrays = [x for x in items if not isinstance(x, Utterance)]
    bar = tqdm(total=len(items), unit="utt", desc="encode", disable=not progress)
    for j, wave in enumerate(arrays):
        yield from _encode_one(encoder, wave, f"<array {j}>", None, layers, stats)
        bar.update(1)
    for item in iter_audio(utts):
        stats.warnings.extend({"id": item.utt.id, "path": str(item.utt.path), "warning": w} for w in item.warnings)
        if item.wave is None:
            stats.failed.append({"id": item.utt.id, "path": str(item.utt.path), "reason": item.error or "unreadable"})
            log.warning("skipped %s", item.error)
        else:
            yield from _encode_one(encoder, item.wave, item.utt.id, item.utt.path, layers, stats)
        bar.update(1)
    bar.close()


def _encode_one(encoder: Encoder, wave: np.ndarray, uid: str, path: Path | None, layers: list[int],
                stats: _Stats) -> Iterator[torch.Tensor]:
    try:
        feats = encoder.encode([wave], layers)[0]
    except Exception as e:  # one utterance's failure (memory, a model error) costs only that utterance
        reason = describe_failure(e, "encoding")
        stats.failed.append({"id": uid, "path": str(path) if path is not None else uid, "reason": reason})
        log.warning("skipped %s: %s", uid, reason)
        return
    stats.utterances += 1
    stats.seconds += len(wave) / encoder.sample_rate
    stats.ids.update(uid.encode() + b"\n")
    if len(feats):
        yield feats


def fit_tokenizers(
    encoder: Encoder,
    data: Iterable[Utterance | str | os.PathLike | np.ndarray],
    *,
    layers: Sequence[int] = (-1,),
    ks: Sequence[int] = (500,),
    seed: int = 0,
    joint: bool = True,
    dedup: bool = False,
    max_frames: int | None = None,
    percent: float | None = None,
    max_bytes: int | None = None,
    progress: bool = False,
    data_name: str | None = None,
    failures: list[dict] | None = None,
    warnings: list[dict] | None = None,
    **kmeans_kwargs: Any,
) -> list[Tokenizer]:
    """Fit k-means tokenizers for every k (and layer, unless ``joint``) from one encoder pass.

    ``data``: utterances, paths, or 16 kHz float32 arrays. ``kmeans_kwargs`` go to ``KMeans``
    (``n_init``, ``max_iter``, ``device``...). Returns tokenizers ordered by (k, layer).
    An utterance that cannot be decoded or encoded is left out and, when ``failures`` is given,
    appended to it as ``{"id", "path", "reason"}`` (even if the fit then fails); audio warnings
    (silent, clipped) go to ``warnings`` as ``{"id", "path", "warning"}``.
    """
    resolved = encoder.resolve_layers(list(layers))
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"layers {list(layers)} name the same layer twice")
    stats = _Stats(failures, warnings)
    stream = _feature_stream(encoder, data, resolved, stats, progress)
    try:
        fits = fit_sweep(stream, resolved, ks, input_layers=resolved, max_frames=max_frames, percent=percent,
                         max_bytes=max_bytes, seed=seed, **kmeans_kwargs)
    except ValueError:
        if stats.utterances == 0:  # the sweep's "empty stream" is this, said in the data's terms
            raise NoUtterancesError(stats.nothing_encoded()) from None
        raise
    if stats.utterances == 0:
        raise NoUtterancesError(stats.nothing_encoded())
    info = {
        "seed": seed,
        "training_data": {
            "name": data_name,
            "utterances": stats.utterances,
            "seconds": round(stats.seconds, 3),
            "failed": len(stats.failed),
            "ids_sha256": stats.ids.hexdigest(),
        },
        "sampling": {"max_frames": max_frames, "percent": percent, "max_bytes": max_bytes},
    }
    groups = [sorted(resolved)] if joint else [[layer] for layer in sorted(resolved)]
    out = []
    for k in sorted(set(int(k) for k in ks)):
        for group in groups:
            quantizer = MultiLayerKMeans({layer: fits[layer, k] for layer in group})
            out.append(Tokenizer(encoder, quantizer, dedup=dedup, info=info))
    return out


def fit_tokenizer(
    encoder: Encoder,
    data: Iterable[np.ndarray | str | os.PathLike],
    *,
    layers: Sequence[int] = (-1,),
    k: int = 500,
    seed: int = 0,
    dedup: bool = False,
    **kmeans_kwargs: Any,
) -> Tokenizer:
    """Fit one k-means per layer on ``data`` (16 kHz arrays or paths) with one encoder pass."""
    return fit_tokenizers(encoder, data, layers=layers, ks=[k], seed=seed, joint=True, dedup=dedup, **kmeans_kwargs)[0]
