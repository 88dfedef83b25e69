"""Seeded uniform sampling of frames from a stream of feature arrays, within a memory budget.

k-means is fitted on a sample, not on the whole feature dump: the stream (one ``[frames, dim]``
array per utterance, e.g. float16 memmaps) is read once and a reservoir keeps a uniform random
sample of at most ``capacity`` frames (Vitter's algorithm R, vectorized per array). Memory is the
reservoir plus the rows accepted from the current array, whatever the stream's length.

Budgets, combinable (the tightest wins):

- ``max_frames``: at most this many frames;
- ``max_bytes``: the reservoir (float32) plus whatever the caller declares through ``overhead``
  (the k-means working set) stays within this many bytes;
- ``percent``: each frame is kept independently with this probability (a Bernoulli thinning
  before the reservoir, so no stream length is needed). Without a frame or byte cap, memory then
  grows with the stream.

Several arrays per item (one per layer: ``[frames, L, D]`` or a sequence of ``[frames, D_i]``)
share the sampling decisions, so the per-layer samples hold the same frames.

The finished sample is shuffled in place, so any prefix of it is itself a uniform sample (used
for a cheap k-means++ initialisation without copying).

Example:
    >>> import numpy as np
    >>> stream = (np.full((100, 4), i, np.float16) for i in range(50))
    >>> s = sample_frames(stream, max_frames=300, seed=0)
    >>> s.arrays[0].shape, s.arrays[0].dtype, s.frames_seen
    ((300, 4), dtype('float32'), 5000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

# overhead(dims) -> (fixed bytes, extra bytes per sampled frame) beyond the float32 rows
Overhead = Callable[[Sequence[int]], tuple[int, int]]
_GROW_FROM = 1 << 14  # initial buffer rows; buffers double up to the capacity as frames arrive


@dataclass
class FrameSample:
    """A uniform sample of frames: ``arrays[i]`` is ``[n, dim_i]`` float32, rows shuffled."""

    arrays: list[np.ndarray]
    frames_seen: int  # frames in the stream
    capacity: int | None  # reservoir size the budget allowed (None: unbounded)
    rate: float | None  # Bernoulli keep probability from ``percent``
    seed: int

    @property
    def data(self) -> np.ndarray:
        """The only array of a single-view sample."""
        if len(self.arrays) != 1:
            raise ValueError(f"sample has {len(self.arrays)} views; use .arrays")
        return self.arrays[0]

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def summary(self) -> dict:
        return {"frames_seen": self.frames_seen, "frames_sampled": len(self), "capacity": self.capacity,
                "rate": self.rate, "sample_seed": self.seed, "sample_bytes": sum(a.nbytes for a in self.arrays)}


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy() if a.dtype != torch.bfloat16 else a.detach().float().cpu().numpy()
    if not isinstance(a, np.ndarray):  # memmaps are ndarrays and stay lazy
        a = np.asarray(a)
    return a


def split_views(item) -> list[np.ndarray]:
    """One item of a stream -> list of ``[frames, dim]`` arrays (one per view / layer).

    ``[frames, dim]`` -> one view; ``[frames, L, dim]`` -> L views; a sequence -> its elements.
    """
    if isinstance(item, (list, tuple)):
        return [_as_numpy(a) for a in item]
    a = _as_numpy(item)
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        return [a[:, i] for i in range(a.shape[1])]
    raise ValueError(f"expected a [frames, dim] or [frames, layers, dim] array, got shape {a.shape}")


class FrameSampler:
    """Streaming uniform frame sampler; see the module docstring.

    >>> import numpy as np
    >>> s = FrameSampler(max_frames=10, seed=1)
    >>> for i in range(5):
    ...     s.add(np.random.default_rng(i).standard_normal((7, 3)))
    >>> len(s.finish())
    10
    """

    def __init__(
        self,
        *,
        max_frames: int | None = None,
        max_bytes: int | None = None,
        percent: float | None = None,
        seed: int = 0,
        overhead: Overhead | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if percent is not None and not 0.0 < percent <= 100.0:
            raise ValueError(f"percent must be in (0, 100], got {percent}")
        self.max_frames, self.max_bytes, self.seed = max_frames, max_bytes, seed
        self.rate = None if percent is None or percent >= 100.0 else percent / 100.0
        self.overhead = overhead or (lambda dims: (0, 0))
        self.rng = np.random.default_rng(seed)
        self.capacity: int | None = None
        self.dims: list[int] | None = None
        self.res: list[np.ndarray] = []  # one growable float32 buffer per view
        self.filled = 0  # rows in the buffers
        self.kept = 0  # frames that passed the thinning (the reservoir's "stream")
        self.seen = 0

    def _start(self, views: list[np.ndarray]) -> None:
        self.dims = [int(v.shape[1]) for v in views]
        cap = self.max_frames
        if self.max_bytes is not None:
            fixed, extra = self.overhead(self.dims)
            per_frame = 4 * sum(self.dims) + extra
            by_bytes = (self.max_bytes - fixed) // per_frame
            if by_bytes < 1:
                raise ValueError(
                    f"max_bytes={self.max_bytes} leaves no room for frames (fixed working memory "
                    f"{fixed} bytes, {per_frame} bytes per frame)")
            cap = by_bytes if cap is None else min(cap, by_bytes)
        self.capacity = cap
        # Under a byte budget the buffers are allocated at capacity at once: np.empty only reserves
        # address space and pages count once written, whereas growing (ndarray.resize) may copy and
        # briefly hold both sizes. Without one they grow by doubling as frames arrive, so a huge
        # max_frames on a short stream reserves nothing.
        start = cap if self.max_bytes is not None else min(cap or _GROW_FROM, _GROW_FROM)
        self.res = [np.empty((start, d), dtype=np.float32) for d in self.dims]

    def _reserve(self, rows: int) -> None:
        """Grow the buffers to hold ``rows`` (doubling, never past the capacity)."""
        have = self.res[0].shape[0]
        if rows <= have:
            return
        new = max(rows, 2 * have) if self.capacity is None else min(self.capacity, max(rows, 2 * have))
        for r in self.res:
            r.resize((new, r.shape[1]), refcheck=False)

    def add(self, item) -> None:
        """Offer one item (``[frames, dim]``, ``[frames, L, dim]`` or a list of per-view arrays)."""
        views = split_views(item)
        n = int(views[0].shape[0])
        if any(int(v.shape[0]) != n or v.ndim != 2 for v in views):
            raise ValueError(f"views disagree on frames: {[tuple(v.shape) for v in views]}")
        if self.dims is None:
            self._start(views)
        elif [int(v.shape[1]) for v in views] != self.dims:
            raise ValueError(f"feature dims changed mid-stream: {self.dims} -> {[v.shape[1] for v in views]}")
        self.seen += n
        if n == 0:
            return
        rows = np.arange(n) if self.rate is None else np.flatnonzero(self.rng.random(n) < self.rate)
        room = len(rows) if self.capacity is None else self.capacity - self.filled
        fill = min(len(rows), room)
        if fill:
            self._reserve(self.filled + fill)
            head = slice(0, fill) if self.rate is None else rows[:fill]  # a slice avoids a copy
            for r, v in zip(self.res, views):
                r[self.filled : self.filled + fill] = v[head]
            self.filled += fill
        rest = rows[fill:]
        if len(rest):
            # algorithm R: the i-th kept frame (0-based) replaces a uniform slot w.p. capacity/(i+1)
            pos = self.kept + fill + np.arange(len(rest))
            take = self.rng.random(len(rest)) * (pos + 1) < self.capacity
            src = rest[take]
            slots = self.rng.integers(0, self.capacity, size=len(src))
            # later frames overwrite earlier ones in the same slot: keep only the last per slot
            slots_rev, first = np.unique(slots[::-1], return_index=True)
            src = src[::-1][first]
            for r, v in zip(self.res, views):
                r[slots_rev] = v[src]
        self.kept += len(rows)

    def finish(self) -> FrameSample:
        """The sample, rows shuffled in place (so every prefix is a uniform sample)."""
        if self.dims is None:
            raise ValueError("the feature stream was empty: no frames to sample")
        arrays, self.res = self.res, []
        if self.max_bytes is not None:  # a view: the never-written tail holds no memory
            arrays = [a[: self.filled] for a in arrays]
        else:  # grown buffers were zero-filled past ``filled``: give the tail back
            for a in arrays:
                a.resize((self.filled, a.shape[1]), refcheck=False)
        order_seed = int(self.rng.integers(2**63))
        for a in arrays:  # same seed -> same permutation for every view; shuffle is in place
            np.random.default_rng(order_seed).shuffle(a)
        return FrameSample(arrays, self.seen, self.capacity, self.rate, self.seed)


def sample_frames(
    stream: Iterable,
    *,
    max_frames: int | None = None,
    max_bytes: int | None = None,
    percent: float | None = None,
    seed: int = 0,
    overhead: Overhead | None = None,
) -> FrameSample:
    """Read ``stream`` once and return a :class:`FrameSample` within the budget."""
    sampler = FrameSampler(max_frames=max_frames, max_bytes=max_bytes, percent=percent, seed=seed, overhead=overhead)
    for item in stream:
        sampler.add(item)
    return sampler.finish()
