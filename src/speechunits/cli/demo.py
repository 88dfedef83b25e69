"""``speechunits demo``: the main job with the bundled default tokenizer, end to end, in minutes.

Synthesizes the aligned corpus (or reuses it), tokenizes its test split (speakers never seen in
training) and the LibriSpeech files of ../shared/data when present with the bundled default
tokenizer (or ``--tokenizer``), writes the evaluation report of the test split and of the
held-out real speech (LibriSpeech ``test-other``, and ``librivox-aligned`` for PNMI on real
speech, when present) to ``OUT/eval/`` (metrics.json, report.md, report.html), and prints the
report's headline numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from speechunits.cli._common import add_tokenizer, open_tokenizer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="tokenize a synthetic corpus (and LibriSpeech) with the default tokenizer; "
                                    "write and summarise its evaluation report")
    p.add_argument("--out", default="out/demo", help="working folder (default out/demo)")
    add_tokenizer(p)
    p.add_argument("--minutes", type=float, default=10.0, help="synthetic corpus size (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--librispeech", default=None,
                   help="a LibriSpeech folder to tokenize too (default: ../shared/data/librispeech-mini if present); "
                        "'none' for none")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=run)


def _shared(name: str) -> Path | None:
    """``../shared/data/<name>`` beside the checkout (or the working directory), if it exists."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data" / name
        if cand.is_dir():
            return cand
    cand = Path.cwd().parent / "shared" / "data" / name
    return cand if cand.is_dir() else None


def run(args: argparse.Namespace) -> int:
    import torch

    from speechunits.batch import tokenize_corpus
    from speechunits.data.corpus import synthesize_corpus
    from speechunits.data.manifest import read_manifest
    from speechunits.evaluation import EvalConfig, evaluate_and_report
    from speechunits.tokens import UnitsFileError, read_jsonl

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    corpus = out / "corpus"
    summary = synthesize_corpus(corpus, minutes=args.minutes, seed=args.seed, progress=True)
    print(summary.format())
    tok = open_tokenizer(args)
    enc = tok.config()["encoder"]
    print(f"tokenizer: {args.tokenizer} ({enc.get('type')} encoder {enc.get('name')}, k = {tok.vocab_sizes[0]})")
    sets = {"synthetic test speakers": read_manifest(corpus / "test.jsonl")}
    libri = None if args.librispeech == "none" else Path(args.librispeech) if args.librispeech else _shared("librispeech-mini")
    if libri is not None and libri.is_dir():
        sets["LibriSpeech (" + libri.name + ")"] = read_manifest(libri)
    results = {}
    for name, utts in sets.items():
        path = out / ("units-" + name.split()[0].lower() + ".jsonl")
        try:
            report = tokenize_corpus(tok, utts, path, dedup=True)
        except UnitsFileError as e:  # an earlier demo with another corpus or tokenizer: start it over
            print(f"starting {path.name} over: {e}")
            report = tokenize_corpus(tok, utts, path, dedup=True, resume=False)
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
    print(json.dumps({"tokenizer": str(args.tokenizer), "k": tok.vocab_sizes[0], "tokenized": results}, indent=2))

    # The report: the synthetic test split, and the real speech no default was trained on.
    data = [str(corpus / "test.jsonl")]
    if libri is not None and (libri / "test-other").is_dir():
        data.append(str(libri / "test-other"))
    librivox = _shared("librivox-aligned")
    if libri is not None and args.librispeech is None and librivox is not None:
        data.append(str(librivox))
    metrics = evaluate_and_report(tok, data, out / "eval", EvalConfig(seed=args.seed, progress=False),
                                  name=Path(str(args.tokenizer)).name, tokenizer_path=str(args.tokenizer))
    print("headline numbers (full report: " + str(out / "eval" / "report.md") + "):")
    print(_headline(metrics))
    failed = sum(r["failed"] for r in results.values())
    return 1 if failed else 0  # like tokenize: some inputs could not be tokenized


HEADLINE = (("PNMI", "pnmi", 3), ("ABX within %", "abx_within_units_pct", 1), ("utilization", "utilization", 3),
            ("bit/s", "entropy_bitrate", 0), ("mean UED", "ued_mean", 3), ("RTF", "rtf", 4))


def _headline(metrics: dict) -> str:
    """One line per dataset of the report's summary (a dash where a metric was skipped)."""
    lines = []
    for row in metrics["summary"]:
        cells = []
        for label, key, digits in HEADLINE:
            v = row.get(key)
            cells.append(f"{label} {v:.{digits}f}" if isinstance(v, (int, float)) else f"{label} -")
        lines.append(f"  {row['dataset']}: " + ", ".join(cells))
    return "\n".join(lines)
