"""Benchmark: training throughput (frames/s) and peak memory of each downstream probe head.

Times full training steps (forward, loss, backward, AdamW) of the probes ``speechunits benchmark``
trains, on random inputs of the real shapes (Whisper tiny.en: 3 layers of 384-dim features at
50 Hz, k = 500 units per layer), ``--runs`` blocks of ``--steps`` steps each after a warm-up,
taking turns head by head (median reported):

- ``ctc``: the sequence head (layer attention -> 2-layer BiLSTM -> CTC), 10 s utterances, batch 8,
  at the benchmark's CPU budget (dim = hidden = 128, frames stacked by 2) and at DASB-like width
  (dim = hidden = 256, no stacking);
- ``pool``: the utterance head (layer attention -> linear -> attentive statistics pooling ->
  linear), 3 s crops, batch 16, 251 classes;
- both on discrete units and on continuous features.

Peak memory is the process' maximum resident set (``ru_maxrss``) after all runs.

Run: ``python benchmarks/bench_probe.py --threads 2 [--runs 5] [--steps 5] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time

import torch

from speechunits.downstream.model import ProbeConfig, ProbeModel
from speechunits.downstream.train import probe_loss

LAYERS, K, F_DIM, RATE = 3, 500, 384, 50


def make(kind: str, input: str, dim: int, downsample: int) -> ProbeModel:
    symbols = [chr(97 + i) for i in range(28)] if kind == "sequence" else [str(i) for i in range(251)]
    cfg = ProbeConfig(task="asr" if kind == "sequence" else "sid", kind=kind, input=input, symbols=symbols,
                      codebook_sizes=[K] * LAYERS if input == "discrete" else [],
                      feature_dims=[F_DIM] * LAYERS if input == "continuous" else [],
                      dim=dim, hidden=dim, downsample=downsample)
    return ProbeModel(cfg)


def batch(kind: str, input: str, device: torch.device):
    B, seconds = (8, 10.0) if kind == "sequence" else (16, 3.0)
    T = int(seconds * RATE)
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, K, (B, T, LAYERS), generator=g) if input == "discrete"
         else torch.randn(B, T, LAYERS, F_DIM, generator=g)).to(device)
    lengths = torch.full((B,), T, device=device)
    if kind == "sequence":
        n = int(seconds * 12)  # about 12 characters a second
        targets = (torch.randint(1, 29, (B * n,), generator=g).to(device), torch.full((B,), n, device=device))
    else:
        targets = (torch.randint(0, 251, (B,), generator=g).to(device),)
    return x, lengths, targets, B * T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = {f"{name}_{input}": (kind, input, dim, ds)
             for name, kind, dim, ds in (("ctc_cpu_budget", "sequence", 128, 2), ("ctc_dasb_width", "sequence", 256, 1),
                                         ("pool", "utterance", 256, 1))
             for input in ("discrete", "continuous")}
    models, opts, data, times = {}, {}, {}, {c: [] for c in cases}
    for c, (kind, input, dim, ds) in cases.items():
        torch.manual_seed(0)
        models[c] = make(kind, input, dim, ds).to(device).train()
        opts[c] = torch.optim.AdamW(models[c].parameters(), lr=1e-3)
        data[c] = batch(kind, input, device)

    def step(c: str) -> None:
        x, lengths, targets, _ = data[c]
        loss = probe_loss(models[c], x, lengths, targets)
        opts[c].zero_grad()
        loss.backward()
        opts[c].step()

    for c in cases:  # warm-up
        step(c)
    for _ in range(args.runs):
        for c in cases:  # take turns, so background load spreads over every head alike
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(c)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[c].append((time.perf_counter() - t0) / args.steps)
    out = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
           "device": str(device), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "heads": {}}
    for c in cases:
        med = statistics.median(times[c])
        out["heads"][c] = {"step_s": round(med, 4), "frames_per_s": round(data[c][3] / med),
                           "params": sum(p.numel() for p in models[c].parameters())}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
