"""One probe from a tokenizer and manifests: prepare, train, score on every test set, write results.

``run_probe`` is what ``speechunits probe train`` and the benchmark call. Prepared data lives in
``data_dir`` (one folder per manifest and task, reused by every probe of that tokenizer: the
single-layer, all-layer and continuous variants read the same encoder pass); the probe in
``out`` (``config.json`` + ``model.safetensors``, ``training/`` with checkpoint and loss curve,
``training.json``, ``results.json``).

``split_within`` (e.g. 0.7) trains on the first part of every utterance and tests on the rest,
for speaker identification with one utterance per speaker; the dev segments are then the last
tenth of the training part.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.distributed import ddp
from speechunits.data.manifest import Utterance

from .prepare import prepare_task_data, tokenizer_fingerprint
from .train import ProbeSettings, evaluate, segments, train_probe


def tokenizer_info(tokenizer, source: str = "") -> dict:
    """What a probe records about its tokenizer (checked when it is scored on new data)."""
    return {"fingerprint": tokenizer_fingerprint(tokenizer), "source": str(source),
            "layers": list(tokenizer.layers), "frame_rate": float(tokenizer.frame_rate)}


def kmeans_centroids(tokenizer) -> list[torch.Tensor] | None:
    """Each layer's k-means centroids ``[K, F]``, or None for other quantizers (Spin, DC-Spin)."""
    per_layer = getattr(tokenizer.quantizer, "quantizers", None)
    if per_layer is None:
        return None
    try:
        return [torch.as_tensor(per_layer[layer].centroids).float() for layer in tokenizer.layers]
    except (AttributeError, KeyError, TypeError):
        return None


def data_folder(data_dir: str | os.PathLike, task: str, utts: Sequence[Utterance], source: str) -> Path:
    """A stable folder name per (task, manifest): its base name plus a hash of its ids."""
    h = hashlib.sha256("\n".join(u.id for u in utts).encode()).hexdigest()[:10]
    stem = Path(str(source).rstrip("/")).name.replace(".jsonl", "").replace(".tsv", "") or "data"
    return Path(data_dir) / f"{task}-{stem}-{h}"


def run_probe(task: str, tokenizer, train_utts: Sequence[Utterance], out: str | os.PathLike,
              settings: ProbeSettings, *, data_dir: str | os.PathLike, train_source: str = "train",
              dev_utts: Sequence[Utterance] | None = None, dev_source: str = "dev",
              tests: dict[str, Sequence[Utterance]] | None = None, split_within: float | None = None,
              features: bool = False, beam: int = 8, tokenizer_source: str = "",
              vocoder=None, vocoder_utterances: int = 10,
              progress: bool = True, resume: bool = True) -> dict:
    """Prepare, train and score one probe; returns (and writes) its results.

    Enhancement (``se``) with a ``vocoder`` also speaks the clean, noisy and enhanced units of the
    first ``vocoder_utterances`` of each test set and scores them against the clean audio."""
    out = Path(out)
    features = features or settings.input == "continuous"
    w = ddp.world(settings.device)  # torchrun: rank 0 prepares the data, every rank trains, rank 0 scores
    with ddp.main_first(w):
        store = prepare_task_data(data_folder(data_dir, task, train_utts, train_source), train_utts, tokenizer, task,
                                  features=features, progress=progress)
    info = tokenizer_info(tokenizer, tokenizer_source)
    dev = None
    if split_within is not None:
        if not 0.1 <= split_within <= 0.95:
            raise ValueError(f"split_within {split_within} must lie in [0.1, 0.95]")
        train = segments(store, (0.0, split_within * 0.9))
        dev = (store, segments(store, (split_within * 0.9, split_within)))
    else:
        train = segments(store)
        if dev_utts:
            with ddp.main_first(w):
                ds = prepare_task_data(data_folder(data_dir, task, dev_utts, dev_source), dev_utts, tokenizer, task,
                                       features=features, progress=progress)
            dev = (ds, segments(ds))
    model = train_probe(task, store, out, settings, codebook_sizes=tokenizer.vocab_sizes, tokenizer_info=info,
                        centroids=kmeans_centroids(tokenizer), train=train, dev=dev, progress=progress, resume=resume)
    if not w.is_main:
        return {}
    results = {"task": task, "input": settings.input, "layers": model.config.layers,
               "tokenizer": info, "training": json.loads((out / "training.json").read_text()), "tests": {}}
    test_sets: dict[str, tuple] = {}
    if split_within is not None:
        test_sets[f"{train_source} (last {round((1 - split_within) * 100)} %)"] = (store, segments(store, (split_within, 1.0)))
    for name, utts in (tests or {}).items():
        ts = prepare_task_data(data_folder(data_dir, task, utts, name), utts, tokenizer, task,
                               features=features, progress=progress)
        region = (split_within, 1.0) if split_within is not None else (0.0, 1.0)
        test_sets[name] = (ts, segments(ts, region))
    by_id = {u.id: u for utts in (tests or {}).values() for u in utts}
    by_id.update({u.id: u for u in train_utts})
    for name, (ts, segs) in test_sets.items():
        r = evaluate(model, ts, segs, beam=beam, device=settings.device, keep_units=vocoder is not None)
        units = r.pop("_units", None)
        if units is not None:
            r["speech"] = _speech_scores(vocoder, model.config.columns, units, by_id, vocoder_utterances)
        r["failed_utterances"] = int(ts.index.get("failed", 0))
        results["tests"][name] = r
    stores = [("train", store)] + ([("dev", dev[0])] if dev is not None and dev[0] is not store else [])
    stores += [(name, ts) for name, (ts, _) in test_sets.items() if ts is not store]
    results["failed"] = [{"dataset": name, **e} for name, st in stores for e in store_errors(st)]
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def store_errors(store) -> list[dict]:
    """The utterances a prepared folder left out, with their reasons (``errors.jsonl``)."""
    f = Path(store.folder) / "errors.jsonl"
    return [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()] if f.exists() else []


def _speech_scores(vocoder, columns, units: dict, by_id: dict, n: int) -> dict:
    """The enhancement through the vocoder, on the first ``n`` test utterances."""
    from speechunits.audio import load

    from speechunits.metrics.resynthesis import load_scorers

    from .enhance import speak_enhanced

    ids = list(units)[:n]
    scorers, notes = load_scorers()
    scores = speak_enhanced(vocoder, units, columns, {i: load(by_id[i].path) for i in ids},
                            {i: by_id[i].text for i in ids}, scorers)
    return {"utterances": len(ids), "notes": notes, **scores}
