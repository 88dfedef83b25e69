"""Benchmark: speechunits KMeans against fairseq's HuBERT k-means recipe (sklearn MiniBatchKMeans).

    python benchmarks/bench_kmeans.py                       # full: 200k x 768, k = 500 and 2000
    python benchmarks/bench_kmeans.py --frames 20000 --ks 100 --sklearn-n-init 2   # smoke test

Both fit the same float32 matrix in the same process; the final inertia per vector is computed
identically for both, with the exact assignment of :meth:`KMeans.assign` on the full matrix.
Wall times are medians over ``--repeats`` runs (sklearn once by default: at n_init = 20 it takes
minutes). A last row fits from a *stream* twice the size of a memory budget and reports the
budget, the sample's bytes and tracemalloc's peak for the sampling pass.

Data (``--data``), both 768-dim float32, seeded:

``speech`` (default when ../shared/data/librispeech-mini exists): log-mel context stacks of real
  speech. 96 log-mel bins (25 ms Hann window, 10 ms hop, 20 Hz-8 kHz, natural log + 1e-6) of the
  65 minutes of LibriSpeech, 8 consecutive frames stacked (80 ms of context, about a CNN
  receptive field) -> 768 dims at 100 Hz, about 390k vectors; ``--frames`` of them are drawn
  uniformly without replacement. Real spectro-temporal structure: strongly correlated dimensions,
  a low intrinsic dimension, dense silence/vowel regions and sparse transients, like SSL features
  (whose real checkpoints are not available offline).

``gmm``: a Gaussian mixture built to look like SSL features rather than isotropic blobs:
  1024 components (more than k, so no k recovers them exactly) with log-normal weights
  (sigma 1: the largest about 400x the smallest); means on a 64-dim subspace with a decaying
  spectrum and a total variance equal to the within-component variance (so components overlap);
  each component's covariance is one of 8 shared anisotropic factors (random rotation x
  spectrum ``(i + 1) ** -0.5``) times a log-normal scale (sigma 0.3).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from speechunits.quantizers import KMeans  # noqa: E402

SPEECH_DIR = ROOT.parent / "shared" / "data" / "librispeech-mini"


# ----------------------------------------------------------------------------- data generators
def gmm_features(n: int, dim: int = 768, seed: int = 0, n_comp: int = 1024) -> np.ndarray:
    """Anisotropic, unequal-size Gaussian mixture (see the module docstring)."""
    rng = np.random.default_rng(seed)
    w = np.exp(rng.normal(0.0, 1.0, n_comp))
    w /= w.sum()
    comp = rng.choice(n_comp, size=n, p=w)
    rank = 64
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0]  # [dim, rank] orthonormal
    # between-component variance = within-component variance (both ~ dim): overlapping components
    mean_scale = np.arange(1, rank + 1) ** -0.5 * math.sqrt(dim / np.sum(1.0 / np.arange(1, rank + 1)))
    means = (rng.standard_normal((n_comp, rank)) * mean_scale) @ basis.T
    spectrum = (np.arange(1, dim + 1) ** -0.5) * math.sqrt(dim / np.sum(1.0 / np.arange(1, dim + 1)))
    factors = [np.linalg.qr(rng.standard_normal((dim, dim)))[0] * spectrum for _ in range(8)]
    scale = np.exp(rng.normal(0.0, 0.3, n_comp))
    x = np.empty((n, dim), dtype=np.float32)
    for f in range(8):
        rows = np.nonzero(comp % 8 == f)[0]
        noise = rng.standard_normal((len(rows), dim)).astype(np.float32) @ factors[f].T.astype(np.float32)
        x[rows] = means[comp[rows]] + noise * scale[comp[rows], None]
    return x


def _mel_fb(n_mels: int, n_fft: int, sr: int) -> np.ndarray:
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f) / 700.0)  # noqa: E731
    edges = np.linspace(mel(20.0), mel(sr / 2), n_mels + 2)
    bins = mel(np.arange(n_fft // 2 + 1) * sr / n_fft)[None, :]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid))).astype(np.float32)


def speech_utterances(n_mels: int = 96, stack: int = 8):
    """Yield one ``[frames, n_mels * stack]`` float32 array per LibriSpeech-mini utterance."""
    import soundfile as sf

    fb = _mel_fb(n_mels, 512, 16000)
    win = np.hanning(400).astype(np.float32)
    for path in sorted(SPEECH_DIR.rglob("*.flac")):
        wav, sr = sf.read(path, dtype="float32")
        assert sr == 16000, path
        n = 1 + (len(wav) - 400) // 160
        frames = np.lib.stride_tricks.sliding_window_view(wav, 400)[::160][:n] * win
        logmel = np.log(np.abs(np.fft.rfft(frames, 512)) ** 2 @ fb.T + 1e-6).astype(np.float32)
        ctx = np.lib.stride_tricks.sliding_window_view(logmel, (stack, n_mels))[:, 0]
        yield np.ascontiguousarray(ctx.reshape(len(ctx), stack * n_mels))


def speech_features(n: int, seed: int = 0) -> np.ndarray:
    x = np.concatenate(list(speech_utterances()))
    if n > len(x):
        raise SystemExit(f"only {len(x)} speech frames available, asked for {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return np.ascontiguousarray(x[idx])


# ----------------------------------------------------------------------------- runners
def inertia_per_vector(x: np.ndarray, centroids: np.ndarray) -> float:
    km = KMeans.from_centroids(centroids)
    return float(km.distances(x).sum(dtype=torch.float64)) / len(x)


def run_sklearn(x: np.ndarray, k: int, n_init: int, seed: int) -> np.ndarray:
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(
        n_clusters=k, init="k-means++", max_iter=100, batch_size=10000, tol=0.0,
        max_no_improvement=100, n_init=n_init, reassignment_ratio=0.0, random_state=seed,
    )  # fairseq examples/hubert/simple_kmeans/learn_kmeans.py, plus a seed
    km.fit(x)
    return km.cluster_centers_.astype(np.float32)


def run_ours(x: np.ndarray, k: int, seed: int, **kw) -> tuple[np.ndarray, dict]:
    """speechunits KMeans with its defaults (k-means++ on a subsample, pruned Lloyd on all frames)."""
    km = KMeans(k, seed=seed, **kw).fit(x)
    return km.centroids.cpu().numpy(), km.fit_stats


def run_faiss(x: np.ndarray, k: int, seed: int, niter: int, init: np.ndarray | None = None) -> np.ndarray:
    """faiss-cpu Lloyd (``pip install faiss-cpu``) on all frames, its random init or ``init``."""
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, max_points_per_centroid=len(x) // k + 1,
                      verbose=False)
    km.train(x, init_centroids=init)
    return km.centroids


def timed(fn, repeats: int):
    """Median wall and CPU (all threads) seconds over ``repeats`` calls, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _budget_child(path: str, dim: int, k: int, seed: int, budget: int, chunk_frames: int) -> dict:
    """In a fresh process: fit from the float16 file read chunk by chunk (plain reads, no memmap, so
    the page cache stays out of the RSS); report the sample size and the memory peaks."""
    km = KMeans(k, seed=seed)
    # warm-up at the real k and dim, so the one-time library buffers (MKL GEMM packing, OpenMP
    # thread stacks: ~50 MB) are in the baseline and the growth below is this fit's own memory
    warm = np.random.default_rng(0).standard_normal((max(4096, 2 * k), dim)).astype(np.float32)
    KMeans(k, seed=0, init="random", max_iter=2).fit(warm)
    del warm
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS (Linux)
    except OSError:
        pass
    rss0 = _proc_status_kib("VmRSS")

    def stream():
        with open(path, "rb") as f:
            while True:
                a = np.fromfile(f, dtype=np.float16, count=chunk_frames * dim)
                if not a.size:
                    return
                yield a.reshape(-1, dim)

    tracemalloc.start()
    t = time.perf_counter()
    sample = km.sample(stream(), max_bytes=budget)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    km.fit_sample(sample)
    wall = time.perf_counter() - t
    hwm = _proc_status_kib("VmHWM")
    fixed, per_frame = km.working_bytes([dim])
    np.save(path + ".centroids.npy", km.centroids.numpy())
    return {
        "budget_bytes": budget, "sample_bytes": int(sample.data.nbytes),
        "declared_bytes": int(sample.data.nbytes + fixed + per_frame * len(sample)),
        "tracemalloc_peak": peak, "rss_peak_growth": None if rss0 is None or hwm is None else (hwm - rss0) * 1024,
        "frames_seen": sample.frames_seen, "frames_sampled": len(sample), "wall_s": wall,
    }


