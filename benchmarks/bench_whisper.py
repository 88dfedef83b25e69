"""Benchmark: tokenizing with a Whisper tokenizer, exact-length vs padded-to-30-s encoding, and a naive loop.

Over the same files, each timed ``--runs`` times (median reported):

- ``forward``: :class:`WhisperEncoder` (exact mode: each utterance on its own frames) to the
  tokenizer's layer, on audio already decoded: the bound a tokenizer cannot beat.
- ``tokenize``: ``speechunits.batch.tokenize_corpus`` with the tokenizer: decode, resample,
  encode, quantize, de-duplicate, write JSONL, as ``speechunits tokenize`` runs.
- ``padded``: the same tokenizer with the encoder in padded mode (every input padded to 30 s,
  as Whisper and transformers do), units compared frame by frame with the exact mode.
- ``naive``: the usual script: per file soundfile + soxr, transformers' ``WhisperFeatureExtractor``
  (pads to 30 s) and ``WhisperModel``'s encoder with ``output_hidden_states=True`` (all layers),
  sklearn ``KMeans.predict`` on numpy features (the same centroids), de-duplicate, write a line.

``forward`` and ``tokenize`` take turns run by run (after a warm-up), so their ratio is not
skewed by a change in load; the others are timed after them.

- ``stream``: chunk-wise streaming (``--chunk 1.0 --shift 0.4``) with the context growing from
  the start, or capped at each ``--stream-caps`` seconds (0 = uncapped): the wall time of each
  re-encode (the compute latency added to the algorithmic ``chunk`` seconds), whether every
  re-encode finished within one shift, and the unit edit distance of the streamed units to the
  offline ones.

Run: ``python benchmarks/bench_whisper.py --tokenizer DIR [--data DIR] [--minutes 3] [--runs 3]
[--stream-caps 0 4 8 16]``
(``DIR``: a tokenizer on ``whisper-tiny.en``, e.g. the bundled default).
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
from speechunits.encoders.whisper import WhisperEncoder
from speechunits.tokenizer import Tokenizer
from speechunits.tokens import dedup_ids

REPO = Path(__file__).resolve().parents[1]


def pick_files(data: Path, minutes: float) -> list:
    out, total = [], 0.0
    for u in read_manifest(data):
        out.append(u)
        total += sf.info(str(u.path)).duration
        if total >= minutes * 60:
            break
    return out


def timed(fn, runs: int) -> dict:
    return interleaved({"_": fn}, runs)["_"]


def interleaved(fns: dict, runs: int) -> dict:
    """Time each function ``runs`` times, taking turns (after one untimed warm-up each), so that
    a change in the machine's load during the run weighs on all of them alike."""
    for fn in fns.values():
        fn()
    times: dict = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(t), "runs_s": t} for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", default="default")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "librispeech-mini" / "test-other"))
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stream-caps", type=float, nargs="*", default=[0, 4, 8, 16])
    ap.add_argument("--chunk", type=float, default=1.0)
    ap.add_argument("--shift", type=float, default=0.4)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers
    from sklearn.cluster import KMeans as SkKMeans
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from speechunits.encoders import load_encoder

    transformers.utils.logging.disable_progress_bar()
    tok = Tokenizer.from_pretrained(args.tokenizer)
    enc = tok.encoder
    if not isinstance(enc, WhisperEncoder):
        raise SystemExit(f"{args.tokenizer}: not a Whisper tokenizer")
    layer = tok.layers[0]
    centroids = tok.quantizer.quantizers[layer].centroids.numpy().astype(np.float32)
    utts = pick_files(Path(args.data), args.minutes)
    waves = [load(u.path) for u in utts]
    seconds = sum(len(w) for w in waves) / 16000
    print(f"{len(utts)} files, {seconds:.1f} s of audio, {enc.name} layer {layer}, k {len(centroids)}, "
          f"torch threads {torch.get_num_threads()}")

    full = load_encoder("whisper-tiny.en")  # the whole converted checkpoint, for the naive loop
    hf = WhisperForConditionalGeneration.from_pretrained(str(full.source_dir), dtype=torch.float32).model.encoder.eval()
    fe = WhisperFeatureExtractor(feature_size=80)
    sk = SkKMeans(n_clusters=len(centroids), n_init=1, max_iter=1, random_state=0).fit(centroids)
    sk.cluster_centers_ = centroids.copy()  # the same codebook

    def forward() -> None:
        for w in waves:
            enc.encode([w], [layer])

    def tokenize() -> None:
        with tempfile.TemporaryDirectory() as d:
            tokenize_corpus(tok, utts, Path(d) / "u.jsonl", dedup=True, progress=False, resume=False)

    def padded() -> None:
        for w in waves:
            tok.frame_units([w])

    def naive() -> None:
        with tempfile.TemporaryDirectory() as d, open(Path(d) / "u.jsonl", "w") as f:
            for u in utts:
                x, sr = sf.read(str(u.path), dtype="float32")
                if sr != 16000:
                    x = soxr.resample(x, sr, 16000)
                feats = fe(x, sampling_rate=16000, return_tensors="pt").input_features
                with torch.no_grad():
                    hs = hf(feats, output_hidden_states=True).hidden_states
                n = enc.num_frames(len(x))
                ids = sk.predict(hs[layer][0, :n].numpy())
                f.write(json.dumps({"id": u.id, "units": dedup_ids(ids)[0].tolist()}) + "\n")

    results = interleaved({"forward": forward, "tokenize": tokenize}, args.runs)
    exact_units = [tok.frame_units([w])[0] for w in waves]
    enc.mode = "padded"
    results["padded"] = timed(padded, args.runs)
    padded_units = [tok.frame_units([w])[0] for w in waves]
    enc.mode = "exact"
    results["naive"] = timed(naive, args.runs)
    agree = float(np.mean(np.concatenate([np.asarray(a).reshape(-1) == np.asarray(b).reshape(-1)
                                          for a, b in zip(exact_units, padded_units)])))
    for name, r in results.items():
        r["s_per_audio_s"] = r["median_s"] / seconds
        print(f"{name:9s} median {r['median_s']:7.2f} s  (RTF {r['s_per_audio_s']:.4f})  "
              f"runs {[round(t, 2) for t in r['runs_s']]}")
    med = {k: v["median_s"] for k, v in results.items()}
    summary = {"tokenize_vs_forward": med["forward"] / med["tokenize"], "tokenize_vs_naive": med["naive"] / med["tokenize"],
               "padded_vs_exact_time": med["padded"] / med["forward"], "exact_padded_unit_agreement": agree}
    print(f"tokenize = {100 * summary['tokenize_vs_forward']:.1f}% of the forward pass; "
          f"{summary['tokenize_vs_naive']:.2f}x the naive loop; padded mode takes {summary['padded_vs_exact_time']:.2f}x "
          f"the exact forward; units agree on {100 * agree:.1f}% of frames (exact vs padded)")
    summary["stream"] = [stream_cost(tok, waves, exact_units, cap, args.chunk, args.shift) for cap in args.stream_caps]
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
            "files": len(utts), "audio_s": seconds, "layer": layer, "results": results, **summary}, indent=2))


