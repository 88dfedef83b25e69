"""Supervised CTC fine-tuning on phones or characters from alignments (DC-Spin's optional stage).

DC-Spin reports that fine-tuning the encoder for phoneme (or character) recognition before the
Spin stage makes the units more phonetic. Here the labels come from the manifest's alignments:
the phone tier (``tier="phones"``, silence left out) or the character tier with a ``|`` between
words (``tier="chars"``). A linear head on the top layer is trained with
``torch.nn.functional.ctc_loss`` (blank = 0) together with the top ``trainable_layers``
transformer layers (default: all of them; the CNN stays frozen, as in wav2vec 2.0 fine-tuning).
Crops keep the labels whose segment centre lies inside the crop, so batches stay short.

Output folder: ``encoder/`` (the fine-tuned model, loadable with ``load_encoder``; use it as
``train_spin``'s encoder), ``ctc_head.safetensors`` + ``ctc_vocab.json``, ``checkpoint/``,
``loss.json``/``loss.png``, ``train_config.json``.

Example:
    >>> r = ctc_finetune("w/it2/encoder", "corpus/train.jsonl", "w/ctc", tier="phones", steps=300)  # doctest: +SKIP
    >>> train_spin(r.encoder_dir, "corpus/train.jsonl", "w/dcspin", codebooks=(500, 4096))  # doctest: +SKIP
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
from torch import nn

from speechunits.data.atomic import atomic_write_text
from speechunits.encoders.pretrain.data import HOP, CropSampler, collate, load_audio_set
from speechunits.encoders.pretrain.finetune import freeze_lower_layers, layer_outputs, set_train_mode
from speechunits.encoders.pretrain.loop import Trainer
from speechunits.encoders.pretrain.model import frame_lengths, save_encoder

log = logging.getLogger("speechunits.pretrain")
SKIP_LABELS = ("sil", "SIL", "sp", "spn", "<unk>", "", "_")
WORD_SEP = "|"


@dataclass
class CTCResult:
    out_dir: Path
    encoder_dir: Path | None  # None when stopped early (``stop_at``): run again to continue
    head_path: Path | None
    vocab: list[str]
    history: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # unreadable inputs, ``{"id", "path", "reason"}``


def label_events(alignment, tier: str, skip=SKIP_LABELS) -> list[tuple[float, str]]:
    """``(time in seconds, label)`` in order: segment centres of ``tier``, plus a ``|`` at the end
    of every word but the last for ``tier="chars"``."""
    if tier == "phones":
        return [((s.start + s.end) / 2, s.label) for s in alignment.phones if s.label not in skip]
    if tier == "chars":
        ev = [((s.start + s.end) / 2, s.label.lower()) for s in alignment.chars if s.label.strip()]
        ev += [(w.end, WORD_SEP) for w in alignment.words[:-1]]
        return sorted(ev, key=lambda e: (e[0], e[1] == WORD_SEP))
    raise ValueError(f"tier must be 'phones' or 'chars', got {tier!r}")


def ctc_finetune(
    encoder_dir: str | os.PathLike,
    manifest,
    out_dir: str | os.PathLike,
    *,
    tier: str = "phones",
    steps: int = 500,
    batch_size: int = 8,
    crop_seconds: float = 4.0,
    trainable_layers: int | None = None,
    lr: float = 2e-4,
    warmup: int | float = 0.1,
    weight_decay: float = 0.01,
    clip: float = 10.0,
    seed: int = 0,
    checkpoint_every: int = 200,
    resume: bool = True,
    progress: bool = True,
    device: str = "cpu",
    max_utterances: int | None = None,
    stop_at: int | None = None,
) -> CTCResult:
    """Fine-tune an encoder with CTC on alignment labels; returns the new encoder's folder."""
    from safetensors.torch import save_file

    from speechunits.data.alignment import Alignment
    from speechunits.encoders import load_encoder
    from speechunits.encoders.hf import check_device

    dev = check_device(device)
    out = Path(out_dir)
    enc = load_encoder(str(encoder_dir))
    if not hasattr(getattr(enc.model, "encoder", None), "layers"):
        raise ValueError(f"{encoder_dir}: CTC fine-tuning runs on transformers SSL encoders (HuBERT, WavLM, "
                         f"wav2vec 2.0, ours); {type(enc).__name__} is not supported yet")
    model = enc.model
    n_layers = len(model.encoder.layers)
    trainable = n_layers if trainable_layers is None else int(trainable_layers)
    audio = load_audio_set(manifest, require_alignment=True, max_utterances=max_utterances, progress=progress)
    events = [label_events(Alignment.load(u.alignment), tier) for u in audio.utterances]
    vocab = sorted({lab for ev in events for _, lab in ev})
    if not vocab:
        raise ValueError(f"no {tier} labels in the alignments of {manifest}")
    index = {lab: i + 1 for i, lab in enumerate(vocab)}  # 0 is the CTC blank
    times = [np.array([t for t, _ in ev]) for ev in events]
    ids = [np.array([index[lab] for _, lab in ev], dtype=np.int64) for ev in events]

    model.to(dev)
    params = {f"encoder.{n}": p for n, p in freeze_lower_layers(model, trainable).items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        head = nn.Linear(model.config.hidden_size, len(vocab) + 1).to(dev)
    params.update({f"head.{n}": p for n, p in head.named_parameters()})
    set_train_mode(model, trainable, True)
    sampler = CropSampler(audio.lengths, batch_size, int(crop_seconds * 16000), seed, pad=enc.pad_safe)

    def loss_fn(step: int):
        crops = sampler.batch(step)
        x, att, lengths = collate([audio.crop(c.index, c.start, c.length, enc.normalize) for c in crops])
        nf = frame_lengths(model, lengths)
        hidden = layer_outputs(model, x.to(dev), None if att is None else att.to(dev), layers=[-1])[n_layers]
        log_probs = head(hidden).log_softmax(-1).transpose(0, 1)  # [T, B, C]
        targets, tlen = [], []
        for c in crops:
            t0, t1 = c.start / 16000, (c.start + c.length) / 16000
            keep = (times[c.index] >= t0) & (times[c.index] < t1)
            targets.append(torch.from_numpy(ids[c.index][keep]))
            tlen.append(int(keep.sum()))
        loss = F.ctc_loss(log_probs, torch.cat(targets).to(dev), nf.to(dev), torch.tensor(tlen, device=dev),
                          blank=0, reduction="mean", zero_infinity=True)
        return loss, {"labels_per_s": float(sum(tlen) / (sum(lengths) / 16000))}

    run_cfg = {"task": "ctc", "encoder": str(encoder_dir), "tier": tier, "vocab": vocab, "batch_size": batch_size,
               "crop_seconds": crop_seconds, "trainable_layers": trainable, "lr": lr, "warmup": warmup,
               "weight_decay": weight_decay, "clip": clip, "utterances": len(audio), "device": device,
               "checkpoint_every": checkpoint_every, "progress": progress,
               "encoder_weights_sha256": enc.weights_sha256()}
    trainer = Trainer(out, params, loss_fn, steps=steps, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip,
                      seed=seed, checkpoint_every=checkpoint_every, progress=progress, desc=f"ctc-{tier}", config=run_cfg)
    history = trainer.run(resume=resume, stop_at=stop_at)
    if not trainer.finished:
        return CTCResult(out, None, None, vocab, history, audio.failed)

    set_train_mode(model, trainable, False)
    info = {**run_cfg, "seed": seed, "steps": steps, "data": audio.summary(), "hop": HOP,
            "final_loss": float(np.mean([h["loss"] for h in history[-20:]]))}
    enc_dir = save_encoder(model, out / "encoder", extra=info, normalize=enc.normalize)
    head_path = out / "ctc_head.safetensors"
    save_file({n: t.detach().cpu().contiguous() for n, t in head.state_dict().items()}, str(out / ".ctc_head.tmp"))
    os.replace(out / ".ctc_head.tmp", head_path)
    atomic_write_text(out / "ctc_vocab.json", json.dumps({"blank": 0, "tier": tier, "labels": vocab}, indent=2) + "\n")
    atomic_write_text(out / "train_config.json", json.dumps(info, indent=2) + "\n")
    return CTCResult(out, enc_dir, head_path, vocab, history, audio.failed)
