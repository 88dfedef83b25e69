"""Benchmark: synthesis speed of a unit vocoder, part by part, and its peak memory.

Over the same files (``--minutes`` of ``--data``), each timed ``--runs`` times after a warm-up,
taking turns run by run (median reported, RTF = seconds of compute per second of audio):

- ``units``: the tokenizer's frame units of each file (Whisper encoder + k-means), for reference;
- ``mel``: the unit-to-mel model on those units (speaker d-vector given);
- ``hifigan_torch``: the universal HiFi-GAN V1 in torch on the predicted mels;
- ``hifigan_onnx``: the same generator through ONNX Runtime (the CPU default);
- ``hifigan_onnx_int8``: the int8 copy (``SPEECHUNITS_VOCODER_BACKEND=onnx-int8``, vocoder/int8.py);
- ``resynth``: the whole path a user runs (``UnitVocoder.resynthesize``: units, d-vector of the
  input, mel, HiFi-GAN on ONNX Runtime, resampling to 16 kHz);
- ``resynth_int8``: the same with the int8 HiFi-GAN.

fp32 and int8 take turns inside every run, their order swapped from one run to the next; the load
average before and after is recorded (other work on the machine shows there).

Run: ``python benchmarks/bench_vocoder.py --vocoder default --threads 2 [--data DIR] [--minutes 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from speechunits.audio import load
from speechunits.data.manifest import read_manifest
from speechunits.vocoder.backend import get_backend
from speechunits.vocoder.resynth import open_vocoder

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocoder", default="default")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "librispeech-mini" / "test-other"))
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    voc, tok = open_vocoder(args.vocoder, args.tokenizer)
    waves, total = [], 0.0
    for u in read_manifest(Path(args.data)):
        waves.append(load(u.path))
        total += len(waves[-1]) / 16000
        if total >= args.minutes * 60:
            break
    units = [tok.frame_units([w])[0] for w in waves]
    speakers = [voc.speaker_embedding(w) for w in waves]
    mels = [voc.units_to_mel(u, s) for u, s in zip(units, speakers)]
    onnx, plain = get_backend("cpu", "onnx"), get_backend("cpu", "torch")
    int8 = get_backend("cpu", "onnx-int8")
    print(f"{len(waves)} files, {total:.1f} s, torch threads {torch.get_num_threads()}, "
          f"back ends {onnx.kind}/{int8.kind}/{plain.kind}")

    def resynth(kind: str):
        def run():
            voc.backend = kind
            try:
                return [voc.resynthesize(w, tok) for w in waves]
            finally:
                voc.backend = None
        return run

    fns = {
        "units": lambda: [tok.frame_units([w]) for w in waves],
        "mel": lambda: [voc.units_to_mel(u, s) for u, s in zip(units, speakers)],
        "hifigan_torch": lambda: [plain(m) for m in mels],
        "hifigan_onnx": lambda: [onnx(m) for m in mels],
        "hifigan_onnx_int8": lambda: [int8(m) for m in mels],
        "resynth": resynth("onnx"),
        "resynth_int8": resynth("onnx-int8"),
    }
    pairs = [("hifigan_onnx", "hifigan_onnx_int8"), ("resynth", "resynth_int8")]
    load_before = os.getloadavg()
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for run in range(args.runs):
        order = list(fns)
        if run % 2:  # int8 first on odd runs
            for a, b in pairs:
                i, j = order.index(a), order.index(b)
                order[i], order[j] = b, a
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()
    results = {k: {"median_s": statistics.median(v), "rtf": statistics.median(v) / total, "runs_s": v}
               for k, v in times.items()}
    for k, r in results.items():
        print(f"{k:18s} median {r['median_s']:7.2f} s  RTF {r['rtf']:.4f}  runs {[round(t, 2) for t in r['runs_s']]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratios = {"onnx_vs_torch": results["hifigan_torch"]["median_s"] / results["hifigan_onnx"]["median_s"],
              **{f"{b}_vs_{a}": results[b]["median_s"] / results[a]["median_s"] for a, b in pairs}}
    print(f"ONNX vs torch HiFi-GAN: {ratios['onnx_vs_torch']:.2f}x; int8 / fp32 time: HiFi-GAN "
          f"{ratios['hifigan_onnx_int8_vs_hifigan_onnx']:.3f}, whole path {ratios['resynth_int8_vs_resynth']:.3f}; "
          f"peak RSS {peak:.0f} MiB; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
            "files": len(waves), "audio_s": total, "threads": args.threads, "results": results, "ratios": ratios,
            "load_average_before": load_before, "load_average_after": load_after, "peak_rss_mib": peak}, indent=2))


if __name__ == "__main__":
    main()
