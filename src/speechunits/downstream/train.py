"""Train a probe on prepared task data and score it: the shared Trainer, dev-set early stopping.

A probe trains on *segments* of prepared utterances: ``(item, first frame, end frame)``. Most
tasks use whole utterances; speaker identification on one utterance per speaker (the
``train-clean-100`` of ``librispeech-mini``) splits each utterance in time (``region``): train on
its first 60 %, pick the best step on 60-70 %, test on the last 30 %. Without a dev set or a
region, a seeded 10 % of the training utterances is held out as dev.

Training runs on the shared :class:`~speechunits.encoders.pretrain.loop.Trainer` (AdamW, warm-up,
checkpoints that resume exactly, loss curve). Every ``eval_every`` steps the dev score (greedy
CER/PER, or accuracy) is logged; the best weights are kept in ``best/`` and the run stops when
the dev score has not improved for ``patience`` evaluations. The finished probe (the best
weights) is written to the run folder with its training summary.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from speechunits.data.atomic import atomic_write_text
from speechunits.data.shards import ShardStore
from speechunits.distributed import ddp
from speechunits.distributed.ddp import step_rng
from speechunits.encoders.pretrain.loop import WEIGHT, Trainer

from .model import ProbeConfig, ProbeModel
from .score import accuracy, ctc_beam, ctc_greedy, error_rate
from .tasks import WORD_SEP, get_task, symbols_text

Segment = tuple[int, int, int]  # (store item, first frame, end frame)


@dataclass
class ProbeSettings:
    """How a probe is built and trained (recorded in its run)."""

    input: str = "discrete"  # "discrete" (units) or "continuous" (the same layers' features)
    columns: list[int] | None = None  # positions in the tokenizer's layer list (default: all)
    init_centroids: bool = False  # discrete: tables start from the k-means centroids
    dim: int = 256
    hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.1
    downsample: int = 1  # sequence tasks: stack this many frames before the BiLSTM (2: half the CPU time)
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    warmup: float = 0.05
    crop_seconds: float = 3.0  # utterance tasks: random training crops (0: whole segments)
    eval_every: int = 100
    patience: int = 6  # evaluations without a better dev score before stopping
    max_dev: int = 200  # dev segments scored at each evaluation
    seed: int = 0
    checkpoint_every: int = 200
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


def segments(store: ShardStore, region: tuple[float, float] = (0.0, 1.0)) -> list[Segment]:
    """Every prepared utterance's frames ``[a*T, b*T)`` (utterances left with under 2 frames skipped)."""
    a, b = region
    if not 0.0 <= a < b <= 1.0:
        raise ValueError(f"region {region} must satisfy 0 <= start < end <= 1")
    out = []
    for i, it in enumerate(store.items):
        T = int(it["frames"])
        s, e = int(round(a * T)), int(round(b * T))
        if e - s >= 2:
            out.append((i, s, e))
    return out


class SegmentReader:
    """Batches of (inputs, lengths) for segments of a store: units or features, chosen columns."""

    def __init__(self, store: ShardStore, input: str, columns: Sequence[int], device: torch.device) -> None:
        self.store, self.input, self.columns, self.device = store, input, list(columns), device
        self.name = "units" if input == "discrete" else "feats"
        if input == "continuous" and not store.index.get("features"):
            raise ValueError(f"{store.folder}: prepared without features; prepare again with features for a continuous probe")
        self._units: dict[int, np.ndarray] = {}

    def read(self, seg: Segment) -> np.ndarray:
        i, s, e = seg
        if self.input == "discrete":  # units are small: keep them
            if i not in self._units:
                self._units[i] = self.store.get(i, ["units"])["units"]
            return self._units[i][s:e][:, self.columns]
        return self.store.get(i, ["feats"])["feats"][s:e][:, self.columns].astype(np.float32)

    def clean(self, segs: Sequence[Segment]) -> torch.Tensor:
        """Enhancement targets: the clean units of ``segs`` ``[B, T, L]``, padding -100 (ignored)."""
        arrs = [self.store.get(i, ["clean"])["clean"][s:e][:, self.columns] for i, s, e in segs]
        y = np.full((len(arrs), max(len(a) for a in arrs), len(self.columns)), -100, dtype=np.int64)
        for j, a in enumerate(arrs):
            y[j, : len(a)] = a
        return torch.from_numpy(y).to(self.device)

    def batch(self, segs: Sequence[Segment]) -> tuple[torch.Tensor, torch.Tensor]:
        arrs = [self.read(s) for s in segs]
        T = max(len(a) for a in arrs)
        shape = (len(arrs), T) + arrs[0].shape[1:]
        x = np.zeros(shape, dtype=np.int64 if self.input == "discrete" else np.float32)
        for j, a in enumerate(arrs):
            x[j, : len(a)] = a
        lengths = torch.tensor([len(a) for a in arrs])
        return torch.from_numpy(x).to(self.device), lengths.to(self.device)


