"""The corpus plan: which sentences, by which speaker, in which split, at which tempo.

The plan is a pure function of the seed (and the espeak-ng pronunciations used to estimate
durations), built one utterance after another from fixed random streams, so a larger
``minutes`` extends the same plan (resuming into a bigger corpus reuses every finished file).

- Splits follow a fixed pattern over utterance indices (80% train, 10% dev, 10% test, and even a
  three-utterance corpus has all three). Every sentence is used once in the whole corpus, so
  splits never share a sentence. Test utterances use only the held-out test speakers; train
  and dev use the others, in round robin so speakers are balanced.
- An utterance is one or more sentences, up to a drawn target length, so durations spread over
  2-15 s while sentences stay natural.

>>> from speechunits.data.corpus.plan import plan_corpus
>>> plan = plan_corpus(0.5, seed=1, durations=None)
>>> sorted({u.split for u in plan})
['dev', 'test', 'train']
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from speechunits.data.corpus.grammar import Grammar
from speechunits.data.corpus.lexicon import Lexicon, load_lexicon
from speechunits.data.corpus.synth import FINAL_PAUSE_MS, words_of
from speechunits.data.corpus.voices import TEST_SPEAKERS, speaker, split_speakers

SPLIT_PATTERN: tuple[str, ...] = ("train", "test", "dev") + ("train",) * 7
MIN_SECONDS, MAX_SECONDS = 2.0, 15.0  # every utterance's length falls in here
# Planning bounds on the *estimate*, inside the promise: per utterance the estimate was within
# 7% of the real length on a 30-minute corpus (208 utterances).
_EST_MIN, _EST_MAX = 2.3, 13.6
TEMPO_RANGE = (0.9, 1.12)
LEAD_MS_RANGE = (60, 250)
# Sentence duration ~= 0.81 * (sum of its words' durations said alone) + 254 ms: a least-squares
# fit on 150 grammar sentences against espeak-ng's own .pho totals (95% within 10%).
_EST_SLOPE, _EST_INTERCEPT_MS = 0.81, 254.0
_FALLBACK_MS_PER_CHAR = 60.0  # when no pronunciations are given (tests, docs)


@dataclass(frozen=True)
class PlannedUtterance:
    index: int
    id: str
    split: str
    speaker: str
    sentences: tuple[str, ...]
    tempo: float
    lead_ms: float
    est_seconds: float

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def estimate_ms(sentence: str, durations: Mapping[str, float] | None) -> float:
    """Estimated spoken length of one sentence at tempo 1 (ms)."""
    if durations is None:
        return _FALLBACK_MS_PER_CHAR * len(sentence)
    return _EST_SLOPE * sum(durations.get(w, 70.0 * len(w)) for w in words_of(sentence)) + _EST_INTERCEPT_MS


def plan_corpus(minutes: float, seed: int, durations: Mapping[str, Mapping[str, float]] | None,
                test_speakers: Sequence[str] = TEST_SPEAKERS, lexicon: Lexicon | None = None,
                ) -> list[PlannedUtterance]:
    """Plan utterances until their estimated total reaches ``minutes``.

    ``durations[voice][word]`` is each word's duration said alone (ms), from espeak-ng.
    """
    if minutes <= 0:
        raise ValueError("minutes must be > 0")
    spk_by_split = split_speakers(tuple(test_speakers))
    grammar = Grammar(random.Random(f"speechunits-corpus-text:{seed}"), lexicon or load_lexicon())
    used: set[str] = set()
    per_split = {s: 0 for s in spk_by_split}
    plan: list[PlannedUtterance] = []
    total = 0.0
    i = 0
    while total < minutes * 60.0:
        rng = random.Random(f"speechunits-corpus-utt:{seed}:{i}")
        split = SPLIT_PATTERN[i % len(SPLIT_PATTERN)]
        spk = spk_by_split[split][per_split[split] % len(spk_by_split[split])]
        per_split[split] += 1
        tempo = round(rng.uniform(*TEMPO_RANGE), 3)
        lead = float(rng.randint(*LEAD_MS_RANGE))
        target = rng.uniform(_EST_MIN, _EST_MAX)
        voice_durs = None if durations is None else durations.get(speaker(spk).voice)
        sentences, est = _fill(grammar, rng, used, voice_durs, tempo, (lead + FINAL_PAUSE_MS) / 1000, target)
        plan.append(PlannedUtterance(i, f"{spk}_{i:06d}", split, spk, tuple(sentences), tempo, lead,
                                     round(est, 3)))
        total += est
        i += 1
    return plan


def _fill(grammar: Grammar, rng: random.Random, used: set[str], durs: Mapping[str, float] | None,
          tempo: float, base_s: float, target: float) -> tuple[list[str], float]:
    """Sentences (new to the corpus) whose estimated total length approaches ``target``.

    A short target wants short sentences, and a long corpus uses most of the short ones up; when
    400 draws cannot reach the minimum length, the length limit is widened (up to the maximum
    utterance length) and drawing goes on. The first pass is unchanged, so corpora that never
    needed the widening are the same as before it existed.
    """
    sentences: list[str] = []
    est = base_s
    for widen in (1.0, 1.5, 2.5, 6.0):
        limit = min(_EST_MAX, 1.15 * target * widen)
        for _ in range(400):
            s = grammar.sentence(complexity=rng.randrange(4))
            if s in used:
                continue
            d = estimate_ms(s, durs) / 1000.0 / tempo
            if est + d > limit:
                continue  # too long to fit: try another
            sentences.append(s)
            used.add(s)
            est += d
            if est >= target:
                break
        if est >= _EST_MIN and sentences:
            return sentences, est
    raise RuntimeError(f"could not plan an utterance of the minimum length ({_EST_MIN} s): the grammar's "
                       f"unused sentences ran out ({len(used)} used); ask for fewer minutes")
