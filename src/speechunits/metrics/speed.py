"""Latency and real-time factor (RTF) of a tokenizer or any function of a waveform.

- latency of an utterance = wall-clock seconds of one ``fn(wave)`` call (``time.perf_counter``);
- RTF = total processing time / total audio duration (< 1 is faster than real time; DC-Spin
  reports RTF of its tokenizers this way);
- throughput = audio seconds processed per wall-clock second (``1 / RTF``), and utterances/s.

The first ``warmup`` calls (on the first waves, cycled if there are fewer) are run and not timed,
so one-off costs (lazy initialisation, allocator growth, kernel compilation) are excluded. For a
GPU function pass ``sync=torch.cuda.synchronize`` so that each timing includes the device work.

Example:
    >>> import numpy as np
    >>> r = measure_rtf(lambda w: np.fft.rfft(w), [np.zeros(16000)] * 3, sample_rate=16000)
    >>> r.num_utterances, r.audio_seconds, r.rtf < 1
    (3, 3.0, True)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence


class Timer:
    """Context manager measuring wall-clock seconds (``.elapsed``), optionally synchronising.

    >>> with Timer() as t:
    ...     _ = sum(range(1000))
    >>> t.elapsed >= 0
    True
    """

    def __init__(self, sync: Callable[[], Any] | None = None) -> None:
        self.sync = sync
        self.elapsed = 0.0
        self._t0 = 0.0

    def __enter__(self) -> "Timer":
        if self.sync is not None:
            self.sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sync is not None:
            self.sync()
        self.elapsed = time.perf_counter() - self._t0


@dataclass
class SpeedResult:
    num_utterances: int
    audio_seconds: float
    processing_seconds: float
    rtf: float
    throughput_audio_s_per_s: float
    utterances_per_s: float
    median_latency_s: float
    mean_latency_s: float
    p90_latency_s: float
    max_latency_s: float
    latencies_s: list[float] = field(repr=False, default_factory=list)

    def to_dict(self, with_latencies: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_latencies:
            d.pop("latencies_s")
        return d


def measure_rtf(
    fn: Callable[[Any], Any],
    waves: Sequence[Any],
    sample_rate: int,
    warmup: int = 1,
    sync: Callable[[], Any] | None = None,
) -> SpeedResult:
    """Time ``fn`` on each wave (1-D array-like, ``len`` = samples) and summarise (module doc)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if len(waves) == 0:
        raise ValueError("no waves to time")
    for i in range(max(0, warmup)):
        fn(waves[i % len(waves)])
    if sync is not None:
        sync()
    lat = []
    audio = 0.0
    for w in waves:
        with Timer(sync) as t:
            fn(w)
        lat.append(t.elapsed)
        audio += _num_samples(w) / sample_rate
    total = sum(lat)
    return SpeedResult(
        num_utterances=len(lat),
        audio_seconds=audio,
        processing_seconds=total,
        rtf=total / audio if audio > 0 else float("inf"),
        throughput_audio_s_per_s=audio / total if total > 0 else float("inf"),
        utterances_per_s=len(lat) / total if total > 0 else float("inf"),
        median_latency_s=statistics.median(lat),
        mean_latency_s=total / len(lat),
        p90_latency_s=_quantile(lat, 0.9),
        max_latency_s=max(lat),
        latencies_s=lat,
    )


def rtf(processing_seconds: float, audio_seconds: float) -> float:
    """Real-time factor ``processing / audio``.

    >>> rtf(0.5, 10.0)
    0.05
    """
    if audio_seconds <= 0:
        raise ValueError("audio duration must be > 0")
    return processing_seconds / audio_seconds


def _num_samples(w: Any) -> int:
    shape = getattr(w, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[-1])  # [..., samples] (mono [T] or [C, T])
    return len(w)


def _quantile(x: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) without numpy."""
    s = sorted(x)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
