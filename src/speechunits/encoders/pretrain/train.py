"""HuBERT masked prediction: pre-train the project's encoder on precomputed cluster targets.

Each step takes ``batch_size`` random hop-aligned crops (:class:`~.data.CropSampler`), masks
spans of the CNN features with the learned mask vector (p = 8% span starts, span 10:
:func:`~.model.span_mask`), and minimises the cross-entropy of the cosine logits
(:class:`~.model.PretrainHead`, temperature 0.1) against the frames' cluster ids, on masked
frames (plus ``unmasked_weight`` x the loss on unmasked frames; HuBERT uses 0). Iteration 1 uses
MFCC k-means targets, iteration 2 k-means of the iteration-1 model's hidden layer, SpinHuBERT the
units of a Spin tokenizer (:mod:`.targets`).

Output folder::

    encoder/            the HubertModel: speechunits.encoders.load_encoder("<out>/encoder")
    head.safetensors    the pre-training head (final_proj + label embeddings), head.json its config
    checkpoint/         resumable state (see speechunits.encoders.pretrain.loop)
    train_config.json   every setting, the data and targets summaries
    loss.json loss.png  the loss curve (and per-step seconds: the measured speed)

Example (tiny model, a few steps):
    >>> r = pretrain_hubert("corpus/train.jsonl", "work/iter1.targets.jsonl", "work/iter1",
    ...                     preset="tiny", steps=20)  # doctest: +SKIP
    >>> from speechunits.encoders import load_encoder
    >>> enc = load_encoder(r.encoder_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechunits.data.atomic import atomic_write_text
from speechunits.distributed import ddp
from speechunits.encoders.pretrain.augment import augment_crop
from speechunits.encoders.pretrain.data import CropSampler, collate, load_audio_set, normalize
from speechunits.distributed.ddp import step_rng, step_seed
from speechunits.encoders.pretrain.loop import PARTIAL, Trainer
from speechunits.encoders.pretrain.model import (
    DEFAULT_PRESET,
    PretrainHead,
    build_model,
    count_parameters,
    final_dim_of,
    frame_lengths,
    save_encoder,
    span_mask,
)
from speechunits.encoders.pretrain.targets import aligned_targets, read_targets

log = logging.getLogger("speechunits.pretrain")
IGNORE = -100


@dataclass
class PretrainResult:
    out_dir: Path
    encoder_dir: Path | None  # None when the run stopped early (``stop_at``): resume it
    head_path: Path | None
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)  # unreadable inputs, ``{"id", "path", "reason"}``

    @property
    def complete(self) -> bool:
        return self.encoder_dir is not None

    @property
    def final_loss(self) -> float:
        tail = [h["loss"] for h in self.history[-20:]]
        return float(np.mean(tail)) if tail else float("nan")


def pretrain_hubert(
    manifest,
    targets,
    out_dir: str | os.PathLike,
    *,
    preset: str = DEFAULT_PRESET,
    steps: int = 2000,
    batch_size: int = 8,
    crop_seconds: float = 3.0,
    lr: float = 5e-4,
    warmup: int | float = 0.08,
    final_lr_ratio: float = 0.0,
    weight_decay: float = 0.01,
    clip: float = 10.0,
    mask_prob: float = 0.08,
    mask_length: int = 10,
    unmasked_weight: float = 0.0,
    init_from: str | os.PathLike | None = None,
    seed: int = 0,
    checkpoint_every: int = 200,
    resume: bool = True,
    progress: bool = True,
    device: str = "cpu",
    max_utterances: int | None = None,
    model_overrides: dict | None = None,
    frontend: str = "cnn",
    augment: float = 0.0,
    stop_at: int | None = None,
) -> PretrainResult:
    """Pre-train a HuBERT-style encoder on frame targets; see the module docstring.

    Args:
        manifest: training manifest(s) (a path or a list).
        targets: targets file(s) for the same utterances (:func:`~.targets.fit_targets`).
        out_dir: run folder (resumed from its ``checkpoint/`` when ``resume``).
        preset: model size (:data:`~.model.PRESETS`); ignored with ``init_from``.
        init_from: start from this encoder folder instead of random weights (e.g. iteration 2
            warm-started from iteration 1; HuBERT itself restarts from scratch). The head is
            always new (the targets changed).
        crop_seconds: longest crop; batch_size x crop_seconds is the audio per step.
        mask_prob, mask_length: span masking (share of frames starting a span, span frames).
        unmasked_weight: weight of the loss on unmasked frames (HuBERT: 0; at this scale 1.0
            teaches the front-end far faster, docs/results.md).
        frontend: ``"cnn"`` (the light CNN, random init), ``"fbank"`` (a CNN initialised as a
            mel filterbank, :mod:`.frontend`) or ``"logmel"`` (a learnable log-mel filterbank,
            :mod:`speechunits.encoders.logmel_hubert`); ignored with ``init_from``.
        augment: share of crops whose input is distorted (speaker perturbation, noise, reverb)
            while their targets stay those of the clean audio (:mod:`.augment`); 0 = off.
        stop_at: stop at this step with a checkpoint and return an incomplete result (no
            ``encoder/`` yet); calling again with the same arguments continues exactly.
    """
    from transformers import AutoModel

    from speechunits.encoders.hf import check_device
    from speechunits.encoders.logmel_hubert import register_auto_classes
    from speechunits.security import safe_from_pretrained

    w = ddp.world(device)  # torchrun: each rank takes its part of every batch (distributed.ddp)
    dev = ddp.rank_device(check_device(device), w)  # before minutes of audio loading
    register_auto_classes()
    out = Path(out_dir)
    audio = load_audio_set(manifest, max_utterances=max_utterances, progress=progress)
    table, k, tcfgs = read_targets(targets)
    if init_from is not None:
        model = safe_from_pretrained(AutoModel, init_from, local_files_only=True)
        final_dim = min(256, model.config.hidden_size)
    else:
        model = build_model(preset, seed=seed, frontend=frontend, **(model_overrides or {}))
        final_dim = final_dim_of(preset)
    cfg = model.config
    frames_of = lambda n: int(frame_lengths(model, [n])[0])  # noqa: E731
    tgts = aligned_targets(audio, table, frames_of)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        head = PretrainHead(cfg.hidden_size, k, final_dim)
    model.to(dev).train()
    head.to(dev).train()
    pad = cfg.feat_extract_norm == "layer"  # group-norm CNNs see padding: cut batches to equal length
    sampler = CropSampler(audio.lengths, batch_size, int(crop_seconds * 16000), seed, pad=pad)

    def _augmented(crops, mine: list[int], step: int) -> list:
        """The crops ``mine`` (indices into ``crops``, the global batch), those chosen by
        ``augment`` distorted (raw audio in, normalised like the rest out); the draws and the
        audio mixed in come from the global batch, as in one process."""
        raws = [audio.crop(c.index, c.start, c.length, normalize=False) for c in crops]
        pick = step_rng(seed, step, "augment").random(len(crops)) < augment
        out = []
        for b in mine:
            if pick[b]:
                others = [r for i, r in enumerate(raws) if i != b]
                y, _ = augment_crop(raws[b], step_seed(seed, step, f"augment{b}"), others)
                out.append(normalize(y))  # over the crop itself, as Spin's perturbed view (do_normalize models)
            else:
                out.append(audio.crop(crops[b].index, crops[b].start, crops[b].length))
        return out

    def loss_fn(step: int):
        every = sampler.batch(step)
        mine = ddp.part(range(len(every)), w)  # torchrun: this rank's part of the global batch
        crops = [every[b] for b in mine]
        if augment > 0:
            waves = _augmented(every, mine, step)
        else:
            waves = [audio.crop(c.index, c.start, c.length) for c in crops]
        x, att, lengths = collate(waves)
        nf = frame_lengths(model, lengths)
        T = int(nf.max())
        y = torch.full((len(crops), T), IGNORE, dtype=torch.long)
        for b, c in enumerate(crops):
            y[b, : nf[b]] = torch.from_numpy(tgts[c.index][c.first_frame : c.first_frame + int(nf[b])])
        # masks drawn over the global batch (the one-process draws), then this rank's rows
        all_nf = frame_lengths(model, [c.length for c in every])
        mask = span_mask(all_nf.tolist(), step_rng(seed, step, "mask"), mask_prob, mask_length)[mine]
        mask = mask[:, :T] if mask.shape[1] >= T else F.pad(mask, (0, T - mask.shape[1]))
        hidden = model(x.to(dev), attention_mask=None if att is None else att.to(dev),
                       mask_time_indices=mask.to(dev)).last_hidden_state
        y, mask = y.to(dev), mask.to(dev)
        valid = y != IGNORE
        m, u = valid & mask, valid & ~mask
        # means over the global batch's frames: counts all-reduced, so the ranks' losses add up
        n_m, n_u = ddp.all_reduce(torch.tensor([float(m.sum()), float(u.sum())], dtype=torch.float64), w).tolist()
        logits_m = head(hidden[m])
        loss = F.cross_entropy(logits_m, y[m], reduction="sum") / max(n_m, 1.0)
        metrics = {"acc_masked": float((logits_m.argmax(-1) == y[m]).float().mean()) if m.any() else 0.0,
                   "masked_frac": float(m.sum() / valid.sum()), PARTIAL: 1.0}
        if unmasked_weight > 0 and n_u > 0:
            logits_u = head(hidden[u])
            loss_u = F.cross_entropy(logits_u, y[u], reduction="sum") / n_u
            loss = loss + unmasked_weight * loss_u
            metrics["loss_unmasked"] = float(loss_u.detach()) * w.size  # averaged over ranks when logged
        return loss, metrics

    params = {f"encoder.{n}": p for n, p in model.named_parameters()}
    params.update({f"head.{n}": p for n, p in head.named_parameters()})
    run_cfg = {
        "task": "hubert-pretrain", "preset": None if init_from else preset,
        "frontend": None if init_from else frontend,
        "init_from": str(init_from) if init_from else None,
        "batch_size": batch_size, "crop_seconds": crop_seconds, "lr": lr, "warmup": warmup,
        "final_lr_ratio": final_lr_ratio, "weight_decay": weight_decay, "clip": clip, "mask_prob": mask_prob,
        "mask_length": mask_length, "unmasked_weight": unmasked_weight, "augment": augment,
        "k": k, "final_dim": final_dim,
        "targets": [str(t) for t in ([targets] if isinstance(targets, (str, os.PathLike)) else targets)],
        "model_overrides": model_overrides or {}, "utterances": len(audio), "device": device,
        "checkpoint_every": checkpoint_every, "progress": progress,
    }
    trainer = Trainer(out, params, loss_fn, steps=steps, lr=lr, warmup=warmup, final_lr_ratio=final_lr_ratio,
                      weight_decay=weight_decay, clip=clip, seed=seed, checkpoint_every=checkpoint_every,
                      progress=progress, desc="hubert", config=run_cfg, distributed=True)
    log.info("HuBERT pre-training: %s, %.2fM parameters, k=%d, %d utterances (%.2f h), %d steps of %d x %.1f s",
             preset if init_from is None else init_from, count_parameters(model) / 1e6, k, len(audio),
             audio.seconds() / 3600, steps, batch_size, crop_seconds)
    history = trainer.run(resume=resume, stop_at=stop_at)
    if not trainer.finished or not w.is_main:  # rank 0 writes the outputs
        return PretrainResult(out, None, None, history, run_cfg, audio.failed)

    model.eval()
    info = {**run_cfg, "seed": seed, "steps": steps, "data": audio.summary(),
            "targets_config": [{k_: c.get(k_) for k_ in ("type", "k", "layer", "layer_selection", "layer_pnmi", "seed")}
                               for c in tcfgs],
            "parameters": count_parameters(model), "final_loss": float(np.mean([h["loss"] for h in history[-20:]]))}
    enc_dir = save_encoder(model, out / "encoder", extra=info)
    head_path = save_head(head, out)
    atomic_write_text(out / "train_config.json", json.dumps(info, indent=2) + "\n")
    return PretrainResult(out, enc_dir, head_path, history, info, audio.failed)


def save_head(head: PretrainHead, out: Path) -> Path:
    """``head.safetensors`` + ``head.json`` beside the encoder folder (not inside it, so the
    encoder folder holds only what inference needs and its weights hash ignores the head)."""
    from safetensors.torch import save_file

    path = out / "head.safetensors"
    tmp = out / ".head.safetensors.tmp"
    save_file({n: t.detach().cpu().contiguous() for n, t in head.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    atomic_write_text(out / "head.json", json.dumps(head.config(), indent=2) + "\n")
    return path


def load_head(out_dir: str | os.PathLike) -> PretrainHead:
    """The pre-training head saved by :func:`pretrain_hubert` in ``out_dir``."""
    from safetensors.torch import load_file

    d = Path(out_dir)
    cfg = json.loads((d / "head.json").read_text())
    head = PretrainHead(cfg["hidden_size"], cfg["num_classes"], cfg["final_dim"], cfg["temperature"])
    head.load_state_dict(load_file(str(d / "head.safetensors")))
    return head
