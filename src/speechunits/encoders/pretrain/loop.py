"""The training loop shared by HuBERT pre-training, Spin / DC-Spin and CTC fine-tuning.

One :class:`Trainer` runs AdamW with a linear warm-up and linear decay, gradient clipping, a tqdm
bar, a loss log (``loss.json`` + ``loss.png``) and atomic checkpoints that resume *exactly* on
CPU. Exactness comes from one rule: **every random draw of step ``s`` is a function of
``(seed, s)``** -- the batch and the masks come from ``numpy.random.default_rng([seed, s])`` (see
:func:`~speechunits.distributed.ddp.step_rng`), dropout from ``torch.manual_seed(step_seed(seed, s))`` set before the step --
so a resumed run needs no saved RNG state, only the trainable parameters, AdamW's moments and the
step counter, all stored as safetensors (plus a JSON state). The learning rate is a pure function
of the step too.

Under ``torchrun`` (see :mod:`speechunits.distributed.ddp`) a loop built with
``distributed=True`` runs data-parallel: ``loss_fn`` computes the loss of its rank's part of the
step's batch (``ddp.part``) and may name the part's weight (examples, frames) as
``metrics[WEIGHT]`` (or return its additive part of the global loss and say so with
``metrics[PARTIAL]``); the Trainer makes the loss the part's share of the global mean, sums the
gradients over ranks, logs the global loss and the weighted mean of every metric, and writes
files from rank 0 only. N processes then take the same steps as one process with the same
global batch, and a checkpoint resumes under any number of processes.

Checkpoint layout (``<out>/checkpoint/``, replaced atomically by renaming a finished temp folder)::

    params.safetensors     the trainable parameters, by name
    optimizer.safetensors  AdamW state per parameter name (step, exp_avg, exp_avg_sq)
    state.json             step, loss history, the run's config (checked on resume)

Example:
    >>> import tempfile, torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> def loss_fn(step):
    ...     return ((w - 1.0) ** 2).sum(), {}
    >>> t = Trainer(tempfile.mkdtemp(), {"w": w}, loss_fn, steps=50, lr=0.1, warmup=5, progress=False)
    >>> hist = t.run()
    >>> len(hist), bool(hist[-1]["loss"] < hist[0]["loss"])
    (50, True)
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from speechunits.data.atomic import atomic_write_text, replace_dir
from speechunits.distributed import ddp
from speechunits.distributed.ddp import step_seed

log = logging.getLogger("speechunits.pretrain")

LossFn = Callable[[int], "tuple[torch.Tensor, dict]"]
CHECKPOINT_DIR = "checkpoint"
# Keys of the run config that may change between a run and its resumption.
RESUMABLE_KEYS = ("progress", "checkpoint_every", "device", "log_every")
# metrics[WEIGHT]: how much the rank's part of the batch counts in the global mean (default 1)
WEIGHT = "weight"
# metrics[PARTIAL] true: the loss is already the rank's additive part of the global loss (a loss_fn
# that normalised by counts all-reduced over ranks); the ranks' losses sum to the global loss
PARTIAL = "partial"


def lr_at(step: int, total: int, peak: float, warmup: int, final_ratio: float = 0.0) -> float:
    """Linear warm-up from 0 over ``warmup`` steps, then linear decay to ``peak * final_ratio``."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    frac = min(1.0, (step - warmup) / span)
    return peak * (1.0 - (1.0 - final_ratio) * frac)


