"""Instruction tuning of an :class:`~.model.InstructLM` on the shared training harness.

The loop is :class:`speechunits.encoders.pretrain.loop.Trainer` (AdamW, warm-up + linear decay,
clipping, atomic checkpoints, exact resume, early stopping decided from the logged history), as
for every other training loop here. Step ``s`` draws ``batch`` examples from every task with
``step_rng(seed, s)``; the loss is the mean NLL of the answer tokens. What carries the speech in
and starts untrained -- the continuous adapter, the discrete input's new vocabulary rows -- learns
at ``adapter_lr``, the LLM (LoRA or every weight) at ``lr``: the same rule on both inputs.

Every ``eval_every`` steps the model answers the dev examples greedily; their error
(:func:`~.score.dev_error`, lower is better) is logged, the best model is saved to ``out_dir``, and
training stops after ``patience`` evaluations without a better one. Evaluation time is logged
apart, so "training seconds until the dev score stopped improving" compares the two inputs fairly.

Output: the best model (``InstructLM.save``), ``training/`` (checkpoint, ``loss.json``,
``loss.png``), ``summary.json`` (dev curve, best step, its training seconds, positions per second).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from speechunits.data.atomic import atomic_write_text
from speechunits.distributed.ddp import step_rng
from speechunits.encoders.pretrain.loop import Trainer

from ..train import evenly_spread
from .model import META_FILE, move_contents
from .score import dev_error, score_items


@dataclass
class InstructSettings:
    steps: int = 1000
    batch: int = 8  # examples per step
    lr: float = 2e-4  # LoRA / full fine-tuning
    adapter_lr: float = 1e-3  # the speech input's new parameters: adapter or new rows
    warmup: float = 0.05  # share of the steps
    weight_decay: float = 0.01
    clip: float = 1.0
    eval_every: int = 100
    patience: int = 4  # evaluations without a better dev error before stopping (0: never stop early)
    dev_max: int = 40  # dev examples per task scored at each evaluation
    max_new_tokens: int = 48
    checkpoint_every: int = 50
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def is_speech_input_param(name: str) -> bool:
    """The parameters that start untrained and carry the speech in: the continuous input's adapter,
    the discrete input's new vocabulary rows (peft's trainable-token rows under LoRA; under full
    fine-tuning the rows are part of the whole embedding matrix and learn at ``lr``)."""
    return name.startswith("adapter.") or "trainable_tokens_delta" in name


def dev_subset(items: Sequence, per_task: int) -> list:
    """At most ``per_task`` dev examples of each task, evenly spread over its dev list (manifests
    are often sorted by label or speaker), fixed so every evaluation is comparable."""
    by_task: dict[str, list] = {}
    for it in items:
        by_task.setdefault(it.task, []).append(it)
    return [it for group in by_task.values() for it in evenly_spread(group, per_task)]


def train_instruct(model, train: Sequence, dev: Sequence, out_dir: str | Path, settings: InstructSettings,
                   resume: bool = True, extra_meta: dict | None = None, stop_at: int | None = None) -> dict[str, Any]:
    """Train ``model`` on ``train``, early-stopping on ``dev``; returns the summary (also written).

    ``resume``: continue from ``out_dir/training/checkpoint`` when its settings match.
    ``stop_at``: end this call at that step with a checkpoint (the next call continues)."""
    s = settings
    out = Path(out_dir)
    if not train or not dev:
        raise ValueError("instruction tuning needs training and dev examples")
    model.to(s.device)
    dev_items = dev_subset(dev, s.dev_max)
    best_dir = out / "best"
    if not resume:
        shutil.rmtree(best_dir, ignore_errors=True)

    def loss_fn(step: int):
        metrics: dict[str, float] = {}
        if step > 0 and (step % s.eval_every == 0 or step == s.steps - 1):
            t0 = time.perf_counter()
            scores, _ = score_items(model, dev_items, s.max_new_tokens)
            metrics["dev_error"] = dev_error(scores)
            metrics.update({f"dev_{t}": r["value"] for t, r in scores.items()})
            best = min([h["dev_error"] for h in trainer.history if "dev_error" in h], default=np.inf)
            if metrics["dev_error"] <= best:  # ties go to the later (longer-trained) weights
                model.save(best_dir, extra=extra_meta)
            metrics["eval_seconds"] = time.perf_counter() - t0
        model.train()
        r = step_rng(s.seed, step, "instruct")
        encs = [model.encode(train[int(k)]) for k in r.integers(0, len(train), s.batch)]
        nll, n = model.answer_nll(encs)
        metrics["positions"] = sum(model.positions(e) for e in encs)
        return nll / max(n, 1), metrics

    def should_stop(history: list[dict]) -> bool:
        errs = [h["dev_error"] for h in history if "dev_error" in h]
        if not s.patience or len(errs) <= s.patience:
            return False
        last_best = len(errs) - 1 - int(np.argmin(errs[::-1]))
        return last_best < len(errs) - s.patience

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    config = {"settings": {k: v for k, v in asdict(s).items() if k not in ("device", "progress", "checkpoint_every")},
              "input": model.input_kind, "n_train": len(train), "n_dev": len(dev_items),
              "trainable": sum(p.numel() for p in params.values()), "device": s.device}
    trainer = Trainer(out / "training", params, loss_fn, steps=s.steps, lr=s.lr, warmup=s.warmup, seed=s.seed,
                      weight_decay=s.weight_decay, clip=s.clip, checkpoint_every=s.checkpoint_every,
                      progress=s.progress, desc=f"instruct {model.input_kind}", config=config,
                      should_stop=should_stop, lr_mult=lambda n: s.adapter_lr / s.lr if is_speech_input_param(n) else 1.0)
    trainer.run(resume=resume, stop_at=stop_at)
    summary = summarize(trainer.history, trainer.finished, trainer.stopped_early)
    summary.update(settings=asdict(s), data=config)
    if trainer.finished:
        if not best_dir.is_dir() and not (out / META_FILE).is_file():  # ended before any evaluation
            model.save(best_dir, extra=extra_meta)
        _publish(best_dir, out)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(history: list[dict], finished: bool, stopped_early: bool) -> dict[str, Any]:
    """Dev curve, best step, training seconds (evaluation excluded) to it and in all, positions/s."""
    train_s = np.cumsum([h["seconds"] - h.get("eval_seconds", 0.0) for h in history])
    evals = [h for h in history if "dev_error" in h]
    best = min(evals, key=lambda h: (h["dev_error"], -h["step"])) if evals else None
    positions = sum(h["positions"] for h in history)
    return {"finished": finished, "steps": len(history), "stopped_early": stopped_early,
            "dev_curve": [{"step": h["step"], "dev_error": h["dev_error"],
                           **{k[4:]: h[k] for k in h if k.startswith("dev_") and k != "dev_error"}} for h in evals],
            "best_step": best["step"] if best else None, "best_dev_error": best["dev_error"] if best else None,
            "seconds_to_best": round(float(train_s[best["step"] - 1]), 1) if best and best["step"] > 0 else None,
            "train_seconds": round(float(train_s[-1]), 1) if len(train_s) else 0.0,
            "positions_per_second": round(positions / float(train_s[-1]), 1) if len(train_s) and train_s[-1] > 0 else None}


def _publish(best_dir: Path, out: Path) -> None:
    """Move the best model's files up into ``out`` (the folder a user loads)."""
    if best_dir.is_dir():
        move_contents(best_dir, out)
