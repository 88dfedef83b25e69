"""Chunk-wise streaming tokenization with a growing context (DC-Spin's streaming scheme).

An offline tokenizer (``frame_units_fn``: audio -> one unit per frame) is re-run on the audio
received so far, every ``shift_s`` seconds once the first ``chunk_s`` seconds are in. Each run
emits the units of the frames that just became *final*; a unit, once emitted, is never revised.

Definitions (all in samples; ``F = num_frames_fn`` maps an audio length to its frame count):

- step ``n`` happens when ``end_n = chunk + n * shift`` samples have arrived;
- ``lookahead = chunk - shift``: the right context every emitted frame is guaranteed to have;
- after step ``n`` the first ``F(end_n - lookahead)`` frames are final, i.e. the frames whose
  window lies entirely before ``end_n - lookahead``. Step ``n`` emits frames
  ``[F(end_{n-1} - lookahead), F(end_n - lookahead))``; ``flush()`` emits the rest up to
  ``F(total)``. So every frame of the offline run is emitted exactly once, in order, for any
  length and any way the audio is split into ``push`` calls (steps fall at fixed sample counts).

The context grows from the start of the stream. With ``max_context_s`` the oldest audio is dropped,
in whole hops so the frame grid is unchanged, but never audio that a not-yet-emitted frame needs:
each context is at most ``max(max_context_s, chunk_s + one frame window)`` long.
If the encoder's receptive field reaches at most ``lookahead`` to the right (and, with a capped
context, at most ``max_context - chunk`` to the left), the streamed units equal the offline units
exactly; otherwise they differ at some frames but the count is still exact.

Latency: a frame is emitted after ``lookahead`` seconds of audio beyond its window, plus the wait
for the next step (< ``shift``): between ``chunk - shift`` and ``chunk`` seconds (algorithmic),
plus the wall time of the re-encode (compute), which :meth:`StreamingTokenizer.latency_report`
measures per step. The growing context makes the re-encode cost grow with the stream length;
``max_context_s`` bounds it.

(This follows the chunk-wise approach named in the DC-Spin paper: T_chunk, T_shift, context
growing from the start; the exact "final frame" rule above is this library's definition.)

Example:
    >>> import numpy as np
    >>> nf = lambda n: max(0, (n - 400) // 320 + 1)
    >>> fu = lambda a: np.array([int(abs(a[320 * i:320 * i + 400]).mean() * 10) for i in range(nf(len(a)))])
    >>> audio = np.random.default_rng(0).uniform(-1, 1, 40000).astype(np.float32)
    >>> st = StreamingTokenizer(fu, nf, chunk_s=1.0, shift_s=0.4)
    >>> out = np.concatenate([st.push(audio[i:i + 1000]) for i in range(0, len(audio), 1000)] + [st.flush()])
    >>> bool(np.array_equal(out, fu(audio)))
    True
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from .distance import edit_distance
from .units import Units


class StreamingTokenizer:
    """Incremental unit extraction: ``push(samples) -> new final units``, ``flush() -> the rest``.

    Args:
        frame_units_fn: offline tokenizer, audio ``[n]`` -> units ``[num_frames_fn(n)]`` (or
            ``[num_frames_fn(n), L]``); frame ``i`` must cover samples from ``i * hop``.
        num_frames_fn: frames for ``n`` samples, e.g. ``floor((n - 400) / 320) + 1``.
        chunk_s, shift_s: T_chunk and T_shift in seconds (``0 < shift_s <= chunk_s``).
        max_context_s: cap on the audio given to each re-encode (``>= chunk_s``); None = all.
        sample_rate, frame_rate: hop = sample_rate / frame_rate samples (must be whole).
    """

    def __init__(
        self,
        frame_units_fn: Callable[[np.ndarray], np.ndarray],
        num_frames_fn: Callable[[int], int],
        chunk_s: float = 1.0,
        shift_s: float = 0.4,
        max_context_s: float | None = None,
        sample_rate: int = 16000,
        frame_rate: float = 50.0,
    ) -> None:
        hop = sample_rate / frame_rate
        if hop != int(hop):
            raise ValueError(f"sample_rate/frame_rate = {hop} is not a whole number of samples")
        self.hop = int(hop)
        self.sample_rate = int(sample_rate)
        self.chunk = int(round(chunk_s * sample_rate))
        self.shift = int(round(shift_s * sample_rate))
        if not 0 < self.shift <= self.chunk:
            raise ValueError(f"need 0 < shift_s <= chunk_s, got {shift_s}, {chunk_s}")
        self.lookahead = self.chunk - self.shift
        self.max_context = None if max_context_s is None else int(round(max_context_s * sample_rate))
        if self.max_context is not None and self.max_context < self.chunk:
            raise ValueError(f"max_context_s={max_context_s} must be >= chunk_s={chunk_s}")
        self._fn = frame_units_fn
        self._nf = num_frames_fn
        self.reset()

    def reset(self) -> None:
        """Start a new stream (keeps the settings, clears audio, counters and timings)."""
        # Growable buffer (capacity doubles) so many small pushes cost O(total), not O(n^2).
        self._store = np.zeros(max(self.chunk, 1), dtype=np.float32)
        self._len = 0  # valid samples in _store
        self._buf_start = 0  # global sample index of _store[0]; always a multiple of hop
        self._received = 0
        self._next_step = self.chunk
        self._emitted = 0
        self._closed = False
        self.steps: list[dict[str, float]] = []  # one record per re-encode

    # ------------------------------------------------------------------ public API
    @property
    def num_emitted(self) -> int:
        """Frames emitted so far."""
        return self._emitted

    @property
    def buffered_samples(self) -> int:
        """Audio currently held (bounded by about max_context + one push when capped)."""
        return self._len

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add audio; return the units that became final (possibly none)."""
        if self._closed:
            raise RuntimeError("stream already flushed; call reset() to start a new one")
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"push() takes mono samples [n], got shape {samples.shape}")
        if self._len + len(samples) > len(self._store):
            grown = np.zeros(max(2 * len(self._store), self._len + len(samples)), np.float32)
            grown[: self._len] = self._store[: self._len]
            self._store = grown
        self._store[self._len : self._len + len(samples)] = samples
        self._len += len(samples)
        self._received += len(samples)
        out = []
        while self._received >= self._next_step:
            out.append(self._step(self._next_step, self._frames(self._next_step - self.lookahead)))
            self._next_step += self.shift
        return self._cat(out)

    def flush(self) -> np.ndarray:
        """End of stream: return all remaining units (the last frames use the real right edge)."""
        if self._closed:
            raise RuntimeError("stream already flushed; call reset() to start a new one")
        out = self._step(self._received, self._frames(self._received))
        self._closed = True
        return out

    def stream_all(self, audio: np.ndarray, block: int = 1600) -> np.ndarray:
        """Feed ``audio`` in blocks of ``block`` samples, flush, and return all units."""
        self.reset()
        parts = [self.push(audio[i : i + block]) for i in range(0, len(audio), block)]
        return self._cat(parts + [self.flush()])

    def latency_report(self) -> dict[str, Any]:
        """Algorithmic latency bounds and the measured wall time of each re-encode."""
        wall = np.array([s["wall_s"] for s in self.steps]) if self.steps else np.zeros(0)
        ctx = np.array([s["context_s"] for s in self.steps]) if self.steps else np.zeros(0)
        sr = self.sample_rate
        return {
            "chunk_s": self.chunk / sr,
            "shift_s": self.shift / sr,
            "lookahead_s": self.lookahead / sr,
            "max_algorithmic_latency_s": self.chunk / sr,
            "num_encodes": len(self.steps),
            "encode_wall_s_mean": float(wall.mean()) if len(wall) else 0.0,
            "encode_wall_s_max": float(wall.max()) if len(wall) else 0.0,
            "encode_wall_s": wall.tolist(),
            "context_s_max": float(ctx.max()) if len(ctx) else 0.0,
            # A real-time stream needs each re-encode to finish within one shift.
            "keeps_up": bool(len(wall) == 0 or wall.max() < self.shift / sr),
        }

    # ------------------------------------------------------------------ internals
    def _frames(self, n_samples: int) -> int:
        return max(0, int(self._nf(max(0, n_samples))))

    def _step(self, end: int, target: int) -> np.ndarray:
        """Re-encode the context ending at global sample ``end``; emit frames up to ``target``."""
        if target <= self._emitted:
            return self._cat([])
        ctx_start = self._buf_start if self.max_context is None else self._context_start(end)
        # A copy: the encoder may modify its input in place, and this buffer is reused.
        ctx = self._store[ctx_start - self._buf_start : end - self._buf_start].copy()
        t0 = time.perf_counter()
        units = np.asarray(self._fn(ctx))
        wall = time.perf_counter() - t0
        expect = self._frames(len(ctx))
        if units.ndim not in (1, 2) or len(units) != expect:
            raise ValueError(
                f"frame_units_fn returned shape {units.shape} for {len(ctx)} samples; "
                f"num_frames_fn says {expect} frames"
            )
        first = ctx_start // self.hop
        lo, hi = self._emitted - first, target - first
        if hi > len(units):
            raise ValueError(
                "frames are not on a hop grid: context from sample "
                f"{ctx_start} lacks global frame {target - 1}"
            )
        new = units[lo:hi].astype(np.int64, copy=False)
        self._emitted = target
        self.steps.append(
            {"end_s": end / self.sample_rate, "context_s": len(ctx) / self.sample_rate,
             "wall_s": wall, "new_frames": float(len(new))}
        )
        if self.max_context is not None:
            # Both terms of _context_start only grow, so no later context starts earlier.
            self._drop_before(self._context_start(end))
        return new

    def _context_start(self, end: int) -> int:
        """First sample of a capped context ending at ``end``: ``max_context`` back, rounded up
        to a hop (the frame grid must not move), but never past the first frame not yet emitted."""
        capped = -(-max(0, end - self.max_context) // self.hop) * self.hop
        return max(self._buf_start, min(capped, self._emitted * self.hop))

    def _drop_before(self, start: int) -> None:
        """Free audio before global sample ``start``."""
        cut = start - self._buf_start
        if cut > 0:
            self._store[: self._len - cut] = self._store[cut : self._len]
            self._len -= cut
            self._buf_start = start

    @staticmethod
    def _cat(parts: list[np.ndarray]) -> np.ndarray:
        parts = [p for p in parts if len(p)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def stream_agreement(
    units_stream: np.ndarray | Units, units_offline: np.ndarray | Units
) -> dict[str, Any]:
    """How far streamed units are from the offline ones (offline = reference).

    Returns ``num_stream``, ``num_offline``, ``same_length``, ``edit_distance``,
    ``unit_edit_distance`` (distance / offline length; 0.0 when both are empty, inf when only
    the offline units are),
    ``frame_agreement`` (share of aligned positions with equal units, over the longer length)
    and ``exact``.

    >>> stream_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 9, 4]))["unit_edit_distance"]
    0.25
    """
    from .dedup import expand  # frame-level comparison: undo de-duplication if present

    a = expand(units_stream).ids if isinstance(units_stream, Units) else np.asarray(units_stream)
    b = expand(units_offline).ids if isinstance(units_offline, Units) else np.asarray(units_offline)
    dist = edit_distance(b, a)
    n = min(len(a), len(b))
    equal = a[:n] == b[:n]
    if equal.ndim == 2:
        equal = equal.all(axis=1)
    longest = max(len(a), len(b))
    return {
        "num_stream": int(len(a)),
        "num_offline": int(len(b)),
        "same_length": len(a) == len(b),
        "edit_distance": int(dist),
        "unit_edit_distance": dist / len(b) if len(b) else (0.0 if dist == 0 else float("inf")),
        "frame_agreement": float(equal.sum()) / longest if longest else 1.0,
        "exact": len(a) == len(b) and bool(equal.all()),
    }
