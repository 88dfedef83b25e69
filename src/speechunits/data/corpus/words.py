"""``synthesize_words``: a keyword-spotting corpus of single spoken words, every voice saying each.

Keywords are drawn (seeded) from the lexicon's nouns and verbs of one to three syllables: one
entry per surface form, and no two keywords that sound alike (``meat``/``meet``) in any voice.
Each keyword is said alone by every speaker of the corpus, in several *takes*: each take has
its own tempo, pitch (a small scaling of the speaker's pitch ratio) and leading silence, drawn
from the seed, the speaker, the word and the take number only.

Splits: the train speakers say each word ``takes["train"] + takes["dev"]`` times (default 3 + 1);
the first takes go to train, the rest to dev, so dev measures new takes of seen voices. The
held-out ``TEST_SPEAKERS`` say each word ``takes["test"]`` times (default 2), in test only, so
test measures unseen voices.

Layout under ``out`` (as ``corpus synth``)::

    manifest.jsonl  train.jsonl  dev.jsonl  test.jsonl   the corpus manifest format + "label"
    corpus.json                                         keywords, takes, speakers, counts, versions
    wav/<speaker>/<id>.wav      16 kHz mono PCM16 (id: <speaker>_<word>_<take>)
    align/<speaker>/<id>.json   Alignment (phones tile the audio; the word; characters)

>>> from speechunits.data.corpus.words import synthesize_words
>>> s = synthesize_words("/tmp/su_words", n_words=2, seed=0, progress=False)
>>> len(s.keywords), sorted(s.splits)
(2, ['dev', 'test', 'train'])
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from speechunits.data.atomic import atomic_write_text
from speechunits.data.corpus.jobs import Job, check_folder_config, remove_stale_temporaries, run_jobs
from speechunits.data.corpus.lexicon import Lexicon, load_lexicon
from speechunits.data.corpus.phones import VOWELS
from speechunits.data.corpus.synth import SAMPLE_RATE, word_pronunciations
from speechunits.data.corpus.tools import check_tools, tool_versions
from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS, speaker, split_speakers

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")
TAKES: Mapping[str, int] = {"train": 3, "dev": 1, "test": 2}
KEYWORD_POS = ("noun", "verb")
SYLLABLES = (1, 3)  # inclusive; counted as vowel phones, in every voice
TEMPO_RANGE = (0.85, 1.15)
PITCH_SCALE_RANGE = (0.93, 1.07)
LEAD_MS_RANGE = (60, 250)
_WORD_RE = re.compile(r"[a-z]+")
_GUARD = ".speechunits-words.json"

#: voice -> word -> (phones in the common set, duration in ms said alone)
Prons = Mapping[str, Mapping[str, tuple[Sequence[str], float]]]


@dataclass
class WordsSummary:
    """What :func:`synthesize_words` produced (``to_dict`` is ``corpus.json``)."""

    out: Path
    seed: int
    keywords: list[str]
    skipped: list[dict]
    takes: dict[str, int]
    splits: dict[str, dict]
    speakers: list[dict]
    versions: dict
    generated: int = 0  # synthesized by this run (the rest were already there)
    failed: list[str] = field(default_factory=list)

    @property
    def utterances(self) -> int:
        return sum(s["utterances"] for s in self.splits.values())

    def to_dict(self) -> dict:
        # Only what the seed (and the tools) determine: identical for identical runs, resumed or not.
        return {
            "seed": self.seed, "words": self.keywords, "skipped_words": self.skipped,
            "takes": self.takes, "utterances": self.utterances,
            "total_seconds": round(sum(s["seconds"] for s in self.splits.values()), 3),
            "sample_rate": SAMPLE_RATE, "splits": self.splits, "speakers": self.speakers,
            "variation": {"tempo_range": list(TEMPO_RANGE), "pitch_scale_range": list(PITCH_SCALE_RANGE),
                          "lead_ms_range": list(LEAD_MS_RANGE)},
            "versions": self.versions,
        }

    def format(self) -> str:
        lines = [f"{self.out}: {len(self.keywords)} words, {self.utterances} utterances, "
                 f"{sum(s['seconds'] for s in self.splits.values()) / 60:.2f} min, "
                 f"{len(self.speakers)} speakers ({self.generated} synthesized now)"]
        for name, s in self.splits.items():
            lines.append(f"  {name:5s} {s['utterances']:6d} utt {s['seconds'] / 60:8.2f} min "
                         f"{len(s['speakers']):3d} speakers")
        for sk in self.skipped:
            lines.append(f"  skipped word {sk['word']!r}: {sk['reason']}")
        if self.failed:
            lines.append(f"  FAILED: {len(self.failed)} (see the log): {', '.join(self.failed[:5])}")
        return "\n".join(lines)


def keyword_pool(lexicon: Lexicon | None = None) -> list[str]:
    """Sorted distinct lemmas (letters only) of the lexicon's nouns and verbs."""
    lex = lexicon or load_lexicon()
    return sorted({e.word.lower() for e in lex.entries
                   if e.pos in KEYWORD_POS and _WORD_RE.fullmatch(e.word.lower())})


