"""Training Spin and DC-Spin on any transformers SSL encoder or Whisper, and loading the result.

``train_spin`` fine-tunes the top ``trainable_layers`` transformer layers of an encoder (the
project's own, or a real HuBERT / WavLM / wav2vec 2.0 folder) together with the Spin heads
(:mod:`speechunits.quantizers.spin`): ``codebooks=(500,)`` is Spin, ``codebooks=(500, 4096)`` is
DC-Spin (primary codebook = the units, auxiliary codebook = a second Spin loss on the same
features, summed). As in the reference (``vectominist/spin``): Adam-style optimiser at 1e-4 with
weight decay 1e-6, linear warm-up and decay, gradient clipping at 10, lower layers and CNN frozen,
codewords re-normalised after each step.

Every step crops ``batch_size`` utterances (hop-aligned, seeded) and makes each crop's
speaker-perturbed copy on the fly (``random_speaker_perturbation``: formant x U(1, 1.4)^+-1, F0 x
U(1, 2)^+-1, pitch range x U(1, 1.5)^+-1, random 10-band EQ; seeded by (seed, step, item); about
10 ms per second of audio). The copy keeps the duration, so both views have the same frames;
this is checked. Both views run in one forward pass; padding frames never enter the loss.

Output folder::

    encoder/                     the fine-tuned encoder (load_encoder works on it)
    quantizer/                   the primary codebook as a SpinQuantizer (config.json + model.safetensors)
    spin_heads.safetensors/.json every head (primary + auxiliary), for analysis
    checkpoint/ loss.json loss.png train_config.json

Example:
    >>> r = train_spin("w/it2/encoder", "corpus/train.jsonl", "w/spin", codebooks=(500,), steps=600)  # doctest: +SKIP
    >>> encoder, quantizer = load_spin("w/spin")  # doctest: +SKIP
    >>> from speechunits.tokenizer import Tokenizer
    >>> Tokenizer(encoder, quantizer).save_pretrained("w/spin-tokenizer")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.distributed import ddp
from speechunits.encoders.pretrain.data import CropSampler, load_audio_set
from speechunits.distributed.ddp import step_rng, step_seed
from speechunits.encoders.pretrain.loop import WEIGHT, Trainer
from speechunits.encoders.pretrain.model import span_mask
from speechunits.quantizers.spin import SpinHeads, SpinQuantizer
from speechunits.quantizers.spin_backbone import backbone_for

log = logging.getLogger("speechunits.spin")


@dataclass
class SpinResult:
    out_dir: Path
    encoder_dir: Path | None  # None when stopped early (``stop_at``): run again to continue
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)  # unreadable inputs, ``{"id", "path", "reason"}``


def perturbed_view(raw: np.ndarray, seed: int) -> np.ndarray:
    """The speaker-perturbed copy of a crop (same length, clipped to [-1, 1] as Spin does)."""
    from speechunits.audio.errors import AudioError, AudioWarning
    from speechunits.audio.perturb import random_speaker_perturbation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)  # EQ boosts may peak above 1: clipped below
        try:
            y = random_speaker_perturbation(seed).apply(raw)
        except AudioError as err:  # rare (Praat cannot re-synthesise a near-silent crop): one easy pair
            log.warning("speaker perturbation skipped for one crop (seed %d): %s", seed, err.reason)
            y = np.asarray(raw, dtype=np.float32)
    if len(y) != len(raw):
        raise RuntimeError(f"speaker perturbation changed the length ({len(raw)} -> {len(y)} samples)")
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def train_spin(
    encoder_dir: str | os.PathLike,
    manifest,
    out_dir: str | os.PathLike,
    *,
    codebooks: Sequence[int] = (500,),
    steps: int = 1000,
    trainable_layers: int = 2,
    batch_size: int = 8,
    crop_seconds: float = 3.0,
    lr: float = 1e-4,
    warmup: int | float = 0.1,
    final_lr_ratio: float = 0.01,
    weight_decay: float = 1e-6,
    clip: float = 10.0,
    proj_dim: int = 256,
    temperature: float = 0.1,
    epsilon: float = 0.02,
    sinkhorn_iters: int = 3,
    hard_targets: bool = False,
    mask_prob: float = 0.0,
    mask_length: int = 5,
    seed: int = 0,
    checkpoint_every: int = 200,
    resume: bool = True,
    progress: bool = True,
    device: str = "cpu",
    max_utterances: int | None = None,
    stop_at: int | None = None,
    layer: int | None = None,
    position_guard: bool = True,
) -> SpinResult:
    """Train Spin (one codebook) or DC-Spin (primary + auxiliary); see the module docstring.

    Args:
        encoder_dir: a transformers SSL model folder (or cached hub name).
        manifest: training manifest(s).
        codebooks: codebook sizes, primary first (50 ... 4096 each).
        trainable_layers: top transformer layers fine-tuned (Spin: 2 of 12); the rest are frozen.
        mask_prob, mask_length: optional light time masking (share of frames starting a span,
            e.g. 0.01 with spans of 5); 0 disables it (the reference's default).
        hard_targets: arg-max instead of soft Sinkhorn targets.
        stop_at: stop at this step with a checkpoint (no outputs yet); call again to continue.
        layer: Whisper only: the layer Spin reads and below which it fine-tunes (default: the last
            transformer layer); transformers SSL encoders always use their top layer.
        position_guard: Whisper only: each view at its own random position offset, so codes cannot
            agree across views by encoding position (:mod:`~speechunits.quantizers.spin_backbone`).
    """
    from speechunits.encoders import load_encoder
    from speechunits.encoders.hf import check_device

    w = ddp.world(device)  # torchrun: each rank takes its part of every batch (distributed.ddp)
    dev = ddp.rank_device(check_device(device), w)
    if batch_size < w.size:
        raise ValueError(f"batch_size {batch_size} is smaller than the {w.size} processes it is split over")
    out = Path(out_dir)
    if any(not 2 <= int(k) <= 65536 for k in codebooks):
        raise ValueError(f"codebook sizes must be in 2..65536, got {list(codebooks)}")
    enc = load_encoder(str(encoder_dir), device=dev)
    backbone = backbone_for(enc, layer=layer, position_guard=position_guard)
    model = enc.model
    top = backbone.layer
    if mask_prob > 0 and (getattr(model, "masked_spec_embed", None) is None
                          or not getattr(model.config, "apply_spec_augment", True)):
        log.warning("%s has no mask embedding (or apply_spec_augment=False): masking disabled", encoder_dir)
        mask_prob = 0.0
    audio = load_audio_set(manifest, max_utterances=max_utterances, progress=progress)
    model.to(dev)
    trainable = backbone.freeze(trainable_layers, train_mask_emb=mask_prob > 0)
    params = {f"encoder.{n}": p for n, p in trainable.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)
        heads = SpinHeads(backbone.dim, [int(k) for k in codebooks], proj_dim, temperature=temperature,
                          epsilon=epsilon, sinkhorn_iters=sinkhorn_iters, hard_targets=hard_targets, world=w).to(dev)
    params.update({f"heads.{n}": p for n, p in heads.named_parameters()})
    backbone.train_mode(True)
    heads.train()
    sampler = CropSampler(audio.lengths, batch_size, int(crop_seconds * 16000), seed, pad=backbone.pad_safe)

    def loss_fn(step: int):
        views_a, views_b = [], []
        # b: the crop's place in the global batch, so its perturbation is the one-process one
        for b, c in ddp.part(list(enumerate(sampler.batch(step))), w):
            raw = audio.crop(c.index, c.start, c.length, normalize=False)
            pert = perturbed_view(raw, step_seed(seed, step, f"perturb{b}"))
            views_a.append(audio.crop(c.index, c.start, c.length, normalize=getattr(enc, "normalize", False)))
            views_b.append(backbone.prepare(pert))
        def step_mask(nf: list[int]) -> torch.Tensor:
            return span_mask(nf, step_rng(seed, step, "mask"), mask_prob, mask_length, min_masks=0)

        h_a, h_b = backbone.pair_features(views_a, views_b, step_rng(seed, step, "position"), dev,
                                          step_mask if mask_prob > 0 else None)
        res = heads(h_a, h_b)
        res[WEIGHT] = len(h_a)  # frames: the loss is a mean over this rank's frames
        return res.pop("loss"), res

    enc_sha = enc.weights_sha256()
    run_cfg = {"task": "spin" if len(codebooks) == 1 else "dc-spin", "encoder": str(encoder_dir),
               "encoder_weights_sha256": enc_sha, "codebooks": [int(k) for k in codebooks],
               "trainable_layers": trainable_layers, "batch_size": batch_size, "crop_seconds": crop_seconds, "lr": lr,
               "warmup": warmup, "final_lr_ratio": final_lr_ratio, "weight_decay": weight_decay, "clip": clip,
               "proj_dim": proj_dim, "temperature": temperature, "epsilon": epsilon, "sinkhorn_iters": sinkhorn_iters,
               "hard_targets": hard_targets, "mask_prob": mask_prob, "mask_length": mask_length,
               "perturbation": "random_speaker_perturbation (formant, F0, pitch range, EQ)",
               "spin_layer": top, "position_guard": bool(backbone.position_guard),
               "utterances": len(audio), "device": device, "checkpoint_every": checkpoint_every, "progress": progress}
    trainer = Trainer(out, params, loss_fn, steps=steps, lr=lr, warmup=warmup, final_lr_ratio=final_lr_ratio,
                      weight_decay=weight_decay, clip=clip, seed=seed, checkpoint_every=checkpoint_every,
                      after_step=heads.normalize_codebooks, progress=progress, desc=run_cfg["task"], config=run_cfg,
                      distributed=True)
    log.info("%s: codebooks %s, top %d of %d layers trained, %d utterances (%.2f h), %d steps of %d x %.1f s (x2 views)",
             run_cfg["task"], list(codebooks), trainable_layers, top, len(audio), audio.seconds() / 3600, steps,
             batch_size, crop_seconds)
    history = trainer.run(resume=resume, stop_at=stop_at)
    if not trainer.finished or not w.is_main:  # rank 0 writes the outputs
        return SpinResult(out, None, history, run_cfg, audio.failed)

    backbone.train_mode(False)
    heads.eval()
    info = {**run_cfg, "seed": seed, "steps": steps, "data": audio.summary(),
            "final_loss": float(np.mean([h["loss"] for h in history[-20:]]))}
    enc_dir = backbone.save(out / "encoder", info)
    # The codebook only makes sense on *this* fine-tuned encoder: record its weights' hashes.
    q_info = {"method": run_cfg["task"], "codebooks": run_cfg["codebooks"], "temperature": temperature,
              "encoder_layer": top, "trained_from": str(encoder_dir), "steps": steps, "seed": seed,
              "encoder_weights_sha256": load_encoder(str(enc_dir)).weights_sha256()}
    heads.primary.quantizer(top, info=q_info).save_pretrained(out / "quantizer")
    _save_heads(heads, out, info)
    atomic_write_text(out / "train_config.json", json.dumps(info, indent=2) + "\n")
    return SpinResult(out, enc_dir, history, info, audio.failed)


def _save_heads(heads: SpinHeads, out: Path, info: dict) -> None:
    from safetensors.torch import save_file

    save_file({n: t.detach().cpu().contiguous() for n, t in heads.state_dict().items()}, str(out / ".spin_heads.tmp"))
    os.replace(out / ".spin_heads.tmp", out / "spin_heads.safetensors")
    meta = {"codebooks": info["codebooks"], "proj_dim": info["proj_dim"], "temperature": info["temperature"],
            "epsilon": info["epsilon"], "sinkhorn_iters": info["sinkhorn_iters"], "hard_targets": info["hard_targets"]}
    atomic_write_text(out / "spin_heads.json", json.dumps(meta, indent=2) + "\n")


def load_spin(out_dir: str | os.PathLike, *, device: str = "cpu", codebook: int = 0):
    """``(encoder, SpinQuantizer)`` of a ``train_spin`` folder; ``codebook=1`` gives DC-Spin's
    auxiliary codebook instead of the primary one (for analysis)."""
    from safetensors.torch import load_file

    from speechunits.encoders import load_encoder

    d = Path(out_dir)
    enc = load_encoder(str(d / "encoder"), device=device)
    primary = SpinQuantizer.from_pretrained(d / "quantizer", device=device)
    want = primary.info.get("encoder_weights_sha256")
    if want and enc.weights_sha256() != want:
        raise ValueError(f"{d / 'encoder'}: weights differ from those the Spin codebook was trained with (sha256)")
    if codebook == 0:
        return enc, primary
    meta = json.loads((d / "spin_heads.json").read_text())
    if not 0 <= codebook < len(meta["codebooks"]):
        raise ValueError(f"{d}: codebook {codebook} out of range (has {len(meta['codebooks'])})")
    heads = SpinHeads(enc.dim, meta["codebooks"], meta["proj_dim"], temperature=meta["temperature"])
    heads.load_state_dict(load_file(str(d / "spin_heads.safetensors")))
    q = heads.heads[codebook].quantizer(primary.layers[0], info={"method": "dc-spin auxiliary", "codebook": codebook})
    return enc, q.to(device)
