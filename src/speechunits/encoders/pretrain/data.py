"""Training audio in memory, and seeded, frame-aligned random crops for every step.

:func:`load_audio_set` reads one or more manifests (JSONL, ``.tsv``, a folder, a LibriSpeech
tree) into float32 16 kHz arrays; a file that cannot be decoded is skipped and recorded in
``AudioSet.failed`` (id, path, reason: the CLI writes them to an errors file and exits 1), the
rest load. One hour of audio takes about 230 MB.

:class:`CropSampler` gives the batch of step ``s`` as a pure function of ``(seed, s)``: the
utterances come from a per-epoch permutation, crops start on a multiple of the 320-sample hop, so
frame ``j`` of a crop starting at sample ``a`` *is* frame ``a / 320 + j`` of the whole utterance
(the CNN's frames do not depend on where the input starts when it starts on the hop grid) and
per-utterance targets can be sliced without any resampling.

Example:
    >>> s = CropSampler([16000, 48000, 80000], batch_size=2, crop_samples=32000, seed=0)
    >>> [(c.index, c.start % 320, c.length) for c in s.batch(0)]
    [(0, 0, 16000), (2, 0, 32000)]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.distributed.ddp import step_rng, step_seed

log = logging.getLogger("speechunits.pretrain")

HOP = 320
WINDOW = 400


@dataclass
class AudioSet:
    """Utterances in memory: raw float32 waves plus each utterance's mean and std (float64)."""

    ids: list[str]
    waves: list[np.ndarray]
    utterances: list = field(default_factory=list)  # speechunits.data.manifest.Utterance
    skipped: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    stats: list[tuple[float, float]] = field(default_factory=list)
    # files that could not be loaded, ``{"id", "path", "reason"}`` each (not the too-short ones,
    # which are left out by design and only counted in ``skipped``)
    failed: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = [_mean_std(w) for w in self.waves]

    def __len__(self) -> int:
        return len(self.waves)

    @property
    def lengths(self) -> list[int]:
        return [len(w) for w in self.waves]

    def seconds(self) -> float:
        return float(sum(self.lengths)) / 16000.0

    def crop(self, i: int, start: int = 0, length: int | None = None, normalize: bool = True) -> np.ndarray:
        """Samples ``[start, start + length)`` of utterance ``i``; with ``normalize``, scaled by
        the *whole* utterance's mean and variance -- exactly what
        :class:`~speechunits.encoders.HFEncoder` feeds the model at inference (``do_normalize``),
        so training sees the inputs inference will."""
        w = self.waves[i]
        seg = w[start : len(w) if length is None else start + length]
        if not normalize:
            return np.array(seg, dtype=np.float32)
        mean, std = self.stats[i]
        return ((seg.astype(np.float64) - mean) / std).astype(np.float32)

    def summary(self) -> dict:
        return {"manifests": self.sources, "utterances": len(self), "hours": round(self.seconds() / 3600, 4),
                "skipped": len(self.skipped), "failed": len(self.failed)}


class NoUsableAudioError(ValueError):
    """No utterance could be used; ``failed`` holds the unreadable ones (to record them)."""

    def __init__(self, message: str, failed: list[dict]) -> None:
        super().__init__(message)
        self.failed = failed


def _mean_std(w: np.ndarray) -> tuple[float, float]:
    x = w.astype(np.float64)
    # the 1e-7 and the biased variance are Wav2Vec2FeatureExtractor's (and HFEncoder's)
    return float(x.mean()), float(np.sqrt(x.var() + 1e-7))


