"""Benchmark: ``tokenize --engine ray`` with 1 and 2 local workers against the single-process job.

The same files (``--minutes`` of ``../shared/data/librispeech-mini``, else generated tones) are
tokenized ``--runs`` times each way, in turns, into fresh outputs: ``single`` is
``speechunits.batch.tokenize_corpus`` with one torch thread; ``ray-N`` is
``speechunits.distributed.ray_tokenize.tokenize_ray`` with N actors of one CPU (one torch thread)
each, on a local Ray started once with ``--ray-cpus`` logical CPUs (decode tasks need one beside
the actors). Reported: audio seconds per wall second (median), the ratio to ``single``, Ray's
start-up (``ray.init``) and, per run, the time to the first finished shard (actor start + model
load + first block: the per-job overhead). Every Ray output is checked equal to the single-process one.

Run: ``python benchmarks/bench_ray_tokenize.py [--tokenizer default] [--minutes 10] [--runs 3] [--json out.json]``
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

import torch

REPO = Path(__file__).resolve().parents[1]


def pick_files(data: Path, minutes: float, tmp: Path) -> tuple[list, float, str]:
    """``minutes`` of ``data`` (as bench_whisper picks them), else generated speech-like tones."""
    import sys

    import soundfile as sf

    sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]
    if data.exists():
        from bench_whisper import pick_files as pick

        utts = pick(data, minutes)
        return utts, sum(sf.info(str(u.path)).duration for u in utts), str(data)
    from test_tokenizer import speechlike

    from speechunits.data.manifest import read_manifest

    (tmp / "gen").mkdir()
    total, i = 0.0, 0
    while total < minutes * 60:
        n = int(16000 * (4 + (i % 9)))
        sf.write(tmp / "gen" / f"g{i:04d}.flac", speechlike(n, i), 16000)
        total, i = total + n / 16000, i + 1
    return read_manifest(tmp / "gen"), total, "generated speech-like tones"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "librispeech-mini" / "train-clean-100"))
    ap.add_argument("--tokenizer", default="default")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ray-cpus", type=int, default=3, help="logical CPUs of the local Ray (default 3)")
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import ray

    from speechunits.batch import tokenize_corpus
    from speechunits.distributed.ray_tokenize import tokenize_ray
    from speechunits.tokenizer import Tokenizer
    from speechunits.tokens import read_jsonl

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="su-bench-ray-"))
    utts, seconds, source = pick_files(Path(args.data), args.minutes, tmp)
    tok = Tokenizer.from_pretrained(args.tokenizer)
    print(f"{len(utts)} files, {seconds:.1f} s of audio from {source}; tokenizer {args.tokenizer} "
          f"({tok.config()['encoder'].get('name')}, k {tok.config()['k']}); {os.cpu_count()} cores")
    t = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=str(tmp / "ray"))
    init_s = time.perf_counter() - t
    print(f"ray.init (a local cluster, {args.ray_cpus} logical CPUs): {init_s:.2f} s")

    ways = ["single", "ray-1", "ray-2"]
    walls: dict[str, list[float]] = {w: [] for w in ways}
    first: dict[str, list[float]] = {w: [] for w in ways if w != "single"}
    ref = None
    for run in range(args.runs):
        for way in ways:
            out = tmp / f"{way}-{run}.jsonl"
            t = time.perf_counter()
            if way == "single":
                tokenize_corpus(tok, utts, out, progress=False)
            else:
                seen: list[float] = []
                tokenize_ray(args.tokenizer, utts, out, workers=int(way[-1]), shard_size=args.shard_size,
                             progress=False, on_shard=lambda e: seen or seen.append(time.perf_counter() - t))
                first[way].append(seen[0])
            walls[way].append(time.perf_counter() - t)
            units = read_jsonl(out)
            ref = ref or units
            assert units == ref, f"{way} run {run}: units differ from the single-process output"
            print(f"run {run} {way}: {walls[way][-1]:.2f} s")
    ray.shutdown()

    rows = {}
    base = statistics.median(walls["single"])
    for way in ways:
        med = statistics.median(walls[way])
        rows[way] = {"median_s": round(med, 2), "audio_s_per_s": round(seconds / med, 1),
                     "vs_single": round(base / med, 2), "runs": [round(x, 2) for x in walls[way]]}
        if way in first:
            rows[way]["first_shard_s"] = [round(x, 2) for x in first[way]]
    print("\n| way | median s | audio s / wall s | vs single | first shard s | runs |\n|---|---|---|---|---|---|")
    for way, r in rows.items():
        print(f"| {way} | {r['median_s']} | {r['audio_s_per_s']} | {r['vs_single']} | "
              f"{', '.join(map(str, r.get('first_shard_s', []))) or '-'} | {', '.join(map(str, r['runs']))} |")
    result = {"files": len(utts), "audio_s": round(seconds, 1), "source": source, "tokenizer": args.tokenizer,
              "ray_init_s": round(init_s, 2), "cores": os.cpu_count(), "machine": platform.platform(),
              "torch_threads_per_worker": 1, "ways": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
