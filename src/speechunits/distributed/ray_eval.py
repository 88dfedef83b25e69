"""``speechunits eval --engine ray``: the robustness section's work on a Ray Data actor pool.

The section distorts every utterance of its subset under every distortion and tokenizes it
(:func:`speechunits.evaluation.robustness.distorted_units`, one work item each), then scores the
unit edit distances. :class:`RayRobustness` is the ``run_items`` engine of
:func:`~speechunits.evaluation.robustness.robustness`: the subset's waves go to the object store
once (``ray.put``); a dataset of ``(distortion, utterance)`` items runs through ``workers`` actors,
each loading the tokenizer once with ``Tokenizer.from_pretrained`` (``gpus_per_worker`` GPUs each,
the model then on ``cuda``) and running the same per-item function; a dead actor is restarted and
its batch retried. The scoring stays in the driver, so the section is the single-process one.

Example::

    from speechunits.distributed.ray_eval import RayRobustness
    from speechunits.evaluation.run import evaluate
    metrics = evaluate(tok, ["corpus/"], out="eval", robustness_engine=RayRobustness("default", workers=2))
"""

from __future__ import annotations

import functools
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from speechunits.distributed.ray_tokenize import connect, import_ray


class RobustnessWorker:
    """Actor: one tokenizer, loaded once, and the subset's waves (from the object store);
    ``(distortion, utterance)`` items in, units (``np.save`` bytes) or the failure out."""

    def __init__(self, tokenizer: str, device: str, encoder: str | None, allow_unhashed: bool, waves: list,
                 utt_ids: list[str], distortions: list, seed: int, threads: int) -> None:
        import ray
        import torch

        from speechunits.tokenizer import Tokenizer

        torch.set_num_threads(max(1, threads))
        self.tok = Tokenizer.from_pretrained(tokenizer, device=device, encoder=encoder,
                                             allow_unhashed=allow_unhashed)
        self.waves = ray.get(waves[0])  # [ref]: a nested ref is fetched here, once per actor
        self.utt_ids, self.distortions, self.seed = utt_ids, distortions, seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from speechunits.evaluation.robustness import distorted_units

        fu = lambda w: self.tok.frame_units([w])[0]  # noqa: E731  (what evaluation.run uses)
        units, failed = [], []
        for d, i in zip(batch["d"], batch["i"]):
            r = distorted_units(fu, self.distortions[d], self.waves, int(i), self.utt_ids[i], self.seed)
            buf = io.BytesIO()
            if isinstance(r, dict):
                failed.append(json.dumps(r))
            else:
                np.save(buf, np.asarray(r), allow_pickle=False)
                failed.append("")
            units.append(buf.getvalue())
        return {"d": batch["d"], "i": batch["i"], "units": np.array(units, dtype=object),
                "failed": np.array(failed, dtype=object)}


class RayRobustness:
    """The ``run_items`` engine of ``robustness`` on Ray. ``tokenizer``: a directory or
    ``"default"`` (with ``encoder``/``allow_unhashed`` as ``Tokenizer.from_pretrained``), the one
    the driver evaluates; ``address``: a running cluster (``None``: the one this process joined,
    else a local one); ``batch_size``: items per actor call (default: about 4 calls per actor)."""

    def __init__(self, tokenizer: str | os.PathLike, *, address: str | None = None, workers: int = 1,
                 gpus_per_worker: float = 0, cpus_per_worker: float = 1, device: str | None = None,
                 encoder: str | os.PathLike | None = None, allow_unhashed: bool = False,
                 batch_size: int | None = None, max_restarts: int = 4) -> None:
        import_ray()
        if workers < 1 or (batch_size is not None and batch_size < 1):
            raise ValueError(f"workers and batch_size must be >= 1, got {workers} and {batch_size}")
        if not gpus_per_worker >= 0 or not cpus_per_worker > 0:
            raise ValueError(f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got {gpus_per_worker} "
                             f"and {cpus_per_worker}")
        self.device = device or ("cuda" if gpus_per_worker > 0 else "cpu")
        if self.device.startswith("cuda") and not gpus_per_worker > 0:
            raise ValueError(f"--device {self.device} with --engine ray needs --gpus-per-worker > 0 "
                             "(Ray gives GPUs only to the actors that ask for them)")
        # The actors may run in another working directory: paths travel absolute.
        self.tokenizer = str(tokenizer) if str(tokenizer) == "default" else str(Path(tokenizer).resolve())
        self.encoder = None if encoder is None else (
            str(Path(encoder).resolve()) if os.path.exists(encoder) else str(encoder))
        self.allow_unhashed, self.address, self.workers = allow_unhashed, address, workers
        self.gpus, self.cpus = gpus_per_worker, cpus_per_worker
        self.batch_size, self.max_restarts = batch_size, max_restarts

    def __call__(self, items: Sequence[tuple[int, int]], waves: Sequence[np.ndarray], utt_ids: Sequence[str],
                 distortions: Sequence[Any], seed: int) -> Iterator[tuple[tuple[int, int], Any]]:
        ray = connect(self.address)
        size = self.batch_size or max(1, min(16, -(-len(items) // (4 * self.workers))))
        ref = ray.put([np.asarray(w) for w in waves])  # once; every actor reads it from the object store
        ds = ray.data.from_items([{"d": d, "i": i} for d, i in items], override_num_blocks=-(-len(items) // size))
        with warnings.catch_warnings():  # see ray_tokenize._pipeline
            warnings.simplefilter("ignore", DeprecationWarning)
            out = ds.map_batches(
                RobustnessWorker, batch_size=size, compute=ray.data.ActorPoolStrategy(size=self.workers),
                fn_constructor_kwargs=dict(tokenizer=self.tokenizer, device=self.device, encoder=self.encoder,
                                           allow_unhashed=self.allow_unhashed, waves=[ref], utt_ids=list(utt_ids),
                                           distortions=list(distortions), seed=int(seed),
                                           threads=int(max(1, self.cpus))),
                num_cpus=self.cpus, num_gpus=self.gpus or None,
                ray_remote_args_fn=functools.partial(dict, max_restarts=self.max_restarts,
                                                     max_task_retries=self.max_restarts))
        for row in out.iter_rows():
            item = (int(row["d"]), int(row["i"]))
            yield item, (json.loads(row["failed"]) if row["failed"]
                         else np.load(io.BytesIO(row["units"]), allow_pickle=False))
        del ref
