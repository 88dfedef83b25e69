"""Benchmark: unit-LM ASR decoding speed, per decoder, on a fine-tuned model (seconds per utterance
and real-time factor), and the joint CTC/attention search with its shared-prompt key/value cache
against transformers' stock cache (same transcripts, checked).

Run: ``python benchmarks/bench_asr_decode.py --model ASR_MODEL --units dev.jsonl [--n 8] [--repeats 3]
[--beams 5] [--json out.json]`` (a model from ``lm asr-train --ctc-weight``; one thread by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from speechunits.lm import SpeechLM, read_units, transcribe
from speechunits.lm import ctc_decode
from speechunits.lm.ctc import ctc_transcribe


def timed(fn, repeats: int) -> tuple[float, list[str]]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--units", required=True)
    ap.add_argument("--n", type=int, default=8, help="utterances (the first N)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--ctc-weight", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lm = SpeechLM.load(a.model)
    units = read_units(a.units)[: a.n]
    seconds = sum(u.duration_s for u in units)  # of speech (de-duplicated units keep their run lengths)

    def joint(share: bool):
        ctc_decode.SHARE_PROMPT = share
        try:
            return ctc_decode.joint_transcribe(lm, units, a.ctc_weight, a.beams)
        finally:
            ctc_decode.SHARE_PROMPT = True

    rows = {}
    for name, fn in (("greedy CTC", lambda: ctc_transcribe(lm, units)),
                     ("greedy attention (generate)", lambda: transcribe(lm, units, num_beams=1)),
                     (f"joint, beam {a.beams}, shared-prompt cache", lambda: joint(True)),
                     (f"joint, beam {a.beams}, stock cache", lambda: joint(False))):
        t, hyps = timed(fn, a.repeats)
        rows[name] = {"seconds_per_utterance": t / len(units), "real_time_factor": t / seconds, "hyps": hyps}
        print(f"{name:45s} {t / len(units):7.3f} s/utt  RTF {t / seconds:.3f}", flush=True)
    shared, stock = (rows[k] for k in rows if k.startswith("joint"))
    same = shared["hyps"] == stock["hyps"]
    ratio = stock["seconds_per_utterance"] / shared["seconds_per_utterance"]
    print(f"shared-prompt cache: {ratio:.2f}x the stock cache's speed; same transcripts: {same}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": {k: {m: v[m] for m in ("seconds_per_utterance", "real_time_factor")} for k, v in rows.items()},
                       "speedup_shared_prompt": ratio, "same_transcripts": same, "n": len(units),
                       "threads": a.threads, "cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count()}, f, indent=2)


if __name__ == "__main__":
    main()
