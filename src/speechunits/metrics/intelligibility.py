"""Intelligibility of resynthesized speech: ASR word and character error rates.

- ``wer`` / ``cer``: ASR transcript of the resynthesized audio against the reference text;
- ``dwer`` / ``dcer``: against the ASR transcript of the *original* audio (the same ASR), so that
  the ASR's own errors on the original cancel out; the multi-layer-tokens paper (Mousavi et al.,
  arXiv 2406.10735) scores its vocoders this way, with Whisper;
- ``orig_wer`` / ``orig_cer``: the topline, the original audio through the same ASR.

Both sides are normalised by :func:`normalize_english`: lower case, English titles expanded
(``mr`` -> ``mister``, as Whisper's English normaliser does; LibriVox/LibriSpeech texts spell
them out), punctuation removed (hyphens and dashes become spaces, apostrophes inside words kept),
single spaces; numbers are left as written. Error rates are Levenshtein distances (jiwer) over
words or characters (spaces included) divided by the reference length; corpus rates sum errors
and reference lengths over utterances (not a mean of per-utterance rates).

Example:
    >>> normalize_english("Mr. Dashwood's ill-disposed son, 2 years old!")
    "mister dashwood's ill disposed son 2 years old"
    >>> error_counts("the cat sat", "the cat sat down", unit="word")
    (1, 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..lm.vocab import normalize_text

__all__ = ["ErrorCounts", "error_counts", "intelligibility", "intelligibility_batch", "normalize_english"]

# Titles that Whisper's EnglishTextNormalizer expands (the reference transcripts spell them out)
TITLES = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "prof": "professor", "capt": "captain",
    "gov": "governor", "ald": "alderman", "gen": "general", "sen": "senator", "rep": "representative",
    "pres": "president", "rev": "reverend", "hon": "honorable", "asst": "assistant", "assoc": "associate",
    "lt": "lieutenant", "col": "colonel", "jr": "junior", "sr": "senior", "esq": "esquire", "st": "saint",
}
_TITLE_RE = re.compile(r"\b(" + "|".join(TITLES) + r")\b\.?")


def normalize_english(text: str) -> str:
    """Lower case, titles expanded, punctuation removed, numbers kept, single spaces."""
    text = _TITLE_RE.sub(lambda m: TITLES[m.group(1)], text.lower())
    return normalize_text(text)


def error_counts(ref: str, hyp: str, unit: str = "word") -> tuple[int, int]:
    """``(edits, reference length)`` between two normalised strings, in words or characters."""
    import jiwer

    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    ref_units = ref.split() if unit == "word" else list(ref)
    if not ref_units:
        raise ValueError("empty reference: an error rate needs at least one reference word")
    if not (hyp.split() if unit == "word" else hyp):
        return len(ref_units), len(ref_units)  # everything deleted
    out = jiwer.process_words(ref, hyp) if unit == "word" else jiwer.process_characters(ref, hyp)
    return int(out.substitutions + out.deletions + out.insertions), len(ref_units)


@dataclass
class ErrorCounts:
    """Summed edits and reference lengths; ``rate`` is the corpus error rate (None when empty)."""

    errors: int = 0
    length: int = 0

    def add(self, pair: tuple[int, int]) -> None:
        self.errors += pair[0]
        self.length += pair[1]

    @property
    def rate(self) -> float | None:
        return self.errors / self.length if self.length else None


RATES = ("wer", "cer", "dwer", "dcer", "orig_wer", "orig_cer")


def _scores(ref: str | None, asr_original: str, asr_resynth: str) -> dict:
    """Per-utterance rates and counts; a metric whose reference is empty is None.

    ``orig_wer`` / ``orig_cer`` are the topline: the original audio's transcript against the text.
    """
    out: dict = {"asr_original": asr_original, "asr_resynth": asr_resynth}
    text = None if ref is None else normalize_english(ref)
    asr_orig = normalize_english(asr_original)
    for key, reference, hyp in (("", text, normalize_english(asr_resynth)), ("d", asr_orig, normalize_english(asr_resynth)),
                                ("orig_", text, asr_orig)):
        for unit, name in (("word", "wer"), ("char", "cer")):
            if reference:
                e, n = error_counts(reference, hyp, unit)
                out[key + name], out[f"_{key}{name}_counts"] = e / n, (e, n)
            else:
                out[key + name] = None
    return out


def intelligibility(transcriber, ref_text: str | None, original_wave: np.ndarray, resynth_wave: np.ndarray) -> dict:
    """``{wer, cer, dwer, dcer, orig_wer, orig_cer, asr_original, asr_resynth}`` of one pair
    (``wer``/``cer``/``orig_*`` None without a reference text; ``dwer``/``dcer`` None when the ASR
    hears nothing in the original)."""
    asr_original, asr_resynth = transcriber.transcribe([original_wave, resynth_wave], ["original", "resynthesized"])
    return {k: v for k, v in _scores(ref_text, asr_original, asr_resynth).items() if not k.startswith("_")}


def intelligibility_batch(transcriber, ref_texts: Sequence[str | None], originals: Sequence[np.ndarray],
                          resynths: Sequence[np.ndarray], names: Sequence[str] | None = None) -> tuple[list[dict], dict]:
    """Per-item scores (as :func:`intelligibility`) and corpus ``{wer, cer, dwer, dcer, orig_wer,
    orig_cer}`` (None where no item has the reference), all waves transcribed in batches."""
    n = len(originals)
    if not (len(ref_texts) == n == len(resynths)):
        raise ValueError(f"intelligibility_batch: {len(ref_texts)} texts, {n} originals, {len(resynths)} resynthesized")
    names = list(names) if names is not None else [str(i) for i in range(n)]
    texts = transcriber.transcribe(list(originals) + list(resynths),
                                   [f"{x} (original)" for x in names] + [f"{x} (resynthesized)" for x in names])
    items, totals = [], {k: ErrorCounts() for k in RATES}
    for i in range(n):
        s = _scores(ref_texts[i], texts[i], texts[n + i])
        for k, acc in totals.items():
            if f"_{k}_counts" in s:
                acc.add(s[f"_{k}_counts"])
        items.append({k: v for k, v in s.items() if not k.startswith("_")})
    return items, {k: acc.rate for k, acc in totals.items()}
