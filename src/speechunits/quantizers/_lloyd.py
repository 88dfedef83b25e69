"""Torch kernels behind :class:`~speechunits.quantizers.kmeans.KMeans`.

Everything works on ``[N, D]`` float32 tensors in chunks of rows, so the only ``O(N * k)`` object
ever alive is one ``[chunk, k]`` distance block. Squared distances use the expansion
``||x||^2 + ||c||^2 - 2 x.c``: one ``addmm`` per chunk runs at GEMM speed (DESIGN.md: ~300k
vectors/s at k = 500 on 2 cores), which is what makes Lloyd on the full sample affordable.

Randomness always comes from a CPU ``torch.Generator``, so CPU and CUDA runs draw the same
indices. Sums per cluster use ``index_add_`` on CPU (a serial, hence deterministic, reduction) and
a one-hot matmul on CUDA (``index_add_`` there uses atomics, whose order varies run to run).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

log = logging.getLogger("speechunits.quantizers.kmeans")

CHUNK = 2048
# Relative error bound of the expanded squared distance in float32, generous by a factor ~10:
# the dot product over D terms loses ~sqrt(D) ulps; gaps below this are re-checked in float64.
_F32_REL_ERR = 1e-5


def sq_norms(x: torch.Tensor, chunk: int = 16 * CHUNK) -> torch.Tensor:
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
    labels = torch.empty(x.shape[0], dtype=torch.long, device=dev)
    dist = torch.empty(x.shape[0], dtype=torch.float32, device=dev)
    c64 = None
    for s in range(0, x.shape[0], chunk):
        xb = x[s : s + chunk].to(dev, torch.float32, non_blocking=True)
        x_sq = (xb * xb).sum(1)
        d = torch.addmm(c_sq, xb, centroids.T, alpha=-2.0)  # ||c||^2 - 2 x.c
        if exact and k > 1:
            top, idx = d.topk(2, dim=1, largest=False)
            lab, best = idx[:, 0].clone(), top[:, 0].clone()
            unsure = (top[:, 1] - top[:, 0]) <= _F32_REL_ERR * (x_sq + c_sq_max)
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
    n_dup = 0
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
        d = torch.addmm(x_sq[:, None], x, pts.T, alpha=-2.0).add_(x_sq[cand][None, :])
        d.clamp_min_(0.0)
        torch.minimum(d, closest[:, None], out=d)
        pots = d.sum(0, dtype=torch.float64)
        best = int(pots.argmin())
        closest = d[:, best].contiguous()
        centers[i] = pts[best]
    return centers, n_dup


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Per-cluster sum of rows, deterministic on every device."""
    dev = labels.device
    sums = torch.zeros(k, x.shape[1], dtype=torch.float32, device=dev)
    if dev.type == "cpu":
        sums.index_add_(0, labels, x if x.dtype == torch.float32 else x.float())
        return sums
    for s in range(0, x.shape[0], chunk):
        lab = labels[s : s + chunk]
        onehot = torch.zeros(k, lab.shape[0], dtype=torch.float32, device=dev)
        onehot.scatter_(0, lab[None, :], 1.0)
        sums.addmm_(onehot, x[s : s + chunk].to(dev, torch.float32))
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
    """Centroid groups for the pruning bounds: more groups prune more but cost 4 bytes/frame each."""
    return max(1, min(64, k // 8))


def _pad_groups(v: torch.Tensor, groups: int, fill: float) -> torch.Tensor:
    """``[..., k]`` -> ``[..., groups, ceil(k / groups)]``, padded with ``fill``."""
    k = v.shape[-1]
    size = -(-k // groups)
    if size * groups != k:
        v = torch.nn.functional.pad(v, (0, size * groups - k), value=fill)
    return v.reshape(*v.shape[:-1], groups, size)


def _full_rows(x, c, c_sq, rows, groups, chunk, labels, upper, lower):
    """Exact nearest centroid for ``rows`` (all if None) plus per-group lower bounds.

    ``upper`` gets the direct-difference distance to the new centroid; ``lower[:, g]`` the
    distance to the nearest other centroid of group ``g``, shrunk by the float32 error bound.
    """
    c_sq_max = float(c_sq.max())
    n = x.shape[0] if rows is None else rows.shape[0]
    for s in range(0, n, chunk):
        idx = slice(s, s + chunk) if rows is None else rows[s : s + chunk]
        xb = x[idx]
        x_sq = (xb * xb).sum(1)
        d = torch.addmm(c_sq, xb, c.T, alpha=-2.0)
        best, lab = d.min(1)
        labels[idx] = lab
        upper[idx] = (xb - c[lab]).pow_(2).sum(1).sqrt_()
        d.scatter_(1, lab[:, None], math.inf)
        g = _pad_groups(d, groups, math.inf).amin(2)
        err = _F32_REL_ERR * (x_sq + c_sq_max)
        lower[idx] = (g + (x_sq - err)[:, None]).clamp_min_(0.0).sqrt_()


def _half_gaps(c: torch.Tensor, c_sq: torch.Tensor, chunk: int) -> torch.Tensor:
    """Half the distance from each centroid to its nearest other one (a lower bound)."""
    k = c.shape[0]
    out = torch.empty(k, dtype=torch.float32, device=c.device)
    err = _F32_REL_ERR * 2.0 * float(c_sq.max())
    for s in range(0, k, chunk):
        d = torch.addmm(c_sq, c[s : s + chunk], c.T, alpha=-2.0).add_(c_sq[s : s + chunk, None])
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
    dev = centroids.device
    c = centroids.clone()
    labels = torch.empty(n, dtype=torch.long, device=dev)
    upper = torch.empty(n, dtype=torch.float32, device=dev)
    lower = torch.empty(n, groups, dtype=torch.float32, device=dev)
    prev = math.inf
    history: list[dict] = []
    reseeded = 0
    it = 0
    while True:
        it += 1
        c_sq = sq_norms(c)
        if it == 1 or not prune:
            _full_rows(x, c, c_sq, None, groups, chunk, labels, upper, lower)
            redone = n
        else:
            _exact_upper(x, c, labels, upper, chunk)  # tight bounds also give the exact inertia
            thresh = torch.maximum(lower.amin(1), _half_gaps(c, c_sq, chunk)[labels])
            rows = (upper > thresh).nonzero().squeeze(1)
            redone = len(rows)
            if redone:
                _full_rows(x, c, c_sq, rows, groups, chunk, labels, upper, lower)
        inertia = float(upper.double().pow(2).sum())
        counts = torch.bincount(labels, minlength=k)
        empty = int((counts == 0).sum())
        used = (k - empty) / k
        history.append({"iter": it, "inertia": inertia, "utilization": used, "empty": empty,
                        "recomputed": redone / n})
        log.debug("%s iter %d inertia/frame %.4f utilization %.4f recomputed %.3f", tag, it, inertia / n, used,
                  redone / n)
        if it >= max_iter or (prev - inertia) <= tol * inertia and empty == 0:
            return LloydResult(c, inertia, counts, it, reseeded, history)
        prev = inertia
        sums = cluster_sums(x, labels, k, chunk)
        new = sums / counts.clamp_min(1).to(sums.dtype)[:, None]
        if empty:
            reseeded += _reseed_empty(x, new, counts, upper.pow(2), tag)
            prev = math.inf  # re-seeding can raise inertia for a step; do not stop on it
        drift = (new - c).pow_(2).sum(1).sqrt_()
        lower.sub_(_pad_groups(drift, groups, 0.0).amax(1)[None, :])
        c = new


def _exact_upper(x: torch.Tensor, c: torch.Tensor, labels: torch.Tensor, upper: torch.Tensor, chunk: int) -> None:
    """Distance of every row to its assigned centroid, by direct difference (no cancellation)."""
    for s in range(0, x.shape[0], 4 * chunk):
        xb = x[s : s + 4 * chunk]
        upper[s : s + 4 * chunk] = (xb - c[labels[s : s + 4 * chunk]]).pow_(2).sum(1).sqrt_()

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
