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

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from speechunits.data.manifest import Utterance
from speechunits.data.shards import ShardStore, write_shards

from .mel import log_mel

FORMAT_VERSION = 1


@dataclass
class Example:
    id: str
    units: torch.Tensor  # [T, L] int64
    mel: torch.Tensor  # [n_mels, M] float32
    speaker: torch.Tensor | None  # [S] float32
    audio: torch.Tensor | None = None  # [N] float32 at 16 kHz (stored as int16; code-hifigan only)


class FeatureStore:
    """Read-only access to a prepared vocoder feature folder (a :class:`~speechunits.data.shards.ShardStore`)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.store = ShardStore(folder)
        self.folder, self.items = self.store.folder, self.store.items

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Example:
        it = self.items[i]
        a = {k: torch.from_numpy(v) for k, v in self.store.get(i).items()}
        audio = a["audio"].float() / 32768.0 if "audio" in a else None
        spk = a["speaker"].float() if "speaker" in a else None
        return Example(it["id"], a["units"].long(), a["mel"].float(), spk, audio)

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
    plan = {"format_version": FORMAT_VERSION, "tokenizer": fingerprint, "speaker": speaker_embed is not None}
    if keep_audio:  # only when asked, so folders prepared without it keep their plan
        plan["audio"] = True

    def extract(item) -> tuple[dict, dict]:
        ids = np.asarray(frame_units(item.wave))
        ids = ids[:, None] if ids.ndim == 1 else ids
        mel = log_mel(item.wave)
        if len(ids) < 2 or mel.shape[1] < 2:
            raise ValueError("shorter than two frames")
        out = {"units": ids.astype(np.int32), "mel": mel.numpy().astype(np.float16)}
        if speaker_embed is not None:
            out["speaker"] = np.asarray(speaker_embed(item.wave), dtype=np.float32)
        if keep_audio:
            pcm = np.clip(np.round(np.asarray(item.wave, dtype=np.float64) * 32768.0), -32768, 32767)
            out["audio"] = pcm.astype(np.int16)
        return out, {"unit_frames": int(len(ids)), "mel_frames": int(mel.shape[1]),
                     "speaker": speaker_embed is not None, "audio": keep_audio}

    write_shards(folder, utts, extract, plan, shard_size=shard_size, progress=progress, desc="vocoder features")
    return FeatureStore(folder)