def normalize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over ``x`` itself (for views whose utterance stats are unknown)."""
    mean, std = _mean_std(x)
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)


def as_list(manifests) -> list[Path]:
    if isinstance(manifests, (str, os.PathLike)):
        return [Path(manifests)]
    return [Path(m) for m in manifests]


def read_utterances(manifests) -> list:
    """Utterances of all manifests, in order; the same id twice (from different files) is an error."""
    from speechunits.data.manifest import ManifestError, read_manifest

    out, seen = [], {}
    for m in as_list(manifests):
        for u in read_manifest(m):
            if u.id in seen and seen[u.id] != u.path:
                raise ManifestError(m, f"utterance id {u.id!r} also names {seen[u.id]}; ids must be unique")
            if u.id not in seen:
                seen[u.id] = u.path
                out.append(u)
    return out


def load_audio_set(
    manifests,
    *,
    min_seconds: float = 0.5,
    max_utterances: int | None = None,
    require_alignment: bool = False,
    progress: bool = True,
) -> AudioSet:
    """Load every utterance of ``manifests`` (a path or a list); skip unreadable or too short ones.

    ``min_seconds`` drops utterances too short to crop usefully; ``max_utterances`` keeps the
    first N (in manifest order); ``require_alignment`` keeps only utterances with an alignment.
    """
    from tqdm.auto import tqdm

    from speechunits.data.loader import iter_audio

    utts = read_utterances(manifests)
    if require_alignment:
        utts = [u for u in utts if u.alignment is not None]
    if max_utterances is not None:
        utts = utts[: int(max_utterances)]
    if not utts:
        raise ValueError(f"no utterances in {', '.join(map(str, as_list(manifests)))}"
                         + (" with alignments" if require_alignment else ""))
    ids, waves, kept, skipped, failed = [], [], [], [], []
    for item in tqdm(iter_audio(utts), total=len(utts), desc="load audio", disable=not progress, dynamic_ncols=True):
        if item.wave is None:
            log.warning("skipping %s", item.error)
            skipped.append(item.error or item.utt.id)
            failed.append({"id": item.utt.id, "path": str(item.utt.path), "reason": item.error or "unreadable"})
        elif len(item.wave) < max(WINDOW, int(min_seconds * 16000)):
            skipped.append(f"{item.utt.path}: shorter than {min_seconds} s")
        else:
            ids.append(item.utt.id)
            waves.append(np.ascontiguousarray(item.wave, dtype=np.float32))
            kept.append(item.utt)
    if not waves:
        raise NoUsableAudioError(f"no usable audio in {', '.join(map(str, as_list(manifests)))} "
                                 f"({len(skipped)} skipped, {len(failed)} of them unreadable)", failed)
    if skipped:
        log.warning("%d of %d utterances skipped (unreadable or too short)", len(skipped), len(utts))
    return AudioSet(ids, waves, kept, skipped, [str(m) for m in as_list(manifests)], failed=failed)


@dataclass(frozen=True)
class Crop:
    index: int  # utterance
    start: int  # first sample (a multiple of HOP)
    length: int  # samples

    @property
    def first_frame(self) -> int:
        return self.start // HOP


class CropSampler:
    """The batch of every step, seeded: ``batch(step)`` is a pure function of ``(seed, step)``.

    Args:
        lengths: samples per utterance.
        batch_size: utterances per batch.
        crop_samples: longest crop; longer utterances get a random hop-aligned window.
        pad: True: shorter utterances stay whole (the batch is padded, with a mask). False:
            every item is cut to the shortest in the batch (no padding, as fairseq HuBERT does;
            needed for group-norm CNNs, whose features padding changes).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, crop_samples: int, seed: int = 0, pad: bool = True) -> None:
        if batch_size < 1 or crop_samples < WINDOW:
            raise ValueError(f"need batch_size >= 1 and crop_samples >= {WINDOW}")
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.crop, self.seed, self.pad = int(batch_size), int(crop_samples), int(seed), bool(pad)
        self._perms: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            rng = np.random.default_rng(step_seed(self.seed, epoch, "epoch"))
            self._perms[epoch] = rng.permutation(len(self.lengths))
        return self._perms[epoch]

    def batch(self, step: int) -> list[Crop]:
        n = len(self.lengths)
        rng = step_rng(self.seed, step, "crop")
        out = []
        for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
            i = int(self._order(pos // n)[pos % n])
            total = self.lengths[i]
            if total > self.crop:
                start = int(rng.integers(0, (total - self.crop) // HOP + 1)) * HOP
                out.append(Crop(i, start, self.crop))
            else:
                out.append(Crop(i, 0, total))
        if not self.pad:
            short = min(c.length for c in out)
            out = [c if c.length == short else
                   Crop(c.index, c.start + int(rng.integers(0, (c.length - short) // HOP + 1)) * HOP, short) for c in out]
        return out


def collate(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """``(x [B, max_len], attention_mask [B, max_len] or None, lengths)``; no mask when all equal."""
    lengths = [len(w) for w in waves]
    x = torch.zeros(len(waves), max(lengths))
    for i, w in enumerate(waves):
        x[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w))
    if min(lengths) == max(lengths):
        return x, None, lengths
    mask = (torch.arange(x.shape[1])[None, :] < torch.tensor(lengths)[:, None]).long()
    return x, mask, lengths


def num_frames(num_samples: int) -> int:
    """Frames of a 400-sample window every 320 samples: ``floor((n - 400) / 320) + 1``, 0 below."""
    return 0 if num_samples < WINDOW else (num_samples - WINDOW) // HOP + 1