def budget_run(x: np.ndarray, k: int, seed: int, threads: int | None = None, chunk_frames: int = 500) -> dict:
    """Fit from a stream of utterance-sized float16 chunks twice the size of the budget.

    Runs in a child process so that its peak resident set (VmHWM, Linux) measures this fit alone:
    reported are the budget, the sample's bytes, the sample plus the working memory KMeans
    declares, tracemalloc's peak over the sampling pass (numpy allocations) and the growth of the
    peak RSS over sampling + fit (torch allocations included) above the child's baseline (taken
    after a small warm-up fit at the same k and dim).
    """
    import tempfile

    budget = x[: len(x) // 2].nbytes  # the stream (float32-equivalent) is twice the budget
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "feats.f16")
        x.astype(np.float16).tofile(path)
        cmd = [sys.executable, __file__, "--budget-child", path, str(x.shape[1]), str(k), str(seed), str(budget),
               str(chunk_frames)] + (["--threads", str(threads)] if threads else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        res["inertia_per_vector"] = inertia_per_vector(x, np.load(path + ".centroids.npy"))
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["speech", "gmm"], default="speech" if SPEECH_DIR.exists() else "gmm")
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--ks", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs of ours (median wall time)")
    ap.add_argument("--sklearn-repeats", type=int, default=1)
    ap.add_argument("--sklearn-n-init", type=int, default=20, help="fairseq uses 20")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument("--faiss", action="store_true",
                    help="also time faiss-cpu Lloyd: its own random init, and ours (k-means++) + the same iterations")
    ap.add_argument("--n-init", type=int, help="our restarts (default: KMeans's)")
    ap.add_argument("--max-iter", type=int, help="our Lloyd iterations at most (default: KMeans's)")
    ap.add_argument("--tol", type=float, help="our relative inertia tolerance (default: KMeans's)")
    ap.add_argument("--threads", type=int, help="torch and BLAS threads (default: torch's)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--budget-child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    if args.budget_child:
        path, dim, k, seed, budget, chunk = args.budget_child
        print(json.dumps(_budget_child(path, int(dim), int(k), int(seed), int(budget), int(chunk))))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t = time.perf_counter()
    x = gmm_features(args.frames, seed=args.seed) if args.data == "gmm" else speech_features(args.frames, args.seed)
    print(f"data={args.data} {x.shape} built in {time.perf_counter() - t:.1f}s; "
          f"torch threads {torch.get_num_threads()}")
    ours_kw = {key: v for key, v in (("n_init", args.n_init), ("max_iter", args.max_iter), ("tol", args.tol))
               if v is not None}
    rows = []
    for k in args.ks:
        wall, cpu, (c_ours, stats) = timed(lambda k=k: run_ours(x, k, args.seed, **ours_kw), args.repeats)
        row = {"k": k, "ours_s": wall, "ours_cpu_s": cpu, "ours_inertia": inertia_per_vector(x, c_ours),
               "ours_iterations": stats["iterations"], "ours_utilization": stats["utilization"],
               "ours_init_s": stats["restarts"][stats["best_restart"]]["init_seconds"]}
        if args.faiss:  # same data: faiss's own random-init Lloyd, and faiss Lloyd from our k-means++
            best = stats["restarts"][stats["best_restart"]]
            iters = stats["iterations"]
            wf, cf, c_f = timed(lambda k=k, iters=iters: run_faiss(x, k, args.seed, iters), 1)
            c0 = KMeans(k, seed=args.seed, max_iter=1).fit(x).centroids.numpy()  # k-means++ only
            wfi, cfi, c_fi = timed(lambda k=k, n=iters - 1, c0=c0: run_faiss(x, k, args.seed, n, init=c0), 1)
            row.update(faiss_s=wf, faiss_cpu_s=cf, faiss_inertia=inertia_per_vector(x, c_f), faiss_lloyd_s=wfi,
                       faiss_lloyd_cpu_s=cfi,
                       faiss_from_our_init_inertia=inertia_per_vector(x, c_fi), ours_lloyd_s=best["lloyd_seconds"])
        if not args.skip_sklearn:
            ws, cs, c_sk = timed(lambda k=k: run_sklearn(x, k, args.sklearn_n_init, args.seed), args.sklearn_repeats)
            row.update(sklearn_s=ws, sklearn_cpu_s=cs, sklearn_inertia=inertia_per_vector(x, c_sk),
                       speedup=ws / wall, speedup_cpu=cs / cpu)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'k':>5} {'ours s':>8} {'(cpu s)':>8} {'iters':>5} {'ours inertia':>13} | {'sklearn s':>10} "
          f"{'(cpu s)':>8} {'sklearn inertia':>16} | {'speedup':>8} {'(cpu)':>7}")
    for r in rows:
        sk = (f"{r['sklearn_s']:10.1f} {r['sklearn_cpu_s']:8.1f} {r['sklearn_inertia']:16.3f} | "
              f"{r['speedup']:7.1f}x {r['speedup_cpu']:6.1f}x" if "sklearn_s" in r else "-")
        print(f"{r['k']:5d} {r['ours_s']:8.1f} {r['ours_cpu_s']:8.1f} {r['ours_iterations']:5d} "
              f"{r['ours_inertia']:13.3f} | {sk}")
        if "faiss_s" in r:
            print(f"      faiss (random init, {r['ours_iterations']} iters): {r['faiss_s']:.1f}s inertia "
                  f"{r['faiss_inertia']:.3f}; Lloyd only from our init: faiss {r['faiss_lloyd_s']:.1f}s "
                  f"(inertia {r['faiss_from_our_init_inertia']:.3f}) vs ours {r['ours_lloyd_s']:.1f}s")
    result = {"data": args.data, "shape": list(x.shape), "sklearn_n_init": args.sklearn_n_init, "rows": rows}
    if not args.skip_budget:
        try:
            result["budget"] = b = budget_run(x, min(args.ks), args.seed, args.threads)
        except subprocess.CalledProcessError as e:  # e.g. tiny smoke-test sizes: no room for the working set
            print(f"\nbudget run failed: {e.stderr.strip().splitlines()[-1]}")
            b = None
    if not args.skip_budget and b is not None:
        mib = lambda v: "n/a" if v is None else f"{v / 2**20:.1f} MiB"  # noqa: E731
        print(f"\nbudget run (k={min(args.ks)}): stream of {b['frames_seen']} frames ({mib(2 * b['budget_bytes'])} "
              f"as float32), budget {mib(b['budget_bytes'])}; sample {mib(b['sample_bytes'])} "
              f"({b['frames_sampled']} frames), sample + declared working memory {mib(b['declared_bytes'])}, "
              f"tracemalloc peak while sampling {mib(b['tracemalloc_peak'])}, peak RSS growth over "
              f"sampling + fit {mib(b['rss_peak_growth'])}; {b['wall_s']:.1f}s, "
              f"inertia/vector {b['inertia_per_vector']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
