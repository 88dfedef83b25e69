"""``speechunits demo``: the main job on the built-in default, end to end, in a few minutes.

Synthesizes the aligned corpus (or reuses it), fits the default tokenizer (k-means on MFCC,
until the bundled SSL tokenizer exists) on its train split, tokenizes the test split (test
speakers never seen in training) and the LibriSpeech files of ../shared/data when present,
and prints a short summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthesize a corpus, fit the default tokenizer, tokenize the test split")
    p.add_argument("--out", default="out/demo", help="working folder (default out/demo)")
    p.add_argument("--minutes", type=float, default=10.0, help="corpus size (default 10)")
    p.add_argument("--k", type=int, default=100, help="codebook size (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--librispeech", default=None, help="a LibriSpeech folder to tokenize too (default: ../shared/data/librispeech-mini if present)")
    p.set_defaults(func=run)


def _default_librispeech() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data" / "librispeech-mini"
        if cand.is_dir():
            return cand
    cand = Path.cwd().parent / "shared" / "data" / "librispeech-mini"
    return cand if cand.is_dir() else None


def run(args: argparse.Namespace) -> int:
    from speechunits.batch import tokenize_corpus
    from speechunits.data.corpus import synthesize_corpus
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizers
    from speechunits.tokenizer import Tokenizer
    from speechunits.tokens import read_jsonl

    out = Path(args.out)
    corpus = out / "corpus"
    summary = synthesize_corpus(corpus, minutes=args.minutes, seed=args.seed, progress=True)
    print(summary.format())
    tok_dir = out / f"tokenizer-mfcc-k{args.k}"
    if (tok_dir / "config.json").is_file():
        tok = Tokenizer.from_pretrained(tok_dir)
        print(f"reusing tokenizer {tok_dir}")
    else:
        tok = fit_tokenizers(load_encoder("mfcc"), read_manifest(corpus / "train.jsonl"), layers=[0], ks=[args.k],
                             seed=args.seed, n_init=3, progress=True, data_name=str(corpus / "train.jsonl"))[0]
        tok.save_pretrained(tok_dir)
        print(f"fitted tokenizer {tok_dir}")
    sets = {"synthetic test speakers": read_manifest(corpus / "test.jsonl")}
    libri = Path(args.librispeech) if args.librispeech else _default_librispeech()
    if libri is not None and libri.is_dir():
        sets["LibriSpeech (" + libri.name + ")"] = read_manifest(libri)
    results = {}
    for name, utts in sets.items():
        path = out / ("units-" + name.split()[0].lower() + ".jsonl")
        report = tokenize_corpus(tok, utts, path, dedup=True)
        units = read_jsonl(path)
        frames = sum(u.num_frames for u in units)
        ids = np.concatenate([u.ids for u in units]) if units else np.zeros(0, np.int64)
        used = len(np.unique(ids)) / tok.vocab_sizes[0]
        results[name] = {
            "units_file": str(path),
            "utterances": report.written + report.done_before,
            "failed": len(report.failed),
            "audio_s": round(frames / tok.frame_rate, 1),
            "frames": frames,
            "units_after_dedup": int(len(ids)),
            "dedup_ratio": round(frames / max(1, len(ids)), 3),
            "codebook_utilization": round(used, 3),
            "real_time_factor": round(report.real_time_factor, 4) if report.written else None,
        }
    print(json.dumps({"tokenizer": str(tok_dir), "k": tok.vocab_sizes[0], "results": results}, indent=2))
    return 0
