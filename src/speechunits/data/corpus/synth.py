"""Synthesize one utterance with exact phone, word and character alignments.

espeak-ng turns the text into a .pho (phones, durations, pitch); the durations are scaled for
tempo and a leading pause is added *in the .pho*, so the alignment is read from exactly the file
MBROLA renders. MBROLA's output differs from the .pho total by a few ms; the final pause absorbs
it, so the phone tier tiles ``[0, num_samples / 16000]`` exactly.

Words are found clause by clause: espeak-ng closes every clause (at , . ? !) with a 1 ms pause
line, so each clause's words are aligned (:mod:`wordalign`) only to that clause's phones.

>>> from speechunits.data.corpus.synth import synthesize
>>> from speechunits.data.corpus.voices import speaker
>>> utt = synthesize("The cat sat on the mat.", speaker("us1-f1.00-l16000"))
>>> utt.alignment.phones[-1].end == len(utt.audio) / 16000, [w.label for w in utt.alignment.words][:2]
(True, ['the', 'cat'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from speechunits.data.alignment import Alignment, Segment, chars_from_words
from speechunits.data.corpus.phones import PhoLine, format_pho, parse_pho, retime, to_common
from speechunits.data.corpus.tools import (
    ensure_final_punctuation, espeak_pho, espeak_word_phones, mbrola_synth,
)
from speechunits.data.corpus.voices import Speaker
from speechunits.data.corpus.wordalign import align_words

SAMPLE_RATE = 16000
FINAL_PAUSE_MS = 150.0  # at least this much trailing silence, so the absorbed remainder fits
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[,.?!]")

#: word -> its phones (common set) said alone, for one MBROLA voice; see :func:`word_phones`.
Pronunciations = Mapping[str, Sequence[str]]


@dataclass
class Utterance:
    audio: np.ndarray  # int16, 16 kHz
    alignment: Alignment
    match_rate: float  # share of sentence phones matched exactly by the word pronunciations


def words_of(text: str) -> list[str]:
    """The words of ``text`` as the word tier labels them (lower case, apostrophes kept)."""
    return [t.lower() for t in _TOKEN_RE.findall(text) if t[0].isalpha()]


def clauses_of(text: str) -> list[list[str]]:
    """Words of each clause (a clause ends at , . ? !), as espeak-ng splits them."""
    out: list[list[str]] = [[]]
    for t in _TOKEN_RE.findall(ensure_final_punctuation(text)):
        if t[0].isalpha():
            out[-1].append(t.lower())
        else:
            out.append([])
    return out[:-1]


def word_phones(words: Sequence[str], voice: str, skip_unknown: bool = False) -> dict[str, list[str]]:
    """Each word's phones (common set) said alone by ``voice``; one espeak-ng call for all."""
    return {w: phs for w, (phs, _) in word_pronunciations(words, voice, skip_unknown).items()}


def word_pronunciations(words: Sequence[str], voice: str, skip_unknown: bool = False
                        ) -> dict[str, tuple[list[str], float]]:
    """Each word's phones (common set) and duration in ms said alone; one espeak-ng call.

    A phone without a common-set mapping raises, or with ``skip_unknown`` drops that word
    (espeak-ng passes some of its own phoneme names to MBROLA for odd spellings).
    """
    out = {}
    for w, phs in espeak_word_phones([w.lower() for w in words], voice).items():
        try:
            out[w] = ([to_common(p, voice) for p, _ in phs], sum(ms for _, ms in phs))
        except KeyError:
            if not skip_unknown:
                raise
    return out


def synthesize(text: str, spk: Speaker, tempo: float = 1.0, lead_ms: float = 120.0,
               prons: Pronunciations | None = None, pho: str | None = None) -> Utterance:
    """Audio (int16, 16 kHz) and alignment of ``text`` said by ``spk``.

    ``tempo`` > 1 speaks faster. ``prons`` caches word pronunciations for ``spk.voice``
    (missing words are looked up with one extra espeak-ng call); ``pho`` is espeak-ng's .pho
    for ``text`` when already computed (see ``tools.espeak_pho_batch``).
    """
    raw = parse_pho(pho if pho is not None else espeak_pho(ensure_final_punctuation(text), spk.voice))
    lines = retime(raw, tempo, lead_ms, FINAL_PAUSE_MS)
    audio = mbrola_synth(format_pho(lines), spk.voice, spk.pitch, spk.voice_freq, spk.volume)
    if spk.voice_freq != SAMPLE_RATE:
        audio = _resample(audio, spk.voice_freq)
    phones, line_phone = _phone_tier(lines, spk.voice, len(audio) / SAMPLE_RATE, text)

    clauses = clauses_of(text)
    words = [w for c in clauses for w in c]
    prons = dict(prons or {})
    missing = [w for w in dict.fromkeys(words) if w not in prons]
    if missing:
        prons.update(word_phones(missing, spk.voice))
    shift = 1 if lead_ms > 0 else 0  # retime() put the lead pause before raw line 0
    ends = [line_phone[i + shift] + 1 for i, p in enumerate(raw) if p.label == "_" and p.ms == 1.0]
    if len(ends) != len(clauses):  # unexpected clause structure: align the whole utterance
        ends, clauses = [len(phones)], [words]
    spans, matched, total, start = [], 0, 0, 0
    labels = [p.label for p in phones]
    for end, clause in zip(ends, clauses):
        ws = align_words(labels[start:end], [prons.get(w, []) for w in clause])
        spans += [(a + start, b + start) for a, b in ws.spans]
        matched, total, start = matched + ws.matched, total + ws.total, end

    word_tier = []
    for w, (a, b) in zip(words, spans):
        if b > a:
            word_tier.append(Segment(phones[a].start, phones[b - 1].end, w))
        else:  # swallowed by its neighbours: a zero-length word at the boundary
            t = phones[a].start if a < len(phones) else phones[-1].end
            word_tier.append(Segment(t, t, w))
    al = Alignment(phones=phones, words=word_tier, chars=chars_from_words(word_tier),
                   duration=len(audio) / SAMPLE_RATE)
    return Utterance(audio, al, matched / total if total else 1.0)


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    y = soxr.resample(audio.astype(np.float32) / 32768.0, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def _phone_tier(lines: Sequence[PhoLine], voice: str, total: float, text: str
                ) -> tuple[list[Segment], list[int]]:
    """Segments from the .pho durations, consecutive pauses merged into one ``sil``; the last
    pause ends at ``total`` (the audio's length). Also the phone index of every .pho line."""
    merged: list[list] = []  # [label, start_ms, end_ms]
    line_phone: list[int] = []
    t = 0.0
    for p in lines:
        label = to_common(p.label, voice)
        if merged and label == "sil" and merged[-1][0] == "sil":
            merged[-1][2] = t + p.ms
        else:
            merged.append([label, t, t + p.ms])
        line_phone.append(len(merged) - 1)
        t += p.ms
    if merged[-1][0] != "sil" or merged[-1][1] / 1000.0 >= total:
        raise RuntimeError(f"{text[:40]!r}: MBROLA audio ({total:.3f} s) does not cover the phones"
                           f" before the final pause ({merged[-1][1] / 1000.0:.3f} s)")
    # Boundaries from the same cumulative sums, so segment i's end IS segment i+1's start.
    segs = [Segment(a / 1000.0, b / 1000.0, lab) for lab, a, b in merged[:-1]]
    segs.append(Segment(merged[-1][1] / 1000.0, total, "sil"))
    return segs, line_phone
