"""Training examples for a unit vocoder: frame units, target log-mels and a speaker embedding per utterance.

``prepare_features`` runs the tokenizer, the HiFi-GAN mel front end and (optionally) the speaker
encoder over a list of utterances and writes them in shards of safetensors (``shard-00000.safetensors``
... plus ``index.json``), each shard written atomically and skipped on a rerun, so a killed
preparation resumes; an utterance that fails is recorded (``errors.jsonl``) and left out.
:class:`FeatureStore` reads them back lazily (one shard open at a time), so the corpus never
has to fit in memory.

``unit_mel.mel_unit_index`` maps every mel frame to the unit frame nearest its centre, from the two
framings; crops for training keep this global map, so a crop sees exactly the alignment that
synthesis of the whole utterance uses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from tqdm import tqdm

from speechunits.data.atomic import atomic_write_bytes, atomic_write_text
from speechunits.data.loader import describe_failure, iter_audio
from speechunits.data.manifest import Utterance

from .mel import log_mel

INDEX = "index.json"
FORMAT_VERSION = 1


@dataclass
class Example:
    id: str
    units: torch.Tensor  # [T, L] int64
    mel: torch.Tensor  # [n_mels, M] float32
    speaker: torch.Tensor | None  # [S] float32
    audio: torch.Tensor | None = None  # [N] float32 at 16 kHz (stored as int16; code-hifigan only)


class FeatureStore:
    """Read-only access to a prepared feature folder (``index.json`` + safetensors shards)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        try:
            self.index = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.folder / INDEX}: not a prepared feature index ({e})") from None
        self.items = [it for shard in self.index["shards"] for it in shard["items"]]
        self._open: tuple[str, object] | None = None
        if not self.items:
            raise ValueError(f"{self.folder}: no usable utterance was prepared (see errors.jsonl)")

    def __len__(self) -> int:
        return len(self.items)

    def _handle(self, shard: str):
        if self._open is None or self._open[0] != shard:
            name = Path(shard).name  # shard names come from our own index; stay inside the folder
            self._open = (shard, safe_open(str(self.folder / name), framework="pt"))
        return self._open[1]

    def get(self, i: int) -> Example:
        it = self.items[i]
        f = self._handle(it["shard"])
        key = it["key"]
        spk = f"{key}/speaker" if it.get("speaker") else None
        audio = f.get_tensor(f"{key}/audio").float() / 32768.0 if it.get("audio") else None
        return Example(it["id"], f.get_tensor(f"{key}/units").long(), f.get_tensor(f"{key}/mel").float(),
                       f.get_tensor(spk).float() if spk else None, audio)

    @property
    def unit_frames(self) -> np.ndarray:
        return np.array([it["unit_frames"] for it in self.items])

    @property
    def mel_frames(self) -> np.ndarray:
        return np.array([it["mel_frames"] for it in self.items])


def prepare_features(
    folder: str | os.PathLike,
    utts: Sequence[Utterance],
    frame_units: Callable[[np.ndarray], np.ndarray],
    fingerprint: str,
    speaker_embed: Callable[[np.ndarray], np.ndarray] | None = None,
    shard_size: int = 32,
    progress: bool = True,
    keep_audio: bool = False,
) -> FeatureStore:
    """Write (or complete) the feature folder for ``utts``; returns a :class:`FeatureStore`.

    ``frame_units(wave) -> [T] or [T, L]`` ids; ``fingerprint`` names the tokenizer: a folder made
    for another tokenizer (or other utterances) is refused rather than mixed. ``keep_audio`` also
    stores each 16 kHz waveform (int16), for vocoders that learn the waveform itself.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [u.id for u in utts]
    plan = {"format_version": FORMAT_VERSION, "tokenizer": fingerprint, "speaker": speaker_embed is not None,
            "utterances": ids, "shard_size": shard_size}
    if keep_audio:  # only when asked, so folders prepared without it keep their plan
        plan["audio"] = True
    plan_file = folder / "plan.json"
    if plan_file.exists():
        old = json.loads(plan_file.read_text(encoding="utf-8"))
        if old != plan:
            raise ValueError(f"{folder}: holds features prepared for another tokenizer or other utterances; "
                             "use another folder (or delete it)")
    else:
        atomic_write_text(plan_file, json.dumps(plan) + "\n")
    shards, errors = [], []
    chunks = [utts[i : i + shard_size] for i in range(0, len(utts), shard_size)]
    bar = tqdm(total=len(utts), desc="vocoder features", unit="utt", disable=not progress)
    for n, chunk in enumerate(chunks):
        name = f"shard-{n:05d}.safetensors"
        meta_file = folder / f"shard-{n:05d}.json"
        if meta_file.exists() and (folder / name).exists():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        else:
            meta = _write_shard(folder / name, chunk, frame_units, speaker_embed, keep_audio)
            atomic_write_text(meta_file, json.dumps(meta) + "\n")
        shards.append({"shard": name, "items": meta["items"]})
        errors += meta["errors"]
        bar.update(len(chunk))
    bar.close()
    atomic_write_text(folder / "errors.jsonl", "".join(json.dumps(e) + "\n" for e in errors))
    atomic_write_text(folder / INDEX, json.dumps({**plan, "shards": shards, "failed": len(errors)}) + "\n")
    return FeatureStore(folder)


def _write_shard(path: Path, chunk: Sequence[Utterance], frame_units, speaker_embed, keep_audio: bool = False) -> dict:
    tensors, items, errors = {}, [], []
    for j, item in enumerate(iter_audio(chunk, workers=1)):
        u = item.utt
        if item.wave is None:
            errors.append({"id": u.id, "path": str(u.path), "reason": item.error or "could not be loaded"})
            continue
        try:
            ids = np.asarray(frame_units(item.wave))
            ids = ids[:, None] if ids.ndim == 1 else ids
            mel = log_mel(item.wave)
            if len(ids) < 2 or mel.shape[1] < 2:
                raise ValueError("shorter than two frames")
            spk = speaker_embed(item.wave) if speaker_embed is not None else None
        except Exception as e:  # one utterance's problem: record it and go on
            errors.append({"id": u.id, "path": str(u.path), "reason": describe_failure(e, "feature extraction")})
            continue
        key = f"u{j}"
        # contiguous: a pick of columns (some layers of a multi-layer tokenizer) can be F-ordered
        tensors[f"{key}/units"] = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int32))
        tensors[f"{key}/mel"] = mel.to(torch.float16)
        if spk is not None:
            tensors[f"{key}/speaker"] = torch.as_tensor(np.asarray(spk, dtype=np.float32))
        if keep_audio:
            pcm = np.clip(np.round(np.asarray(item.wave, dtype=np.float64) * 32768.0), -32768, 32767)
            tensors[f"{key}/audio"] = torch.from_numpy(pcm.astype(np.int16))
        items.append({"id": u.id, "key": key, "shard": path.name, "unit_frames": int(len(ids)),
                      "mel_frames": int(mel.shape[1]), "speaker": spk is not None, "audio": keep_audio,
                      "seconds": round(len(item.wave) / 16000, 3)})
    atomic_write_bytes(path, st_save(tensors) if tensors else st_save({"empty": torch.zeros(0)}))
    return {"items": items, "errors": errors}
