"""K-means for speech units: streamed sampling, k-means++ restarts, Lloyd in torch, safetensors.

Fitting reads the features once (any iterable of ``[frames, dim]`` arrays, tensors or float16
memmaps), keeps a seeded uniform sample within ``max_frames`` / ``max_bytes`` / ``percent``
(:mod:`.sampling`), then for each of ``n_init`` restarts runs greedy k-means++ on ``init_size``
frames of the sample and Lloyd iterations on the whole sample, and keeps the restart with the
lowest inertia. Empty clusters are re-seeded with the farthest frames; a sample with fewer
distinct frames than ``k`` is a ValueError (duplicate centroids would waste unit ids and make
assignment ambiguous).

Defaults, and why: ``n_init=1`` (a restart costs a whole Lloyd run and buys less than the same
time spent iterating); greedy k-means++ on ``init_size = max(10k, min(10 k, 30k))`` frames (the
subsample size barely matters once Lloyd runs on the whole sample: 5k, 10k and 30k frames gave
the same inertia within 0.1% after 10 iterations at k = 500); Lloyd with triangle-inequality
pruning (``_lloyd.lloyd``) until an iteration gains less than ``tol = 2e-4`` of the inertia
(past that, the next 50 iterations buy ~0.3% for twice the time), at most ``max_iter = 100``.

Against fairseq's HuBERT recipe (sklearn ``MiniBatchKMeans``, n_init = 20) on the same 200k x 768
real-speech matrix, ``benchmarks/bench_kmeans.py`` measured 26.5x less CPU time at a 0.9% lower
inertia for k = 500 (Lloyd passes sklearn's final inertia after 9 iterations and stops after 26);
the numbers, the machine and k = 2000 are in BENCHMARKS.md.

faiss-cpu 1.15 (``--faiss``): with the MKL ``addmm`` GEMM, faiss's Lloyd was 5-15% faster per
iteration from the same k-means++ start on 100k frames (its OpenBLAS beats MKL on AMD), 2x on
20k frames at k = 100; DESIGN.md had it 2.6x slower. With the oneDNN GEMM now used
(``_lloyd.sq_dist_part``), the same iterations took 16.2 s here against faiss's 18.9 s (100k
frames, k = 500, same inertia). The torch path is kept: faster here, no extra dependency, the
same code on CUDA, tolerance-based stopping with an exact final inertia, determinism.

Example:
    >>> import numpy as np, tempfile
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(0, 10, (4, 8)).astype(np.float32)
    >>> x = np.concatenate([c + rng.normal(0, 0.1, (50, 8)).astype(np.float32) for c in centres])
    >>> km = KMeans(4, seed=0).fit(x)
    >>> km.assign(x).bincount().tolist()
    [50, 50, 50, 50]
    >>> d = tempfile.mkdtemp(); km.save_pretrained(d)
    >>> bool((KMeans.from_pretrained(d).assign(x) == km.assign(x)).all())
    True
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from typing import Iterable

import numpy as np
import torch

from .. import __version__
from . import _lloyd
from .checkpoint import CheckpointError, check_centroids, config_int, load_dir, save_dir
from .sampling import FrameSample, sample_frames

log = logging.getLogger("speechunits.quantizers.kmeans")

FORMAT_VERSION = 1


def _is_matrix(data) -> bool:
    return isinstance(data, (np.ndarray, torch.Tensor)) and data.ndim == 2


def as_rows(x) -> torch.Tensor:
    """``[N, D]`` array/tensor -> tensor sharing memory where possible (dtype kept)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    x = np.asarray(x)
    if any(st < 0 for st in x.strides):
        x = np.ascontiguousarray(x)
    with warnings.catch_warnings():  # read-only memmaps: torch warns, but rows are only read here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(x)


