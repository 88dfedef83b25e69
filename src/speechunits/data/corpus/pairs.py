"""Zero-shot pair sets in ZeroSpeech 2021's sLM21 layout, synthesized with the corpus voices.

For each kind (``lexical``, ``syntactic``, ``story``) the folder ``out/<kind>/`` holds the wav
files (flat, as in sLM21), ``gold.csv``, a ``manifest.jsonl`` (the corpus manifest format) and
``align/`` (alignments). In ``gold.csv``, as in sLM21, ``id`` names the PAIR: both files of a
pair share it and ``correct`` (1/0) tells them apart; ``filename`` is unique (no extension) and
reveals nothing (``a``/``b`` is drawn at random). Both items of a pair have the same speaker,
tempo and leading silence, so only the words differ.

gold.csv columns: lexical ``id,filename,correct,voice,word,phones``;
syntactic ``id,filename,correct,voice,type,transcription``;
story ``id,filename,correct,voice,type,topic,transcription``.

>>> from speechunits.data.corpus.pairs import synthesize_pairs
>>> s = synthesize_pairs("/tmp/su_pairs", kind="lexical", n=3, seed=0, progress=False)
>>> s.pairs["lexical"]
3
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from speechunits.data.alignment import Alignment
from speechunits.data.atomic import atomic_write_text
from speechunits.data.corpus.build import lexicon_pronunciations
from speechunits.data.corpus.lexicon import Lexicon, load_lexicon
from speechunits.data.corpus.jobs import Job, check_folder_config, remove_stale_temporaries, run_jobs
from speechunits.data.corpus.minimal_pairs import make_syntactic_pairs
from speechunits.data.corpus.nonwords import make_lexical_pairs
from speechunits.data.corpus.stories import make_story_pairs
from speechunits.data.corpus.synth import SAMPLE_RATE, words_of
from speechunits.data.corpus.tools import check_tools, tool_versions
from speechunits.data.corpus.voices import SPEAKERS, speaker

KINDS: tuple[str, ...] = ("lexical", "syntactic", "story")


@dataclass
class PairSummary:
    out: Path
    seed: int
    pairs: dict[str, int] = field(default_factory=dict)
    generated: int = 0
    failed: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"{self.out}: {', '.join(f'{k} {v} pairs' for k, v in self.pairs.items())} "
                 f"({self.generated} files synthesized now)"]
        if self.failed:
            lines.append(f"  FAILED: {len(self.failed)} pairs dropped: {', '.join(self.failed[:5])}")
        return "\n".join(lines)


def _items(kind: str, n: int, seed: int, lex: Lexicon) -> list[tuple[str, str, dict]]:
    """(good text, bad text, extra gold columns) per pair."""
    if kind == "lexical":
        return [(p.word, p.nonword, {}) for p in make_lexical_pairs(n, seed, lex=lex)]
    if kind == "syntactic":
        return [(p.good, p.bad, {"type": p.type}) for p in make_syntactic_pairs(n, seed, lex=lex)]
    if kind == "story":
        return [(p.good, p.bad, {"type": p.type, "topic": p.topic}) for p in make_story_pairs(n, seed, lex=lex)]
    raise ValueError(f"unknown pair kind {kind!r} (one of {', '.join(KINDS)}, or all)")


def synthesize_pairs(out: str | Path, kind: str = "all", n: int = 1000, seed: int = 0,
                     speakers: Sequence[str] | None = None, workers: int | None = None,
                     progress: bool = True, lexicon: str | Path | None = None) -> PairSummary:
    """Build and synthesize ``n`` pairs of ``kind`` (or of every kind) under ``out``.

    Speakers go round robin over ``speakers`` (default: all 16). Deterministic for a seed, and
    resumable like the corpus. ``lexicon``: the words to draw from, a lexicon file (give the one
    the corpus was synthesized with, so the lexical words are words the LM heard); non-words are
    never words of the packaged lexicon either.
    """
    out = Path(out)
    kinds = KINDS if kind == "all" else (kind,)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown pair kind {k!r} (one of {', '.join(KINDS)}, or all)")
    if n < 1:
        raise ValueError("n must be >= 1")
    spk_ids = list(speakers) if speakers else [s.id for s in SPEAKERS]
    voices = sorted({speaker(s).voice for s in spk_ids})
    check_tools(voices)
    # Pairs are a prefix-stable sequence for a seed (n may grow), but speakers must not change.
    lex = load_lexicon(lexicon)
    check_folder_config(out, ".speechunits-pairs.json", {"seed": seed, "speakers": spk_ids,
                                                         "lexicon": lex.digest, "format": 1})
    summary = PairSummary(out, seed)
    all_items = {k: _items(k, n, seed, lex) for k in kinds}
    words = sorted({w for items in all_items.values() for it in items for t in it[:2] for w in words_of(t)})
    prons = {v: {w: ph for w, (ph, _) in p.items()}
             for v, p in lexicon_pronunciations(voices, words, skip_unknown=True).items()}
    for k, items in all_items.items():
        rng = random.Random(f"speechunits-pairs-{k}:{seed}")
        jobs, meta = [], []
        for pid, (good, bad, extra) in enumerate(items):
            spk = spk_ids[pid % len(spk_ids)]
            lead = float(rng.randint(80, 200))
            order = ["a", "b"] if rng.random() < 0.5 else ["b", "a"]
            for text, correct, ab in ((good, 1, order[0]), (bad, 0, order[1])):
                name = f"{k}_{pid:05d}_{ab}"
                jobs.append(Job(name, text, spk, 1.0, lead, f"{name}.wav", f"align/{name}.json"))
                meta.append({"id": pid, "filename": name, "correct": correct, "voice": spk,
                             "text": text, **extra})
        root = out / k
        remove_stale_temporaries(root, ["."])
        results = run_jobs(root, jobs, prons, workers=workers, progress=progress, desc=k)
        bad_pairs = {m["id"] for m, j in zip(meta, jobs) if results[j.id].error}
        keep = [(m, j) for m, j in zip(meta, jobs) if m["id"] not in bad_pairs]
        _write_gold(root, k, keep)
        _write_manifest(root, k, keep, results)
        summary.pairs[k] = len(items) - len(bad_pairs)
        summary.generated += sum(r.generated for r in results.values())
        summary.failed += [f"{k}:{p}" for p in sorted(bad_pairs)]
    atomic_write_text(out / "pairs.json", json.dumps(
        {"seed": seed, "n": n, "pairs": summary.pairs, "speakers": spk_ids,
         "lexicon": {"digest": lex.digest, "file": str(lexicon) if lexicon is not None else None},
         "sample_rate": SAMPLE_RATE, "versions": tool_versions()}, indent=2) + "\n")
    return summary


def _write_gold(root: Path, kind: str, rows: list[tuple[dict, Job]]) -> None:
    cols = {"lexical": ["id", "filename", "correct", "voice", "word", "phones"],
            "syntactic": ["id", "filename", "correct", "voice", "type", "transcription"],
            "story": ["id", "filename", "correct", "voice", "type", "topic", "transcription"]}[kind]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for m, job in rows:
        row = {**m, "word": m["text"], "transcription": m["text"]}
        if kind == "lexical":  # the phones actually spoken, from the alignment
            al = Alignment.load(root / job.align)
            row["phones"] = " ".join(p.label for p in al.phones if p.label != "sil")
        w.writerow({c: row[c] for c in cols})
    atomic_write_text(root / "gold.csv", buf.getvalue())


def _write_manifest(root: Path, kind: str, rows: list[tuple[dict, Job]], results: dict) -> None:
    lines = [json.dumps({"id": job.id, "path": job.wav, "speaker": job.speaker, "text": job.text,
                         "alignment": job.align, "split": kind,
                         "num_samples": results[job.id].num_samples, "sample_rate": SAMPLE_RATE})
             for _, job in rows]
    atomic_write_text(root / "manifest.jsonl", "".join(line + "\n" for line in lines))
