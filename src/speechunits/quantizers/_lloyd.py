"""Torch kernels behind :class:`~speechunits.quantizers.kmeans.KMeans`.

Everything works on ``[N, D]`` float32 tensors in chunks of rows, so the only ``O(N * k)`` object
ever alive is one ``[chunk, k]`` distance block. Squared distances use the expansion
``||x||^2 + ||c||^2 - 2 x.c``: one GEMM per chunk (:func:`sq_dist_part`; DESIGN.md: ~300k
vectors/s at k = 500 on 2 cores), which is what makes Lloyd on the full sample affordable.

Randomness always comes from a CPU ``torch.Generator``, so CPU and CUDA runs draw the same
indices. Sums per cluster use ``index_add_`` on CPU (a serial, hence deterministic, reduction) and
a one-hot matmul on CUDA (``index_add_`` there uses atomics, whose order varies run to run).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch

log = logging.getLogger("speechunits.quantizers.kmeans")

CHUNK = 2048


def rel_err(dim: int) -> float:
    """Bound on the error of the expanded squared distance in float32, relative to
    ``||x||^2 + ||c||^2``: a D-term dot product loses ~sqrt(D) ulps (measured: 1.3e-6 at D = 768
    with oneDNN, 5e-7 with MKL); 16x that. ``nearest`` re-checks gaps below it in float64 and the
    pruning bounds of ``lloyd`` are widened by it, so both stay exact."""
    return 16.0 * math.sqrt(max(dim, 1)) * 2.0**-24


_ONEDNN: bool | None = None  # does torch's oneDNN linear kernel work here? (probed on first use)
_ONEDNN_ROWS = 256  # oneDNN only for row counts that are multiples of this (see sq_dist_part)


def sq_dist_part(xb: torch.Tensor, c_neg2: torch.Tensor, c_sq: torch.Tensor) -> torch.Tensor:
    """``||c||^2 - 2 x.c`` for a block of rows, ``[b, k]``, given ``c_neg2 = -2 c`` (exact scaling).

    On CPU this calls oneDNN's linear kernel (``torch.ops.mkldnn._linear_pointwise``, what
    torch.compile uses for CPU linears): 1.2-1.7x the speed of ``addmm`` (MKL) on the AMD EPYC
    machines here, within the same float32 error. oneDNN keeps ~1 MB of cached state per distinct
    problem shape, so it only gets row counts that are multiples of 256 (full chunks: a handful
    of shapes); ragged blocks, and anywhere the op is missing or fails, use ``addmm``.
    """
    global _ONEDNN
    rows = xb.shape[0]
    if xb.device.type == "cpu" and _ONEDNN is not False and rows % _ONEDNN_ROWS == 0 and 0 < rows:
        try:
            out = torch.ops.mkldnn._linear_pointwise(xb.contiguous(), c_neg2, c_sq, "none", [], "")
            _ONEDNN = True
            return out
        except (AttributeError, RuntimeError, NotImplementedError, TypeError):  # no oneDNN / op changed
            _ONEDNN = False
    return torch.addmm(c_sq, xb, c_neg2.T)


def sq_norms(x: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """Row-wise squared norms, chunked so no ``[N, D]`` temporary is made."""
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for s in range(0, x.shape[0], chunk):
        xb = x[s : s + chunk].float()
        out[s : s + chunk] = (xb * xb).sum(1)
    return out


def nearest(
    x: torch.Tensor,
    centroids: torch.Tensor,
    *,
    c_sq: torch.Tensor | None = None,
    exact: bool = True,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of, and squared distance to, the nearest centroid of every row of ``x``.

    Rows are moved to the centroids' device one chunk at a time. With ``exact`` the two best
    candidates are kept and every row whose gap is within the float32 error bound is recomputed
    in float64, so the result equals a float64 brute-force argmin (ties -> lowest index).
    """
    dev = centroids.device
    k = centroids.shape[0]
    c_sq = sq_norms(centroids) if c_sq is None else c_sq
    c_sq_max = float(c_sq.max()) if k else 0.0
    c_neg2 = centroids * -2.0
    tol = rel_err(centroids.shape[1])
    labels = torch.empty(x.shape[0], dtype=torch.long, device=dev)
    dist = torch.empty(x.shape[0], dtype=torch.float32, device=dev)
    c64 = None
    for s in range(0, x.shape[0], chunk):
        xb = x[s : s + chunk].to(dev, torch.float32, non_blocking=True)
        x_sq = (xb * xb).sum(1)
        d = sq_dist_part(xb, c_neg2, c_sq)  # ||c||^2 - 2 x.c
        if exact and k > 1:
            top, idx = d.topk(2, dim=1, largest=False)
            lab, best = idx[:, 0].clone(), top[:, 0].clone()
            unsure = (top[:, 1] - top[:, 0]) <= 2.0 * tol * (x_sq + c_sq_max)
            if bool(unsure.any()):
                rows = unsure.nonzero().squeeze(1)
                if c64 is None:
                    c64 = centroids.double()
                    c64_sq = (c64 * c64).sum(1)
                xr = xb[rows].double()
                d64 = torch.addmm(c64_sq, xr, c64.T, alpha=-2.0)
                v64, i64 = d64.min(1)  # min() returns the first index among exact ties
                lab[rows] = i64
                best[rows] = v64.float()
        else:
            best, lab = d.min(1)
        labels[s : s + chunk] = lab
        dist[s : s + chunk] = (best + x_sq).clamp_min_(0.0)
    return labels, dist


