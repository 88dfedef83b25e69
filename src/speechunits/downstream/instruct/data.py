"""Instruction data: (task prompt, speech, answer) triples for both input paths, from one encoder pass.

Every task's utterances are encoded once by :func:`speechunits.downstream.prepare.prepare_task_data`
with ``features=True``: the shard folder holds, per utterance, the tokenizer's units *and* the
encoder features of the same layer from the same pass, so the discrete path (units -> de-dup ->
BPE) and the continuous path (features -> stacked frames -> adapter) read exactly the same frames.

The answer is the task's target written as text: the normalised transcript (``asr``,
``transcribe``), the ARPAbet phones separated by spaces (``pr``), or the label (``kws``,
``classify``, ``sid``). The prompt is the task's default (:data:`PROMPTS`) unless a manifest line
carries its own ``prompt`` field, so a user brings intent, emotion or any labelled data without code.

Example:
    >>> from speechunits.downstream.tasks import get_task
    >>> answer_text(get_task("asr"), list("hi|there")), answer_text(get_task("pr"), ["HH", "AY"])
    ('hi there', 'HH AY')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from speechunits.data.atomic import safe_file_name
from speechunits.data.manifest import Utterance
from speechunits.data.shards import ShardStore

from ..benchmark import TaskData
from ..prepare import prepare_task_data
from ..tasks import Task, get_task, symbols_text

PROMPTS = {
    "asr": "Transcribe the speech.",
    "transcribe": "Transcribe the speech.",
    "pr": "Write the phonemes of the speech.",
    "kws": "Which word is spoken?",
    "sid": "Who is speaking?",
    "classify": "Classify the speech.",
}
HOLDOUT = 0.1  # share of the training utterances held out where a task has no dev (or test) split


@dataclass(frozen=True)
class InstructItem:
    """One example: where its speech lies (``store``, ``index``) and what is asked and answered."""

    task: str  # the task's row name ("asr", or a user task's name)
    kind: str  # the task kind in downstream.tasks.TASKS (decides the score)
    utt_id: str
    prompt: str
    answer: str
    seconds: float
    store: ShardStore
    index: int

    def units(self) -> np.ndarray:
        """Frame-level units ``[T]`` of the tokenizer's first layer."""
        return self.store.get(self.index, ["units"])["units"][:, 0].astype(np.int64)

    def features(self) -> np.ndarray:
        """Encoder features ``[T, F]`` (float32) of the same frames."""
        return self.store.get(self.index, ["feats"])["feats"][:, 0].astype(np.float32)


def answer_text(task: Task, target: Any) -> str:
    """The task's target as the text the LLM must produce."""
    if task.name == "pr":
        return " ".join(target)
    if task.kind == "sequence":
        return symbols_text(target)
    return str(target)


def _holdout(utts: list[Utterance], share: float, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    if len(utts) < 2:
        raise ValueError(f"cannot hold out {share:.0%} of {len(utts)} utterance(s)")
    order = np.random.default_rng(seed).permutation(len(utts))
    cut = max(1, int(round(share * len(utts))))
    held = set(order[:cut].tolist())
    return [u for i, u in enumerate(utts) if i not in held], [u for i, u in enumerate(utts) if i in held]


def task_splits(td: TaskData, seed: int = 0) -> dict[str, list[Utterance]]:
    """``{"train": ..., "dev": ..., "test:<name>": ...}`` for one task.

    Missing dev or test splits are seeded 10 % hold-outs of the training utterances (whole
    utterances: an instruction example is one utterance, unlike the probes' within-utterance split).
    """
    train = list(td.train)
    tests = dict(td.tests)
    if not tests:
        train, held = _holdout(train, HOLDOUT, seed + 1)
        tests = {f"{td.train_source} (held-out {HOLDOUT:.0%})": held}
    dev = list(td.dev) if td.dev else None
    if not dev:
        train, dev = _holdout(train, HOLDOUT, seed)
    return {"train": train, "dev": dev, **{f"test:{k}": v for k, v in tests.items()}}


def prepare_instruct(tasks: Sequence[TaskData], tokenizer, work: str | os.PathLike, seed: int = 0,
                     progress: bool = True) -> dict[str, list[InstructItem]]:
    """Encode every split of every task under ``work/<task>/<split>`` (resumable; shared by both
    input paths) and return the examples by split name (``train``, ``dev``, ``test:<task>:<set>``)."""
    if len(tokenizer.layers) != 1:
        raise ValueError(f"instruction tuning takes a single-layer tokenizer; this one has layers {tokenizer.layers}")
    out: dict[str, list[InstructItem]] = {"train": [], "dev": []}
    for td in tasks:
        task = get_task(td.task)
        for split, utts in task_splits(td, seed).items():
            store = prepare_task_data(Path(work) / safe_file_name(td.name) / safe_file_name(split), utts, tokenizer,
                                      td.task, features=True, progress=progress)
            prompts = {u.id: str(u.extra.get("prompt") or PROMPTS.get(td.task, PROMPTS["classify"])) for u in utts}
            items = [InstructItem(td.name, td.task, it["id"], prompts[it["id"]], answer_text(task, it["target"]),
                                  float(it.get("seconds") or 0.0), store, i)
                     for i, it in enumerate(store.items)]
            key = split if split in ("train", "dev") else f"test:{td.name}:{split[5:]}"
            out.setdefault(key, []).extend(items)
    return out
