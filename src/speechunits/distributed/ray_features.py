"""Feature dumps (:func:`speechunits.encoders.dump_features`) on Ray Data.

The corpus is cut into ``nshard`` fairseq shards, as ``--nshard/--rank`` jobs cut it; a Ray
dataset of shard numbers runs through a pool of ``workers`` actors, each loading the encoder
once (``gpus_per_worker`` GPUs each, the model then on ``cuda``) and calling ``dump_features``
for one shard at a time. The files are exactly those of ``nshard`` separate ``dump_features``
jobs (read them with ``FeatureShard(out_dir, layer, rank, nshard)``), and the resume logic is
theirs: an actor killed mid-shard is restarted by Ray and its call retried, which continues the
shard from its last commit; a whole job rerun skips finished shards. No utterance is lost or
written twice. Pick ``nshard`` a few times ``workers`` so the pool stays busy.

Example::

    from speechunits.distributed.ray_features import dump_features_ray
    dump_features_ray("mfcc", [("a", "a.wav"), ("b", "b.wav")], [0], "feats/", nshard=4, workers=2)
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Iterable, Sequence

import numpy as np

from speechunits.distributed.ray_tokenize import connect


class DumpWorker:
    """Actor: one encoder, loaded once; shard numbers in, ``dump_features`` summaries out."""

    def __init__(self, encoder: str, items: list, layers: list[int], out_dir: str, nshard: int, device: str,
                 threads: int) -> None:
        import torch

        from speechunits.encoders import load_encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = load_encoder(encoder, device=device)
        self.items, self.layers, self.out_dir, self.nshard = items, layers, out_dir, nshard

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from speechunits.encoders import dump_features

        done = [dump_features(self.encoder, self.items, self.layers, self.out_dir, self.nshard, int(rank),
                              progress=False) for rank in batch["rank"]]
        return {"rank": batch["rank"], "utts": np.array([d.get("utts", 0) for d in done]),
                "pid": np.full(len(done), os.getpid())}


def _pair(u) -> tuple[str, str]:
    if getattr(u, "audio", None) is not None:  # dump_features reads files, not container rows
        raise ValueError(f"{u.audio}: feature dumps read audio files only, not audio inside a container")
    return (str(u.id), os.fspath(u.path)) if hasattr(u, "id") else (str(u[0]), os.fspath(u[1]))


def dump_features_ray(encoder: str, items: Iterable, layers: Sequence[int], out_dir: str | os.PathLike,
                      nshard: int, *, address: str | None = None, workers: int = 1, gpus_per_worker: float = 0,
                      cpus_per_worker: float = 1, device: str | None = None, max_restarts: int = 4) -> list[dict]:
    """Dump features of ``items`` (``(utt_id, path)`` pairs or utterances) in ``nshard`` shards on
    ``workers`` Ray actors; returns one ``{"rank", "utts", "pid"}`` per shard, in shard order."""
    if nshard < 1 or workers < 1:
        raise ValueError(f"nshard and workers must be >= 1, got {nshard} and {workers}")
    device = device or ("cuda" if gpus_per_worker > 0 else "cpu")
    items = [_pair(u) for u in items]
    ray = connect(address)
    ds = ray.data.from_items([{"rank": r} for r in range(nshard)], override_num_blocks=nshard)
    with warnings.catch_warnings():  # see ray_tokenize._pipeline
        warnings.simplefilter("ignore", DeprecationWarning)
        out = ds.map_batches(
            DumpWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, nshard)),
            fn_constructor_kwargs=dict(encoder=str(encoder), items=items, layers=list(layers), out_dir=str(out_dir),
                                       nshard=nshard, device=device, threads=int(max(1, cpus_per_worker))),
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
            ray_remote_args_fn=functools.partial(dict, max_restarts=max_restarts, max_task_retries=max_restarts))
    rows = [{k: int(v) for k, v in r.items()} for r in out.iter_rows()]
    return sorted(rows, key=lambda r: r["rank"])
