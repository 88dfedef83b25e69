"""Train a unit vocoder for a tokenizer: features once, then the shared :class:`Trainer` loop.

``<out>/features/`` holds the prepared examples (resumable), ``<out>/training/`` the checkpoint and
the loss curve (``loss.json``, ``loss.png``; the held-out mel L1 is logged every ``eval_every``
steps as ``dev_l1``), and ``<out>/config.json`` + ``model.safetensors`` the finished vocoder.
Each step takes ``batch`` random crops of ``crop_s`` seconds (with ``context`` unit frames on each
side, as the whole utterance would have at synthesis) and, when a duration predictor is trained,
the run lengths of ``batch`` whole utterances. Every draw is a function of ``(seed, step)``, so a
resumed run continues exactly.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.data.manifest import Utterance
from speechunits.distributed import ddp
from speechunits.distributed.ddp import step_rng
from speechunits.encoders.pretrain.loop import PARTIAL, Trainer

from . import artifact
from .data import FeatureStore, prepare_features
from .duration import DurationConfig, DurationPredictor, duration_loss, run_length_batch
from .unit_mel import UnitMelConfig, UnitToMel, mel_loss, mel_unit_index
from .vocoder import UnitVocoder

log = logging.getLogger("speechunits.vocoder")


@dataclass
class VocoderSettings:
    """What a vocoder training run does (stored in its checkpoint and its config)."""

    steps: int = 3000
    batch: int = 16
    crop_s: float = 2.0
    context: int = 8
    lr: float = 2e-3
    warmup: float = 0.05
    seed: int = 0
    dim: int = 256
    unit_blocks: int = 3
    mel_blocks: int = 4
    kernel: int = 5
    dropout: float = 0.1
    layer_dropout: float = 0.5
    speaker: bool = True
    duration: bool = True
    dev_utterances: int = 8
    eval_every: int = 100
    checkpoint_every: int = 200
    device: str = "cpu"
    unit_layers: list[int] | None = None  # indices into the tokenizer's layers (default: all)
    extra: dict = field(default_factory=dict)


def train_vocoder(tokenizer, utts: Sequence[Utterance], out: str | os.PathLike, settings: VocoderSettings,
                  *, source: str = "", progress: bool = True, resume: bool = True,
                  stop_at: int | None = None) -> UnitVocoder | None:
    """Train (or resume) a vocoder for ``tokenizer`` on ``utts``; returns it when finished
    (``None`` when ``stop_at`` ended the run early, to continue later)."""
    s = settings
    out = Path(out)
    w = ddp.world(s.device)  # torchrun: rank 0 prepares the features, each rank takes its part of a batch
    device = ddp.rank_device(s.device, w)
    fingerprint = artifact.tokenizer_fingerprint(tokenizer)
    speaker_embed = None
    if s.speaker:
        from speechunits.encoders.speaker import SpeakerEncoder

        speaker_embed = SpeakerEncoder.from_installed().embed
    n_tok = len(tokenizer.layers)
    cols = list(range(n_tok)) if s.unit_layers is None else list(s.unit_layers)
    if not cols or any(not 0 <= c < n_tok for c in cols) or len(set(cols)) != len(cols):
        raise ValueError(f"unit_layers {s.unit_layers} must be distinct indices into the tokenizer's {n_tok} layer(s) "
                         f"{list(tokenizer.layers)}")

    def frame_units(wave: np.ndarray) -> np.ndarray:
        ids = tokenizer.frame_units([wave])[0]
        return ids.reshape(len(ids), -1)[:, cols]

    with ddp.main_first(w):
        store = prepare_features(out / "features", utts, frame_units, f"{fingerprint}:{cols}", speaker_embed,
                                 progress=progress)
    if len(store) < 2:
        raise ValueError(f"{out / 'features'}: {len(store)} usable utterance(s); a vocoder needs at least 2")
    rate, offset = artifact.unit_framing(tokenizer)
    sizes = [int(tokenizer.vocab_sizes[c]) for c in cols]  # one codebook size per layer spoken
    k = sizes[0] if len(set(sizes)) == 1 else sizes
    mcfg = UnitMelConfig(codebook_sizes=sizes, dim=s.dim, unit_blocks=s.unit_blocks,
                         mel_blocks=s.mel_blocks, kernel=s.kernel, dropout=s.dropout, layer_dropout=s.layer_dropout,
                         speaker_dim=256 if s.speaker else 0, unit_rate=rate, unit_offset_s=offset)
    torch.manual_seed(s.seed)
    model = UnitToMel(mcfg).to(device)
    dur = (DurationPredictor(DurationConfig(codebook_size=sizes[0], speaker_dim=256 if s.speaker else 0,
                                            dropout=s.dropout)).to(device)
           if s.duration and len(cols) == 1 else None)
    with torch.no_grad():  # start from the corpus' mean spectrum, not from silence at log 0
        mean = torch.cat([store.get(i).mel for i in range(min(len(store), 32))], dim=1).mean(1)
        model.out.bias.copy_(mean.to(device))
    n_dev = min(s.dev_utterances, len(store) // 5)
    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(store))
    dev, train = order[:n_dev], order[n_dev:]
    batches = _Batcher(store, mcfg, s, device)
    state = {"dev_l1": float("nan")}

    def loss_fn(step: int):
        # the global batch drawn (and padded) as one process draws it, then this rank's rows;
        # each loss term is this rank's part of the global mean (frame and run counts all-reduced)
        r = step_rng(s.seed, step, "vocoder")
        mine = ddp.part(range(s.batch), w)
        b = _rows(batches.crops(train[r.integers(0, len(train), s.batch)], r), mine)
        model.train()
        gen = torch.Generator().manual_seed(int(r.integers(0, 2**31)) + 7919 * w.rank)
        pred = model(b["units"], b["lengths"], b["mel_frames"], b["speaker"], generator=gen, index=b["index"])
        d = _rows(batches.runs(train[r.integers(0, len(train), s.batch)]), mine) if dur is not None else None
        local = torch.tensor([float(b["mel_frames"].sum()), float(d["lengths"].sum()) if d else 0.0], dtype=torch.float64)
        share = (local / ddp.all_reduce(local.clone(), w).clamp_min(1)).tolist()
        loss, metrics = mel_loss(pred, b["mel"], b["mel_frames"])
        loss = loss * share[0]
        if d is not None:
            dloss = duration_loss(dur(d["units"], d["lengths"], d["speaker"]), d["durations"], d["lengths"])
            loss = loss + dloss * share[1]
            metrics["duration_mse"] = dloss.detach()
        metrics[PARTIAL] = 1.0
        if n_dev and (step % s.eval_every == 0 or step == s.steps - 1):
            state["dev_l1"] = batches.dev_l1(model, dev)
        metrics["dev_l1"] = state["dev_l1"]
        return loss, metrics

    params = {f"mel.{n}": p for n, p in model.named_parameters()}
    if dur is not None:
        params.update({f"duration.{n}": p for n, p in dur.named_parameters()})
    run_cfg = {"settings": {k_: v for k_, v in asdict(s).items() if k_ not in ("device",)},
               "tokenizer": fingerprint, "utterances": len(store), "device": s.device}
    trainer = Trainer(out / "training", params, loss_fn, steps=s.steps, lr=s.lr, warmup=s.warmup, seed=s.seed,
                      checkpoint_every=s.checkpoint_every, progress=progress, desc="vocoder", config=run_cfg,
                      weight_decay=0.01, betas=(0.9, 0.98), clip=1.0, distributed=True)
    trainer.run(resume=resume, stop_at=stop_at)
    if not trainer.finished or not w.is_main:  # rank 0 writes the vocoder
        ddp.barrier(w)
        return None
    model.eval()
    spk_mean = None
    if s.speaker:
        spk = torch.stack([store.get(int(i)).speaker for i in train])
        spk_mean = torch.nn.functional.normalize(spk.mean(0), dim=0)
    hist = trainer.history
    meta = {"tokenizer": {"fingerprint": fingerprint, "source": source, "layers": list(tokenizer.layers), "k": k,
                          "frame_rate": rate, "unit_layers": cols},
            "training": {"settings": asdict(s), "utterances": len(store), "dev_utterances": int(n_dev),
                         "audio_seconds": round(sum(it["seconds"] for it in store.items), 1),
                         "final_loss": float(np.mean([h["loss"] for h in hist[-50:]])),
                         "final_dev_l1": state["dev_l1"]}}
    artifact.save(out, model, dur, spk_mean, meta)
    ddp.barrier(w)
    return UnitVocoder.from_pretrained(out, tokenizer=tokenizer, device=device)


def _rows(batch: dict, rows: Sequence[int]) -> dict:
    """Rows ``rows`` (contiguous) of a padded batch; padding stays as the whole batch had it."""
    sl = slice(rows[0], rows[-1] + 1)
    return {k: v[sl] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Batcher:
    """Crops and run-length batches from a :class:`FeatureStore`, drawn with a given generator."""

    def __init__(self, store: FeatureStore, cfg: UnitMelConfig, s: VocoderSettings, device: torch.device) -> None:
        self.store, self.cfg, self.s, self.device = store, cfg, s, device
        self.crop = max(8, int(round(s.crop_s * cfg.mel_rate)))

    def _index(self, ex) -> np.ndarray:
        c = self.cfg
        return mel_unit_index(ex.mel.shape[1], len(ex.units), c.unit_rate, c.unit_offset_s, c.mel_rate, c.mel_offset_s)

    def crops(self, which: np.ndarray, r: np.random.Generator) -> dict:
        units, mels, idxs, spk = [], [], [], []
        for i in which:
            ex = self.store.get(int(i))
            full = self._index(ex)
            M = ex.mel.shape[1]
            j0 = int(r.integers(0, max(1, M - self.crop + 1)))
            j1 = min(M, j0 + self.crop)
            a = max(0, int(full[j0]) - self.s.context)
            b = min(len(ex.units), int(full[j1 - 1]) + 1 + self.s.context)
            units.append(ex.units[a:b])
            mels.append(ex.mel[:, j0:j1])
            idxs.append(torch.from_numpy(full[j0:j1] - a))
            spk.append(ex.speaker)
        return self._pack(units, mels, idxs, spk)

    def _pack(self, units, mels, idxs, spk) -> dict:
        B, L = len(units), units[0].shape[1]
        T, M = max(len(u) for u in units), max(m.shape[1] for m in mels)
        U = torch.zeros(B, T, L, dtype=torch.long)
        Y = torch.zeros(B, self.cfg.n_mels, M)
        X = torch.zeros(B, M, dtype=torch.long)
        for i, (u, m, x) in enumerate(zip(units, mels, idxs)):
            U[i, : len(u)], Y[i, :, : m.shape[1]], X[i, : len(x)] = u, m, x
        d = self.device
        return {"units": U.to(d), "mel": Y.to(d), "index": X.to(d),
                "lengths": torch.tensor([len(u) for u in units], device=d),
                "mel_frames": torch.tensor([m.shape[1] for m in mels], device=d),
                "speaker": torch.stack(spk).to(d) if spk[0] is not None else None}

    def runs(self, which: np.ndarray) -> dict:
        return run_length_batch(self.store, which, self.device)

    @torch.no_grad()
    def dev_l1(self, model: UnitToMel, dev: np.ndarray) -> float:
        """Mean L1 of whole held-out utterances, synthesized as at inference (no crop)."""
        was = model.training
        model.eval()
        total, frames = 0.0, 0
        for i in dev:
            ex = self.store.get(int(i))
            spk = None if ex.speaker is None else ex.speaker[None].to(self.device)
            M = ex.mel.shape[1]
            pred = model(ex.units[None].to(self.device), torch.tensor([len(ex.units)], device=self.device),
                         torch.tensor([M], device=self.device), spk)
            total += float((pred[0].cpu() - ex.mel).abs().sum())
            frames += M * ex.mel.shape[0]
        model.train(was)
        return total / max(frames, 1)