def evenly_spread(items: Sequence, most: int) -> list:
    """At most ``most`` of ``items``, evenly spread over the sequence (first and last included)."""
    return [items[k] for k in np.unique(np.linspace(0, len(items) - 1, min(most, len(items))).round().astype(int))]


def frame_mean_std(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std over the first axis of all ``frames`` arrays together (float64), or ``None``
    when there is no frame: the continuous inputs' standardisation statistics."""
    total, sq, n = 0.0, 0.0, 0
    for x in frames:
        x = np.asarray(x, dtype=np.float64)
        total, sq, n = total + x.sum(0), sq + (x * x).sum(0), n + len(x)
    if n == 0:
        return None
    mean = total / n
    return mean, np.sqrt(np.maximum(sq / n - mean * mean, 0.0))


def feature_stats(reader: SegmentReader, train: Sequence[Segment], most: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer, per-dimension mean and std ``[L, F]`` of the frames of (at most ``most``, evenly
    spread) training segments: the continuous front-end's standardisation, fixed before training."""
    stats = frame_mean_std(reader.read(seg) for seg in evenly_spread(train, most))  # [T, L, F] each
    if stats is None:
        raise ValueError(f"{reader.store.folder}: the training segments have no frames")
    return torch.from_numpy(stats[0]).float(), torch.from_numpy(stats[1]).float()


def build_probe_config(task: str, tokenizer_info: dict, store: ShardStore, train: Sequence[Segment],
                       s: ProbeSettings, codebook_sizes: Sequence[int], centroid_dims: Sequence[int] | None) -> ProbeConfig:
    """The probe's config: symbols from the training targets, sizes from the tokenizer/store."""
    t = get_task(task)
    n_layers = len(store.index["layers"])
    cols = list(range(n_layers)) if s.columns is None else list(s.columns)
    if not cols or len(set(cols)) != len(cols) or any(not 0 <= c < n_layers for c in cols):
        raise ValueError(f"columns {s.columns} must be distinct positions in the tokenizer's layers {store.index['layers']}")
    targets = [store.items[i]["target"] for i, _, _ in train]
    if t.kind == "frames":
        symbols = []
    elif t.kind == "sequence":
        symbols = sorted({x for tg in targets for x in tg})
    else:
        symbols = sorted(set(targets))
    if t.kind == "utterance" and len(symbols) < 2:
        raise ValueError(f"{store.folder}: {len(symbols)} class(es) in the training data; classification needs at least 2")
    feature_dims = []
    if s.input == "continuous":
        F_ = int(store.get(0, ["feats"])["feats"].shape[-1])
        feature_dims = [F_] * len(cols)
    return ProbeConfig(
        task=task, kind=t.kind, input=s.input, symbols=symbols,
        codebook_sizes=[int(codebook_sizes[c]) for c in cols] if s.input == "discrete" else [],
        feature_dims=feature_dims,
        centroid_dims=None if (centroid_dims is None or s.input != "discrete") else [int(centroid_dims[c]) for c in cols],
        columns=cols, layers=[int(store.index["layers"][c]) for c in cols], dim=s.dim, hidden=s.hidden,
        lstm_layers=s.lstm_layers, dropout=s.dropout, downsample=1 if t.kind == "frames" else s.downsample,
        target_sizes=[int(codebook_sizes[c]) for c in cols] if t.kind == "frames" else [], tokenizer=dict(tokenizer_info))


def _targets(model: ProbeModel, store: ShardStore, segs: Sequence[Segment], device) -> tuple[torch.Tensor, ...]:
    c = model.config
    if c.kind == "frames":
        return (SegmentReader(store, c.input, c.columns, device).clean(segs),)
    if c.kind == "utterance":
        index = {lab: j for j, lab in enumerate(c.symbols)}
        return (torch.tensor([index[store.items[i]["target"]] for i, _, _ in segs], device=device),)
    index = {sym: j + 1 for j, sym in enumerate(c.symbols)}
    seqs = [[index[x] for x in store.items[i]["target"] if x in index] for i, _, _ in segs]
    flat = torch.tensor([x for q in seqs for x in q], dtype=torch.long, device=device)
    return flat, torch.tensor([len(q) for q in seqs], device=device)


def _loss_weight(model: ProbeModel, targets: tuple[torch.Tensor, ...]) -> float:
    """What :func:`probe_loss` averages over: target frames (``frames``), else utterances."""
    if model.config.kind == "frames":
        return float((targets[0][..., 0] != -100).sum())
    return float(len(targets[-1]))


def probe_loss(model: ProbeModel, x: torch.Tensor, lengths: torch.Tensor, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
    out, _ = model(x, lengths)
    if model.config.kind == "utterance":
        return F.cross_entropy(out, targets[0])
    if model.config.kind == "frames":  # one cross-entropy per predicted codebook, padding ignored
        parts = torch.split(out, model.config.target_sizes, dim=-1)
        return sum(F.cross_entropy(p.reshape(-1, p.shape[-1]), targets[0][..., j].reshape(-1), ignore_index=-100)
                   for j, p in enumerate(parts)) / len(parts)
    flat, tlen = targets
    return F.ctc_loss(out.transpose(0, 1), flat, model.output_lengths(lengths), tlen, blank=0, reduction="mean", zero_infinity=True)


@torch.no_grad()
def evaluate(model: ProbeModel, store: ShardStore, segs: Sequence[Segment], *, beam: int = 0, batch: int = 16,
             examples: int = 5, device: str | torch.device = "cpu", keep_units: bool = False) -> dict:
    """Score ``model`` on ``segs``: WER/CER or PER (greedy, and beam when ``beam`` > 1), accuracy,
    or unit accuracy (enhancement; ``keep_units`` also returns the enhanced units by id under
    ``"_units"``), each with a 95 % interval, plus the mean layer-attention weights."""
    from speechunits.metrics.intelligibility import error_counts

    c = model.config
    model.eval()
    reader = SegmentReader(store, c.input, c.columns, torch.device(device))
    weight_sum, frames = np.zeros(c.num_layers), 0
    hyps: dict[str, list] = {"greedy": [], "beam": []}
    correct, enhanced = [], []
    for j in range(0, len(segs), batch):
        part = segs[j : j + batch]
        x, lengths = reader.batch(part)
        out, w = model(x, lengths)
        mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).float()
        weight_sum += (w * mask[..., None]).sum((0, 1)).cpu().numpy()
        frames += int(lengths.sum())
        if c.kind == "frames":
            parts = torch.split(out, c.target_sizes, dim=-1)
            pred = torch.stack([p.argmax(-1) for p in parts], -1).cpu().numpy()
            enhanced += [pred[b, :n] for b, n in enumerate(lengths.tolist())]
            continue
        if c.kind == "utterance":
            pred = out.argmax(-1).cpu().tolist()
            correct += [c.symbols[p] == store.items[i]["target"] for p, (i, _, _) in zip(pred, part)]
            continue
        lp = out.cpu().numpy()
        for b, n in enumerate(model.output_lengths(lengths).tolist()):
            hyps["greedy"].append([c.symbols[k - 1] for k in ctc_greedy(lp[b, :n])])
            if beam > 1:
                hyps["beam"].append([c.symbols[k - 1] for k in ctc_beam(lp[b, :n], width=beam)])
    res: dict = {"task": c.task, "input": c.input, "layers": c.layers, "segments": len(segs),
                 "layer_weights": (weight_sum / max(frames, 1)).round(4).tolist()}
    if c.kind == "utterance":
        res["accuracy"] = accuracy(correct)
        return res
    if c.kind == "frames":
        return {**res, **_enhancement_scores(store, segs, c.columns, enhanced, keep_units)}
    refs = [list(store.items[i]["target"]) for i, _, _ in segs]
    for how, hs in hyps.items():
        if not hs:
            continue
        if c.task == "pr":
            counts = [error_counts(" ".join(r), " ".join(h)) for r, h in zip(refs, hs)]
            res[f"per_{how}"] = error_rate([e for e, _ in counts], [n for _, n in counts])
            continue
        ref_t, hyp_t = [symbols_text(r) for r in refs], [symbols_text(h) for h in hs]
        w_ = [error_counts(r, h, "word") for r, h in zip(ref_t, hyp_t)]
        ch = [error_counts(r.replace(" ", WORD_SEP), h.replace(" ", WORD_SEP), "char") for r, h in zip(ref_t, hyp_t)]
        res[f"wer_{how}"] = error_rate([e for e, _ in w_], [n for _, n in w_])
        res[f"cer_{how}"] = error_rate([e for e, _ in ch], [n for _, n in ch])
        if how == "greedy":
            res["examples"] = [{"id": store.items[i]["id"], "ref": r, "hyp": h}
                               for (i, _, _), r, h in list(zip(segs, ref_t, hyp_t))[:examples]]
    return res


def _enhancement_scores(store: ShardStore, segs: Sequence[Segment], columns: Sequence[int],
                        enhanced: list[np.ndarray], keep_units: bool) -> dict:
    from .enhance import unit_accuracy

    clean = [store.get(i, ["clean"])["clean"][s:e][:, columns] for i, s, e in segs]
    noisy = [store.get(i, ["units"])["units"][s:e][:, columns] for i, s, e in segs]
    acc = unit_accuracy(enhanced, clean, noisy)
    wrong = [int((p != c).sum()) for p, c in zip(enhanced, clean)]  # wrong (frame, layer) units
    err = error_rate(wrong, [c.size for c in clean])
    out = {"unit_accuracy": {"value": 1.0 - err["value"], "ci95": [1.0 - err["ci95"][1], 1.0 - err["ci95"][0]],
                             "per_layer": acc["enhanced"], "noisy_per_layer": acc["noisy"],
                             "noisy_value": float(np.mean(acc["noisy"])), "frames": acc["frames"]}}
    if keep_units:
        out["_units"] = {store.items[i]["id"]: (p, c, n) for (i, _, _), p, c, n in zip(segs, enhanced, clean, noisy)}
    return out


def headline(res: dict) -> float:
    """The one number a task is judged by: accuracy, or the beam (else greedy) WER / PER."""
    if "accuracy" in res:
        return res["accuracy"]["value"]
    if "unit_accuracy" in res:
        return res["unit_accuracy"]["value"]
    key = "per" if "per_greedy" in res else "wer"
    return res.get(f"{key}_beam", res[f"{key}_greedy"])["value"]


def _dev_score(res: dict) -> float:
    """Higher is better: accuracy, or minus the greedy CER / PER (smoother than WER early on)."""
    if "accuracy" in res:
        return res["accuracy"]["value"]
    if "unit_accuracy" in res:
        return res["unit_accuracy"]["value"]
    return -res.get("cer_greedy", res.get("per_greedy"))["value"]


def train_probe(task: str, store: ShardStore, out: str | os.PathLike, settings: ProbeSettings, *,
                codebook_sizes: Sequence[int], tokenizer_info: dict, centroids: Sequence[torch.Tensor] | None = None,
                train: Sequence[Segment] | None = None, dev: tuple[ShardStore, Sequence[Segment]] | None = None,
                progress: bool = True, resume: bool = True, stop_at: int | None = None) -> ProbeModel | None:
    """Train (or resume) a probe; returns it when finished (``None`` when ``stop_at`` ended the run early)."""
    s, out = settings, Path(out)
    w = ddp.world(s.device)  # torchrun: each rank takes its part of every batch (distributed.ddp)
    device = ddp.rank_device(s.device, w)
    train = list(segments(store) if train is None else train)
    if dev is None:  # hold out a seeded 10 % of the training segments
        order = np.random.default_rng(s.seed).permutation(len(train))
        n_dev = max(1, len(train) // 10) if len(train) >= 10 else 0
        dev = (store, [train[k] for k in sorted(order[:n_dev])])
        train = [train[k] for k in sorted(order[n_dev:])]
    dev_store, dev_segs = dev[0], list(dev[1])[: s.max_dev]
    if len(train) < 2:
        raise ValueError(f"{store.folder}: {len(train)} training segment(s); a probe needs at least 2")
    centroid_dims = None if centroids is None else [int(c.shape[1]) for c in centroids]
    if s.init_centroids and centroids is None:
        raise ValueError("init_centroids needs the tokenizer's k-means centroids (a k-means tokenizer)")
    cfg = build_probe_config(task, tokenizer_info, store, train, s, codebook_sizes,
                             centroid_dims if s.init_centroids else None)
    torch.manual_seed(s.seed)
    model = ProbeModel(cfg).to(device)
    if cfg.centroid_dims is not None:
        with torch.no_grad():
            for emb, c in zip(model.frontend.embs, [centroids[k] for k in cfg.columns]):
                emb.weight.copy_(c.float())
    reader = SegmentReader(store, s.input, cfg.columns, device)
    if s.input == "continuous":
        model.frontend.set_stats(*feature_stats(reader, train))
    crop = int(round(s.crop_seconds * float(tokenizer_info.get("frame_rate", 50.0)))) if cfg.kind in ("utterance", "frames") else 0
    best_file = out / "best" / "model.safetensors"
    if not resume:
        shutil.rmtree(best_file.parent, ignore_errors=True)

    def draw(step: int) -> list[Segment]:
        r = step_rng(s.seed, step, "probe")
        segs = [train[k] for k in r.integers(0, len(train), s.batch)]
        if crop <= 0:
            return segs
        outs = []
        for i, a, b in segs:
            if b - a > crop:
                a = int(r.integers(a, b - crop + 1))
                b = a + crop
            outs.append((i, a, b))
        return outs

    def loss_fn(step: int):
        metrics = {}
        if dev_segs and step > 0 and (step % s.eval_every == 0 or step == s.steps - 1):
            metrics["dev_score"] = _dev_score(evaluate(model, dev_store, dev_segs, device=device))
            best = max([h["dev_score"] for h in trainer.history if "dev_score" in h], default=-np.inf)
            if metrics["dev_score"] >= best and w.is_main:  # ties go to the later (longer-trained) weights
                model.save_pretrained(best_file.parent)
        model.train()
        segs = ddp.part(draw(step), w)  # the global batch's draws, this rank's part
        x, lengths = reader.batch(segs)
        targets = _targets(model, store, segs, device)
        metrics[WEIGHT] = _loss_weight(model, targets)
        return probe_loss(model, x, lengths, targets), metrics

    def should_stop(history: list[dict]) -> bool:
        scores = [h["dev_score"] for h in history if "dev_score" in h]
        if len(scores) <= s.patience:
            return False
        last_best = len(scores) - 1 - int(np.argmax(scores[::-1]))
        return last_best < len(scores) - s.patience

    params = {n: p for n, p in model.named_parameters()}
    run_cfg = {"task": task, "settings": {k: v for k, v in asdict(s).items() if k != "device"},
               "tokenizer": tokenizer_info.get("fingerprint"), "train_segments": len(train), "device": s.device}
    trainer = Trainer(out / "training", params, loss_fn, steps=s.steps, lr=s.lr, warmup=s.warmup, seed=s.seed,
                      checkpoint_every=s.checkpoint_every, progress=progress, desc=f"probe {task}", config=run_cfg,
                      clip=5.0, should_stop=should_stop if dev_segs else None, distributed=True)
    trainer.run(resume=resume, stop_at=stop_at)
    ddp.barrier(w)  # the best model is written
    if not trainer.finished:
        return None
    if not w.is_main:  # rank 0 writes the model and the summary
        return model.eval()
    final = ProbeModel.from_pretrained(best_file.parent, device=device) if best_file.exists() else model.eval()
    final.save_pretrained(out)
    scores = [(h["step"], h["dev_score"]) for h in trainer.history if "dev_score" in h]
    summary = {"task": task, "settings": asdict(s), "train_segments": len(train), "dev_segments": len(dev_segs),
               "steps_run": trainer.step, "stopped_early": trainer.stopped_early, "dev_curve": scores,
               "best_step": max(scores, key=lambda t: (t[1], t[0]))[0] if scores else trainer.step,
               "final_loss": float(np.mean([h["loss"] for h in trainer.history[-20:]])),
               "median_step_s": float(np.median([h["seconds"] for h in trainer.history]))}
    atomic_write_text(out / "training.json", json.dumps(summary, indent=2) + "\n")
    return final
