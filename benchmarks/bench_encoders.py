"""Forward-pass speed of the encoders: seconds of compute per second of audio (lower is faster).

A HuBERT-Base-shaped model (``HubertConfig()`` defaults: 12 layers, 768 dims, group-norm CNN) with
random weights, float32, batch 1, stopping at layer 6 and running to the final layer; and the
spectral encoders. Median of several runs after one warm-up run.

    python benchmarks/bench_encoders.py [--seconds 10] [--runs 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from speechunits.encoders import HFEncoder, SpectralEncoder


def seconds_per_second(encoder, wave: np.ndarray, layers: list[int], runs: int) -> tuple[float, float]:
    """Median and minimum seconds per second of audio (the minimum shows the speed on a quiet machine)."""
    encoder.encode([wave], layers)  # warm-up: allocator, kernels
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        encoder.encode([wave], layers)
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    audio = len(wave) / encoder.sample_rate
    return statistics.median(times) / audio, min(times) / audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    wave = (np.random.default_rng(0).standard_normal(int(args.seconds * 16000)) * 0.1).astype(np.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{args.seconds:g} s of audio, median of {args.runs} runs")
    hubert = HFEncoder(HubertModel(HubertConfig()), name="hubert-base-shaped (random)", device=args.device)
    rows = [
        ("HuBERT-Base layer 6", hubert, [6]),
        ("HuBERT-Base final (12)", hubert, [-1]),
        ("HuBERT-Base layers 6+12", hubert, [6, -1]),
        ("MFCC 39-dim", SpectralEncoder("mfcc", device=args.device), [0]),
        ("log-mel 80", SpectralEncoder("logmel", device=args.device), [0]),
    ]
    print(f"{'':28s} {'median s/s':>10s} {'min s/s':>9s} {'x real time':>12s}")
    for label, enc, layers in rows:
        runs = args.runs if isinstance(enc, HFEncoder) else 10 * args.runs  # spectral runs are cheap
        med, best = seconds_per_second(enc, wave, layers, runs)
        print(f"{label:28s} {med:10.4f} {best:9.4f} {1 / med:12.1f}")


if __name__ == "__main__":
    main()
