"""One call per command: ``run_instruct`` (prepare, build, train) and ``run_instruct_eval`` (test scores).

Both paths share the prepared data under ``work`` (one encoder pass), so training the discrete
model after the continuous one (or the reverse) costs no second feature extraction, and both are
scored on the same utterances.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from speechunits.data.atomic import atomic_write_text
from speechunits.tokens.bpe import UnitBPE

from ..benchmark import TaskData, builtin_tasks, user_task
from ..prepare import tokenizer_fingerprint
from ..train import evenly_spread, frame_mean_std
from .data import InstructItem, prepare_instruct
from .model import InstructLM
from .score import score_items
from .stats import input_statistics
from .train import InstructSettings, train_instruct

log = logging.getLogger(__name__)
BUILTIN = ("asr", "pr", "kws")  # sid is not: its built-in data has one utterance per speaker


def _short(utts: Sequence, max_seconds: float | None) -> list:
    if not max_seconds:
        return list(utts)
    return [u for u in utts if u.num_samples is None or u.num_samples <= max_seconds * 16000]


def instruct_tasks(names: Sequence[str], user_specs: Sequence[str], work: str | Path, shared: str | Path | None,
                   synth_minutes: float = 30.0, seed: int = 0, max_seconds: float | None = None,
                   kws_words: int = 30, progress: bool = True) -> list[TaskData]:
    """Built-in tasks by name plus user tasks ``NAME=classify|transcribe|pr:TRAIN[:TEST]``.

    ``max_seconds`` keeps only utterances at most that long (by the manifest's ``num_samples``,
    16 kHz) in every split: LLM steps cost grows with the speech length, so on CPU short
    utterances buy more examples per hour.
    """
    bad = [n for n in names if n not in BUILTIN]
    if bad:
        raise ValueError(f"no built-in instruction task {', '.join(bad)}; built-in: {', '.join(BUILTIN)} "
                         "(bring your own with --task NAME=classify|transcribe|pr:TRAIN.jsonl[:TEST.jsonl])")
    tasks, notes = builtin_tasks(list(names), Path(work) / "data", shared, synth_minutes=synth_minutes, seed=seed,
                                 kws_words=kws_words, progress=progress) if names else ([], [])
    for n in notes:
        log.warning(n)
    tasks += [user_task(s) for s in user_specs]
    if not tasks:
        raise ValueError("no task: give --tasks and/or --task")
    if max_seconds:
        tasks = [replace(t, train=_short(t.train, max_seconds), dev=_short(t.dev, max_seconds) if t.dev else t.dev,
                         tests={k: _short(v, max_seconds) for k, v in t.tests.items()}) for t in tasks]
        empty = [t.name for t in tasks if not t.train or any(not v for v in t.tests.values())]
        if empty:
            raise ValueError(f"--max-seconds {max_seconds} leaves no utterance in a split of: {', '.join(empty)}")
    return tasks


def _feature_stats(items: Sequence[InstructItem], most: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The adapter's standardisation: per-dimension mean and std of (at most ``most``) training items."""
    stats = frame_mean_std(it.features() for it in evenly_spread(items, most))
    if stats is None:
        raise ValueError("the training items have no frames")
    return stats


def _bpe(train: Sequence[InstructItem], k: int, size: int, folder: Path, seed: int) -> UnitBPE:
    """The BPE of the training units (fitted once per work folder and size, then reused)."""
    if (folder / "bpe_config.json").is_file():
        bpe = UnitBPE.from_pretrained(folder)
        if bpe.k == k and bpe.config["vocab_size"] == size:
            return bpe
    bpe = UnitBPE.train([it.units() for it in train], vocab_size=size, k=k, seed=seed)
    bpe.save_pretrained(folder)
    return bpe


def run_instruct(tokenizer, tasks: Sequence[TaskData], input_kind: str, work: str | Path, out: str | Path,
                 settings: InstructSettings, *, base: str = "smollm2", bpe_size: int = 6000, stack: int = 2,
                 adapter: str = "linear", full: bool = False, lora_r: int = 64, lora_alpha: int = 16,
                 resume: bool = True, allow_download: bool = False) -> dict:
    """Prepare the data, build the model on ``base``, train it; returns the training summary."""
    data = prepare_instruct(tasks, tokenizer, work, settings.seed, progress=settings.progress)
    train, dev = data["train"], data["dev"]
    if not train or not dev:
        raise ValueError("no training or dev utterance survived preparation (see the errors.jsonl files under work)")
    k = int(tokenizer.vocab_sizes[0])
    bpe = _bpe(train, k, bpe_size, Path(work) / f"bpe_k{k}_v{bpe_size}", settings.seed) if input_kind == "discrete" else None
    feat_dim = int(train[0].features().shape[1])
    model = InstructLM.create(base, input_kind, feat_dim=feat_dim, bpe=bpe, stack=stack, adapter_kind=adapter,
                              full=full, lora_r=lora_r, lora_alpha=lora_alpha, seed=settings.seed,
                              allow_download=allow_download)
    if model.adapter is not None:
        model.adapter.set_stats(*_feature_stats(train))
    stats = input_statistics(train, bpe, stack=stack, feat_dim=feat_dim)
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out) / "input_stats.json", json.dumps(stats, indent=2) + "\n")
    meta = {"speech_tokenizer": tokenizer_fingerprint(tokenizer), "layer": list(tokenizer.layers),
            "tasks": sorted({it.task for it in train})}
    summary = train_instruct(model, train, dev, out, settings, resume=resume, extra_meta=meta)
    summary["input_stats"] = stats
    return summary


def run_instruct_eval(model_dir: str | Path, tokenizer, tasks: Sequence[TaskData], work: str | Path,
                      out: str | Path | None = None, *, max_new_tokens: int = 48, batch_size: int = 8,
                      seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    """Test scores (with 95 % intervals) of a trained model on every test split of ``tasks``."""
    model = InstructLM.load(model_dir, device=device)
    want = model.meta.get("speech_tokenizer")
    if want and want != tokenizer_fingerprint(tokenizer):
        raise ValueError(f"{model_dir} was trained on units of another tokenizer (config hash {want}); "
                         "give the tokenizer it was trained with")
    data = prepare_instruct(tasks, tokenizer, work, seed, progress=progress)
    report = {"model": str(model_dir), "input": model.input_kind, "tests": {}}
    answers = []
    for key, items in data.items():
        if not key.startswith("test:"):
            continue
        _, task, test = key.split(":", 2)
        scores, ans = score_items(model, items, max_new_tokens, batch_size)
        report["tests"].setdefault(task, {})[test] = scores[task]
        answers += [{**a, "test": test} for a in ans]
    if out:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        atomic_write_text(o / "scores.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(o / "answers.jsonl", "".join(json.dumps(a) + "\n" for a in answers))
    return report
