"""Benchmark: real-time factor of the synthetic corpus generator (espeak-ng + MBROLA).

Each run synthesizes a fresh corpus of ``--minutes`` into an empty temporary folder with
``synthesize_corpus`` (the same path as ``speechunits corpus synth``), so the time includes
everything a user waits for: tool checks, the lexicon pronunciations (one espeak-ng call per
voice), planning, synthesis over the process pool, word alignment and writing wavs, alignments
and manifests. The real-time factor is audio seconds / wall seconds (higher is faster); the
median over ``--runs`` runs is reported, with the spread. Also times the pair sets.

Run: ``python benchmarks/bench_corpus.py [--minutes 10] [--runs 3] [--workers 2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from speechunits.data.corpus import synthesize_corpus, synthesize_pairs
from speechunits.data.corpus.tools import tool_versions


def _corpus_run(minutes: float, seed: int, workers: int | None) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as d:
        t0 = time.perf_counter()
        s = synthesize_corpus(Path(d), minutes=minutes, seed=seed, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    return s.seconds, wall, s.utterances


def _pairs_run(n: int, seed: int, workers: int | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench_pairs_") as d:
        t0 = time.perf_counter()
        s = synthesize_pairs(Path(d), kind="all", n=n, seed=seed, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    return wall, sum(s.pairs.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="audio per run (default 10)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--pairs", type=int, default=200, help="pairs per kind for the pair timing (0: skip)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    rtfs, walls = [], []
    for r in range(args.runs):
        audio, wall, n = _corpus_run(args.minutes, seed=r, workers=args.workers)
        rtfs.append(audio / wall)
        walls.append(wall)
        print(f"run {r}: {n} utterances, {audio / 60:.2f} min of audio in {wall:.2f} s "
              f"-> {audio / wall:.0f}x real time")
    result = {
        "benchmark": "corpus_synth", "minutes": args.minutes, "runs": args.runs,
        "workers": args.workers or len(os.sched_getaffinity(0)),
        "rtf_median_x": round(statistics.median(rtfs), 1), "rtf_min_x": round(min(rtfs), 1),
        "rtf_max_x": round(max(rtfs), 1), "wall_median_s": round(statistics.median(walls), 2),
        "cpu": platform.processor() or platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2),
        **tool_versions(),
    }
    if args.pairs:
        wall, n = _pairs_run(args.pairs, seed=0, workers=args.workers)
        result.update(pairs=n, pairs_wall_s=round(wall, 2), pairs_per_s=round(n / wall, 1))
        print(f"pairs: {n} pairs (lexical + syntactic + story, 2 files each) in {wall:.2f} s")
    print(f"corpus real-time factor: median {result['rtf_median_x']}x "
          f"(min {result['rtf_min_x']}x, max {result['rtf_max_x']}x) over {args.runs} runs of "
          f"{args.minutes} min with {result['workers']} workers; load average {result['load_avg_1m']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
