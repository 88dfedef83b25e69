"""Frame-level cluster targets for HuBERT pre-training, precomputed per utterance.

* Iteration 1: k-means of MFCCs (``encoder="mfcc"``, 39 dims, k = 100 as in HuBERT).
* Iteration 2: k-means of a hidden layer of the iteration-1 model (``encoder=<its folder>``). The
  layer is chosen by PNMI against phone alignments when the manifest has them (every layer is
  clustered on a subset and scored; the scores are recorded), else the middle layer.
* SpinHuBERT: units of a trained Spin / DC-Spin tokenizer (:func:`quantize_targets` with the
  encoder and quantizer of :func:`speechunits.quantizers.dcspin.load_spin`), or any units file.

Targets are written in the project's units format (JSONL, one ``{"id", "units"}`` a line, with
``<file>.config.json`` beside it holding ``k``, ``frame_rate`` and how they were made), so a units
file made by ``speechunits tokenize`` is a valid targets file too. The k-means codebook is saved
beside them (``<file>.kmeans.safetensors``). Every utterance's target count equals the encoder's
frame count (``floor((n - 400) / 320) + 1`` at 50 Hz): :func:`aligned_targets` checks it.

Note on layering: the pre-training lives with the encoders (it makes one) but needs k-means from
``speechunits.quantizers``; that import is made inside the functions, so importing
``speechunits.encoders`` never pulls in the quantizers.

Example (MFCC targets for a manifest; a few seconds for a few minutes of audio):
    >>> fit_targets("corpus/train.jsonl", "work/iter1.targets.jsonl", encoder="mfcc", k=100)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.encoders.pretrain.data import AudioSet, load_audio_set

log = logging.getLogger("speechunits.pretrain")

TARGETS_TYPE = "hubert-targets"


@dataclass
class TargetsResult:
    path: Path
    k: int
    layer: int
    layer_scores: dict[int, float] = field(default_factory=dict)  # PNMI per candidate layer
    frames: int = 0
    baseline_pnmi: float | None = None  # ``baseline`` encoder's PNMI on the same aligned audio
    failed: list[dict] = field(default_factory=list)  # unreadable inputs, ``{"id", "path", "reason"}``


def _encoder(spec, device):
    from speechunits.encoders import Encoder, load_encoder

    return spec if isinstance(spec, Encoder) else load_encoder(str(spec), device=device)


def _kmeans(x: np.ndarray, k: int, seed: int):
    """The project's k-means (k-means++ init + exact Lloyd), fitted on ``x [N, D]``."""
    from speechunits.quantizers import KMeans

    if len(x) < k:
        raise ValueError(f"only {len(x)} frames to fit k={k} clusters; lower k or give more audio")
    return KMeans(k, seed=seed).fit(x)


def _assign(km, x: np.ndarray) -> np.ndarray:
    return km.assign(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).cpu().numpy().astype(np.int64)


def _encode_all(enc, audio: AudioSet, layers: list[int], progress: bool, desc: str) -> list[np.ndarray]:
    """Features ``[T, len(layers), D]`` (float16, to halve memory) of every utterance."""
    from tqdm.auto import tqdm

    out = []
    for w in tqdm(audio.waves, desc=desc, disable=not progress, dynamic_ncols=True):
        out.append(enc.encode([w], layers)[0].numpy().astype(np.float16))
    return out


def _sample(feats: list[np.ndarray], col: int, max_frames: int, seed: int) -> np.ndarray:
    from speechunits.quantizers.sampling import sample_frames

    return sample_frames((f[:, col] for f in feats), max_frames=max_frames, seed=seed).data


def aligned_subset(audio: AudioSet, max_seconds: float) -> AudioSet:
    """The aligned utterances of ``audio``, in order, until ``max_seconds`` of audio is reached
    (the audio layers are scored on; raises ``ValueError`` when none is aligned)."""
    idx, total = [], 0.0
    for i, u in enumerate(audio.utterances):
        if u.alignment is not None and total < max_seconds:
            idx.append(i)
            total += len(audio.waves[i]) / 16000
    if not idx:
        raise ValueError("no utterance has an alignment: cannot score layers by PNMI")
    return AudioSet([audio.ids[i] for i in idx], [audio.waves[i] for i in idx], [audio.utterances[i] for i in idx])


