"""Encode a task's utterances once: units of every tokenizer layer (and optionally the features).

Each utterance becomes ``units [T, L]`` (int32, all the tokenizer's layers) and, with
``features=True``, the continuous features of the same layers ``feats [T, L, F]`` (float16),
from the same encoder pass, so the discrete and continuous probes see exactly the same frames.
The task's target (characters, phones, speaker or label) is kept in the shard index. An
utterance without its label, or whose audio fails, is recorded in ``errors.jsonl`` with the
reason and left out; preparation resumes shard by shard (``data.shards``).

Example (MFCC features, a 4-unit k-means fitted on the spot):
    >>> import numpy as np, soundfile as sf, tempfile, pathlib, json
    >>> from speechunits.tokenizer import Tokenizer
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.quantizers.kmeans import KMeans
    >>> from speechunits.quantizers.multilayer import MultiLayerKMeans
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> sf.write(d / "a.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    >>> _ = (d / "m.jsonl").write_text(json.dumps({"id": "a", "path": "a.wav", "speaker": "s1"}) + "\\n")
    >>> enc = load_encoder("mfcc")
    >>> feats = enc.encode([0.1 * rng.standard_normal(16000).astype(np.float32)], [0])[0]
    >>> tok = Tokenizer(enc, MultiLayerKMeans({0: KMeans(4, seed=0).fit(feats[:, 0])}))
    >>> from speechunits.data.manifest import read_manifest
    >>> store = prepare_task_data(d / "prep", read_manifest(d / "m.jsonl"), tok, "sid", features=True, progress=False)
    >>> store.items[0]["target"], store.get(0)["units"].shape[1], store.get(0)["feats"].shape[1:]
    ('s1', 1, (1, 39))
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from speechunits.data.alignment import Alignment
from speechunits.data.manifest import Utterance
from speechunits.data.shards import ShardStore, write_shards

from .tasks import get_task

FORMAT_VERSION = 1


def tokenizer_fingerprint(tokenizer) -> str:
    """The tokenizer's config hash (what every ``Units`` it makes carries as provenance)."""
    return str(tokenizer.provenance()["tokenizer"])


def prepare_task_data(folder: str | os.PathLike, utts: Sequence[Utterance], tokenizer, task: str,
                      *, features: bool = False, progress: bool = True) -> ShardStore:
    """Write (or complete) ``folder`` with units (and features) and ``task`` targets for ``utts``."""
    t = get_task(task)
    layers = list(tokenizer.layers)

    def extract(item) -> tuple[dict, dict]:
        al = Alignment.load(item.utt.alignment) if (t.needs_alignment and item.utt.alignment is not None) else None
        target = t.target(item.utt, al)  # before the encoder: a missing label costs nothing
        wave, clean = item.wave, None
        if t.kind == "frames":  # enhancement: the input is a noisy copy, the target its clean units
            from .enhance import distort

            wave, target = distort(item.wave, item.utt.id)
            clean = _units(tokenizer, tokenizer.encoder.encode([item.wave], layers)[0], layers)
        feats = tokenizer.encoder.encode([wave], layers)[0]  # [T, L, F]
        ids = _units(tokenizer, feats, layers)
        if len(ids) < 2:
            raise ValueError("shorter than two frames")
        out = {"units": ids.astype(np.int32)}
        if clean is not None:
            if clean.shape != ids.shape:
                raise ValueError(f"noisy and clean units differ in length ({len(ids)} vs {len(clean)})")
            out["clean"] = clean.astype(np.int32)
        if features:
            out["feats"] = feats.detach().cpu().numpy().astype(np.float16)
        return out, {"frames": int(len(ids)), "target": target}

    plan = {"format_version": FORMAT_VERSION, "kind": "downstream", "task": task,
            "tokenizer": tokenizer_fingerprint(tokenizer), "layers": layers, "features": bool(features)}
    return write_shards(folder, utts, extract, plan, progress=progress, desc=f"{task} features")


def _units(tokenizer, feats, layers) -> np.ndarray:
    ids = tokenizer.quantizer.assign(feats, input_layers=layers).cpu().numpy()
    return ids.reshape(len(ids), -1)
