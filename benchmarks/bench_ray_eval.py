"""Benchmark: ``eval``'s robustness section in this process against ``--engine ray`` (2 local workers).

``--utterances`` of ``../shared/data/librispeech-mini`` (a seeded subset, loaded as ``eval`` loads
it; else generated speech-like tones) are distorted under the default distortions and tokenized,
``--runs`` times each way, in turns: ``local`` is
``speechunits.evaluation.robustness.robustness`` with one torch thread (what ``eval`` runs);
``ray-N`` is the same call with ``run_items=RayRobustness(tokenizer, workers=N)``: N actors of one
CPU (one torch thread) each, on a local Ray started once with ``--ray-cpus`` logical CPUs. The
clean units are computed once beforehand, as ``eval`` does. Each Ray job starts its own actor
pool (each actor loads the tokenizer), which is counted. Every Ray result is checked == the local one.

Run: ``python benchmarks/bench_ray_eval.py [--tokenizer default] [--utterances 20] [--runs 3] [--json out.json]``
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


def load_waves(data: Path, n: int, tmp: Path) -> tuple[list, list, str]:
    """``n`` utterances of ``data`` (eval's seeded subset), else ``n`` generated speech-like tones."""
    from speechunits.evaluation.dataset import load_dataset

    if not data.exists():
        import sys

        import soundfile as sf

        sys.path.insert(0, str(REPO / "tests"))
        from test_tokenizer import speechlike

        data = tmp / "gen"
        data.mkdir()
        for i in range(n):
            sf.write(data / f"g{i:04d}.flac", speechlike(int(16000 * (4 + (i % 9))), i), 16000)
    ds = load_dataset(data, max_utterances=n, seed=0, alignments="none")
    return ds.waves, [u.id for u in ds.utts], str(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "librispeech-mini" / "train-clean-100"))
    ap.add_argument("--tokenizer", default="default")
    ap.add_argument("--utterances", type=int, default=20)
    ap.add_argument("--distortions", nargs="*", default=None, help="default: eval's default set")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ray-cpus", type=int, default=2, help="logical CPUs of the local Ray (default 2)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import ray

    from speechunits.distributed.ray_eval import RayRobustness
    from speechunits.evaluation.defaults import DEFAULT_DISTORTIONS
    from speechunits.evaluation.robustness import parse_distortion, robustness
    from speechunits.tokenizer import Tokenizer

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="su-bench-ray-eval-"))
    waves, ids, source = load_waves(Path(args.data), args.utterances, tmp)
    seconds = sum(len(w) for w in waves) / 16000
    names = args.distortions or list(DEFAULT_DISTORTIONS)
    dists = [parse_distortion(d) for d in names]
    tok = Tokenizer.from_pretrained(args.tokenizer)
    fu = lambda w: tok.frame_units([w])[0]  # noqa: E731  (as evaluation.run)
    clean = [fu(w) for w in waves]
    print(f"{len(waves)} utterances, {seconds:.1f} s of audio from {source}; {len(dists)} distortions; tokenizer "
          f"{args.tokenizer} ({tok.config()['encoder'].get('name')}, k {tok.config()['k']}); {os.cpu_count()} cores")
    t = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=str(tmp / "ray"))
    init_s = time.perf_counter() - t
    print(f"ray.init (a local cluster, {args.ray_cpus} logical CPUs): {init_s:.2f} s")

    way_ray = f"ray-{args.workers}"
    ways = ["local", way_ray]
    walls: dict[str, list[float]] = {w: [] for w in ways}
    ref = None
    for run in range(args.runs):
        for way in ways:
            engine = None if way == "local" else RayRobustness(args.tokenizer, workers=args.workers)
            t = time.perf_counter()
            res = robustness(fu, waves, ids, dists, seed=0, clean=clean, progress=False, run_items=engine)
            walls[way].append(time.perf_counter() - t)
            ref = ref or res
            assert res == ref, f"{way} run {run}: the section differs from the local one"
            print(f"run {run} {way}: {walls[way][-1]:.2f} s")
    ray.shutdown()

    base = statistics.median(walls["local"])
    rows = {way: {"median_s": round(statistics.median(walls[way]), 2),
                  "vs_local": round(base / statistics.median(walls[way]), 2),
                  "runs": [round(x, 2) for x in walls[way]]} for way in ways}
    print("\n| way | median s | vs local | runs s |\n|---|---|---|---|")
    for way, r in rows.items():
        print(f"| {way} | {r['median_s']} | {r['vs_local']} | {', '.join(map(str, r['runs']))} |")
    result = {"utterances": len(waves), "audio_s": round(seconds, 1), "source": source, "distortions": names,
              "tokenizer": args.tokenizer, "ray_init_s": round(init_s, 2), "cores": os.cpu_count(),
              "machine": platform.platform(), "torch_threads_per_worker": 1, "ways": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
