"""Feature dumps for big corpora: sharded, float16, memory-mapped, resumable after a kill.

Sharding follows fairseq (``simple_kmeans/feature_utils.get_shard_range``): shard ``rank`` of
``nshard`` takes the contiguous slice ``[round(N*rank/nshard), round(N*(rank+1)/nshard))`` of the
manifest, so ``--nshard/--rank`` jobs (SLURM arrays, torchrun) split a corpus with no overlap.

Files of one shard in ``out_dir`` (``P = f"{rank}_{nshard}"``; shards never share a file):

* ``layer{L}_P.f16``  raw float16 frames ``[total_frames, dim]``, C order, one file per layer;
* ``P.len`` / ``P.ids``  frames / id of each written utterance, one a line, in file order;
* ``P.errors.jsonl``  ``{"id", "path", "reason"}`` for each skipped utterance (bad or too short audio);
* ``P.meta.json``  encoder provenance, layers, dim, manifest slice and its hash;
* ``P.progress.json``  the commit record: next manifest position, counts and the byte size of
  every file above at the last commit. It is replaced atomically after each flush.

Resuming: every file is truncated back to its committed size (dropping whatever a killed run
wrote after its last commit) and work continues at the committed manifest position, so no
utterance is lost or written twice. At most ``flush_every`` utterances are redone. A finished
shard is left untouched by a second call.

Example:
    >>> import numpy as np, soundfile as sf, tempfile, pathlib
    >>> from speechunits.encoders import SpectralEncoder
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sf.write(d / "a.wav", np.zeros(16000, dtype=np.float32) + 0.01, 16000)
    >>> summary = dump_features(SpectralEncoder("mfcc"), [("a", d / "a.wav")], [0], d / "feats", progress=False)
    >>> shard = FeatureShard(d / "feats", layer=0)
    >>> [(uid, x.shape, x.dtype) for uid, x in shard]
    [('a', (49, 39), dtype('float16'))]
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from speechunits.audio import load as load_audio
from speechunits.data.atomic import atomic_write_text
from speechunits.encoders.base import Encoder

FORMAT = "speechunits-features/1"
VOLATILE_KEYS = ("transformers_version",)  # may change between a run and its resumption


def shard_range(total: int, nshard: int, rank: int) -> tuple[int, int]:
    """fairseq's contiguous shard ``[start, end)`` of ``total`` items for ``rank`` of ``nshard``."""
    if not 0 <= rank < nshard:
        raise ValueError(f"invalid rank/nshard {rank}/{nshard}")
    return round(total / nshard * rank), round(total / nshard * (rank + 1))


def _names(rank: int, nshard: int, layers: Sequence[int]) -> dict[str, str]:
    p = f"{rank}_{nshard}"
    names = {f"layer{layer}": f"layer{layer}_{p}.f16" for layer in layers}
    names.update(len=f"{p}.len", ids=f"{p}.ids", errors=f"{p}.errors.jsonl")
    return names


def _item(it) -> tuple[str, str]:
    if isinstance(it, (tuple, list)) and len(it) == 2:
        return str(it[0]), os.fspath(it[1])
    if hasattr(it, "id") and hasattr(it, "path"):  # speechunits.data.manifest.Utterance
        return str(it.id), os.fspath(it.path)
    raise TypeError(f"manifest items must be (utt_id, path) pairs or have .id and .path, got {it!r}")