def pronunciations(words: Sequence[str], voices: Sequence[str]) -> dict[str, dict]:
    """``{voice: {word: (phones, ms)}}``; a word whose phones a voice cannot say is absent there.
    One espeak-ng call per voice, one after another (cheap: ~0.06 s for 1,000 words)."""
    return {v: word_pronunciations(words, v, skip_unknown=True) for v in voices}


def _unsayable(word: str, prons: Prons) -> str | None:
    bad = [v for v in sorted(prons) if word not in prons[v] or not prons[v][word][0]]
    if bad:
        return (f"espeak-ng gives it phones that the MBROLA voice(s) {', '.join(bad)} cannot say "
                f"(no common-set mapping)")
    return None


def _sounds_like(word: str, chosen: Sequence[str], prons: Prons) -> str | None:
    for other in chosen:
        for v in sorted(prons):
            if list(prons[v][word][0]) == list(prons[v][other][0]):
                return f"sounds like the keyword {other!r} in voice {v} ({' '.join(prons[v][word][0])})"
    return None


def select_keywords(n: int, seed: int, prons: Prons, pool: Sequence[str] | None = None
                    ) -> tuple[list[str], list[dict]]:
    """``n`` keywords from ``pool`` (default :func:`keyword_pool`) in a seeded order, and the
    drawn words that were skipped (``{"word", "reason"}``: unsayable, or sounding like an
    earlier keyword). Words outside 1-3 syllables in some voice are not eligible.

    The order is a seeded shuffle of the sorted pool, so a larger ``n`` extends the same list.
    """
    if n < 1:
        raise ValueError(f"the number of words must be >= 1, got {n}")
    order = sorted(pool if pool is not None else keyword_pool())
    random.Random(f"speechunits-words:{seed}").shuffle(order)
    chosen: list[str] = []
    skipped: list[dict] = []
    for w in order:
        if len(chosen) == n:
            break
        reason = _unsayable(w, prons)
        if reason is None:
            syl = {sum(p in VOWELS for p in prons[v][w][0]) for v in prons}
            if not all(SYLLABLES[0] <= s <= SYLLABLES[1] for s in syl):
                continue  # not eligible (not a skip: the pool's definition)
            reason = _sounds_like(w, chosen, prons)
        if reason:
            skipped.append({"word": w, "reason": reason})
        else:
            chosen.append(w)
    if len(chosen) < n:
        raise ValueError(f"the lexicon has only {len(chosen)} eligible keywords, asked for {n}")
    return chosen, skipped


def check_keywords(words: Sequence[str], prons: Prons) -> tuple[list[str], list[dict]]:
    """Keywords given by the user, in their order: unsayable ones and ones sounding like an
    earlier one are skipped (recorded with the reason)."""
    chosen: list[str] = []
    skipped: list[dict] = []
    for w in words:
        reason = _unsayable(w, prons) or _sounds_like(w, chosen, prons)
        if reason:
            skipped.append({"word": w, "reason": reason})
        else:
            chosen.append(w)
    if not chosen:
        reasons = "; ".join(f"{s['word']}: {s['reason']}" for s in skipped)
        raise ValueError(f"none of the keywords can be synthesized: {reasons}")
    return chosen, skipped


def _normalise(words: Sequence[str]) -> list[str]:
    out = [w.strip().lower() for w in words]
    for w in out:
        if not _WORD_RE.fullmatch(w):
            raise ValueError(f"keyword {w!r}: only letters a-z are allowed")
    dup = sorted({w for w in out if out.count(w) > 1})
    if dup:
        raise ValueError(f"keywords given more than once: {', '.join(dup)}")
    if not out:
        raise ValueError("no keywords given")
    return out


def take_variation(seed: int, speaker_id: str, word: str, take: int) -> tuple[float, float, float]:
    """(tempo, pitch scale, lead ms) of one take: a function of these four values only, so
    files stay valid when the word list, the takes per split or the worker count change."""
    rng = random.Random(f"speechunits-words-take:{seed}:{speaker_id}:{word}:{take}")
    return (round(rng.uniform(*TEMPO_RANGE), 3), round(rng.uniform(*PITCH_SCALE_RANGE), 3),
            float(rng.randint(*LEAD_MS_RANGE)))


