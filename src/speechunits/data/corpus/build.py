"""``synthesize_corpus``: the aligned multi-speaker synthetic corpus, end to end.

Layout under ``out``::

    manifest.jsonl  train.jsonl  dev.jsonl  test.jsonl   one utterance a line, paths relative
    corpus.json                                         summary (seed, speakers, counts, versions)
    wav/<speaker>/<id>.wav      16 kHz mono PCM16
    align/<speaker>/<id>.json   Alignment (phones tile the audio; words; characters)

>>> from speechunits.data.corpus import synthesize_corpus
>>> summary = synthesize_corpus("/tmp/su_corpus", minutes=0.3, seed=0, progress=False)
>>> summary.utterances > 0 and set(summary.splits) == {"train", "dev", "test"}
True
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from speechunits.data.atomic import atomic_write_text
from speechunits.data.corpus.jobs import Job, check_folder_config, remove_stale_temporaries, run_jobs
from speechunits.data.corpus.lexicon import load_lexicon
from speechunits.data.corpus.phones import COMMON_PHONES
from speechunits.data.corpus.plan import MAX_SECONDS, MIN_SECONDS, TEMPO_RANGE, plan_corpus
from speechunits.data.corpus.synth import SAMPLE_RATE, word_pronunciations
from speechunits.data.corpus.tools import check_tools, tool_versions
from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS, speaker

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")
_GUARD = ".speechunits-corpus.json"  # what the files in this folder were made with


@dataclass
class CorpusSummary:
    """What :func:`synthesize_corpus` produced (``to_dict`` is ``corpus.json``)."""

    out: Path
    seed: int
    minutes: float
    utterances: int
    seconds: float
    splits: dict[str, dict]
    speakers: list[dict]
    lexicon: dict
    versions: dict
    generated: int = 0  # synthesized by this run (the rest were already there)
    failed: list[str] = field(default_factory=list)
    match_rate: float | None = None  # mean word-alignment match rate over generated utterances

    def to_dict(self) -> dict:
        # Only what the seed determines: identical for identical runs, resumed or not.
        return {
            "seed": self.seed, "minutes_requested": self.minutes, "utterances": self.utterances,
            "total_seconds": round(self.seconds, 3), "sample_rate": SAMPLE_RATE,
            "splits": self.splits, "speakers": self.speakers, "lexicon": self.lexicon,
            "phone_set": list(COMMON_PHONES), "tempo_range": list(TEMPO_RANGE),
            "duration_range_s": [MIN_SECONDS, MAX_SECONDS], "versions": self.versions,
        }

    def format(self) -> str:
        lines = [f"{self.out}: {self.utterances} utterances, {self.seconds / 60:.2f} min, "
                 f"{len(self.speakers)} speakers ({self.generated} synthesized now)"]
        for name, s in self.splits.items():
            lines.append(f"  {name:5s} {s['utterances']:6d} utt {s['seconds'] / 60:8.2f} min "
                         f"{len(s['speakers']):3d} speakers")
        if self.failed:
            lines.append(f"  FAILED: {len(self.failed)} (see the log): {', '.join(self.failed[:5])}")
        return "\n".join(lines)


def lexicon_pronunciations(voices: Sequence[str], extra_words: Sequence[str] = (),
                           skip_unknown: bool = False) -> dict:
    """``{voice: {word: (phones, ms)}}`` for every lexicon form and ``extra_words`` (one espeak-ng
    call per voice)."""
    from concurrent.futures import ThreadPoolExecutor

    words = sorted(load_lexicon().forms | {w.lower() for w in extra_words})
    with ThreadPoolExecutor(len(voices) or 1) as ex:  # the time is in espeak-ng, not the GIL
        prons = ex.map(lambda v: word_pronunciations(words, v, skip_unknown), voices)
        return dict(zip(voices, prons))


def synthesize_corpus(out: str | Path, minutes: float = 10.0, seed: int = 0, workers: int | None = None,
                      test_speakers: Sequence[str] = TEST_SPEAKERS, progress: bool = True,
                      lexicon: str | Path | None = None) -> CorpusSummary:
    """Synthesize (or finish) the corpus in ``out``; see the module doc for the layout.

    ``lexicon``: a lexicon file (``corpus lexicon`` writes a smaller one) instead of the packaged one.

    Deterministic for a seed: the same call gives byte-identical manifests and audio. Re-running
    skips finished utterances; a larger ``minutes`` extends the same corpus (a smaller one lists
    only the first utterances in the manifests and leaves the other files alone). Utterances that
    fail are logged, left out of the manifests and named in ``summary.failed``.
    """
    out = Path(out)
    voices = sorted({s.voice for s in SPEAKERS})
    check_tools(voices)
    lex = load_lexicon(lexicon)
    for sid in test_speakers:
        speaker(sid)
    check_folder_config(out, _GUARD, {"seed": seed, "test_speakers": list(test_speakers),
                                      "lexicon": lex.digest, "format": 1})
    prons = lexicon_pronunciations(voices)
    durations = {v: {w: ms for w, (_, ms) in p.items()} for v, p in prons.items()}
    plan = plan_corpus(minutes, seed, durations, test_speakers, lex)
    jobs = [Job(u.id, u.text, u.speaker, u.tempo, u.lead_ms, f"wav/{u.speaker}/{u.id}.wav",
                f"align/{u.speaker}/{u.id}.json") for u in plan]
    remove_stale_temporaries(out, ["wav", "align"])
    results = run_jobs(out, jobs, {v: {w: ph for w, (ph, _) in p.items()} for v, p in prons.items()},
                       workers=workers, progress=progress, desc="corpus")

    everything, failed = [], []
    for u, job in zip(plan, jobs):
        r = results[job.id]
        if r.error:
            failed.append(u.id)
            continue
        everything.append({"id": u.id, "path": job.wav, "speaker": u.speaker, "text": u.text,
                           "alignment": job.align, "split": u.split, "num_samples": r.num_samples,
                           "sample_rate": SAMPLE_RATE})
    rows = {s: [r for r in everything if r["split"] == s] for s in SPLITS}
    _write_jsonl(out / "manifest.jsonl", everything)
    for s in SPLITS:
        _write_jsonl(out / f"{s}.jsonl", rows[s])

    split_speakers = {s: sorted({r["speaker"] for r in rows[s]}) for s in SPLITS}
    rates = [r.match_rate for r in results.values() if r.match_rate is not None]
    summary = CorpusSummary(
        out=out, seed=seed, minutes=minutes, utterances=len(everything),
        seconds=sum(r["num_samples"] for r in everything) / SAMPLE_RATE,
        splits={s: {"utterances": len(rows[s]), "seconds": round(sum(r["num_samples"] for r in rows[s])
                                                                  / SAMPLE_RATE, 3),
                    "speakers": split_speakers[s]} for s in SPLITS},
        speakers=[{**spk.to_dict(), "split": "test" if spk.id in test_speakers else "train/dev"}
                  for spk in SPEAKERS],
        lexicon={"words": lex.size, "forms": len(lex.forms), "digest": lex.digest,
                 "file": str(lexicon) if lexicon is not None else None},
        versions={**tool_versions(), "speechunits": _version()},
        generated=sum(r.generated for r in results.values()), failed=failed,
        match_rate=sum(rates) / len(rates) if rates else None,
    )
    atomic_write_text(out / "corpus.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    if summary.match_rate is not None:
        log.info("word alignment: %.1f%% of phones matched the words' own pronunciations",
                 100 * summary.match_rate)
    return summary


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _version() -> str:
    from speechunits import __version__

    return __version__