def dump_features(
    encoder: Encoder,
    items: Iterable,
    layers: Sequence[int],
    out_dir: str | os.PathLike,
    nshard: int = 1,
    rank: int = 0,
    *,
    flush_every: int = 16,
    chunk_size: int = 8,
    progress: bool = True,
    on_utterance: Callable[[int, str], None] | None = None,
) -> dict:
    """Encode shard ``rank`` of ``nshard`` of ``items`` (``(utt_id, path)``) into ``out_dir``.

    ``layers`` may use -1 for the final layer; files are named by the resolved index.
    ``chunk_size`` utterances are loaded and encoded together; ``on_utterance(position, utt_id)``
    runs after each utterance is written (a hook for tests and monitoring; an exception raised
    from it stops the job like a kill, without committing). Returns the final progress record.
    """
    items = [_item(it) for it in items]
    start, end = shard_range(len(items), nshard, rank)
    mine = items[start:end]
    layers = encoder.resolve_layers(layers)
    if len(set(layers)) != len(layers):
        raise ValueError(f"duplicate layers in {layers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = _names(rank, nshard, layers)
    prefix = f"{rank}_{nshard}"
    meta = {
        "format": FORMAT,
        "encoder": encoder.config(),
        "layers": layers,
        "dim": encoder.dim,
        "dtype": "float16",
        "rank": rank,
        "nshard": nshard,
        "range": [start, end],
        "manifest_sha256": hashlib.sha256(json.dumps(mine).encode()).hexdigest(),
        "files": names,
    }
    state = _resume_state(out, prefix, meta)
    if state.get("complete"):
        return state
    writer = _Writer(out, names, state["sizes"])
    bar = tqdm(total=len(mine), initial=state["next"], desc=f"features {prefix}", unit="utt", disable=not progress)
    pos = state["next"]
    try:
        while pos < len(mine):
            chunk = mine[pos : pos + chunk_size]
            for k, (uid, feats, reason) in enumerate(_encode_chunk(encoder, chunk, layers)):
                if reason is None:
                    writer.write(uid, feats)
                    state["utts"] += 1
                    state["frames"] += feats.shape[0]
                else:
                    writer.error(uid, chunk[k][1], reason)
                    state["errors"] += 1
                pos += 1
                bar.update(1)
                if on_utterance is not None:
                    on_utterance(start + pos - 1, uid)
                if pos % flush_every == 0 or pos == len(mine):
                    state.update(next=pos, complete=pos == len(mine), sizes=writer.commit())
                    atomic_write_text(out / f"{prefix}.progress.json", json.dumps(state, indent=1))
        if not mine:  # an empty shard is complete at once
            state.update(complete=True, sizes=writer.commit())
            atomic_write_text(out / f"{prefix}.progress.json", json.dumps(state, indent=1))
    finally:
        bar.close()
        writer.close()
    return state


def _resume_state(out: Path, prefix: str, meta: dict) -> dict:
    meta_path, prog_path = out / f"{prefix}.meta.json", out / f"{prefix}.progress.json"
    fresh = {"next": 0, "utts": 0, "frames": 0, "errors": 0, "complete": False, "sizes": {}}
    if meta_path.exists() and prog_path.exists():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if _comparable(old) != _comparable(meta):
            raise ValueError(
                f"{out}: shard {prefix} was started with a different encoder, layers or manifest slice "
                f"({meta_path}); write to a new directory or delete that shard's files"
            )
        return json.loads(prog_path.read_text(encoding="utf-8"))
    # Nothing committed yet: start over (any bytes on disk come from a run killed before its first commit).
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return fresh


def _comparable(meta: dict) -> dict:
    m = dict(meta, encoder={k: v for k, v in meta["encoder"].items() if k not in VOLATILE_KEYS})
    return json.loads(json.dumps(m))  # tuples vs lists


def _encode_chunk(encoder: Encoder, chunk: list[tuple[str, str]], layers: list[int]):
    """Yield ``(id, float32 [frames, layers, dim] or None, error reason or None)`` in order."""
    waves, reasons = [], []
    for uid, path in chunk:
        reason = None
        if not uid or any(c in uid for c in "\n\r"):
            reason = "utterance id is empty or contains a line break"
        else:
            try:
                wav = load_audio(path, target_rate=encoder.sample_rate)
                if encoder.num_frames(len(wav)) == 0:
                    reason = f"too short: {len(wav)} samples give no frame"
            except Exception as e:  # a bad file is recorded and skipped, never fatal
                reason = f"{type(e).__name__}: {e}"
        waves.append(None if reason else wav)
        reasons.append(reason)
    good = [i for i, r in enumerate(reasons) if r is None]
    feats: dict[int, object] = {}
    try:
        for i, f in zip(good, encoder.encode([waves[i] for i in good], layers)):
            feats[i] = f
    except Exception:  # isolate the utterance that broke the batch
        for i in good:
            try:
                feats[i] = encoder.encode([waves[i]], layers)[0]
            except Exception as e:
                reasons[i] = f"encoding failed: {type(e).__name__}: {e}"
    for i, (uid, _) in enumerate(chunk):
        if reasons[i] is not None:
            yield uid, None, reasons[i]
            continue
        x = feats[i].numpy()
        if not np.isfinite(x).all() or np.abs(x).max(initial=0.0) > np.finfo(np.float16).max:
            yield uid, None, "features are not finite or overflow float16"
        else:
            yield uid, x, None


class _Writer:
    """Append-only files truncated to their committed sizes on open."""

    def __init__(self, out: Path, names: dict[str, str], sizes: dict[str, int]) -> None:
        self.names = names
        self.files = {}
        for key, name in names.items():
            path = out / name
            f = open(path, "r+b" if path.exists() else "w+b")
            f.truncate(int(sizes.get(name, 0)))
            f.seek(0, os.SEEK_END)
            self.files[key] = f

    def write(self, uid: str, feats: np.ndarray) -> None:
        for col, key in enumerate(k for k in self.names if k.startswith("layer")):
            self.files[key].write(np.ascontiguousarray(feats[:, col], dtype=np.float16).tobytes())
        self.files["len"].write(f"{feats.shape[0]}\n".encode())
        self.files["ids"].write(f"{uid}\n".encode())

    def error(self, uid: str, path: str, reason: str) -> None:
        line = json.dumps({"id": uid, "path": path, "reason": reason}, ensure_ascii=False)
        self.files["errors"].write((line + "\n").encode())

    def commit(self) -> dict[str, int]:
        """Make everything written so far durable; return the sizes to record."""
        sizes = {}
        for key, f in self.files.items():
            f.flush()
            os.fsync(f.fileno())
            sizes[self.names[key]] = f.tell()
        return sizes

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class FeatureShard:
    """Read one layer of a dumped shard: ``(id, float16 array [frames, dim])`` per utterance.

    Only committed utterances are visible (a shard being written, or killed, can be read). The
    data is memory-mapped: indexing or iterating reads just the frames asked for.
    """

    def __init__(self, out_dir: str | os.PathLike, layer: int, rank: int = 0, nshard: int = 1) -> None:
        out = self.dir = Path(out_dir)
        prefix = f"{rank}_{nshard}"
        prog_path = out / f"{prefix}.progress.json"
        if not prog_path.exists():
            raise FileNotFoundError(f"{out}: no committed features for shard {prefix} ({prog_path.name} missing)")
        self.meta = json.loads((out / f"{prefix}.meta.json").read_text(encoding="utf-8"))
        if layer < 0:
            layer = self.meta["encoder"]["num_layers"] + 1 + layer
        if layer not in self.meta["layers"]:
            raise ValueError(f"{out}: layer {layer} not dumped (layers {self.meta['layers']})")
        self.progress = json.loads(prog_path.read_text(encoding="utf-8"))
        self.complete = bool(self.progress.get("complete"))
        self.layer, self.dim = layer, int(self.meta["dim"])
        n = int(self.progress["utts"])
        self.ids = (out / f"{prefix}.ids").read_text(encoding="utf-8").split("\n")[:n]
        lens = (out / f"{prefix}.len").read_text(encoding="utf-8").split()[:n]
        self.lengths = np.array(lens, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        frames = int(self.offsets[-1])
        if frames != int(self.progress["frames"]):
            raise ValueError(f"{out}: shard {prefix} lengths do not add up to the committed frame count")
        path = out / f"layer{layer}_{prefix}.f16"
        self.data = (
            np.memmap(path, dtype=np.float16, mode="r", shape=(frames, self.dim))
            if frames
            else np.zeros((0, self.dim), dtype=np.float16)
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for i, uid in enumerate(self.ids):
            yield uid, self[i]

    def errors(self) -> list[dict]:
        """The skipped utterances (committed part): ``{"id", "path", "reason"}`` each."""
        name = self.meta["files"]["errors"]
        with open(self.dir / name, "rb") as f:
            raw = f.read(int(self.progress["sizes"].get(name, 0)))
        return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line]
