"""Benchmark: BPE over units (training time, compression) and dedup/expand throughput.

Synthetic data: frame-level unit sequences from a sparse first-order Markov chain over k units,
which imitates the statistics that make BPE useful on real speech units:

- each unit has ``--branch`` possible successors (never itself), chosen at random, with Zipf
  probabilities p_r ~ 1 / r^1.2 over their rank r, so some bigrams/trigrams are very frequent;
- each unit is held for a Geometric(``--p-stay-end``) number of frames (mean 1/p, default 1.67
  frames, i.e. de-duplication shortens sequences by ~40%, as at 50 Hz with large k);
- utterances are 2-20 s long at 50 Hz (100-1000 frames), generated until ``--frames`` frames.

BPE is trained on the de-duplicated sequences of 90% of the utterances (the default pipeline:
k-means -> de-dup -> BPE, k = 2000 and vocab 6000 as in the discrete-vs-continuous study) and the
compression ratio (de-duplicated units per BPE token) is reported on the held-out 10% and on the
training part. Run: ``python benchmarks/bench_bpe.py [--frames 2000000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from speechunits.tokens import UnitBPE, dedup_ids, edit_distance, expand_ids


def markov_corpus(frames: int, k: int, branch: int, p_end: float, seed: int) -> list[np.ndarray]:
    """Frame-level unit sequences totalling about ``frames`` frames (see module docstring)."""
    rng = np.random.default_rng(seed)
    succ = (np.arange(k)[:, None] + rng.integers(1, k, size=(k, branch))) % k  # never self
    w = 1.0 / np.arange(1, branch + 1) ** 1.2
    cdf = np.cumsum(w / w.sum())
    lengths = []
    while sum(lengths) < frames:
        lengths.append(int(rng.integers(100, 1001)))
    lengths[-1] -= sum(lengths) - frames
    n = len(lengths)
    # Simulate all utterances in parallel; each needs at most `length` de-duplicated steps.
    steps = max(lengths)
    states = np.empty((n, steps), dtype=np.int64)
    cur = rng.integers(0, k, n)
    for t in range(steps):
        states[:, t] = cur
        r = np.minimum(np.searchsorted(cdf, rng.random(n)), branch - 1)
        cur = succ[cur, r]
    out = []
    for i, length in enumerate(lengths):
        dur = rng.geometric(p_end, size=length)
        ends = np.cumsum(dur)
        m = int(np.searchsorted(ends, length)) + 1  # runs needed to reach `length` frames
        seq = np.repeat(states[i, :m], dur[:m])[:length]
        out.append(seq)
    return out


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--vocab", type=int, default=6000)
    ap.add_argument("--branch", type=int, default=16)
    ap.add_argument("--p-stay-end", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
                 "args": vars(args)}
    seqs, t = timed(markov_corpus, args.frames, args.k, args.branch, args.p_stay_end, args.seed)
    n_frames = sum(map(len, seqs))
    res["corpus"] = {"utterances": len(seqs), "frames": n_frames, "hours_at_50hz": n_frames / 50 / 3600,
                     "gen_s": round(t, 2)}

    # De-duplication / expansion throughput, per utterance (realistic) and on one long array.
    dd, t_dd = timed(lambda: [dedup_ids(s) for s in seqs])
    _, t_ex = timed(lambda: [expand_ids(i, d) for i, d in dd])
    flat = np.concatenate(seqs)
    (fi, fd), t_dd1 = timed(dedup_ids, flat)
    _, t_ex1 = timed(expand_ids, fi, fd)
    units = [i for i, _ in dd]
    n_units = sum(map(len, units))
    res["dedup"] = {
        "units_after_dedup": n_units,
        "frames_per_unit": n_frames / n_units,
        "dedup_frames_per_s_per_utt": n_frames / t_dd,
        "expand_frames_per_s_per_utt": n_frames / t_ex,
        "dedup_frames_per_s_one_array": n_frames / t_dd1,
        "expand_frames_per_s_one_array": n_frames / t_ex1,
    }

    split = int(0.9 * len(seqs))
    bpe, t_train = timed(UnitBPE.train, seqs[:split], vocab_size=args.vocab, k=args.k, seed=args.seed)
    enc, t_enc = timed(bpe.encode_batch, units[split:])
    n_tok = sum(map(len, enc))
    _, t_dec = timed(lambda: [bpe.decode(e) for e in enc])
    assert all(np.array_equal(bpe.decode(e), u) for e, u in zip(enc, units[split:]))
    res["bpe"] = {
        "train_s": round(t_train, 2),
        "train_units": bpe.config["train_summary"]["num_units"],
        "vocab_size": bpe.vocab_size,
        "units_per_token_heldout": sum(map(len, units[split:])) / n_tok,
        "frames_per_token_heldout": sum(map(len, seqs[split:])) / n_tok,
        "units_per_token_train": bpe.compression_ratio(units[:split]),
        "encode_units_per_s": sum(map(len, units[split:])) / t_enc,
        "decode_tokens_per_s": n_tok / t_dec,
    }

    a = np.random.default_rng(1).integers(0, args.k, 10_000)
    b = a.copy()
    b[::10] = 0
    res["edit_distance_10k_x_10k_s"] = {
        be: round(timed(edit_distance, a, b, backend=be)[1], 4) for be in ("auto", "python")
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
