"""The training loop: packed (or length-grouped) batches, gradient accumulation, AdamW with a
cosine schedule after linear warm-up, gradient clipping, validation, checkpoints and exact resume.

Everything random is a function of the seed: batch order is re-planned per epoch from
``(seed, epoch)`` (:func:`speechunits.lm.packing.plan_batches`), initial weights from the seed,
and the torch RNG state (LoRA dropout) is checkpointed. A resumed run therefore continues the
loss curve of the uninterrupted run exactly (bit for bit on CPU).

The loss of a step is the mean NLL over all predicted tokens of its ``grad_accum`` micro-batches
(each micro-batch's summed loss is divided by the step's total target count before backward, so
accumulation equals one big batch).

Under ``torchrun --nproc-per-node N`` (:mod:`speechunits.distributed.ddp`) a step is ``grad_accum
x N`` micro-batches: every rank plans them all, computes micro-batches ``rank, rank + N, ...``,
and gradients are summed over ranks, so N processes take the steps of one process with ``N``
times the ``grad_accum``. A checkpoint records that global count, so it resumes under another
number of processes when ``grad_accum x N`` stays the same. Rank 0 writes every file.

Output directory: the model (``SpeechLM.save``), ``train_log.jsonl`` (one record per logged step
and per validation), ``train_config.json``, and ``checkpoint/`` (see
:mod:`speechunits.lm.checkpoint`); with ``keep_best``, also ``best/``: the model at the validation
of lowest NLL so far (its record in the log says ``"best": true``), because a small corpus trained
for many epochs over-fits and the final model is then not the one to keep. Runs on CPU in
float32; on CUDA with bf16 autocast.

Example:
    >>> import numpy as np, tempfile
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=4, seed=0)
    >>> ex = [Example(lm.encode_units(np.array([0, 1, 2, 3] * 4)))] * 8
    >>> cfg = TrainConfig(steps=3, batch_tokens=64, max_len=32, progress=False)
    >>> r = train(lm, ex, tempfile.mkdtemp(), cfg)
    >>> len(r.losses)
    3
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.atomic import atomic_write_text
from ..distributed import ddp
from .checkpoint import load_checkpoint, read_checkpoint_state, save_checkpoint, trainable_parameters
from .evaluate import sequence_nll
from .ctc import ctc_loss_sum, ctc_vocab
from .packing import Example, collate, forward_logits, logits_nll, plan_batches, split_long, verify_packing

log = logging.getLogger(__name__)

# Settings a resumed run must share with the checkpoint, or its loss curve would differ.
_RESUME_KEYS = ("steps", "batch_tokens", "max_len", "global_accum", "lr", "new_rows_lr", "warmup_steps",
                "min_lr_ratio", "weight_decay", "betas", "max_grad_norm", "pack", "seed", "ctc_weight")
# peft's name for the trainable rows added to a text LLM's embedding for the units
NEW_ROWS_PARAM = "trainable_tokens_delta"
# The unit rows start near the mean text embedding; at a LoRA learning rate Adam moves them ~lr per
# step against a per-dimension spread of ~0.1 (SmolLM2), so the units stay nearly alike and the NLL
# near or above ln k for hundreds of steps. 25 x (5e-3 at the LoRA default): SmolLM2 + LoRA at k = 500
# (with new_rows_noise 1) reached dev NLL 4.91 nats/token after 30 steps of 1,024 tokens; 6.22 with the
# rate alone, 10.02 with the noise alone, 11.82 with neither (docs/results.md, "SmolLM2 + LoRA on the CPU").
NEW_ROWS_LR_FACTOR = 25.0


@dataclass
class TrainConfig:
    """Training settings. ``lr=None``: 5e-4 for a unit LM from scratch, 2e-4 for LoRA.
    ``new_rows_lr``: peak learning rate of the embedding rows a text LLM gets for the units (peft's
    trainable tokens; no weight decay), on the same schedule; ``None``: ``NEW_ROWS_LR_FACTOR x lr``.
    ``warmup_steps=None``: 5% of ``steps``. ``batch_tokens`` counts the tokens of one micro-batch
    (packed: ``batch_tokens // max_len`` rows of ``max_len``). ``ctc_weight`` (unit-LM ASR only):
    the loss is ``(1 - w) * NLL + w * CTC`` over the examples' CTC spans (:mod:`speechunits.lm.ctc`);
    both are divided by the step's target count, and the log records the CTC part as ``ctc_loss``."""

    steps: int = 1000
    batch_tokens: int = 8192
    max_len: int = 1024
    grad_accum: int = 1
    lr: float | None = None
    new_rows_lr: float | None = None
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = 1.0
    pack: bool = True
    ctc_weight: float = 0.0
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0  # 0: validate at the end only
    save_every: int = 500  # 0: checkpoint at the end only
    keep_best: bool = False  # also save the model of the lowest validation NLL in out/best
    device: str = "cpu"
    progress: bool = True

    def resolved(self, kind: str) -> "TrainConfig":
        c = TrainConfig(**asdict(self))
        c.betas = tuple(c.betas)
        if c.lr is None:
            c.lr = 5e-4 if kind == "unit-lm" else 2e-4
        if c.new_rows_lr is None and kind == "llm":
            c.new_rows_lr = NEW_ROWS_LR_FACTOR * c.lr
        if c.warmup_steps is None:
            c.warmup_steps = max(1, c.steps // 20)
        return c


def lr_at(step: int, c: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then cosine decay to
    ``min_lr_ratio * lr`` at the last step."""
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    span = max(1, c.steps - c.warmup_steps)
    progress = min(1.0, (step - c.warmup_steps) / span)
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per step, from step 1 (resumed runs too)
    valid: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0  # wall time of this run (not of resumed parts)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


class _Stream:
    """Endless micro-batches: epoch after epoch, each planned from (seed, epoch)."""

    def __init__(self, examples: list[Example], c: TrainConfig, pad_id: int, epoch: int = 0, index: int = 0):
        self.examples, self.c, self.pad_id = examples, c, pad_id
        self.lengths = np.array([len(e) for e in examples])
        self.epoch, self.index = epoch, index
        self.plan = self._plan()

    def _plan(self):
        return plan_batches(self.lengths, self.c.max_len, self.c.batch_tokens, self.c.pack,
                            self.c.seed, self.epoch)

    def next(self):
        if self.index >= len(self.plan):
            self.epoch, self.index = self.epoch + 1, 0
            self.plan = self._plan()
        rows = self.plan[self.index]
        self.index += 1
        return collate(self.examples, rows, self.pad_id, self.c.max_len if self.c.pack else None)


def _optimizer(model: torch.nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no trainable parameters")
    rows = [p for n, p in params if NEW_ROWS_PARAM in n]
    others = [(n, p) for n, p in params if NEW_ROWS_PARAM not in n]
    if c.new_rows_lr is not None and not rows:
        raise ValueError("new_rows_lr is for the unit rows added to a text LLM; this model has none")
    decay = [p for _, p in others if p.ndim >= 2]  # no decay on norms and biases
    rest = [p for _, p in others if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if rows:
        groups.append({"params": rows, "weight_decay": 0.0, "lr_scale": c.new_rows_lr / c.lr})
    return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=1e-8)


def _fingerprint(lm, examples: list[Example]) -> dict[str, Any]:
    return {"kind": lm.kind, "k": lm.k, "n_examples": len(examples),
            "n_tokens": int(sum(len(e) for e in examples)),
            "trainable": sum(p.numel() for _, p in trainable_parameters(lm.model))}


def _append_log(path: Path, rec: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("step", 0) <= upto]


def train(lm, examples: list[Example], out_dir: str | Path, config: TrainConfig,
          valid: list[Example] | None = None, resume: bool = True,
          callback: Callable[[int, float], None] | None = None,
          evaluate: Callable[[Any], dict[str, float]] | None = None) -> TrainResult:
    """Train ``lm`` in place on ``examples`` and save it to ``out_dir``.

    ``resume``: continue from ``out_dir/checkpoint`` when present (its settings must match);
    ``False`` starts afresh. ``callback(step, loss)`` runs after each step (1-based).
    ``evaluate(lm) -> {name: value}`` runs at every validation (``eval_every`` and the end; the
    model in eval mode) and its values join the validation record of ``train_log.jsonl``: a
    learning curve of anything, e.g. zero-shot pair accuracy (:func:`pair_evaluator`).
    """
    c = config.resolved(lm.kind)
    w = ddp.world(c.device)
    c.device = str(ddp.rank_device(c.device, w))
    main = w.is_main
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, log_path = out / "checkpoint", out / "train_log.jsonl"
    examples = split_long(examples, c.max_len)
    if not examples:
        raise ValueError("no training examples")
    ctc_classes = _ctc_classes(lm, examples, c.ctc_weight)
    if c.keep_best and not valid:
        raise ValueError("keep_best needs a validation set (valid / --valid) to pick the best model by")
    lm.to(c.device)
    if c.pack:
        verify_packing(lm)
    lm.model.train()
    opt = _optimizer(lm.model, c)
    fp = _fingerprint(lm, examples)
    saved = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(c).items()}
    saved["global_accum"] = c.grad_accum * w.size  # micro-batches per step over all processes

    step, epoch, index, history = 0, 0, 0, []
    state = read_checkpoint_state(ckpt_dir) if resume else None
    if state is not None:
        old = dict(state["config"])
        old.setdefault("global_accum", old.get("grad_accum"))  # checkpoints from before torchrun support
        old.setdefault("ctc_weight", 0.0)  # checkpoints from before the CTC loss
        bad = [k for k in _RESUME_KEYS if old.get(k) != saved[k]]
        if bad or state["fingerprint"] != fp:
            what = ", ".join(f"{k}: {old.get(k)!r} -> {saved[k]!r}" for k in bad) or (
                f"model/data changed: {state['fingerprint']} -> {fp}")
            raise ValueError(f"{ckpt_dir}: cannot resume with different settings ({what}); "
                             "start afresh (resume=False / --no-resume) or restore them")
        state = load_checkpoint(ckpt_dir, lm.model, opt)
        step, epoch, index = state["step"], state["epoch"], state["index"]
        history = _read_log(log_path, step)
        log.info("resuming from step %d of %d", step, c.steps)
        if not main:  # the checkpoint holds rank 0's RNG; other ranks draw their own dropout
            torch.manual_seed(ddp.step_seed(c.seed, step, f"dropout rank {w.rank}"))
    else:
        torch.manual_seed(c.seed if main else ddp.step_seed(c.seed, 0, f"dropout rank {w.rank}"))
    ddp.barrier(w)  # every rank has read the log before rank 0 rewrites it
    if main:
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
        atomic_write_text(out / "train_config.json", json.dumps({"config": saved, "data": fp}, indent=2) + "\n")
    params = [p for _, p in trainable_parameters(lm.model)]
    ddp.broadcast_params(params, w)

    stream = _Stream(examples, c, lm.pad_id, epoch, index)
    result = TrainResult(losses=[r["loss"] for r in history if "loss" in r],
                         valid=[r for r in history if "loss" not in r])  # the validation records
    # the best so far is the best whose model best/ holds (a run resumed with keep_best newly on saves anew)
    best_nll = min((r["valid_nll"] for r in result.valid if r.get("best")), default=math.inf)
    t0, window_tokens, window_t = time.perf_counter(), 0, time.perf_counter()
    bar = tqdm(total=c.steps, initial=step, desc="train", unit="step", disable=not c.progress or not main)

    def validate(at: int) -> None:
        nonlocal best_nll
        if not valid and evaluate is None:
            return
        rec: dict[str, Any] = {"step": at}
        if valid:
            scores = sequence_nll(lm, valid, batch_tokens=c.batch_tokens)
            n = sum(len(s) for s in scores)
            rec.update(valid_nll=float(sum(s.sum() for s in scores) / max(n, 1)), valid_tokens=n)
        if evaluate is not None:
            lm.model.eval()
            with torch.no_grad():
                rec.update(evaluate(lm))
            lm.model.train()
        if c.keep_best and rec["valid_nll"] < best_nll:
            best_nll, rec["best"] = rec["valid_nll"], True
            if main:
                lm.save(out / "best")
        result.valid.append(rec)
        if main:
            _append_log(log_path, rec)
        log.info("step %d: %s", at, ", ".join(f"{k} {v:.4f}" for k, v in rec.items() if k not in ("step", "best")))

    while step < c.steps:
        lr = lr_at(step, c)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        micro = [stream.next() for _ in range(c.grad_accum * w.size)]  # the whole step, planned alike everywhere
        n_targets = sum(b.n_targets for b in micro)
        sums = torch.zeros(2, dtype=torch.float64)  # NLL, CTC
        for b in micro[w.rank :: w.size]:
            logits = forward_logits(lm, b)
            nll = logits_nll(logits, b).sum()
            total = nll
            if ctc_classes is not None:
                ctc = ctc_loss_sum(logits, b, ctc_classes)
                total = (1 - c.ctc_weight) * nll + c.ctc_weight * ctc
                sums[1] += float(ctc.detach())
            (total / max(n_targets, 1)).backward()
            sums[0] += float(nll.detach())
        ddp.all_reduce_grads(params, w)
        loss_sum, ctc_sum = ddp.all_reduce(sums, w).tolist()
        if c.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        loss = loss_sum / max(n_targets, 1)
        tokens = sum(b.n_real for b in micro)
        result.losses.append(loss)
        result.tokens += tokens
        window_tokens += tokens
        rec = {"step": step, "loss": loss, "lr": lr}
        if ctc_classes is not None:
            rec["ctc_loss"] = ctc_sum / max(n_targets, 1)
        if step % c.log_every == 0 or step == c.steps:
            now = time.perf_counter()
            tps = window_tokens / max(now - window_t, 1e-9)
            rec["tokens_per_s"] = round(tps, 1)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:.0f}")
            window_tokens, window_t = 0, now
        if main:
            _append_log(log_path, rec)
        bar.update(1)
        if c.eval_every and step % c.eval_every == 0 and step < c.steps:
            validate(step)
        if (c.save_every and step % c.save_every == 0) or step == c.steps:
            if main:
                save_checkpoint(ckpt_dir, lm.model, opt, {
                    "step": step, "epoch": stream.epoch, "index": stream.index, "config": saved,
                    "fingerprint": fp})
            ddp.barrier(w)
        if callback is not None:
            callback(step, loss)
    bar.close()
    result.seconds = time.perf_counter() - t0
    if not result.valid or result.valid[-1]["step"] != c.steps:
        validate(c.steps)
    lm.model.eval()
    if main:
        lm.save(out)
    ddp.barrier(w)
    return result


def _ctc_classes(lm, examples: list[Example], weight: float) -> torch.Tensor | None:
    """The CTC classes when the CTC loss is on (``weight`` > 0), after checking it can be."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return None
    classes = ctc_vocab(lm)
    if not any(e.ctc_span is not None for e in examples):
        raise ValueError("ctc_weight > 0 needs examples with CTC spans (asr_examples of a unit LM) "
                         "that fit in max_len")
    return classes


def pair_evaluator(sets: dict[str, tuple[list, dict]], batch_tokens: int = 4096) -> Callable[[Any], dict[str, float]]:
    """An ``evaluate`` for :func:`train`: ``{f"pairs_{name}": accuracy}`` (length-normalised
    log-probability, as ``lm score`` reports it) for each ``name: (pairs, units by id)``."""
    from .pairs import score_pairs

    def run(lm) -> dict[str, float]:
        return {f"pairs_{name}": score_pairs(lm, pairs, units, batch_tokens).accuracy_mean
                for name, (pairs, units) in sets.items()}
    return run