def choose_layer(
    enc, audio: AudioSet, *, k: int = 100, seed: int = 0, max_seconds: float = 600.0, progress: bool = True,
    layers: Sequence[int] | None = None,
) -> tuple[int, dict[int, float]]:
    """The layer whose k-means units have the highest PNMI with the phone alignments.

    Uses the aligned utterances (up to ``max_seconds`` of them); returns ``(layer, {layer: PNMI})``.
    ``layers``: the candidates (default: every transformer layer, or layer 0 of a spectral
    encoder, whose score is then the baseline a trained encoder has to beat).
    """
    from speechunits.data.alignment import Alignment
    from speechunits.metrics.alignment_metrics import frame_label_pairs, pnmi

    sub = aligned_subset(audio, max_seconds)
    total = sub.seconds()
    alignments = [Alignment.load(u.alignment) for u in sub.utterances]
    if layers is None:
        layers = list(range(1, enc.num_layers + 1)) or [0]
    layers = [int(x) for x in layers]
    feats = _encode_all(enc, sub, layers, progress, "encode (layer choice)")
    scores = {}
    for col, layer in enumerate(layers):
        x = np.concatenate([f[:, col] for f in feats]).astype(np.float32)
        km = _kmeans(x, min(k, len(x)), seed)
        units = [_assign(km, f[:, col]) for f in feats]
        scores[layer] = float(pnmi(frame_label_pairs(units, alignments, "phones", enc.frame_rate)).nmi)
        log.info("layer %d: PNMI %.4f (k=%d, %.0f s)", layer, scores[layer], k, total)
    best = max(scores, key=lambda layer: (scores[layer], -layer))
    return best, scores


def fit_targets(
    manifest,
    out_path: str | os.PathLike,
    *,
    encoder="mfcc",
    layer: int | None = None,
    k: int = 100,
    seed: int = 0,
    max_frames: int = 250_000,
    select_by_pnmi: bool = True,
    select_seconds: float = 600.0,
    baseline: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> TargetsResult:
    """Fit k-means on ``encoder`` features of ``manifest`` and write per-utterance targets.

    Args:
        manifest: manifest path(s) (JSONL, tsv, folder, LibriSpeech tree).
        out_path: the targets JSONL to write (config sidecar and codebook beside it).
        encoder: ``"mfcc"`` (iteration 1), a model folder (iteration 2), or an ``Encoder``.
        layer: the layer to cluster; ``None``: 0 for spectral encoders, else by PNMI when
            alignments exist (``select_by_pnmi``), else the middle layer.
        k: clusters. max_frames: k-means is fitted on a uniform sample of at most this many frames.
        baseline: a spectral encoder name (e.g. ``"mfcc"``) whose k-means PNMI at the same ``k`` on
            the same aligned audio is returned as ``baseline_pnmi``: the bar the layers should clear.
    """
    from speechunits.tokens import Units
    from speechunits.tokens.io import write_jsonl

    enc = _encoder(encoder, device)
    audio = load_audio_set(manifest, progress=progress)
    scores: dict[int, float] = {}
    how = "given"
    if layer is None:
        if enc.num_layers == 0:
            layer, how = 0, "spectral encoder"
            if select_by_pnmi and any(u.alignment is not None for u in audio.utterances):
                # no choice to make, but the score is the baseline the next iteration must beat
                scores = choose_layer(enc, audio, k=k, seed=seed, max_seconds=select_seconds, progress=progress)[1]
        elif select_by_pnmi and any(u.alignment is not None for u in audio.utterances):
            layer, scores = choose_layer(enc, audio, k=k, seed=seed, max_seconds=select_seconds, progress=progress)
            how = "max PNMI"
        else:
            layer, how = (enc.num_layers + 1) // 2, "middle layer (no alignments)"
    layer = enc.resolve_layers([layer])[0]
    feats = _encode_all(enc, audio, [layer], progress, f"encode layer {layer}")
    for uid, f, w in zip(audio.ids, feats, audio.waves):
        if len(f) != enc.num_frames(len(w)):  # the encoder contract; a mismatch is a bug upstream
            raise ValueError(f"{uid}: encoder gave {len(f)} frames for {len(w)} samples")
    sample = _sample(feats, 0, max_frames, seed)
    km = _kmeans(sample, k, seed)
    config = {
        "type": TARGETS_TYPE, "frame_rate": float(enc.frame_rate), "k": int(k), "layer": int(layer),
        "layer_selection": how, "layer_pnmi": {str(a): b for a, b in scores.items()},
        "encoder": enc.config(), "seed": int(seed), "kmeans_frames": int(len(sample)), "data": audio.summary(),
    }
    units = [Units(_assign(km, f[:, 0]), enc.frame_rate, utt_id=uid) for uid, f in zip(audio.ids, feats)]
    out_path = Path(out_path)
    write_jsonl(out_path, units, config)
    _save_codebook(km, Path(str(out_path) + ".kmeans.safetensors"))
    log.info("wrote %s: %d utterances, k=%d, layer %d (%s)", out_path, len(units), k, layer, how)
    base = None
    if baseline is not None:
        base = choose_layer(_encoder(baseline, device), audio, k=k, seed=seed, max_seconds=select_seconds,
                            progress=progress)[1][0]
    return TargetsResult(out_path, int(k), int(layer), scores, sum(len(u) for u in units), base, audio.failed)


def quantize_targets(
    manifest, out_path: str | os.PathLike, encoder, quantizer, *, progress: bool = True, info: dict | None = None
) -> TargetsResult:
    """Targets from an already-fitted quantizer (e.g. Spin units for SpinHuBERT).

    ``quantizer`` follows the quantizer contract: ``layers``, ``ks`` and ``assign([T, L, D])``.
    """
    from tqdm.auto import tqdm

    from speechunits.tokens import Units
    from speechunits.tokens.io import write_jsonl

    enc = _encoder(encoder, "cpu")
    audio = load_audio_set(manifest, progress=progress)
    layers = [int(x) for x in quantizer.layers]
    units = []
    for uid, w in tqdm(list(zip(audio.ids, audio.waves)), desc="quantize", disable=not progress, dynamic_ncols=True):
        ids = quantizer.assign(enc.encode([w], layers)[0])[:, 0]
        units.append(Units(ids.cpu().numpy().astype(np.int64), enc.frame_rate, utt_id=uid))
    config = {"type": TARGETS_TYPE, "frame_rate": float(enc.frame_rate), "k": int(quantizer.ks[0]),
              "layer": layers[0], "layer_selection": "quantizer", "encoder": enc.config(),
              "quantizer": quantizer.config(), "data": audio.summary(), **(info or {})}
    write_jsonl(Path(out_path), units, config)
    return TargetsResult(Path(out_path), int(quantizer.ks[0]), layers[0], {}, sum(len(u) for u in units),
                         failed=audio.failed)


def _save_codebook(km, path: Path) -> None:
    from safetensors.torch import save_file

    c = km.centroids if isinstance(km.centroids, torch.Tensor) else torch.as_tensor(km.centroids)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"centroids": c.detach().float().cpu().contiguous()}, str(tmp))
    os.replace(tmp, path)


