"""Benchmark: the whole evaluation report for about one hour of audio and one tokenizer.

Synthesizes the aligned corpus (``--minutes``, default 60; resumable, so a rerun reuses it), fits
an MFCC k-means tokenizer (``--k``, default 500) on its train split, then runs
``speechunits.evaluation.evaluate_and_report`` on the whole corpus with the defaults of
``speechunits eval`` (10 distortions on a 600 s subset, offline speed on 300 s, streaming on 60 s,
ABX with at most 50 cells per phone pair) and prints the time of each section.

Run: ``python benchmarks/bench_eval.py [--minutes 60] [--k 500] [--threads 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--workdir", default="/tmp/speechunits-bench-eval")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from speechunits.data.corpus import synthesize_corpus
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.evaluation import EvalConfig, evaluate_and_report
    from speechunits.fit import fit_tokenizer
    from speechunits.tokenizer import Tokenizer

    work = Path(args.workdir)
    res: dict = {"args": vars(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                 "torch": torch.__version__, "threads": torch.get_num_threads()}}
    t = time.perf_counter()
    corpus = work / f"corpus-{args.minutes:g}min"
    summary = synthesize_corpus(corpus, minutes=args.minutes, seed=args.seed, progress=False)
    res["corpus_s"] = time.perf_counter() - t
    print(f"corpus: {summary.utterances} utterances, {summary.seconds / 60:.1f} min ({res['corpus_s']:.1f} s)")

    t = time.perf_counter()
    tok_dir = work / f"tok-mfcc-k{args.k}"
    if not (tok_dir / "config.json").is_file():
        train = [str(u.path) for u in read_manifest(corpus / "train.jsonl")]
        tok = fit_tokenizer(load_encoder("mfcc"), train, layers=[0], k=args.k, seed=args.seed, n_init=1)
        tok.save_pretrained(tok_dir)
    tok = Tokenizer.from_pretrained(tok_dir)
    res["fit_s"] = time.perf_counter() - t
    print(f"tokenizer: {tok_dir} ({res['fit_s']:.1f} s, cached after the first run)")

    out = work / "eval"
    t = time.perf_counter()
    m = evaluate_and_report(tok, [corpus / "manifest.jsonl"], out, EvalConfig(seed=args.seed),
                            tokenizer_path=str(tok_dir))
    res["eval_s"] = time.perf_counter() - t
    ds = m["datasets"][0]
    res["timings_s"] = ds["timings_s"]
    res["report_s"] = res["eval_s"] - ds["timings_s"]["total"]
    res["data"] = {k: ds["data"][k] for k in ("utterances", "seconds", "speakers", "aligned_utterances")}
    res["summary"] = m["summary"][0]
    abx = ds["layers"]["0"]["abx"]
    res["abx"] = {"items": abx["num_items"], **{f"{kind} {mode}": {k: abx[kind][mode][k] for k in (
        "error", "num_cells", "num_dtw")} for kind in ("units", "features") for mode in ("within", "across")}}
    print(f"\nevaluation of {ds['data']['seconds'] / 3600:.2f} h, {ds['data']['utterances']} utterances: "
          f"{res['eval_s']:.1f} s ({res['eval_s'] / 60:.2f} min)")
    for k, v in ds["timings_s"].items():
        print(f"  {k:<12} {v:8.2f} s")
    print(f"  {'write report':<12} {res['report_s']:8.2f} s")
    print(f"ABX: {res['abx']}")
    print("summary:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res["summary"].items()})
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"peak RSS {res['peak_rss_mib']} MiB; report in {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
