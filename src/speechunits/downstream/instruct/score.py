"""Scoring generated answers per task: WER/CER (transcription), PER (phones), accuracy (labels).

Transcripts are compared after the usual normalisation (lower case, no punctuation); phones as
space-separated ARPAbet symbols (PER = the WER of the phone strings); labels by exact match after
the same normalisation. Intervals: bootstrap over utterances for error rates, Wilson for accuracy
(:mod:`speechunits.downstream.score`).

Example:
    >>> r = score_answers("kws", ["yes", "no"], ["Yes.", "maybe"])
    >>> r["metric"], r["value"]
    ('accuracy', 0.5)
    >>> score_answers("asr", ["a b c"], ["a b d"])["value"]
    0.3333333333333333
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from speechunits.lm.vocab import normalize_text

from ..score import accuracy, error_rate
from ..tasks import get_task


def _edits(refs: Sequence[str], hyps: Sequence[str]) -> tuple[list[int], list[int]]:
    import jiwer

    edits, lengths = [], []
    for r, h in zip(refs, hyps):
        o = jiwer.process_words(r, h if h.strip() else "<empty>") if r.strip() else None
        if o is None:
            continue
        edits.append(o.substitutions + o.deletions + o.insertions)
        lengths.append(len(r.split()))
    return edits, lengths


def score_answers(kind: str, refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """The headline score of one task kind over reference and generated answers."""
    task = get_task(kind)
    if len(refs) != len(hyps) or not refs:
        raise ValueError(f"need as many answers as references (got {len(hyps)} for {len(refs)})")
    if task.kind == "sequence":
        norm = (lambda s: " ".join(s.upper().split())) if kind == "pr" else normalize_text
        r, h = [norm(x) for x in refs], [norm(x) for x in hyps]
        out = {"metric": "per" if kind == "pr" else "wer", **error_rate(*_edits(r, h))}
        if kind != "pr":  # character error rate: the same edit count over characters
            import jiwer

            out["cer"] = float(jiwer.cer(r, [x or "<empty>" for x in h]))
        return out
    ok = [normalize_text(a) == normalize_text(b) for a, b in zip(refs, hyps)]
    return {"metric": "accuracy", **accuracy(ok)}


def dev_error(results: dict[str, dict]) -> float:
    """One number to early-stop on: the mean over tasks of the error (error rates capped at 1,
    1 - accuracy), lower is better."""
    errs = [min(1.0, r["value"]) if r["metric"] != "accuracy" else 1.0 - r["value"] for r in results.values()]
    return float(sum(errs) / len(errs))


def score_items(model, items: Sequence, max_new_tokens: int = 48, batch_size: int = 8
                ) -> tuple[dict[str, dict], list[dict]]:
    """Generate answers for ``items`` and score each task; returns ``(scores by task, answers)``."""
    hyps = model.generate(items, max_new_tokens=max_new_tokens, batch_size=batch_size)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_task[it.task].append(i)
    scores = {t: score_answers(items[idx[0]].kind, [items[i].answer for i in idx], [hyps[i] for i in idx])
              for t, idx in by_task.items()}
    answers = [{"id": it.utt_id, "task": it.task, "ref": it.answer, "hyp": h} for it, h in zip(items, hyps)]
    return scores, answers
