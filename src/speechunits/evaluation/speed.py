"""Speed of a tokenizer: offline latency and RTF, chunk-wise streaming RTF and its agreement.

- **offline**: :func:`speechunits.metrics.measure_rtf` of ``Tokenizer.frame_units([wave])``, one
  utterance at a time after one warm-up call: latency per utterance (median, mean, p90, max) and
  RTF = processing seconds / audio seconds.
- **streaming**: each utterance is pushed through ``Tokenizer.stream(chunk_s, shift_s)`` (DC-Spin's
  chunk-wise scheme, context growing from the start) ``shift_s`` seconds at a time, then flushed.
  RTF = wall seconds of all pushes and flushes / audio seconds; agreement with offline units =
  corpus unit edit distance on frame-level ids (streamed vs offline, offline as reference, no
  de-duplication: streaming must reproduce every frame) and the share of frames that agree
  (:func:`speechunits.tokens.stream_agreement`), plus the slowest re-encode and whether every
  re-encode finished within one shift (a real-time stream keeps up).

Both run on seeded subsets bounded in audio seconds, since the growing context makes streaming
cost grow with the square of the utterance length.

Example:
    >>> import numpy as np
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.fit import fit_tokenizer
    >>> waves = [np.random.default_rng(0).standard_normal(24000).astype("float32") * 0.1]
    >>> tok = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=4, seed=0)
    >>> s = streaming_speed(tok, waves, ["u"])
    >>> s["unit_edit_distance"], s["exact_share"]
    (0.0, 1.0)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from speechunits.metrics import measure_rtf
from speechunits.tokens import edit_distance, stream_agreement

from ._result import skipped


def offline_speed(tok: Any, waves: Sequence[np.ndarray], sync: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Latency per utterance and RTF of offline tokenization (one utterance per call)."""
    r = measure_rtf(lambda w: tok.frame_units([w]), list(waves), tok.encoder.sample_rate, warmup=1, sync=sync)
    return r.to_dict()


def streaming_speed(tok: Any, waves: Sequence[np.ndarray], utt_ids: Sequence[str], *, chunk_s: float = 1.0,
                    shift_s: float = 0.4, offline: Sequence[np.ndarray] | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """RTF of chunk-wise streaming and agreement with offline units (module docstring)."""
    if len(tok.layers) != 1:
        return skipped(f"streaming emits single-layer units; this tokenizer has layers {tok.layers}")
    from tqdm import tqdm

    sr = tok.encoder.sample_rate
    step = int(round(shift_s * sr))
    wall = audio = 0.0
    dist = ref_len = 0
    agree, exact, keeps_up, worst = [], [], [], 0.0
    for i, w in enumerate(tqdm(waves, unit="utt", desc="streaming", disable=not progress)):
        streamer = tok.stream(chunk_s=chunk_s, shift_s=shift_s)
        pieces = []
        t0 = time.perf_counter()
        for pos in range(0, len(w), step):
            pieces.append(streamer.push(w[pos: pos + step]))
        pieces.append(streamer.flush())
        wall += time.perf_counter() - t0
        audio += len(w) / sr
        streamed = np.concatenate(pieces)
        ref = offline[i] if offline is not None else tok.frame_units([w])[0]
        a = stream_agreement(streamed, ref)
        dist += edit_distance(ref, streamed)
        ref_len += len(ref)
        agree.append(a["frame_agreement"])
        exact.append(a["exact"])
        lat = streamer.latency_report()
        keeps_up.append(lat["keeps_up"])
        worst = max(worst, lat["encode_wall_s_max"])
    return {
        "chunk_s": chunk_s,
        "shift_s": shift_s,
        "utterances": len(waves),
        "audio_seconds": audio,
        "processing_seconds": wall,
        "rtf": wall / audio if audio else None,
        "unit_edit_distance": dist / ref_len if ref_len else None,
        "frame_agreement": float(np.mean(agree)) if agree else None,
        "exact_share": float(np.mean(exact)) if exact else None,
        "encode_wall_s_max": worst,
        "keeps_up_share": float(np.mean(keeps_up)) if keeps_up else None,
        "algorithmic_latency_s": {"min": chunk_s - shift_s, "max": chunk_s},
    }
