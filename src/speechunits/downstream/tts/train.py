"""Train a text-to-units model for a tokenizer: data once, then the shared :class:`Trainer` loop.

``<out>/data/{train,dev}`` hold the prepared utterances (resumable), ``<out>/training/`` the
checkpoint and the loss curve, ``<out>/best/`` the weights of the best dev step, and ``<out>``
itself the finished model (``config.json`` + ``model.safetensors``, the best dev weights) with
``training.json`` (the dev curve). Each step draws ``batch`` training utterances from
``(seed, step)`` (cropped to runs of whole phones of at most ``max_frames`` frames), so a
resumed run continues exactly. Every ``eval_every`` steps the dev set is scored teacher-forced
(unit cross-entropy and accuracy per layer with the true durations) and by its durations (the
mean absolute error of the rounded predicted frames per phone, and of the total length); the
run stops when the dev loss has not improved for ``patience`` evaluations.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.data.manifest import Utterance
from speechunits.distributed.ddp import step_rng
from speechunits.encoders.pretrain.loop import Trainer

from ..prepare import tokenizer_fingerprint
from . import artifact
from .data import TTSData, prepare_tts_data
from .model import TextToUnits, TTSConfig, tts_loss

log = logging.getLogger("speechunits.tts")


@dataclass
class TTSSettings:
    """How a text-to-units model is built and trained (recorded in its run and its config)."""

    steps: int = 3000
    batch: int = 16
    max_frames: int = 250  # training crops: runs of whole phones of at most this many frames (0: whole)
    lr: float = 2e-3
    warmup: float = 0.05
    dim: int = 192
    heads: int = 2
    encoder_layers: int = 3
    decoder_layers: int = 3
    ffn_dim: int = 384
    kernel: int = 3
    dropout: float = 0.1
    duration_weight: float = 1.0
    speaker: bool = True
    eval_every: int = 100
    patience: int = 5  # dev evaluations without a lower dev loss before stopping
    dev_utterances: int = 32  # most dev utterances scored (without --dev: this many held out of train)
    seed: int = 0
    checkpoint_every: int = 200
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


@torch.no_grad()
def dev_scores(model: TextToUnits, data: TTSData, which: Sequence[int], device: torch.device,
               batch: int = 8) -> dict:
    """Teacher-forced unit CE / accuracy per layer and duration errors on whole utterances."""
    was = model.training
    model.eval()
    ce, correct, frames = np.zeros(model.num_layers), np.zeros(model.num_layers), 0
    dmse, dabs, nph, total_err, total_len = 0.0, 0.0, 0, 0.0, 0
    for j in range(0, len(which), batch):
        b = data.batch(which[j : j + batch], device)
        out = model(b["phones"], b["n_phones"], b["durations"], b["speaker"])
        _, m = tts_loss(model, out, b["units"], b["durations"], b["n_phones"])
        n = int(out["frames"].sum())
        for li in range(model.num_layers):
            ce[li] += float(m[f"ce_{li}"]) * n
            correct[li] += float(m[f"acc_{li}"]) * n
        frames += n
        pm = (torch.arange(b["phones"].shape[1], device=device)[None] < b["n_phones"][:, None])
        k = int(pm.sum())
        dmse += float(m["duration_mse"]) * k
        pred, _ = model.predict_durations(b["phones"], b["n_phones"], b["speaker"])
        dabs += float(((pred - b["durations"]).abs() * pm).sum())
        total_err += float((pred.sum(1) - b["durations"].sum(1)).abs().sum())
        total_len += int(b["durations"].sum())
        nph += k
    model.train(was)
    ce, acc = ce / max(frames, 1), correct / max(frames, 1)
    return {"dev_ce": float(ce.mean()), "dev_acc": float(acc.mean()), "dev_ce_per_layer": ce.round(4).tolist(),
            "dev_acc_per_layer": acc.round(4).tolist(), "dev_duration_mse": dmse / max(nph, 1),
            "dev_duration_abs_frames": dabs / max(nph, 1), "dev_length_error": total_err / max(total_len, 1),
            "dev_loss": float(ce.mean()) + dmse / max(nph, 1)}


def _speaker_embed(settings: TTSSettings):
    if not settings.speaker:
        return None
    from speechunits.encoders.speaker import SpeakerEncoder

    return SpeakerEncoder.from_installed().embed


def train_tts(tokenizer, utts: Sequence[Utterance], out: str | os.PathLike, settings: TTSSettings, *,
              dev_utts: Sequence[Utterance] | None = None, source: str = "", progress: bool = True,
              resume: bool = True, stop_at: int | None = None) -> "artifact.TextToSpeech | None":
    """Train (or resume) a text-to-units model for ``tokenizer`` on phone-aligned ``utts``;
    returns it when finished (``None`` when ``stop_at`` ended the run early, to continue later)."""
    s, out = settings, Path(out)
    device = torch.device(s.device)
    embed = _speaker_embed(s)
    train = TTSData(prepare_tts_data(out / "data" / "train", utts, tokenizer, embed, progress=progress))
    if dev_utts:
        dev = TTSData(prepare_tts_data(out / "data" / "dev", dev_utts, tokenizer, embed, progress=progress))
        train_idx = np.arange(len(train))
        dev_idx = np.arange(min(len(dev), s.dev_utterances))
    else:  # a seeded share of the training utterances is the dev set
        order = np.random.default_rng(s.seed).permutation(len(train))
        n_dev = min(s.dev_utterances, len(train) // 10)
        dev, dev_idx, train_idx = train, np.sort(order[:n_dev]), np.sort(order[n_dev:])
    if len(train_idx) < 2:
        raise ValueError(f"{out / 'data' / 'train'}: {len(train_idx)} usable training utterance(s); at least 2 are needed")
    sizes = [int(k) for k in tokenizer.vocab_sizes]
    rate = float(train.store.index["frame_rate"])
    cfg = TTSConfig(codebook_sizes=sizes, dim=s.dim, heads=s.heads, encoder_layers=s.encoder_layers,
                    decoder_layers=s.decoder_layers, ffn_dim=s.ffn_dim, kernel=s.kernel, dropout=s.dropout,
                    speaker_dim=256 if s.speaker else 0, frame_rate=rate)
    torch.manual_seed(s.seed)
    model = TextToUnits(cfg).to(device)
    best_dir = out / "best"
    if not resume:
        shutil.rmtree(best_dir, ignore_errors=True)
    fp = tokenizer_fingerprint(tokenizer)
    from speechunits.vocoder.artifact import tokenizer_fingerprint as units_fingerprint

    spk_mean = None
    if s.speaker:
        spk = torch.from_numpy(np.stack([train.speakers[i] for i in train_idx]))
        spk_mean = torch.nn.functional.normalize(spk.mean(0), dim=0)
    k = sizes[0] if len(set(sizes)) == 1 else sizes
    meta = {"tokenizer": {"fingerprint": fp, "units_fingerprint": units_fingerprint(tokenizer), "source": source,
                          "layers": list(tokenizer.layers), "k": k, "frame_rate": rate,
                          "unit_offset_s": train.store.index["unit_offset_s"]},
            "phonemizer": {"tool": "espeak-ng (mb-<voice> --pho)", "phone_set": "ARPAbet without stress + sil"}}

    def loss_fn(step: int):
        metrics = {}
        if len(dev_idx) and step > 0 and (step % s.eval_every == 0 or step == s.steps - 1):
            metrics = {k_: v for k_, v in dev_scores(model, dev, dev_idx, device).items() if isinstance(v, float)}
            best = min([h["dev_loss"] for h in trainer.history if "dev_loss" in h], default=np.inf)
            if metrics["dev_loss"] <= best:
                artifact.save(best_dir, model, spk_mean, meta)
        model.train()
        r = step_rng(s.seed, step, "tts")
        b = train.batch(train_idx[r.integers(0, len(train_idx), s.batch)], device, s.max_frames, r)
        out_ = model(b["phones"], b["n_phones"], b["durations"], b["speaker"])
        loss, m = tts_loss(model, out_, b["units"], b["durations"], b["n_phones"], s.duration_weight)
        return loss, {**m, **metrics}

    def should_stop(history: list[dict]) -> bool:
        losses = [h["dev_loss"] for h in history if "dev_loss" in h]
        if len(losses) <= s.patience:
            return False
        return int(np.argmin(losses)) < len(losses) - s.patience

    params = {n: p for n, p in model.named_parameters()}
    run_cfg = {"settings": {k_: v for k_, v in asdict(s).items() if k_ != "device"}, "tokenizer": fp,
               "train_utterances": int(len(train_idx)), "dev_utterances": int(len(dev_idx)), "device": s.device}
    trainer = Trainer(out / "training", params, loss_fn, steps=s.steps, lr=s.lr, warmup=s.warmup, seed=s.seed,
                      checkpoint_every=s.checkpoint_every, progress=progress, desc="tts", config=run_cfg, clip=1.0,
                      should_stop=should_stop if len(dev_idx) else None)
    trainer.run(resume=resume, stop_at=stop_at)
    if not trainer.finished:
        return None
    hist = trainer.history
    curve = [{k_: h[k_] for k_ in ("step", "dev_loss", "dev_ce", "dev_acc", "dev_duration_abs_frames",
                                   "dev_length_error") if k_ in h} for h in hist if "dev_loss" in h]
    best = min(curve, key=lambda c: c["dev_loss"]) if curve else None
    summary = {"settings": asdict(s), "train_utterances": int(len(train_idx)), "dev_utterances": int(len(dev_idx)),
               "train_audio_s": round(sum(train.items[i]["seconds"] for i in train_idx), 1),
               "steps_run": trainer.step, "stopped_early": trainer.stopped_early, "dev_curve": curve,
               "best_step": best["step"] if best else trainer.step,
               "first_loss": float(np.mean([h["loss"] for h in hist[:20]])),
               "final_loss": float(np.mean([h["loss"] for h in hist[-20:]])),
               "median_step_s": float(np.median([h["seconds"] for h in hist])),
               "parameters": int(sum(p.numel() for p in model.parameters()))}
    meta["training"] = {k_: summary[k_] for k_ in ("settings", "train_utterances", "dev_utterances", "train_audio_s",
                                                   "steps_run", "best_step", "parameters")}
    if best_dir.exists():  # the best dev weights, with the finished run's record
        _, best_model, _ = artifact.load(best_dir, device)
        model = best_model
    artifact.save(out, model, spk_mean, meta)
    atomic_write_text(out / "training.json", json.dumps(summary, indent=2) + "\n")
    return artifact.TextToSpeech.from_pretrained(out, device=device)
