"""Benchmark: peak memory of tokenizing one long file with the MFCC tokenizer (1 h and 4 h).

Generates speech-like audio (a voiced source with a wandering pitch through moving formant
resonances, pauses and noise bursts; 16 kHz 16-bit WAV, cached in ``--workdir``), fits a small
MFCC k-means tokenizer on a minute of it, then for each length runs ``Tokenizer.encode(path)``
(decode + MFCC + k-means + units) in a fresh process and reads that process's peak resident
memory (``ru_maxrss``). Reported per run: the peak, the baseline before the file is touched
(interpreter, torch, tokenizer), the peak beyond it, the decoded audio's own size (float32 at
16 kHz, which ``load`` returns whole), and the wall time.

``--compare-src DIR`` runs the same measurements with another checkout's ``src`` (for a
before/after table); the tokenizer is fitted and saved by the code under test.

Run: ``python benchmarks/bench_memory.py [--hours 1 4] [--compare-src ../main/src] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SR = 16000
HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def speechlike(seconds: float, seed: int, block_s: int = 60):
    """Blocks of float32 speech-like audio (not speech, but with speech's spectral motion)."""
    rng = np.random.default_rng(seed)
    phase = 0.0
    for start in range(0, int(seconds), block_s):
        n = int(min(block_s, seconds - start) * SR)
        t = np.arange(n) / SR
        f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * (t + start)) + 20 * rng.standard_normal()  # wandering pitch
        inst = phase + 2 * np.pi * np.cumsum(f0) / SR
        phase = float(inst[-1])
        voiced = sum(np.sin(h * inst) / h for h in range(1, 12))
        # formant-like emphasis moving every ~150 ms: a slowly varying comb of resonances
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.3 * t + rng.uniform(0, 6.28))
        noise = rng.standard_normal(n)
        x = 0.08 * voiced * env + 0.01 * noise
        gate = (np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6.28)) > -0.6).astype(np.float64)  # pauses
        yield (x * gate).astype(np.float32)


def make_wav(path: Path, seconds: float, seed: int) -> None:
    import soundfile as sf

    if path.is_file() and sf.info(str(path)).frames == int(seconds * SR):
        return
    tmp = path.with_suffix(".partial.wav")
    with sf.SoundFile(tmp, "w", SR, 1, subtype="PCM_16") as f:
        for block in speechlike(seconds, seed):
            f.write(block)
    tmp.replace(path)


def child(tok_dir: str, wav: str) -> None:
    """One measurement, in its own process: print a JSON line."""
    import torch

    torch.set_num_threads(1)
    from speechunits.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(tok_dir)
    tok.encode(np.zeros(SR, np.float32) + 0.01)  # warm-up: kernels, allocator
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    units = tok.encode(wav)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_mib": base, "peak_mib": peak, "wall_s": wall, "frames": int(units.num_frames)}))


def measure(src: Path, tok_dir: Path, wav: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, __file__, "--child", str(tok_dir), str(wav)], env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["?"])[-1], "returncode": res.returncode}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 4.0])
    ap.add_argument("--compare-src", default=None, help="another checkout's src/, measured the same way")
    ap.add_argument("--compare-hours", type=float, nargs="+", default=None,
                    help="lengths for --compare-src (default: --hours)")
    ap.add_argument("--workdir", default="/tmp/speechunits-bench-memory")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tok_dir = work / f"tok-mfcc-k{args.k}"
    if not (tok_dir / "config.json").is_file():
        fit = (
            "import sys, numpy as np, torch\n"
            "torch.set_num_threads(1)\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from bench_memory import speechlike\n"
            "from speechunits.encoders import load_encoder\n"
            "from speechunits.tokenizer import fit_tokenizer\n"
            "x = np.concatenate(list(speechlike(120, seed=1)))\n"
            "tok = fit_tokenizer(load_encoder('mfcc'), [x[i:i + 160000] for i in range(0, len(x), 160000)],"
            " layers=[0], k=int(sys.argv[2]), seed=0, n_init=1)\n"
            "tok.save_pretrained(sys.argv[3])\n"
        )
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-c", fit, str(HERE), str(args.k), str(tok_dir)], env=env, check=True)

    runs = [("this checkout", SRC, args.hours)]
    if args.compare_src:
        runs.insert(0, (f"{args.compare_src}", Path(args.compare_src).resolve(), args.compare_hours or args.hours))
    res: dict = {"args": vars(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                 "load_average": os.getloadavg()}, "runs": []}
    print(f"{'code':<28} {'hours':>5} {'peak MiB':>9} {'baseline':>9} {'beyond':>8} {'audio MiB':>9} {'wall s':>7}")
    for label, src, hours in runs:
        for h in hours:
            wav = work / f"speechlike-{h:g}h.wav"
            make_wav(wav, h * 3600, seed=0)
            r = measure(src, tok_dir, wav)
            r.update({"code": label, "src": str(src), "hours": h, "audio_mib": h * 3600 * SR * 4 / 2**20})
            res["runs"].append(r)
            if "error" in r:
                print(f"{label:<28} {h:>5g} failed: {r['error']}")
                continue
            print(f"{label:<28} {h:>5g} {r['peak_mib']:>9.0f} {r['baseline_mib']:>9.0f} "
                  f"{r['peak_mib'] - r['baseline_mib']:>8.0f} {r['audio_mib']:>9.0f} {r['wall_s']:>7.1f}")
    res["machine"]["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