def kmeans_plusplus(
    x: torch.Tensor, k: int, gen: torch.Generator, *, n_trials: int | None = None
) -> tuple[torch.Tensor, int]:
    """Greedy k-means++ (Arthur & Vassilvitskii; sklearn's variant): each step samples
    ``n_trials`` candidates by D^2 weighting and keeps the one that lowers the potential most.

    ``n_trials=1`` is plain k-means++. Returns ``(centroids [k, D], n_duplicates)``: when fewer
    than ``k`` distinct points exist the remaining centres are copies of random points (the
    caller's empty-cluster handling then re-seeds or rejects them).
    """
    m, dim = x.shape
    dev = x.device
    n_trials = n_trials or 2 + int(math.log(k))
    x_sq = sq_norms(x)
    centers = torch.empty(k, dim, dtype=torch.float32, device=dev)
    first = int(torch.randint(m, (1,), generator=gen))
    centers[0] = x[first]
    closest = (x_sq + x_sq[first] - 2.0 * (x @ x[first])).clamp_min_(0.0)
    for i in range(1, k):
        cum = torch.cumsum(closest, 0, dtype=torch.float64)
        total = cum[-1]
        if not bool(total > 0):  # every point sits on a chosen centre: no distinct point left
            fill = torch.randint(m, (k - i,), generator=gen).to(dev)
            centers[i:] = x[fill]
            return centers, k - i
        r = torch.rand(n_trials, generator=gen, dtype=torch.float64).to(dev) * total
        cand = torch.searchsorted(cum, r).clamp_(max=m - 1)
        pts = x[cand]  # [t, D]
        d = sq_dist_part(x, pts * -2.0, x_sq[cand]).add_(x_sq[:, None])
        d.clamp_min_(0.0)
        torch.minimum(d, closest[:, None], out=d)
        pots = d.sum(0, dtype=torch.float64)
        best = int(pots.argmin())
        closest = d[:, best].contiguous()
        centers[i] = pts[best]
    return centers, 0


def cluster_sums(
    x: torch.Tensor, labels: torch.Tensor, k: int, chunk: int = CHUNK, *, onehot: bool | None = None
) -> torch.Tensor:
    """Per-cluster sum of rows, deterministic on every device.

    ``onehot`` (default: on non-CPU devices) sums by a one-hot matmul per chunk instead of
    ``index_add_``, whose CUDA kernel adds with atomics in a run-dependent order.
    """
    dev = labels.device
    sums = torch.zeros(k, x.shape[1], dtype=torch.float32, device=dev)
    if not (dev.type != "cpu" if onehot is None else onehot):
        sums.index_add_(0, labels, x if x.dtype == torch.float32 else x.float())
        return sums
    for s in range(0, x.shape[0], chunk):
        lab = labels[s : s + chunk]
        hot = torch.zeros(k, lab.shape[0], dtype=torch.float32, device=dev)
        hot.scatter_(0, lab[None, :], 1.0)
        sums.addmm_(hot, x[s : s + chunk].to(dev, torch.float32))
    return sums


@dataclass
class LloydResult:
    centroids: torch.Tensor
    inertia: float  # sum of squared distances of the sample to ``centroids``
    counts: torch.Tensor  # points per cluster under the final assignment
    iterations: int
    empty_reseeded: int
    history: list[dict] = field(default_factory=list)


