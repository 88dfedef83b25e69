"""Per-utterance arrays computed once and kept on disk in shards, read back lazily.

Training a vocoder or a downstream probe runs the (slow) encoder over every utterance once; the
results go into safetensors shards (``shard-00000.safetensors`` + ``shard-00000.json``, each
written atomically and skipped on a rerun, so a killed preparation resumes), an ``index.json``
listing every kept utterance and ``errors.jsonl`` the ones that failed, with their reason. A
``plan.json`` records what the folder was made for (the caller's ``plan``): a folder made for
another plan is refused rather than mixed. :class:`ShardStore` opens one shard at a time, so a
corpus never has to fit in memory.

``extract(loaded) -> (arrays, meta)`` does the per-utterance work: ``arrays`` are numpy arrays
stored under ``<key>/<name>``, ``meta`` is JSON-able and kept in the index item (with ``id``,
``key``, ``shard`` and ``seconds``). An exception there fails that utterance only.

Example:
    >>> import numpy as np, soundfile as sf, tempfile, pathlib
    >>> from speechunits.data.manifest import read_folder
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sf.write(d / "a.wav", np.full(1600, 0.1, np.float32), 16000)
    >>> def extract(item):
    ...     return {"rms": np.sqrt(np.mean(item.wave ** 2))[None]}, {"n": len(item.wave)}
    >>> store = write_shards(d / "out", read_folder(d), extract, {"what": "rms"}, progress=False)
    >>> len(store), store.items[0]["n"], round(float(store.get(0)["rms"][0]), 3)
    (1, 1600, 0.1)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as st_save
from tqdm import tqdm

from speechunits.data.atomic import atomic_write_bytes, atomic_write_text
from speechunits.data.loader import LoadedAudio, describe_failure, iter_audio
from speechunits.data.manifest import Utterance

INDEX = "index.json"
PLAN = "plan.json"
Extract = Callable[[LoadedAudio], "tuple[dict[str, np.ndarray], dict[str, Any]]"]


class ShardStore:
    """Read-only access to a shard folder (``index.json`` + safetensors shards)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        try:
            self.index = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.folder / INDEX}: not a prepared shard index ({e})") from None
        self.items: list[dict] = [it for shard in self.index["shards"] for it in shard["items"]]
        self._open: tuple[str, Any] | None = None
        if not self.items:
            raise ValueError(f"{self.folder}: no usable utterance was prepared (see errors.jsonl)")

    def __len__(self) -> int:
        return len(self.items)

    def _handle(self, shard: str):
        if self._open is None or self._open[0] != shard:
            name = Path(shard).name  # shard names come from our own index; stay inside the folder
            self._open = (shard, safe_open(str(self.folder / name), framework="numpy"))
        return self._open[1]

    def get(self, i: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of item ``i`` (all of them, or only ``names``)."""
        it = self.items[i]
        f = self._handle(it["shard"])
        prefix = it["key"] + "/"
        keys = [k for k in f.keys() if k.startswith(prefix)] if names is None else [prefix + n for n in names]
        return {k[len(prefix):]: f.get_tensor(k) for k in keys}


def write_shards(folder: str | os.PathLike, utts: Sequence[Utterance], extract: Extract, plan: dict[str, Any],
                 *, shard_size: int = 32, progress: bool = True, desc: str = "features") -> ShardStore:
    """Write (or complete) the shard folder for ``utts``; returns a :class:`ShardStore`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plan = {**plan, "utterances": [u.id for u in utts], "shard_size": shard_size}
    plan_file = folder / PLAN
    if plan_file.exists():
        if json.loads(plan_file.read_text(encoding="utf-8")) != plan:
            raise ValueError(f"{folder}: holds features prepared for another tokenizer, task or other utterances; "
                             "use another folder (or delete it)")
    else:
        atomic_write_text(plan_file, json.dumps(plan) + "\n")
    shards, errors = [], []
    bar = tqdm(total=len(utts), desc=desc, unit="utt", disable=not progress)
    for n, start in enumerate(range(0, len(utts), shard_size)):
        chunk = utts[start : start + shard_size]
        name = f"shard-{n:05d}.safetensors"
        meta_file = folder / f"shard-{n:05d}.json"
        if meta_file.exists() and (folder / name).exists():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        else:
            meta = _write_shard(folder / name, chunk, extract)
            atomic_write_text(meta_file, json.dumps(meta) + "\n")
        shards.append({"shard": name, "items": meta["items"]})
        errors += meta["errors"]
        bar.update(len(chunk))
    bar.close()
    atomic_write_text(folder / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors))
    atomic_write_text(folder / INDEX, json.dumps({**plan, "shards": shards, "failed": len(errors)}) + "\n")
    return ShardStore(folder)


def _write_shard(path: Path, chunk: Sequence[Utterance], extract: Extract) -> dict:
    arrays, items, errors = {}, [], []
    for j, item in enumerate(iter_audio(chunk, workers=1)):
        u = item.utt
        if item.wave is None:
            errors.append({"id": u.id, "path": str(u.path), "reason": item.error or "could not be loaded"})
            continue
        try:
            out, meta = extract(item)
        except Exception as e:  # one utterance's problem: record it and go on
            # a ValueError is the project's one-line "this input is unusable, because ..."
            reason = str(e).strip().splitlines()[0] if isinstance(e, ValueError) and str(e).strip() \
                else describe_failure(e, "feature extraction")
            errors.append({"id": u.id, "path": str(u.path), "reason": reason})
            continue
        key = f"u{j}"
        for name, a in out.items():
            arrays[f"{key}/{name}"] = np.ascontiguousarray(a)  # a pick of columns can be F-ordered
        items.append({"id": u.id, "key": key, "shard": path.name, "seconds": round(len(item.wave) / 16000, 3), **meta})
    atomic_write_bytes(path, st_save(arrays) if arrays else st_save({"empty": np.zeros(0, np.float32)}))
    return {"items": items, "errors": errors}