def plan_words(keywords: Sequence[str], seed: int, test_speakers: Sequence[str] = TEST_SPEAKERS,
               takes: Mapping[str, int] = TAKES) -> list[tuple[str, Job]]:
    """(split, job) for every keyword, speaker and take, word by word in speaker-table order."""
    _check_takes(takes)
    spk = split_speakers(tuple(test_speakers))
    plan = []
    for word in keywords:
        for s in SPEAKERS:
            if s.id in spk["test"]:
                splits = ["test"] * takes["test"]
            else:
                splits = ["train"] * takes["train"] + ["dev"] * takes["dev"]
            for take, split in enumerate(splits):
                tempo, pitch, lead = take_variation(seed, s.id, word, take)
                uid = f"{s.id}_{word}_{take}"
                plan.append((split, Job(uid, word, s.id, tempo, lead, f"wav/{s.id}/{uid}.wav",
                                        f"align/{s.id}/{uid}.json", pitch)))
    return plan


def _check_takes(takes: Mapping[str, int]) -> None:
    if set(takes) != set(SPLITS) or min(takes.values()) < 0 or takes["train"] < 1 or takes["test"] < 1:
        raise ValueError(f"takes must give train >= 1, dev >= 0 and test >= 1, got {dict(takes)}")


def synthesize_words(out: str | Path, n_words: int = 30, seed: int = 0, workers: int | None = None,
                     keywords: Sequence[str] | None = None, test_speakers: Sequence[str] = TEST_SPEAKERS,
                     takes: Mapping[str, int] = TAKES, progress: bool = True) -> WordsSummary:
    """Synthesize (or finish) the keyword corpus in ``out``; see the module doc for the layout.

    ``keywords`` replaces the seeded draw of ``n_words`` from the lexicon. Deterministic for a
    seed; re-running skips finished files. A keyword espeak-ng/MBROLA cannot say is skipped and
    named in ``summary.skipped`` (and ``corpus.json``); an utterance that fails is logged, left
    out of the manifests and named in ``summary.failed``.
    """
    out = Path(out)
    voices = sorted({s.voice for s in SPEAKERS})
    check_tools(voices)
    for sid in test_speakers:
        speaker(sid)
    # Every argument checked before anything is written.
    words = _normalise(keywords) if keywords is not None else None
    if words is None and n_words < 1:
        raise ValueError(f"the number of words must be >= 1, got {n_words}")
    _check_takes(takes)
    # A file depends on (seed, speaker, word, take) only; these settings fix that mapping.
    check_folder_config(out, _GUARD, {"seed": seed, "test_speakers": list(test_speakers), "format": 1})
    if words is not None:
        prons = pronunciations(words, voices)
        chosen, skipped = check_keywords(words, prons)
    else:
        prons = pronunciations(keyword_pool(), voices)
        chosen, skipped = select_keywords(n_words, seed, prons)
    for s in skipped:
        log.warning("skipped keyword %r: %s", s["word"], s["reason"])
    plan = plan_words(chosen, seed, test_speakers, takes)
    jobs = [j for _, j in plan]
    remove_stale_temporaries(out, ["wav", "align"])
    results = run_jobs(out, jobs, {v: {w: list(prons[v][w][0]) for w in chosen} for v in voices},
                       workers=workers, progress=progress, desc="words")

    everything, failed = [], []
    for split, job in plan:
        r = results[job.id]
        if r.error:
            failed.append(job.id)
            continue
        everything.append({"id": job.id, "path": job.wav, "speaker": job.speaker, "text": job.text,
                           "alignment": job.align, "split": split, "num_samples": r.num_samples,
                           "sample_rate": SAMPLE_RATE, "label": job.text})
    rows = {s: [r for r in everything if r["split"] == s] for s in SPLITS}
    _write_jsonl(out / "manifest.jsonl", everything)
    for s in SPLITS:
        _write_jsonl(out / f"{s}.jsonl", rows[s])

    summary = WordsSummary(
        out=out, seed=seed, keywords=chosen, skipped=skipped, takes=dict(takes),
        splits={s: {"utterances": len(rows[s]),
                    "seconds": round(sum(r["num_samples"] for r in rows[s]) / SAMPLE_RATE, 3),
                    "speakers": sorted({r["speaker"] for r in rows[s]}),
                    "words": len({r["label"] for r in rows[s]})} for s in SPLITS},
        speakers=[{**spk.to_dict(), "split": "test" if spk.id in test_speakers else "train/dev"}
                  for spk in SPEAKERS],
        versions={**tool_versions(), "speechunits": _version()},
        generated=sum(r.generated for r in results.values()), failed=failed,
    )
    atomic_write_text(out / "corpus.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _version() -> str:
    from speechunits import __version__

    return __version__