def n_groups(k: int) -> int:
    """Centroid groups for the pruning bounds (Yinyang's t ~ k/10, at most 64: 4 bytes/frame each),
    chosen to pad ``k`` up to a multiple of the group count as little as possible."""
    target = max(1, min(64, k // 8))
    return min(range(max(1, target // 2), target + 1), key=lambda g: (-(-k // g) * g - k, -g))


def _pad_groups(v: torch.Tensor, groups: int, fill: float) -> torch.Tensor:
    """``[..., k]`` -> ``[..., groups, ceil(k / groups)]``, padded with ``fill``."""
    k = v.shape[-1]
    size = -(-k // groups)
    if size * groups != k:
        v = torch.nn.functional.pad(v, (0, size * groups - k), value=fill)
    return v.reshape(*v.shape[:-1], groups, size)


def _full_rows(x, x_sq, c_pad, c_sq_pad, rows, groups, chunk, labels, upper, lower) -> None:
    """Nearest centroid for ``rows`` (all if None), an upper bound on the distance to it and
    per-group lower bounds on the distance to the others (both widened by the float32 error).

    ``c_pad`` / ``c_sq_pad`` are the centroids padded to ``groups * size`` rows (norm +inf), so the
    distance block reshapes to ``[rows, groups, size]`` without a copy; one ``amin`` over it gives
    every group's nearest distance, and only the winning group is searched again for its runner-up.
    """
    c_sq_max = float(c_sq_pad[torch.isfinite(c_sq_pad)].max())
    size = c_pad.shape[0] // groups
    tol = rel_err(c_pad.shape[1])
    c_neg2 = c_pad * -2.0
    n = x.shape[0] if rows is None else rows.shape[0]
    for s in range(0, n, chunk):
        idx = slice(s, s + chunk) if rows is None else rows[s : s + chunk]
        xb, xb_sq = x[idx], x_sq[idx]
        err = tol * (xb_sq + c_sq_max)
        d = sq_dist_part(xb, c_neg2, c_sq_pad).view(-1, groups, size)
        gmin = d.amin(2)  # [b, groups]: the one pass over the block (values only: cheap)
        best, g = gmin.min(1)
        rows_b = torch.arange(d.shape[0], device=d.device)
        own = d[rows_b, g]  # [b, size]: the winning group, searched for the winner and runner-up
        pos = own.argmin(1, keepdim=True)
        labels[idx] = g * size + pos.squeeze(1)
        upper[idx] = (best + xb_sq + err).clamp_min_(0.0).sqrt_()
        own.scatter_(1, pos, math.inf)
        gmin[rows_b, g] = own.amin(1)
        lower[idx] = (gmin + (xb_sq - err)[:, None]).clamp_min_(0.0).sqrt_()


def _tighten(x, x_sq, c, c_sq, labels, upper, rows, chunk) -> None:
    """Upper bound := distance of ``rows`` (all if None) to their own centroid (+ the float32
    error margin)."""
    c_sq_max = float(c_sq.max())
    tol = rel_err(c.shape[1])
    n = x.shape[0] if rows is None else rows.shape[0]
    for s in range(0, n, chunk):
        idx = slice(s, s + chunk) if rows is None else rows[s : s + chunk]
        lab, xb_sq = labels[idx], x_sq[idx]
        dot = (x[idx] * c[lab]).sum(1)
        err = tol * (xb_sq + c_sq_max)
        upper[idx] = (xb_sq - 2.0 * dot + c_sq[lab] + err).clamp_min_(0.0).sqrt_()


def _exact_sq_dist(x, c, labels, chunk) -> torch.Tensor:
    """Squared distance of every row to its own centroid by direct difference (no cancellation)."""
    out = torch.empty(x.shape[0], dtype=torch.float32, device=c.device)
    for s in range(0, x.shape[0], chunk):
        out[s : s + chunk] = (x[s : s + chunk] - c[labels[s : s + chunk]]).pow_(2).sum(1)
    return out


def _inertia(x_sq_total: float, c: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor) -> float:
    """Sum over frames of ||x - c_label||^2 from per-cluster sums: ``sum ||x||^2 - 2 c.S + n ||c||^2``.

    Costs O(k * dim) instead of a pass over the frames; float64 keeps the cancellation harmless
    (relative error ~1e-6 from the float32 sums).
    """
    c64 = c.double()
    cross = float((c64 * sums.double()).sum())
    own = float((counts.double() * (c64 * c64).sum(1)).sum())
    return max(0.0, x_sq_total - 2.0 * cross + own)


def _half_gaps(c: torch.Tensor, c_sq: torch.Tensor, chunk: int) -> torch.Tensor:
    """Half the distance from each centroid to its nearest other one (a lower bound)."""
    k = c.shape[0]
    out = torch.empty(k, dtype=torch.float32, device=c.device)
    err = rel_err(c.shape[1]) * 2.0 * float(c_sq.max())
    c_neg2 = c * -2.0
    for s in range(0, k, chunk):
        d = sq_dist_part(c[s : s + chunk], c_neg2, c_sq).add_(c_sq[s : s + chunk, None])
        d[torch.arange(d.shape[0], device=c.device), torch.arange(s, s + d.shape[0], device=c.device)] = math.inf
        out[s : s + chunk] = (d.amin(1) - err).clamp_min_(0.0).sqrt_().mul_(0.5)
    return out


def lloyd(
    x: torch.Tensor,
    centroids: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    chunk: int = CHUNK,
    tag: str = "",
    prune: bool = True,
) -> LloydResult:
    """Lloyd iterations until the relative inertia decrease falls to ``tol`` or ``max_iter``.

    Same iterates as textbook Lloyd, but a frame is only compared with all centroids when
    triangle-inequality bounds cannot prove its centroid is still the nearest (Yinyang k-means'
    global filter, Ding et al. 2015: one lower bound per group of centroids, lowered each
    iteration by the group's largest centroid move, plus Hamerly's half-gap test). Late
    iterations, where few frames move, then cost a fraction of a full pass. ``prune=False``
    recomputes every frame every iteration (the reference the tests compare with).

    The loop ends on an assignment step, so the returned centroids and inertia match exactly.
    Empty clusters are re-seeded with the points farthest from their centroid (sklearn's rule);
    a ValueError is raised when no such point remains, i.e. the sample holds fewer than k
    distinct points.
    """
    n = x.shape[0]
    k = centroids.shape[0]
    groups = n_groups(k)
    size = -(-k // groups)
    dev = centroids.device
    c = centroids.clone()
    labels = torch.empty(n, dtype=torch.long, device=dev)
    upper = torch.empty(n, dtype=torch.float32, device=dev)
    lower = torch.empty(n, groups, dtype=torch.float32, device=dev)
    t0 = time.perf_counter()
    x_sq = sq_norms(x)
    x_sq_total = float(x_sq.sum(dtype=torch.float64))
    prev = math.inf
    history: list[dict] = []
    reseeded = 0
    it = 0
    while True:
        it += 1
        c_sq = sq_norms(c)
        pad = size * groups - k
        c_pad = torch.cat([c, c.new_zeros(pad, c.shape[1])]) if pad else c
        c_sq_pad = torch.cat([c_sq, c_sq.new_full((pad,), math.inf)]) if pad else c_sq
        if it == 1 or not prune:
            _full_rows(x, x_sq, c_pad, c_sq_pad, None, groups, chunk, labels, upper, lower)
            redone = n
        else:
            thresh = torch.maximum(lower.amin(1), _half_gaps(c, c_sq, chunk)[labels])
            rows = (upper > thresh).nonzero().squeeze(1)
            # drifted bounds: first try the true distance (for most frames: contiguous rows beat a gather)
            _tighten(x, x_sq, c, c_sq, labels, upper, rows if len(rows) < 0.5 * n else None, chunk)
            rows = rows[upper[rows] > thresh[rows]]
            redone = len(rows)
            # past ~70% of the frames, gathering them costs more than recomputing the rest
            _full_rows(x, x_sq, c_pad, c_sq_pad, rows if redone < 0.7 * n else None, groups, chunk,
                       labels, upper, lower)
        counts = torch.bincount(labels, minlength=k)
        sums = cluster_sums(x, labels, k, chunk)
        inertia = _inertia(x_sq_total, c, sums, counts)
        empty = int((counts == 0).sum())
        used = (k - empty) / k
        history.append({"iter": it, "inertia": inertia, "utilization": used, "empty": empty,
                        "recomputed": redone / n, "seconds": time.perf_counter() - t0})
        log.debug("%s iter %d inertia/frame %.4f utilization %.4f recomputed %.3f", tag, it, inertia / n, used,
                  redone / n)
        if it >= max_iter or (prev - inertia) <= tol * inertia and empty == 0:
            exact = float(_exact_sq_dist(x, c, labels, chunk).sum(dtype=torch.float64))
            return LloydResult(c, exact, counts, it, reseeded, history)
        prev = inertia
        new = sums / counts.clamp_min(1).to(sums.dtype)[:, None]
        if empty:  # exact distances to find the farthest frames
            reseeded += _reseed_empty(x, new, counts, _exact_sq_dist(x, c, labels, chunk), tag)
            prev = math.inf  # re-seeding can raise inertia for a step; do not stop on it
        drift = (new - c).pow_(2).sum(1).sqrt_()
        upper.add_(drift[labels])
        lower.sub_(_pad_groups(drift, groups, 0.0).amax(1)[None, :])
        c = new


def _reseed_empty(
    x: torch.Tensor, c: torch.Tensor, counts: torch.Tensor, dist: torch.Tensor, tag: str
) -> int:
    """Move every empty centroid onto one of the points farthest from its own centroid."""
    empty = (counts == 0).nonzero().squeeze(1)
    far_d, far = dist.topk(len(empty))
    if bool((far_d <= 0).any()):
        distinct = int((counts > 0).sum()) + int((far_d > 0).sum())
        raise ValueError(
            f"k-means: only about {distinct} distinct frames in the sample for k={len(c)} "
            "clusters; lower k or give more (or more varied) data"
        )
    c[empty] = x[far.to(x.device)].to(c.device, torch.float32)
    log.warning("%s re-seeded %d empty cluster(s) with the farthest frames", tag, len(empty))
    return len(empty)