def plot_losses(history: list[dict], path: str | os.PathLike, title: str = "") -> bool:
    """Write the loss curve (raw and smoothed) as PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is a convenience, never a reason to fail a run
        log.info("matplotlib not installed: %s not written (loss.json has the curve)", path)
        return False
    steps = np.array([h["step"] for h in history])
    loss = np.array([h["loss"] for h in history], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, lw=0.6, alpha=0.4, label="loss")
    if len(loss) >= 10:
        w = max(5, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, lw=1.5, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def check_resume_config(state: dict, d: Path, config: dict, seed: int, steps: int) -> None:
    """Refuse to resume from a checkpoint (``state.json`` of folder ``d``) made with other settings
    than ``config`` (keys outside ``RESUMABLE_KEYS``), seed or number of steps, naming them."""
    old = {k: v for k, v in state.get("config", {}).items() if k not in RESUMABLE_KEYS}
    new = {k: v for k, v in json.loads(json.dumps(config)).items() if k not in RESUMABLE_KEYS}
    if old != new or int(state["seed"]) != seed or int(state["steps"]) != steps:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if int(state["steps"]) != steps:
            diff.append("steps")
        raise ValueError(f"{d}: the checkpoint was made by a run with other settings ({', '.join(diff) or 'seed'}); "
                         "use another output folder, or resume=False to start over")


class Trainer:
    """AdamW over named parameters, driven by ``loss_fn(step) -> (loss, metrics)``.

    Args:
        out_dir: run folder; ``checkpoint/``, ``loss.json`` and ``loss.png`` go here.
        params: the trainable parameters by (unique) name; exactly these are optimised and saved.
        loss_fn: builds step ``step``'s batch (seeded from the step) and returns the scalar loss
            and float metrics to log.
        steps: total optimiser steps.
        warmup: warm-up steps (an int) or a fraction of ``steps`` (a float below 1).
        final_lr_ratio: the learning rate decays linearly to ``lr * final_lr_ratio``.
        clip: gradient-norm clipping threshold (``None``/0: off).
        after_step: called after every optimiser step (e.g. re-normalise codebooks).
        config: JSON-able description of the run, stored in the checkpoint; resuming with a
            different config (other than ``RESUMABLE_KEYS``) is refused.
        no_decay: parameter names excluded from weight decay (biases, norms, embeddings).
        should_stop: early stopping: called with the history after every step; ``True`` ends the
            run there for good (a checkpoint records it, so a resumed run stays stopped). Decide
            from the history only, so the decision is the same after a resume.
        lr_mult: a learning-rate multiplier per parameter name (e.g. a freshly initialised
            adapter beside pre-trained weights); the schedule scales every group alike.
        distributed: ``loss_fn`` takes its rank's part of each batch (module docstring), so the
            loop may run under torchrun; without it a multi-process run is refused.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        params: dict[str, torch.nn.Parameter],
        loss_fn: LossFn,
        *,
        steps: int,
        lr: float,
        warmup: int | float = 0.08,
        final_lr_ratio: float = 0.0,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        clip: float | None = 10.0,
        seed: int = 0,
        checkpoint_every: int = 200,
        after_step: Callable[[], None] | None = None,
        progress: bool = True,
        desc: str = "train",
        config: dict | None = None,
        no_decay: Callable[[str], bool] | None = None,
        should_stop: Callable[[list[dict]], bool] | None = None,
        lr_mult: Callable[[str], float] | None = None,
        distributed: bool = False,
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not distributed:
            ddp.refuse(desc)
        self.world = ddp.world(next(iter(params.values())).device if params else "cpu")
        self.out_dir = Path(out_dir)
        self.params = dict(params)
        if not self.params:
            raise ValueError("no trainable parameters")
        self.loss_fn, self.steps, self.lr, self.seed = loss_fn, int(steps), float(lr), int(seed)
        self.warmup = int(round(warmup * steps)) if isinstance(warmup, float) and warmup < 1 else int(warmup)
        self.final_lr_ratio, self.clip = float(final_lr_ratio), clip
        self.checkpoint_every, self.after_step = int(checkpoint_every), after_step
        self.progress, self.desc = progress, desc
        self.config = dict(config or {})
        skip = no_decay or (lambda n: n.endswith("bias") or "norm" in n or n.endswith("_emb") or "embs" in n)
        mult = lr_mult or (lambda n: 1.0)
        groups: dict[tuple[bool, float], dict] = {}
        for n, p in self.params.items():
            key = (not skip(n), float(mult(n)))
            groups.setdefault(key, {"params": [], "weight_decay": weight_decay if key[0] else 0.0,
                                    "lr_mult": key[1]})["params"].append(p)
        groups = sorted(groups.values(), key=lambda g: (-g["weight_decay"], g["lr_mult"]))
        # foreach=False: the per-parameter loop gives the same float results in every run.
        self.opt = torch.optim.AdamW(groups, lr=self.lr, betas=betas, eps=1e-6, foreach=False)
        self.history: list[dict] = []
        self.step = 0
        self.should_stop, self.stopped_early = should_stop, False

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint/`` atomically: build a temp folder, then swap it in (rank 0 only;
        the others wait for it)."""
        from safetensors.torch import save_file

        if not self.world.is_main:
            ddp.barrier(self.world)
            return self.checkpoint_dir

        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / ".checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file({n: p.detach().cpu().contiguous() for n, p in self.params.items()}, str(tmp / "params.safetensors"))
        save_file(self._optimizer_tensors(), str(tmp / "optimizer.safetensors"))
        state = {"step": self.step, "steps": self.steps, "seed": self.seed, "config": self.config, "history": self.history,
                 "stopped_early": self.stopped_early, "world_size": self.world.size}
        (tmp / "state.json").write_text(json.dumps(state) + "\n")
        out = replace_dir(tmp, self.checkpoint_dir)
        ddp.barrier(self.world)
        return out

    def load_checkpoint(self) -> bool:
        """Restore parameters, optimizer, step and history; False when there is no checkpoint."""
        from safetensors.torch import load_file

        d = self.checkpoint_dir
        if not (d / "state.json").is_file():
            return False
        state = json.loads((d / "state.json").read_text())
        self._check_config(state, d)
        params = load_file(str(d / "params.safetensors"))
        if set(params) != set(self.params):
            raise ValueError(f"{d}: checkpoint holds other parameters than this run trains "
                             f"({len(set(params) ^ set(self.params))} names differ)")
        with torch.no_grad():
            for n, p in self.params.items():
                if params[n].shape != p.shape:
                    raise ValueError(f"{d}: parameter {n} has shape {tuple(params[n].shape)}, expected {tuple(p.shape)}")
                p.copy_(params[n])
        self._load_optimizer_tensors(load_file(str(d / "optimizer.safetensors")))
        self.step, self.history = int(state["step"]), list(state["history"])
        self.stopped_early = bool(state.get("stopped_early", False))
        log.info("%s: resumed at step %d of %d", self.desc, self.step, self.steps)
        return True

    def _check_config(self, state: dict, d: Path) -> None:
        check_resume_config(state, d, self.config, self.seed, self.steps)

    def _optimizer_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, p in self.params.items():
            for key, value in self.opt.state.get(p, {}).items():
                out[f"{n}::{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        return out

    def _load_optimizer_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for n, p in self.params.items():
            state = {k.split("::", 1)[1]: v.to(p.device) for k, v in tensors.items() if k.split("::", 1)[0] == n}
            if state:
                state["step"] = state["step"].cpu().float()  # AdamW keeps its step count on the CPU
                self.opt.state[p] = state

    # -- the loop --------------------------------------------------------------------------
    def run(self, resume: bool = True, stop_at: int | None = None) -> list[dict]:
        """Train from the checkpoint (if ``resume`` and one exists) to ``steps``; return the history.

        ``stop_at`` ends the run early at that step, with a checkpoint (to split a long run into
        sessions; the next ``run`` continues exactly where this one stopped).
        """
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        w = self.world
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_dir.exists() and w.is_main:
            shutil.rmtree(self.checkpoint_dir)
        ddp.barrier(w)  # nobody reads a checkpoint rank 0 is removing
        ddp.broadcast_params(self.params.values(), w)  # identical weights on every rank
        bar = tqdm(total=self.steps, initial=self.step, desc=self.desc, disable=not self.progress or not w.is_main,
                   dynamic_ncols=True)
        params = list(self.params.values())
        try:
            end = self.steps if stop_at is None else max(0, min(self.steps, int(stop_at)))
            while self.step < end and not self.stopped_early:
                t0 = time.perf_counter()
                lr = lr_at(self.step, self.steps, self.lr, self.warmup, self.final_lr_ratio)
                for g in self.opt.param_groups:
                    g["lr"] = lr * g["lr_mult"]
                torch.manual_seed(step_seed(self.seed, self.step, "torch"))  # dropout of this step
                loss, metrics = self.loss_fn(self.step)
                loss, metrics = self._share(loss, metrics)
                if not math.isfinite(metrics["loss"]):  # the global loss: every rank decides alike
                    raise FloatingPointError(f"{self.desc}: loss is {float(metrics['loss'])} at step {self.step}")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                ddp.all_reduce_grads(params, w)
                gnorm = torch.nn.utils.clip_grad_norm_(params, self.clip if self.clip else float("inf"), foreach=False)
                self.opt.step()
                if self.after_step is not None:
                    self.after_step()
                rec = {"step": self.step, "loss": float(metrics.pop("loss")), "lr": lr, "grad_norm": float(gnorm),
                       "seconds": round(time.perf_counter() - t0, 4)}
                rec.update(metrics)
                self.history.append(rec)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{lr:.2e}")
                if self.should_stop is not None and self.should_stop(self.history):
                    log.info("%s: stopped early at step %d of %d", self.desc, self.step, self.steps)
                    self.stopped_early = True
                if self.checkpoint_every > 0 and self.step % self.checkpoint_every == 0 and self.step < self.steps:
                    self.save_checkpoint()
                    self.write_log()
        except KeyboardInterrupt:
            if w.distributed:  # the other ranks are inside a collective: no consistent checkpoint now
                raise
            log.warning("%s: interrupted at step %d; saving a checkpoint to resume from", self.desc, self.step)
            self.save_checkpoint()
            self.write_log()
            raise
        finally:
            bar.close()
        self.save_checkpoint()
        self.write_log()
        return self.history

    def _share(self, loss: torch.Tensor, metrics: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss to back-propagate, metrics to log)``. One process: the loss itself. Under
        torchrun: the part's share of the global weighted mean, whose gradients summed over
        ranks are the one-process gradients; metrics (and ``"loss"``) as global weighted means."""
        metrics = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        weight = metrics.pop(WEIGHT, 1.0)
        partial = bool(metrics.pop(PARTIAL, False))
        if not self.world.distributed:
            return loss, {**metrics, "loss": float(loss.detach())}
        if partial:
            weight = 1.0
        names = sorted(metrics)
        vec = torch.tensor([1.0, float(loss.detach()), *(metrics[k] for k in names)], dtype=torch.float64) * weight
        ddp.all_reduce(vec, self.world)  # one collective: [total weight, weighted sums...]
        total = vec[0].item()
        means = (vec[1:] / total).tolist()
        if partial:  # the parts add up to the global loss
            return loss, {"loss": vec[1].item(), **dict(zip(names, means[1:]))}
        return loss * (weight / total), {"loss": means[0], **dict(zip(names, means[1:]))}

    @property
    def finished(self) -> bool:
        return self.step >= self.steps or self.stopped_early

    def write_log(self) -> None:
        """``loss.json`` (every step's record + a speed summary) and ``loss.png`` (rank 0)."""
        if not self.world.is_main:
            return
        secs = [h["seconds"] for h in self.history]
        summary = {"steps_done": self.step, "steps": self.steps, "stopped_early": self.stopped_early,
                   "median_step_s": float(np.median(secs)) if secs else None,
                   "steps_per_s": float(1.0 / np.median(secs)) if secs else None}
        atomic_write_text(self.out_dir / "loss.json", json.dumps({"summary": summary, "history": self.history}) + "\n")
        if self.history:
            plot_losses(self.history, self.out_dir / "loss.png", title=self.desc)


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (nan when none): for summaries of logged metrics."""
    v = [x for x in values if math.isfinite(x)]
    return float(sum(v) / len(v)) if v else float("nan")