def read_targets(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[dict[str, np.ndarray], int, list[dict]]:
    """``({utt id: frame targets}, k, [configs])`` from one or more units files (JSONL/Parquet).

    ``k`` is the configs' ``k`` (they must agree), else the largest id + 1. De-duplicated units
    are expanded back to frames. Multi-codebook ``[T, L]`` units are refused.
    """
    from speechunits.tokens.dedup import expand_ids
    from speechunits.tokens.io import read_config, read_jsonl, read_parquet

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: dict[str, np.ndarray] = {}
    configs, ks = [], set()
    for p in paths:
        cfg = read_config(p)
        configs.append(cfg)
        if float(cfg["frame_rate"]) != 50.0:
            raise ValueError(f"{p}: targets at {cfg['frame_rate']} Hz; the encoder makes 50 Hz frames")
        units = read_parquet(p) if str(p).endswith(".parquet") else read_jsonl(p)
        for u in units:
            if u.ids.ndim != 1:
                raise ValueError(f"{p}: utterance {u.utt_id} has {u.ids.shape[1]} codebooks; targets need one")
            if u.utt_id in out:
                raise ValueError(f"{p}: utterance {u.utt_id} has targets in two files")
            ids = expand_ids(u.ids, u.durations) if u.durations is not None else u.ids
            out[u.utt_id] = np.asarray(ids, dtype=np.int64)
        k = cfg.get("k")
        if isinstance(k, list):
            raise ValueError(f"{p}: multi-codebook config (k={k}); targets need one codebook")
        if k is not None:
            ks.add(int(k))
    if len(ks) > 1:
        raise ValueError(f"target files disagree on k: {sorted(ks)}")
    top = max((int(v.max()) for v in out.values() if len(v)), default=-1) + 1
    k = ks.pop() if ks else top
    if top > k:
        raise ValueError(f"targets hold id {top - 1} but k = {k}")
    return out, int(k), configs


def aligned_targets(audio: AudioSet, targets: dict[str, np.ndarray], num_frames) -> list[np.ndarray]:
    """Each utterance's targets, checked to have exactly ``num_frames(samples)`` frames."""
    missing = [uid for uid in audio.ids if uid not in targets]
    if missing:
        raise ValueError(f"{len(missing)} of {len(audio)} utterances have no targets (e.g. {missing[:3]}); "
                         "make targets for the same manifest")
    out = []
    for uid, w in zip(audio.ids, audio.waves):
        t, n = targets[uid], num_frames(len(w))
        if len(t) != n:
            raise ValueError(f"{uid}: {len(t)} targets but the encoder makes {n} frames of its {len(w)} samples "
                             "(targets from another encoder frame convention, or another version of the audio?)")
        out.append(t)
    return out
