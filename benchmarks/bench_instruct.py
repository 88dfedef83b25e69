"""Benchmark: instruction-tuning throughput and peak memory of the discrete and continuous speech
inputs (``speechunits lm instruct``), and the speech front-end's cost counted apart from the LLM's.

LLM part: full training steps (forward, answer loss, backward, AdamW) of SmolLM2-135M + LoRA r64 on
batches of ``--batch`` examples of ``--seconds`` of speech each, built exactly as training builds
them (``InstructLM.encode``/``batch``): a 10-token prompt, the speech, a 5-token answer. The
discrete input has ``--bpe-rate`` BPE tokens a second (8.7/s measured on the keyword corpus with
Whisper layer 3, k = 2000, BPE 6000), the continuous one 50 Hz features of 384 dims stacked by 2
(25 positions a second). Each input runs in its own child process (so ``ru_maxrss`` is its own peak),
``--runs`` blocks of ``--steps`` steps after one warm-up step; the median step time is reported.

Front-end part (with ``--tokenizer``): per second of speech, the encoder pass to the tokenizer's
layer (both inputs need it) and the k-means assignment + de-dup + BPE (the discrete input only),
on ``--seconds`` of generated voiced audio.

Run: ``python benchmarks/bench_instruct.py --threads 2 [--tokenizer DIR] [--runs 5] [--steps 3]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FakeItem:
    """What ``InstructLM.encode`` reads from an example (random speech of the real shapes)."""

    prompt: str
    answer: str
    frames: int
    seed: int

    def units(self) -> np.ndarray:
        return np.random.default_rng(self.seed).integers(0, 2000, self.frames)

    def features(self) -> np.ndarray:
        return np.random.default_rng(self.seed).standard_normal((self.frames, 384)).astype(np.float32)


def _llm_child(kind: str, args: dict, q) -> None:
    from speechunits.downstream.instruct.model import InstructLM
    from speechunits.tokens.bpe import UnitBPE

    torch.set_num_threads(args["threads"])
    frames = int(args["seconds"] * 50)
    bpe = None
    if kind == "discrete":
        # a BPE whose tokens span 50 / bpe_rate frames' worth of de-duplicated units on average
        rng = np.random.default_rng(0)
        seqs = [rng.integers(0, 2000, 400) for _ in range(50)]
        bpe = UnitBPE.train(seqs, vocab_size=6000, k=2000)
    model = InstructLM.create("smollm2", kind, feat_dim=384, bpe=bpe, lora_r=64, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    items = [FakeItem("Which word is spoken?", "seven", frames, i) for i in range(args["batch"])]
    encs = [model.encode(it) for it in items]
    if kind == "discrete":  # the measured BPE rate, not this random BPE's
        n = max(1, int(round(args["bpe_rate"] * args["seconds"])))
        for e in encs:
            e.speech = e.speech[:n] if len(e.speech) >= n else np.resize(e.speech, n)
    positions = sum(model.positions(e) for e in encs)

    def step():
        nll, k = model.answer_nll(encs)
        (nll / k).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    step()  # warm-up
    times = []
    for _ in range(args["runs"]):
        t = time.perf_counter()
        for _ in range(args["steps"]):
            step()
        times.append((time.perf_counter() - t) / args["steps"])
    med = statistics.median(times)
    q.put({"input": kind, "positions_per_step": positions, "step_s": med, "positions_per_s": positions / med,
           "speech_seconds_per_s": args["batch"] * args["seconds"] / med,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def front_end(tokenizer_dir: str, seconds: float, runs: int, threads: int) -> dict:
    from speechunits.tokenizer import Tokenizer
    from speechunits.tokens.bpe import UnitBPE

    torch.set_num_threads(threads)
    tok = Tokenizer.from_pretrained(tokenizer_dir)
    layers = list(tok.layers)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    feats = tok.encoder.encode([wave], layers)[0]
    units = tok.quantizer.assign(feats, input_layers=layers).cpu().numpy().reshape(len(feats), -1)[:, 0]
    bpe = UnitBPE.train([units], vocab_size=int(tok.vocab_sizes[0]) + 200, k=int(tok.vocab_sizes[0]))
    enc, quant = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        feats = tok.encoder.encode([wave], layers)[0]
        t1 = time.perf_counter()
        units = tok.quantizer.assign(feats, input_layers=layers).cpu().numpy().reshape(len(feats), -1)[:, 0]
        bpe.encode(units)
        quant.append(time.perf_counter() - t1)
        enc.append(t1 - t0)
    return {"encoder_rtf": statistics.median(enc) / seconds, "kmeans_dedup_bpe_rtf": statistics.median(quant) / seconds,
            "layers": layers, "audio_seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.0, help="speech per example (default 1 s, the keyword corpus)")
    ap.add_argument("--bpe-rate", type=float, default=8.7, help="discrete BPE tokens per second of speech")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tokenizer", default=None, help="also time the front-end of this tokenizer")
    args = ap.parse_args()
    cfg = {k: getattr(args, k) for k in ("threads", "batch", "seconds", "bpe_rate", "runs", "steps")}
    ctx = mp.get_context("spawn")
    rows = []
    for kind in ("discrete", "continuous"):
        q = ctx.Queue()
        p = ctx.Process(target=_llm_child, args=(kind, cfg, q))
        p.start()
        rows.append(q.get())
        p.join()
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, **cfg, "llm": rows}
    d, c = rows
    out["continuous_over_discrete_step_time"] = c["step_s"] / d["step_s"]
    if args.tokenizer:
        out["front_end"] = front_end(args.tokenizer, 10.0, args.runs, args.threads)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
