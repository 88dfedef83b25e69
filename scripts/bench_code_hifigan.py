"""Time the unit HiFi-GAN (``vocoder train --arch code-hifigan``): training steps and synthesis.

Trains a few steps at the given configuration on generated speech-like audio (an MFCC k-means
tokenizer fitted on it) and times synthesis of ``--seconds`` of units; prints one JSON line.
The numbers in docs/code_hifigan.md come from::

    OMP_NUM_THREADS=1 python scripts/bench_code_hifigan.py --threads 1 --batch 16 --steps 3

On a GPU: ``python scripts/bench_code_hifigan.py --device cuda --steps 20``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechunits.data.manifest import Utterance
from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer
from speechunits.vocoder.code_hifigan import CodeGenerator, CodeHiFiGANConfig
from speechunits.vocoder.code_hifigan_train import CodeHiFiGANSettings, train_code_hifigan


def speechlike(n: int, seed: int) -> np.ndarray:
    """Harmonic tones whose F0 and spectral tilt change every 100 ms (as the tests' audio)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    out = np.zeros(n)
    for start in range(0, n, 1600):
        seg = slice(start, start + 1600)
        f0 = rng.uniform(90, 250)
        for h in range(1, 12):
            out[seg] += rng.uniform(0, 1) / h * np.sin(2 * np.pi * f0 * h * t[seg])
    out += 0.01 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--disc-scale", type=float, default=1.0)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--seconds", type=float, default=5.0, help="units to synthesize for the RTF")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        waves = [speechlike(32000, s) for s in range(4)]
        utts = []
        for i, w in enumerate(waves):
            sf.write(d / f"u{i}.wav", w, 16000)
            utts.append(Utterance(f"u{i}", d / f"u{i}.wav"))
        tok = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=a.k, seed=0)
        s = CodeHiFiGANSettings(steps=a.steps, batch=a.batch, channels=a.channels, disc_scale=a.disc_scale,
                                speaker=False, dev_utterances=0, checkpoint_every=10**9, device=a.device)
        train_code_hifigan(tok, utts, d / "v", s, progress=False, resume=False)
        hist = json.loads((d / "v" / "training" / "loss.json").read_text())["history"]
    step_s = [h["seconds"] for h in hist]
    dev = torch.device(a.device)
    g = CodeGenerator(CodeHiFiGANConfig(codebook_sizes=[a.k], upsample_initial_channel=a.channels)).eval().to(dev)
    frames = int(a.seconds * 50)
    u = torch.randint(0, a.k, (1, frames, 1), device=dev)
    with torch.inference_mode():
        g(u[:, :50])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        g(u)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        synth = time.perf_counter() - t0
    out = {"device": a.device, "threads": torch.get_num_threads(), "batch": a.batch, "segment_samples": 8960,
           "channels": a.channels, "disc_scale": a.disc_scale, "step_seconds": step_s,
           "median_step_s": float(np.median(step_s[1:] if len(step_s) > 1 else step_s)),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
           "generator_params_m": round(sum(q.numel() for q in g.parameters()) / 1e6, 2),
           "synthesis_seconds": round(synth, 3), "synthesis_rtf": round(synth / a.seconds, 4)}
    if dev.type == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
