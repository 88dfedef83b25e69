"""The downstream-probe results of docs/results.md ("Downstream probes"): `speechunits benchmark`
with a budget per task (the CLI gives every task one budget), one thread.

    python scripts/downstream_results.py OUT NAME=TOKENIZER[:VOCODER] ... [--tasks kws,sid,se,asr,pr]
        [--probes all,single,continuous] [--content-tokenizer NAME[,NAME]]

Every tokenizer runs kws, sid and se; asr and pr run for the ``--content-tokenizer`` list only (the
first by default: they cost 10 minutes a probe). A vocoder speaks the enhancement task's units. Finished
probes are kept (rerun to resume); the table is written to OUT/benchmark.{json,md,html}.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.downstream.benchmark import builtin_tasks, html_page, markdown, run_benchmark
from speechunits.downstream.train import ProbeSettings
from speechunits.tokenizer import Tokenizer
from speechunits.vocoder.vocoder import UnitVocoder

# The budgets of the recorded run: utterance tasks are cheap, the BiLSTM-CTC tasks are not.
BUDGETS = {
    "kws": ProbeSettings(steps=800, batch=16, eval_every=50, patience=6),
    "sid": ProbeSettings(steps=800, batch=16, eval_every=50, patience=6),
    "asr": ProbeSettings(steps=600, batch=8, dim=128, hidden=128, downsample=2, eval_every=50, patience=4),
    "pr": ProbeSettings(steps=600, batch=8, dim=128, hidden=128, downsample=2, eval_every=50, patience=4),
    "se": ProbeSettings(steps=1000, batch=8, dim=128, hidden=128, eval_every=100, patience=4, crop_seconds=3.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("tokenizers", nargs="+", metavar="NAME=TOKENIZER[:VOCODER]")
    ap.add_argument("--tasks", default="kws,sid,se,asr,pr")
    ap.add_argument("--probes", default="all,single,continuous")
    ap.add_argument("--content-tokenizer", default=None,
                    help="the tokenizer(s) asr and pr run for, comma-separated (default: the first)")
    ap.add_argument("--shared-data", default=os.environ.get("SPEECHUNITS_SHARED_DATA",
                                                           str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    toks, vocs = {}, {}
    for spec in args.tokenizers:
        name, _, rest = spec.partition("=")
        tok_dir, _, voc_dir = rest.partition(":")
        toks[name] = (Tokenizer.from_pretrained(tok_dir), tok_dir)
        if voc_dir:
            vocs[name] = UnitVocoder.from_pretrained(voc_dir, tokenizer=toks[name][0])
    names = [t for t in args.tasks.split(",") if t]
    which = tuple(p for p in args.probes.split(",") if p)
    tasks, notes = builtin_tasks(names, Path(args.out) / "data", args.shared_data, synth_minutes=30, progress=False)
    for n in notes:
        print(n)
    content = (args.content_tokenizer or next(iter(toks))).split(",")
    unknown = [c for c in content if c not in toks]
    if unknown:
        ap.error(f"--content-tokenizer names no tokenizer given: {', '.join(unknown)}")
    table = {"rows": [], "failures": [], "settings": {}, "tokenizers": {}}
    for td in tasks:
        chosen = {c: toks[c] for c in content} if td.task in ("asr", "pr") else toks
        t = run_benchmark(chosen, [td], args.out, BUDGETS, which=which, vocoders=vocs, progress=False)
        for key in ("rows", "failures"):
            table[key] += t[key]
        for key in ("settings", "tokenizers"):
            table[key].update(t[key])
    out = Path(args.out)
    atomic_write_text(out / "benchmark.json", json.dumps(table, indent=2) + "\n")
    atomic_write_text(out / "benchmark.md", markdown(table))
    atomic_write_text(out / "benchmark.html", html_page(table))
    print(f"{len(table['rows'])} rows, {len(table['failures'])} failures -> {out / 'benchmark.md'}")


if __name__ == "__main__":
    main()
