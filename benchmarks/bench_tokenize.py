"""Benchmark: end-to-end tokenization throughput vs the encoder's forward pass and a naive loop.

Three ways over the same files, each timed ``--runs`` times (median reported):

- ``forward``: the encoder's forward pass alone (speechunits' HFEncoder at ``--layer``) on audio
  already decoded into memory: the bound a tokenizer cannot beat on a CPU.
- ``tokenize``: ``speechunits.batch.tokenize_corpus``: decode, resample, encode, quantize,
  de-duplicate and write JSONL, as ``speechunits tokenize`` runs.
- ``naive``: the usual script: per file soundfile.read + soxr resample, the HF model's full
  forward with ``output_hidden_states=True``, sklearn ``MiniBatchKMeans.predict`` on numpy
  features, de-duplicate, write a JSON line.

The encoder is a HuBERT-Base-shaped model (transformers' default ``HubertConfig``: 12 layers,
768 dims, the 512-channel CNN) with random weights: no pretrained SSL checkpoint can be had
offline, and the arithmetic is that of the real model. Both quantizers hold the same k-means
centroids (fitted once on a sample of the features).

Run: ``python benchmarks/bench_tokenize.py [--data DIR] [--minutes 5] [--layer 6] [--k 500] [--runs 3]``
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

import numpy as np
import soundfile as sf
import soxr
import torch

from speechunits.audio import load
from speechunits.batch import tokenize_corpus
from speechunits.data.manifest import read_manifest
from speechunits.encoders import HFEncoder
from speechunits.quantizers import KMeans, MultiLayerKMeans
from speechunits.tokenizer import Tokenizer
from speechunits.tokens import dedup_ids

REPO = Path(__file__).resolve().parents[1]


def pick_files(data: Path, minutes: float) -> list:
    utts = read_manifest(data)
    out, total = [], 0.0
    for u in utts:
        out.append(u)
        total += sf.info(str(u.path)).duration
        if total >= minutes * 60:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "librispeech-mini" / "train-clean-100"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from sklearn.cluster import MiniBatchKMeans
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    model = HubertModel(HubertConfig()).eval()
    enc = HFEncoder(model, name="hubert-base-random", normalize=False)
    utts = pick_files(Path(args.data), args.minutes)
    waves = [load(u.path) for u in utts]
    seconds = sum(len(w) for w in waves) / 16000
    print(f"{len(utts)} files, {seconds:.1f} s of audio, HuBERT-Base shape, layer {args.layer}, k {args.k}, "
          f"torch threads {torch.get_num_threads()}")

    feats = np.concatenate([enc.encode([w], [args.layer])[0][:, 0].numpy() for w in waves[:10]])
    km = KMeans(args.k, seed=0, n_init=1, max_iter=10).fit(feats)
    sk = MiniBatchKMeans(n_clusters=args.k, n_init=1, max_iter=1, batch_size=10000, random_state=0).fit(feats[: args.k * 2])
    sk.cluster_centers_ = km.centroids.numpy().astype(np.float32).copy()  # the same codebook
    tok = Tokenizer(enc, MultiLayerKMeans({args.layer: km}))

    def forward() -> None:
        for w in waves:
            enc.encode([w], [args.layer])

    def tokenize() -> None:
        with tempfile.TemporaryDirectory() as d:
            tokenize_corpus(tok, utts, Path(d) / "u.jsonl", dedup=True, progress=False, resume=False)

    def naive() -> None:
        with tempfile.TemporaryDirectory() as d, open(Path(d) / "u.jsonl", "w") as f:
            for u in utts:
                x, sr = sf.read(str(u.path), dtype="float32")
                if sr != 16000:
                    x = soxr.resample(x, sr, 16000)
                with torch.no_grad():
                    hs = model(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states
                ids = sk.predict(hs[args.layer][0].numpy())
                f.write(json.dumps({"id": u.id, "units": dedup_ids(ids)[0].tolist()}) + "\n")

    results = {}
    for name, fn in [("forward", forward), ("tokenize", tokenize), ("naive", naive)]:
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        results[name] = {"median_s": med, "runs_s": times, "s_per_audio_s": med / seconds}
        print(f"{name:9s} median {med:7.2f} s  ({med / seconds:.4f} s per s of audio)  runs {[round(t, 2) for t in times]}")
    ratio = results["forward"]["median_s"] / results["tokenize"]["median_s"]
    speedup = results["naive"]["median_s"] / results["tokenize"]["median_s"]
    print(f"tokenize throughput = {100 * ratio:.1f}% of the forward pass alone; {speedup:.2f}x the naive loop")
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
           "files": len(utts), "audio_s": seconds, "layer": args.layer, "k": args.k, "results": results,
           "tokenize_vs_forward": ratio, "tokenize_vs_naive": speedup}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