def stream_cost(tok: Tokenizer, waves: list, offline: list, cap: float, chunk: float, shift: float) -> dict:
    from speechunits.tokens.distance import edit_distance

    step = int(round(shift * 16000))
    walls, dist, ref_len, late = [], 0, 0, 0
    for w, ref in zip(waves, offline):
        st = tok.stream(chunk_s=chunk, shift_s=shift, max_context_s=cap or None)
        pieces = [st.push(w[p : p + step]) for p in range(0, len(w), step)] + [st.flush()]
        rep = st.latency_report()
        walls += rep["encode_wall_s"]
        late += sum(x >= shift for x in rep["encode_wall_s"])
        ref = np.asarray(ref).reshape(-1)
        dist += edit_distance(ref, np.concatenate(pieces).reshape(-1))
        ref_len += len(ref)
    out = {"max_context_s": cap or None, "encode_wall_s_median": float(np.median(walls)),
           "encode_wall_s_p95": float(np.percentile(walls, 95)), "encode_wall_s_max": float(np.max(walls)),
           "late_share": late / len(walls), "ued_vs_offline": dist / ref_len}
    print(f"stream cap {cap or 'none':>4}: re-encode median {out['encode_wall_s_median'] * 1000:.0f} ms, "
          f"p95 {out['encode_wall_s_p95'] * 1000:.0f} ms, max {out['encode_wall_s_max'] * 1000:.0f} ms, "
          f"{100 * out['late_share']:.1f}% later than one shift; UED vs offline {out['ued_vs_offline']:.3f}")
    return out


if __name__ == "__main__":
    main()
