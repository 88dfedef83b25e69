"""Instruction tuning of an :class:`~.model.InstructLM`: multi-task batches, answer-only loss, dev
score with early stopping, checkpoints and exact resume.

Batches hold ``batch`` examples drawn from every task (a seeded permutation per epoch, so resume
replays the same order). AdamW with linear warm-up then cosine decay
(:func:`speechunits.lm.train.lr_at`); the speech adapter has its own, larger learning rate (it
starts from random weights, the LLM from a trained one). Every ``eval_every`` steps the model
answers the dev examples (greedy) and its dev error (:func:`~.score.dev_error`) decides early
stopping after ``patience`` evaluations without improvement; the best model is what ``out_dir``
holds. The log records wall time spent training (not evaluating), so "time until the dev score
stops improving" compares the two input paths fairly.

Output: the best model (``InstructLM.save``), ``train_log.jsonl``, ``summary.json`` (best step,
its training seconds, tokens/s, sequence lengths) and ``checkpoint/`` (``speechunits.lm.checkpoint``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from speechunits.data.atomic import atomic_write_text
from speechunits.lm.checkpoint import load_checkpoint, read_checkpoint_state, save_checkpoint, trainable_parameters
from speechunits.lm.train import lr_at

from .score import dev_error, score_items

log = logging.getLogger(__name__)
_RESUME_KEYS = ("steps", "batch", "lr", "adapter_lr", "warmup_steps", "min_lr_ratio", "weight_decay",
                "max_grad_norm", "eval_every", "seed")


@dataclass
class InstructSettings:
    steps: int = 1000
    batch: int = 8  # examples per step
    lr: float = 2e-4  # LoRA / full fine-tuning
    adapter_lr: float = 1e-3  # the speech adapter
    warmup_steps: int | None = None  # None: 5 % of steps
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 100
    patience: int = 4  # evaluations without a better dev error before stopping (0: never stop early)
    dev_max: int = 40  # dev examples per task scored at each evaluation
    max_new_tokens: int = 48
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def resolved(self) -> "InstructSettings":
        c = InstructSettings(**asdict(self))
        if c.warmup_steps is None:
            c.warmup_steps = max(1, c.steps // 20)
        return c


def dev_subset(items: Sequence, per_task: int) -> list:
    """At most ``per_task`` dev examples of each task, evenly spread over its dev list (manifests
    are often sorted by label or speaker), fixed so every evaluation is comparable."""
    by_task: dict[str, list] = {}
    for it in items:
        by_task.setdefault(it.task, []).append(it)
    out = []
    for group in by_task.values():
        pick = np.unique(np.linspace(0, len(group) - 1, min(per_task, len(group))).round().astype(int))
        out += [group[i] for i in pick]
    return out


def _optimizer(model, c: InstructSettings) -> torch.optim.Optimizer:
    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no trainable parameters")
    groups = []
    for is_adapter in (False, True):
        sel = [p for n, p in params if n.startswith("adapter.") == is_adapter]
        base = c.adapter_lr if is_adapter else c.lr
        groups += [{"params": [p for p in sel if p.ndim >= 2], "weight_decay": c.weight_decay, "base_lr": base},
                   {"params": [p for p in sel if p.ndim < 2], "weight_decay": 0.0, "base_lr": base}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=c.lr, betas=(0.9, 0.98))


def _order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _append(path: Path, rec: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def train_instruct(model, train: Sequence, dev: Sequence, out_dir: str | Path, settings: InstructSettings,
                   resume: bool = True, extra_meta: dict | None = None,
                   callback: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``train``, early-stopping on ``dev``; returns the summary (also written).

    ``resume``: continue from ``out_dir/checkpoint`` (written at every evaluation) when its settings
    match. ``callback(step, loss)`` runs after each step."""
    c = settings.resolved()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, log_path = out / "checkpoint", out / "train_log.jsonl"
    if not train or not dev:
        raise ValueError("instruction tuning needs training and dev examples")
    model.to(c.device)
    model.train()
    opt = _optimizer(model, c)
    saved = asdict(c)
    dev_items = dev_subset(dev, c.dev_max)
    fp = {"input": model.input_kind, "n_train": len(train), "n_dev": len(dev_items),
          "trainable": sum(p.numel() for _, p in trainable_parameters(model))}
    st = {"step": 0, "epoch": 0, "index": 0, "best": None, "best_step": 0, "best_seconds": 0.0,
          "bad": 0, "seconds": 0.0, "tokens": 0, "stopped": False}
    state = read_checkpoint_state(ckpt) if resume else None
    if state is not None:
        bad = [k for k in _RESUME_KEYS if state["config"].get(k) != saved[k]]
        if bad or state["fingerprint"] != fp:
            raise ValueError(f"{ckpt}: cannot resume with different settings or data "
                             f"({', '.join(bad) or 'model/data changed'}); use another --out or --no-resume")
        st = load_checkpoint(ckpt, model, opt)["loop"]
        log.info("resuming from step %d", st["step"])
        kept = [line for line in log_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= st["step"]] if log_path.is_file() else []
        atomic_write_text(log_path, "".join(line + "\n" for line in kept))
    else:
        torch.manual_seed(c.seed)
        atomic_write_text(log_path, "")
    order = _order(len(train), c.seed, st["epoch"])
    bar = tqdm(total=c.steps, initial=st["step"], desc=f"instruct {model.input_kind}", unit="step",
               disable=not c.progress)
    while st["step"] < c.steps and not st["stopped"]:
        t0 = time.perf_counter()
        picked = []
        while len(picked) < c.batch:
            if st["index"] >= len(order):
                st["epoch"], st["index"] = st["epoch"] + 1, 0
                order = _order(len(train), c.seed, st["epoch"])
            picked.append(train[int(order[st["index"]])])
            st["index"] += 1
        encs = [model.encode(it) for it in picked]
        scale = lr_at(st["step"], c) / c.lr
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        nll, n = model.answer_nll(encs)
        (nll / max(n, 1)).backward()
        if c.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable_parameters(model)], c.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        positions = sum(len(e.prefix) + model.speech_length(e.speech) + len(e.suffix) + len(e.answer) for e in encs)
        st["step"] += 1
        st["seconds"] += time.perf_counter() - t0
        st["tokens"] += positions
        rec = {"step": st["step"], "loss": float(nll.detach()) / max(n, 1), "lr": scale * c.lr,
               "positions": positions, "train_seconds": round(st["seconds"], 2)}
        _append(log_path, rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}")
        bar.update(1)
        if st["step"] % c.eval_every == 0 or st["step"] == c.steps:
            scores, _ = score_items(model, dev_items, c.max_new_tokens)
            err = dev_error(scores)
            better = st["best"] is None or err < st["best"]
            if better:
                st.update(best=err, best_step=st["step"], best_seconds=st["seconds"], bad=0)
                model.save(out, extra=extra_meta)
            else:
                st["bad"] += 1
                st["stopped"] = bool(c.patience) and st["bad"] >= c.patience
            _append(log_path, {"step": st["step"], "dev_error": err, "train_seconds": round(st["seconds"], 2),
                               "dev": {t: {"metric": r["metric"], "value": r["value"]} for t, r in scores.items()}})
            log.info("step %d: dev error %.4f%s", st["step"], err, " (best)" if better else "")
            save_checkpoint(ckpt, model, opt, {"loop": st, "config": saved, "fingerprint": fp})
        if callback is not None:
            callback(st["step"], rec["loss"])
    bar.close()
    summary = {"input": model.input_kind, "steps": st["step"], "stopped_early": st["stopped"],
               "best_step": st["best_step"], "best_dev_error": st["best"],
               "train_seconds": round(st["seconds"], 1), "seconds_to_best": round(st["best_seconds"], 1),
               "positions_per_second": round(st["tokens"] / max(st["seconds"], 1e-9), 1),
               "settings": saved, "data": fp}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