class KMeans:
    """K-means quantizer: ``fit`` on frames, ``assign`` frames to unit ids.

    Args:
        k: number of clusters (units).
        seed: seeds sampling, k-means++ and re-seeding; same data + seed -> same centroids.
        n_init: restarts (k-means++ + Lloyd each); the lowest final inertia wins.
        max_iter: Lloyd iterations per restart at most.
        tol: stop when an iteration lowers the inertia by less than ``tol`` (relative).
        init: ``"k-means++"`` (greedy: ``n_trials`` candidates a step), ``"random"`` or an
            explicit ``[k, dim]`` array of starting centroids.
        init_size: frames of the sample used for k-means++ (its cost is ``O(init_size * k)``
            sequential work); Lloyd then runs on the whole sample.
        n_trials: k-means++ candidates per step (default ``2 + ln k``, as sklearn; 1 = plain).
        device: where fitting and assignment run (``"cuda"`` works; float32 throughout).
        chunk: rows per distance block (memory ``chunk * k * 4`` bytes, a few times over).
    """

    def __init__(
        self,
        k: int,
        *,
        seed: int = 0,
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 2e-4,
        init: str | np.ndarray | torch.Tensor = "k-means++",
        init_size: int | None = None,
        n_trials: int | None = None,
        device: str | torch.device = "cpu",
        chunk: int = _lloyd.CHUNK,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if n_init < 1 or max_iter < 1:
            raise ValueError(f"n_init and max_iter must be >= 1, got {n_init}, {max_iter}")
        if isinstance(init, str) and init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array, got {init!r}")
        self.k, self.seed, self.n_init, self.max_iter, self.tol = k, seed, n_init, max_iter, tol
        self.init = init
        self.init_size = init_size if init_size is not None else max(10_000, min(10 * k, 30_000))
        self.n_trials = n_trials
        self.device = torch.device(device)
        self.chunk = chunk
        self.centroids: torch.Tensor | None = None
        self.fit_stats: dict = {}
        self._c_sq: torch.Tensor | None = None

    # ------------------------------------------------------------------ fitting
    def working_bytes(self, dims) -> tuple[int, int]:
        """Fit memory besides the float32 sample: ``(fixed bytes, bytes per sampled frame)``.

        Per frame: label (int64), distance bounds (float32: one upper, one lower per centroid
        group) and a few float32/int64 temporaries of the pruning step. Fixed: centroid copies
        (some float64), the ``[chunk, k]`` distance blocks, a few ``[chunk, dim]`` row blocks, the
        k-means++ work arrays (its subsample is a view of the shuffled sample, not a copy) and
        slack for the GEMM library's caches and the allocator (measured: the peak RSS growth of
        sampling + fit stays within sample + this estimate; ``benchmarks/bench_kmeans.py``).
        """
        dim = int(sum(dims))
        trials = self.n_trials or 2 + int(math.log(max(self.k, 2)))
        fixed = 8 * self.k * dim * 4 + 4 * self.chunk * self.k * 4 + 6 * self.chunk * dim * 4
        fixed += self.init_size * (16 + 8 * trials)
        fixed += 8 * self.k * dim * 4 + (4 << 20)  # GEMM library caches (oneDNN: ~1 MB a shape at
        # k = 500, dim = 768; a handful of shapes) and allocator slack
        return fixed, 48 + 4 * _lloyd.n_groups(self.k)

    def sample(
        self,
        stream: Iterable,
        *,
        max_frames: int | None = None,
        max_bytes: int | None = None,
        percent: float | None = None,
    ) -> FrameSample:
        """One pass over ``stream`` -> a uniform sample; ``max_bytes`` covers sample + fit."""
        return sample_frames(stream, max_frames=max_frames, max_bytes=max_bytes, percent=percent,
                             seed=self.seed, overhead=self.working_bytes)

    def fit(
        self,
        data,
        *,
        max_frames: int | None = None,
        max_bytes: int | None = None,
        percent: float | None = None,
    ) -> "KMeans":
        """Fit on a ``[N, D]`` array/tensor or an iterable of them (read once).

        With no budget an array is used whole (not copied when float32); a stream is then kept
        whole too. With a budget, frames are sampled as in :meth:`sample`.
        """
        if _is_matrix(data) and max_frames is None and max_bytes is None and percent is None:
            x = as_rows(data)
            return self._fit_rows(x, {"frames_seen": len(x), "frames_sampled": len(x)}, shuffled=False)
        stream = [data] if _is_matrix(data) else data
        return self.fit_sample(self.sample(stream, max_frames=max_frames, max_bytes=max_bytes, percent=percent))

    def fit_sample(self, sample: FrameSample | np.ndarray | torch.Tensor) -> "KMeans":
        """Fit on a :class:`FrameSample` (from :meth:`sample`) or a ``[N, D]`` matrix."""
        if isinstance(sample, FrameSample):
            return self._fit_rows(torch.from_numpy(sample.data), sample.summary(), shuffled=True)
        x = as_rows(sample)
        return self._fit_rows(x, {"frames_seen": len(x), "frames_sampled": len(x)}, shuffled=False)

    def _fit_rows(self, x: torch.Tensor, summary: dict, *, shuffled: bool) -> "KMeans":
        n = x.shape[0]
        if x.ndim != 2 or n == 0:
            raise ValueError(f"k-means needs a non-empty [frames, dim] sample, got shape {tuple(x.shape)}")
        if n < self.k:
            raise ValueError(f"k-means: {n} frames in the sample for k={self.k}; need at least k")
        x = x.to(self.device, torch.float32)  # no copy for a float32 CPU sample
        for s in range(0, n, self.chunk):  # NaN/inf would silently poison every centroid
            bad = ~torch.isfinite(x[s : s + self.chunk]).all(1)
            if bool(bad.any()):
                raise ValueError(f"k-means: frame {s + int(bad.nonzero()[0])} of the sample holds NaN or inf")
        t0 = time.perf_counter()
        restarts, best = [], None
        for r in range(self.n_init):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + r)
            t = time.perf_counter()
            c0 = self._initial(x, gen, r, shuffled)
            t_init = time.perf_counter() - t
            res = _lloyd.lloyd(x, c0, max_iter=self.max_iter, tol=self.tol, chunk=self.chunk, tag=f"restart {r}:")
            used = float((res.counts > 0).float().mean())
            stat = {"restart": r, "inertia": res.inertia, "inertia_per_frame": res.inertia / n,
                    "iterations": res.iterations, "utilization": used, "empty_reseeded": res.empty_reseeded,
                    "seconds": time.perf_counter() - t, "init_seconds": t_init,
                    "lloyd_seconds": time.perf_counter() - t - t_init, "history": res.history}
            log.info("k-means k=%d restart %d/%d: inertia/frame %.4f after %d iterations, utilization %.4f, "
                     "%d empty cluster(s) re-seeded, %.1fs", self.k, r + 1, self.n_init, res.inertia / n,
                     res.iterations, used, res.empty_reseeded, stat["seconds"])
            restarts.append(stat)
            if best is None or res.inertia < best[1].inertia:
                best = (r, res)
        r, res = best
        self.centroids = res.centroids.contiguous()
        self._c_sq = None
        empty_final = int((res.counts == 0).sum())
        self.fit_stats = {
            "k": self.k, "dim": int(x.shape[1]), "best_restart": r, "inertia": res.inertia,
            "inertia_per_frame": res.inertia / n, "iterations": res.iterations,
            "utilization": restarts[r]["utilization"], "empty_clusters": res.empty_reseeded,
            "empty_clusters_final": empty_final, "restarts": restarts, "seconds": time.perf_counter() - t0,
            **summary,
        }
        return self

    def _initial(self, x: torch.Tensor, gen: torch.Generator, restart: int, shuffled: bool) -> torch.Tensor:
        n, dim = x.shape
        if not isinstance(self.init, str):
            c = torch.as_tensor(np.asarray(self.init) if not isinstance(self.init, torch.Tensor) else self.init)
            if tuple(c.shape) != (self.k, dim):
                raise ValueError(f"init has shape {tuple(c.shape)}, expected ({self.k}, {dim})")
            return c.to(x.device, torch.float32).clone()
        if self.init == "random":
            idx = torch.randperm(n, generator=gen)[: self.k]
            return x[idx.to(x.device)].clone()
        m = min(self.init_size, n)
        m = m - m % 256 if m >= 512 else m  # a multiple of 256 rows takes the oneDNN GEMM (_lloyd)
        if shuffled and (restart + 1) * m <= n:  # windows of a shuffled sample are uniform samples
            sub = x[restart * m : (restart + 1) * m]
        else:
            sub = x[torch.randperm(n, generator=gen)[:m].to(x.device)]
        c, dup = _lloyd.kmeans_plusplus(sub, self.k, gen, n_trials=self.n_trials)
        if dup:
            log.warning("k-means++: only %d distinct frames in the init subsample for k=%d", self.k - dup, self.k)
        return c

    # ------------------------------------------------------------------ assignment
    def _check_fitted(self) -> torch.Tensor:
        if self.centroids is None:
            raise RuntimeError("KMeans is not fitted: call fit() or from_pretrained()")
        return self.centroids

    def _rows(self, x) -> torch.Tensor:
        c = self._check_fitted()
        t = as_rows(x)
        if t.ndim != 2 or t.shape[1] != c.shape[1]:
            raise ValueError(f"expected [frames, {c.shape[1]}] features, got shape {tuple(t.shape)}")
        return t

    def _norms(self) -> torch.Tensor:
        if self._c_sq is None or self._c_sq.device != self._check_fitted().device:
            self._c_sq = _lloyd.sq_norms(self.centroids)
        return self._c_sq

    @torch.no_grad()
    def assign(self, x) -> torch.Tensor:
        """Unit id of each frame: exact argmin of squared Euclidean distance, LongTensor [N].

        Runs in chunks of ``chunk`` rows on the centroids' device (the result lives there).
        """
        labels, _ = _lloyd.nearest(self._rows(x), self.centroids, c_sq=self._norms(), chunk=self.chunk)
        return labels

    @torch.no_grad()
    def distances(self, x) -> torch.Tensor:
        """Squared distance of each frame to its nearest centroid, float32 [N]."""
        _, dist = _lloyd.nearest(self._rows(x), self.centroids, c_sq=self._norms(), chunk=self.chunk)
        return dist

    @torch.no_grad()
    def transform(self, x) -> torch.Tensor:
        """Squared distances to every centroid, float32 [N, k] (mind the size for large N)."""
        t, c, c_sq = self._rows(x), self.centroids, self._norms()
        out = torch.empty(t.shape[0], self.k, dtype=torch.float32, device=c.device)
        for s in range(0, t.shape[0], self.chunk):
            xb = t[s : s + self.chunk].to(c.device, torch.float32)
            d = torch.addmm(c_sq, xb, c.T, alpha=-2.0).add_((xb * xb).sum(1, keepdim=True))
            out[s : s + self.chunk] = d.clamp_min_(0.0)
        return out

    def to(self, device: str | torch.device) -> "KMeans":
        self.device = torch.device(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(self.device)
        self._c_sq = None
        return self

    # ------------------------------------------------------------------ save / load
    @property
    def dim(self) -> int:
        return int(self._check_fitted().shape[1])

    def config(self) -> dict:
        """JSON-able description: type, k, dim, fit settings and fit results (no tensors)."""
        self._check_fitted()
        s = self.fit_stats
        return {
            "type": "kmeans", "format_version": FORMAT_VERSION, "speechunits_version": __version__,
            "k": self.k, "dim": self.dim, "metric": "squared_euclidean", "seed": self.seed,
            "n_init": self.n_init, "max_iter": self.max_iter, "tol": self.tol,
            "init": self.init if isinstance(self.init, str) else "array", "init_size": self.init_size,
            "n_trials": self.n_trials, "iterations": s.get("iterations"), "inertia": s.get("inertia"),
            "inertia_per_frame": s.get("inertia_per_frame"), "utilization": s.get("utilization"),
            "empty_clusters": s.get("empty_clusters"),
            "fit_data": {key: s[key] for key in ("frames_seen", "frames_sampled", "capacity", "rate", "sample_seed")
                         if key in s},
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"centroids": self._check_fitted()}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor], *, device: str | torch.device = "cpu",
                   source: object = "<state>") -> "KMeans":
        """Rebuild from :meth:`config` + :meth:`state_dict`; CheckpointError (ValueError) if inconsistent."""
        if config.get("type") != "kmeans":
            raise CheckpointError(source, f"config type is {config.get('type')!r}, expected 'kmeans'")
        k, dim = config_int(config, "k", source), config_int(config, "dim", source)
        c = check_centroids(tensors, "centroids", k, dim, source)
        km = cls(k, seed=int(config.get("seed", 0)), n_init=int(config.get("n_init", 1)),
                 max_iter=int(config.get("max_iter", 1)), tol=float(config.get("tol", 0.0)),
                 init_size=config.get("init_size"), n_trials=config.get("n_trials"), device=device)
        km.centroids = c.to(km.device).contiguous()
        km.fit_stats = {key: config[key] for key in ("iterations", "inertia", "inertia_per_frame", "utilization",
                                                     "empty_clusters") if config.get(key) is not None}
        km.fit_stats.update(config.get("fit_data") or {})
        return km

    @classmethod
    def from_centroids(cls, centroids, **kwargs) -> "KMeans":
        """A KMeans around given ``[k, dim]`` centroids (e.g. from another tool)."""
        c = as_rows(centroids).float()
        km = cls(int(c.shape[0]), **kwargs)
        km.centroids = c.to(km.device).contiguous()
        return km

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path`` (atomically)."""
        save_dir(path, self.config(), self.state_dict())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "KMeans":
        config, tensors = load_dir(path, expected_type="kmeans")
        return cls.from_state(config, tensors, device=device, source=os.path.join(path, "model.safetensors"))

    def __repr__(self) -> str:
        fitted = f", dim={self.dim}" if self.centroids is not None else ", unfitted"
        return f"KMeans(k={self.k}{fitted}, device={self.device})"
