"""Benchmark: unit-quality metrics at the scale of one hour of speech, and n-grams on 2M units.

Synthetic data standing in for an SSL encoder's output on aligned speech (``--hours`` of it):

- utterances of 10 s at 50 Hz from ``--speakers`` speakers; 40 phones drawn i.i.d. with Zipf
  frequencies ``p_r ~ 1/r`` (frequent triphone contexts recur with many central phones, which
  makes many ABX cells; ``--branch B`` draws them from a sparser Markov chain with B successors
  instead), each held 1 + Geometric(0.3) frames (mean 4.3 frames = 86 ms, ~12 phones/s);
- features ``[T, 768]`` float16: phone embedding + 0.5 x speaker embedding + unit noise;
- units (k = 500): 12 codes per phone, 30% of the frames replaced by a random code; centroids
  ``[500, 768]`` for the centroid-distance ABX.

Timed: codebook statistics and PNMI over all frames (plus building the frame labels from the
phone segments), ABX within and across speakers for features (cosine), units (0/1) and units
through their centroids (libri-light defaults: 10 items per group, 5 X speakers), and a 4-gram
Kneser-Ney LM trained on ``--ngram-units`` de-duplicated units (k = 500 Markov chain) with the
perplexity of 10% more. Run: ``python benchmarks/bench_metrics.py [--hours 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
import torch

from speechunits.data.alignment import Segment, frame_labels
from speechunits.metrics import KneserNeyLM, abx_error, abx_items, codebook_stats, pnmi

N_PHONES, DIM, K = 40, 768, 500


def synth(hours: float, speakers: int, branch: int, seed: int):
    rng = np.random.default_rng(seed)
    phones = [f"ph{i}" for i in range(N_PHONES)]
    succ = (np.arange(N_PHONES)[:, None] + rng.integers(1, N_PHONES, (N_PHONES, branch))) % N_PHONES
    zipf = 1.0 / np.arange(1, N_PHONES + 1)
    zipf /= zipf.sum()
    emb = rng.normal(size=(N_PHONES, DIM)).astype(np.float32)
    spk_emb = rng.normal(size=(speakers, DIM)).astype(np.float32)
    n_utts = max(speakers, round(hours * 360))
    tiers, spk, feats, units, frame_phones = [], [], [], [], []
    for u in range(n_utts):
        T = 500
        durs, ids, cur = [], [], int(rng.integers(N_PHONES))
        while sum(durs) < T:
            ids.append(cur)
            durs.append(1 + int(rng.geometric(0.3)))
            cur = int(succ[cur, rng.integers(branch)]) if branch else int(rng.choice(N_PHONES, p=zipf))
        durs[-1] -= sum(durs) - T
        if durs[-1] <= 0:
            durs, ids = durs[:-1], ids[:-1]
        ends = np.cumsum(durs)
        tiers.append([Segment((e - d) / 50, e / 50, phones[p]) for p, d, e in zip(ids, durs, ends)])
        spk.append(u % speakers)
        fp = np.repeat(ids, durs)
        frame_phones.append(fp)
        x = emb[fp] + 0.5 * spk_emb[u % speakers] + rng.standard_normal((T, DIM), dtype=np.float32)
        feats.append(x.astype(np.float16))
        code = fp * 12 + rng.integers(0, 12, T)
        flip = rng.random(T) < 0.3
        code[flip] = rng.integers(0, K, int(flip.sum()))
        units.append(code % K)
    centroids = rng.normal(size=(K, DIM)).astype(np.float32)
    for c in range(K):  # centroid of code c sits near its phone's embedding
        centroids[c] += 2 * emb[(c // 12) % N_PHONES]
    return tiers, [f"s{s}" for s in spk], feats, units, centroids


def markov_units(n_units: int, k: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    succ = (np.arange(k)[:, None] + rng.integers(1, k, (k, 8))) % k
    w = 1.0 / np.arange(1, 9) ** 1.2
    cdf = np.cumsum(w / w.sum())
    lens = []
    while sum(lens) < n_units:
        lens.append(int(rng.integers(60, 600)))
    steps = max(lens)
    states = np.empty((len(lens), steps), dtype=np.int64)
    cur = rng.integers(0, k, len(lens))
    for t in range(steps):
        states[:, t] = cur
        cur = succ[cur, np.minimum(np.searchsorted(cdf, rng.random(len(lens))), 7)]
    return [states[i, :n] for i, n in enumerate(lens)]


def timed(label: str, fn, results: dict):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    results[label] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    print(f"{label:<46s} wall {wall:8.2f} s   cpu {cpu:8.2f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--speakers", type=int, default=10)
    ap.add_argument("--branch", type=int, default=0, help="phone successors (0: i.i.d. Zipf phones)")
    ap.add_argument("--ngram-units", type=int, default=2_000_000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the ABX DTW/distances)")
    ap.add_argument("--skip-abx", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict = {"args": vars(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                 "torch": torch.__version__}}

    tiers, spk, feats, units, cents = timed("synthesise corpus", lambda: synth(args.hours, args.speakers, args.branch, args.seed), res)
    n_frames = sum(len(u) for u in units)
    print(f"  {len(units)} utterances, {n_frames} frames ({n_frames / 50 / 3600:.2f} h), "
          f"{sum(len(t) for t in tiers)} phones, features {sum(f.nbytes for f in feats) / 2**20:.0f} MiB float16")
    res["corpus"] = {"utterances": len(units), "frames": n_frames, "phones": sum(len(t) for t in tiers)}

    labels = timed("frame labels (phones, by centre)", lambda: [frame_labels(t, len(u)) for t, u in zip(tiers, units)], res)
    s = timed("codebook_stats (dedup)", lambda: codebook_stats(units, K), res)
    print(f"  utilization {s.utilization:.3f}, entropy {s.entropy_bits:.2f} bits, "
          f"entropy bitrate {s.entropy_bitrate:.0f} b/s, nominal {s.nominal_bitrate:.0f} b/s")
    r = timed("pnmi", lambda: pnmi(list(zip(units, labels))), res)
    print(f"  PNMI {r.pnmi:.3f}, phone purity {r.phone_purity:.3f}, cluster purity {r.cluster_purity:.3f}")
    res["pnmi"] = r.to_dict()

    if not args.skip_abx:
        items = timed("abx_items (triphones)", lambda: abx_items(tiers, spk), res)
        print(f"  {len(items)} items")
        res["abx"] = {"items": len(items)}
        runs = [
            ("features cosine", feats, {}, ("within", "across")),
            ("units onehot", units, {}, ("within", "across")),
            ("units centroids", units, {"centroids": cents}, ("within", "across")),
            ("features cosine, 100 cells/pair", feats, {"max_cells_per_pair": 100}, ("across",)),
        ]
        for name, inputs, kw, modes in runs:
            for mode in modes:
                a = timed(f"abx {mode} {name}", lambda: abx_error(items, inputs, mode, **kw), res)
                print(f"  error {100 * a.error:.2f}%  pairs {a.num_phone_pairs}  cells {a.num_cells}  "
                      f"triplets {a.num_triplets}  DTWs {a.num_dtw}")
                res["abx"][f"{mode} {name}"] = {k: v for k, v in a.to_dict().items() if k != "pair_errors"}

    seqs = timed(f"ngram corpus ({args.ngram_units} units)", lambda: markov_units(args.ngram_units, K, args.seed + 1), res)
    n_train = int(len(seqs) * 0.9)
    lm = timed("ngram train 4-gram (dedup)", lambda: KneserNeyLM.train(seqs[:n_train], order=4, vocab_size=K), res)
    print(f"  n-grams per order {lm.num_ngrams()}, discounts {[tuple(round(x, 3) for x in d) for d in lm.discounts]}")
    ppl = timed("ngram perplexity (held-out 10%)", lambda: lm.perplexity(seqs[n_train:]), res)
    print(f"  train units {sum(len(x) for x in seqs[:n_train])}, held-out perplexity {ppl:.2f}")
    res["ngram"] = {"perplexity": ppl, "num_ngrams": lm.num_ngrams()}

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    res["peak_rss_mib"] = round(peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=float)


if __name__ == "__main__":
    main()
