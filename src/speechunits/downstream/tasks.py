"""The downstream tasks: what each predicts from an utterance, and how it is scored.

Two kinds of task, each with its head (``downstream.model``):

- **sequence** tasks (CTC over a symbol inventory): ``asr`` and ``transcribe`` predict the
  characters of the ``text`` field (lower-cased, punctuation removed; ``|`` marks a word
  boundary), scored by WER and CER; ``pr`` predicts the ARPAbet phones of the alignment's
  ``phones`` tier (stress digits and silences removed), scored by PER.
- **utterance** tasks (pooling + linear over labels): ``sid`` predicts the ``speaker`` field,
  ``kws`` and ``classify`` the ``label`` field of a JSONL manifest (keywords, emotion, intent,
  anything a user brings); scored by accuracy.

- **frame** tasks: ``se`` (speech enhancement) predicts, per frame, the units of the clean
  utterance from those of a noisy copy made on the fly (``downstream.enhance``); scored by unit
  accuracy, and through a vocoder by dWER, speaker similarity and DNSMOS.

A label comes from the manifest (or the alignment it names), never from a file name.

Example:
    >>> from speechunits.data.manifest import Utterance
    >>> from pathlib import Path
    >>> TASKS["asr"].target(Utterance("a", Path("a.wav"), text="Hello, World!"), None)
    ['h', 'e', 'l', 'l', 'o', '|', 'w', 'o', 'r', 'l', 'd']
    >>> TASKS["sid"].target(Utterance("a", Path("a.wav"), speaker="1688"), None)
    '1688'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from speechunits.data.alignment import Alignment
from speechunits.data.manifest import Utterance

WORD_SEP = "|"
SILENCES = frozenset({"sil", "sp", "spn", "pau", "_", ""})


class LabelError(ValueError):
    """An utterance lacks the label its task needs (the message names the field; the batch
    record that carries it names the utterance)."""


def text_symbols(text: str) -> list[str]:
    """Characters of a normalised transcript, ``|`` between words."""
    from speechunits.metrics.intelligibility import normalize_english

    words = normalize_english(text).split()
    return list(WORD_SEP.join(words))


def symbols_text(symbols: list[str]) -> str:
    """The inverse of :func:`text_symbols` (for scoring decoded character sequences)."""
    return " ".join("".join(symbols).replace(WORD_SEP, " ").split())


def phone_symbols(alignment: Alignment) -> list[str]:
    """ARPAbet phones of an alignment, stress removed, silences dropped."""
    out = []
    for seg in alignment.tier("phones"):
        p = re.sub(r"\d", "", str(seg.label)).upper()
        if p.lower() not in SILENCES:
            out.append(p)
    return out


def _text(u: Utterance, al: Alignment | None) -> list[str]:
    if not u.text or not u.text.strip():
        raise LabelError("no 'text' (a transcription task needs one)")
    syms = text_symbols(u.text)
    if not syms:
        raise LabelError("the transcript has no letters or digits")
    return syms


def _phones(u: Utterance, al: Alignment | None) -> list[str]:
    if al is None:
        raise LabelError("no phone alignment (phone recognition needs one)")
    syms = phone_symbols(al)
    if not syms:
        raise LabelError("the alignment has no phones")
    return syms


def _speaker(u: Utterance, al: Alignment | None) -> str:
    if not u.speaker:
        raise LabelError("no 'speaker' (speaker identification needs one)")
    return str(u.speaker)


def _label(u: Utterance, al: Alignment | None) -> str:
    v = u.extra.get("label")
    if v is None or (isinstance(v, str) and not v.strip()) or isinstance(v, (dict, list)):
        raise LabelError("no 'label' field (a classification task needs one per line)")
    return str(v)


def _no_label(u: Utterance, al: Alignment | None) -> None:
    return None  # the target (clean units) is computed from the audio itself


@dataclass(frozen=True)
class Task:
    """One downstream task: its kind, where its target comes from, its score."""

    name: str
    kind: str  # "sequence" (CTC), "utterance" (classification) or "frames" (per-frame units)
    target: Callable[[Utterance, Alignment | None], Any]
    metric: str  # the headline score: "wer", "per", "accuracy" or "unit_accuracy"
    description: str
    needs_alignment: bool = False

    @property
    def lower_is_better(self) -> bool:
        return self.metric not in ("accuracy", "unit_accuracy")


TASKS: dict[str, Task] = {
    "asr": Task("asr", "sequence", _text, "wer", "speech recognition: CTC over characters, WER/CER"),
    "transcribe": Task("transcribe", "sequence", _text, "wer", "any transcription manifest (text field): CTC, WER/CER"),
    "pr": Task("pr", "sequence", _phones, "per", "phone recognition: CTC over ARPAbet phones, PER", True),
    "sid": Task("sid", "utterance", _speaker, "accuracy", "speaker identification: pooling + linear, accuracy"),
    "kws": Task("kws", "utterance", _label, "accuracy", "keyword spotting (label field): pooling + linear, accuracy"),
    "classify": Task("classify", "utterance", _label, "accuracy", "any labelled manifest (label field): accuracy"),
    "se": Task("se", "frames", _no_label, "unit_accuracy", "speech enhancement: noisy units -> clean units"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]
