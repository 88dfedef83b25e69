"""DTW and frame distances for the ABX metric (:mod:`speechunits.metrics.abx`).

- :func:`dtw_normalized` / :func:`dtw_batch`: DTW with steps (1,0), (0,1), (1,1) and unit weights,
  the accumulated cost divided by the length of the optimal path, exactly libri-light's
  ``eval/ABX_src/dtw.pyx`` (``_dtw(..., normalized=True)``), including how it finds the path length:
  backtracking from the end, preferring the diagonal step, then the horizontal one, then the
  vertical one on ties. Vectorised over a batch of padded matrices and, inside each DTW row, as
  a min-plus scan (so a batch costs ``N`` torch steps, not ``N * M``). That preference makes the
  normalised DTW depend on which sequence is on the rows when costs tie (frequent with discrete
  units), so :func:`dtw_batch` can give both orientations from one pass.
- :class:`FrameStore`: all frames of the utterances, flat, with the frame distances: angular
  (cosine) distance ``arccos(<x, y> / |x||y|) / pi`` (zero frames at distance 1 from non-zero
  ones, 0 from each other: libri-light's ``normalize_with_singularity``), Euclidean, the cosine
  distance between unit centroids, or the 0/1 mismatch of unit ids.
- :func:`group_pair_distances`: the normalised DTW of every item pair of given pairs of item
  groups, in both orientations; frame distances come per group pair from one batched matrix
  product between all frames of the two groups (as libri-light computes distances group by
  group), and the item pairs' DTW matrices are blocks of that, gathered into length-sorted batches.

Example:
    >>> import numpy as np
    >>> dtw_normalized(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
    0.0
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch


def dtw_normalized(dist: np.ndarray | torch.Tensor) -> float:
    """DTW cost of one ``[N, M]`` frame-distance matrix divided by the optimal path length.

    >>> dtw_normalized(np.array([[0.0, 1.0], [1.0, 0.0]]))
    0.0
    >>> dtw_normalized(np.ones((1, 4)))
    1.0
    """
    d = torch.as_tensor(np.asarray(dist, dtype=np.float64))[None]
    n = torch.tensor([d.shape[1]])
    m = torch.tensor([d.shape[2]])
    return float(dtw_batch(d, n, m)[0])


def dtw_batch(d: torch.Tensor, n: torch.Tensor, m: torch.Tensor, both: bool = False) -> torch.Tensor:
    """Normalised DTW of ``B`` padded matrices ``d [B, N, M]`` with true sizes ``n``, ``m``.

    Row by row: ``cost[i, j] = d[i, j] + min(u[j], cost[i, j-1])`` with
    ``u[j] = min(cost[i-1, j], cost[i-1, j-1])`` is a min-plus scan,
    ``cost[i, :] = S + cummin(u - S + d[i])`` with ``S = cumsum(d[i])``. The path length follows
    the same choice as libri-light's backtracking (diagonal, then horizontal, then vertical on
    ties): a run of horizontal steps adds one per step to where the run started. Computed in
    ``d``'s dtype (float64 reproduces the reference to rounding; float32 is what libri-light
    uses); the result is float64 ``[B]``.

    ``both=True`` also gives the DTW of the transposed matrices, ``[B, 2]``: the accumulated cost
    is the same, only the path length differs, because on ties the backtracking's preference of
    the horizontal over the vertical step swaps sides. Libri-light puts X on the rows, so
    ``d(X, Y)`` and ``d(Y, X)`` can differ when the costs tie (discrete units); one pass gives both.
    """
    B, N, M = d.shape
    inf = float("inf")
    cols = torch.arange(M)
    out = torch.empty(B, 2 if both else 1, dtype=torch.float64)
    last_row, last_col = n - 1, m
    S = torch.cumsum(d, dim=2)
    # Column 0 is a sentinel (cost inf, path length 0) so that shifted rows are views.
    cost = torch.empty(B, M + 1, dtype=d.dtype)
    cost[:, 0] = inf
    cost[:, 1:] = S[:, 0]
    # Path lengths: [0] rows first (libri-light on d), [1] columns first (libri-light on d.T).
    plen = torch.empty(len(out[0]), B, M + 1, dtype=torch.int64)
    plen[:, :, 0] = 0
    plen[:, :, 1:] = cols + 1
    new, new_len = torch.empty_like(cost), torch.empty_like(plen)
    new[:, 0], new_len[:, :, 0] = inf, 0

    def emit(i: int) -> None:
        here = last_row == i
        if bool(here.any()):
            idx = here.nonzero().squeeze(1)
            c = cost[idx, last_col[idx]].double()
            for k in range(len(plen)):
                out[idx, k] = c / plen[k, idx, last_col[idx]].double()

    def lengths(k: int, take_diag: torch.Tensor, take_left: torch.Tensor) -> None:
        base = torch.where(take_diag, plen[k, :, :-1], plen[k, :, 1:]).add_(1)
        start = torch.cummax(cols.masked_fill(take_left, 0), dim=1).values
        new_len[k, :, 1:] = torch.gather(base, 1, start).add_(cols - start)

    emit(0)
    for i in range(1, N):
        up, diag = cost[:, 1:], cost[:, :-1]
        s = S[:, i]
        scan = torch.minimum(up, diag).sub_(s).add_(d[:, i])
        new[:, 1:] = torch.cummin(scan, dim=1).values.add_(s)
        left = new[:, :-1]
        take_diag = (diag <= left) & (diag <= up)
        lengths(0, take_diag, (left <= up) & (left < diag))
        if both:  # transposed: the vertical step is preferred to the horizontal one on ties
            lengths(1, take_diag, (left < up) & (left < diag))
        cost, new = new, cost
        plen, new_len = new_len, plen
        emit(i)
    return out if both else out[:, 0]


_MAX_TABLE_CODES = 8192  # centroid distances as a k x k table up to 8192 codes (256 MB)


class FrameStore:
    """All frames of the utterances, flat, with per-utterance offsets; builds distance batches."""

    def __init__(self, features: Sequence[Any], distance: str, centroids: np.ndarray | None):
        arrs = [np.asarray(f) for f in features]
        if not arrs:
            raise ValueError("no features given")
        is_int = arrs[0].dtype.kind in "iu"
        if any((a.dtype.kind in "iu") != is_int for a in arrs):
            raise ValueError("features mix integer units and float features")
        self.offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrs])]).astype(np.int64)
        self.lengths = np.diff(self.offsets)
        if is_int:
            if any(a.ndim != 1 for a in arrs):
                raise ValueError("units must be [T] integer arrays")
            ids = np.concatenate(arrs).astype(np.int64)
            if centroids is not None:
                c = np.asarray(centroids, dtype=np.float32)
                if c.ndim != 2 or ids.size and (ids.min() < 0 or ids.max() >= len(c)):
                    raise ValueError(f"units outside the {len(c)} centroids")
                self.ids = torch.from_numpy(ids)
                self.distance = "centroid-cosine"
                if len(c) <= _MAX_TABLE_CODES:
                    # k x k table of code distances: exact 0 between equal codes, no D-dim work.
                    self.table = _cosine_table(torch.from_numpy(c))
                    self.kind, self.data = "table", None
                else:
                    self.kind, self.data = "cosine", torch.from_numpy(c)  # gathered through ids
            else:
                if distance not in ("auto", "onehot"):
                    raise ValueError(f"units without centroids use distance='onehot', not {distance!r}")
                self.kind, self.ids, self.data = "onehot", torch.from_numpy(ids), None
                self.distance = "onehot"
        else:
            if centroids is not None:
                raise ValueError("centroids apply to unit ids, not to float features")
            if any(a.ndim != 2 or a.shape[1] != arrs[0].shape[1] for a in arrs):
                raise ValueError("features must all be [T, D] with the same D")
            kind = "cosine" if distance == "auto" else distance
            if kind not in ("cosine", "euclidean"):
                raise ValueError(f"features use distance 'cosine' or 'euclidean', not {distance!r}")
            # One float32 copy of all frames (553 MB per hour of 768-dim 50 Hz features).
            flat = np.empty((int(self.offsets[-1]), arrs[0].shape[1]), dtype=np.float32)
            for a, o in zip(arrs, self.offsets[:-1]):
                flat[o : o + len(a)] = a
            self.kind, self.data, self.ids, self.distance = kind, torch.from_numpy(flat), None, kind
        self.zero = None
        if self.kind == "cosine":
            # Unit vectors, normalised once, in place; zero frames stay zero and are flagged.
            if self.ids is not None:
                self.data = self.data.clone()
            for i in range(0, len(self.data), 65536):
                chunk = self.data[i : i + 65536]
                norms = torch.linalg.vector_norm(chunk, dim=1, keepdim=True)
                chunk.div_(torch.where(norms == 0, torch.ones_like(norms), norms))
            zero = torch.linalg.vector_norm(self.data, dim=1) == 0
            self.zero = zero if bool(zero.any()) else None
        self.dim = None if self.data is None else int(self.data.shape[1])

    def distances(self, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
        """``[B, N, M]`` float32 frame distances between the frames at flat indices ``ix``, ``iy``."""
        if self.kind == "onehot":
            return (self.ids[ix][:, :, None] != self.ids[iy][:, None, :]).float()
        if self.kind == "table":
            return self.table[self.ids[ix][:, :, None], self.ids[iy][:, None, :]]
        rx, ry = (ix, iy) if self.ids is None else (self.ids[ix], self.ids[iy])
        x, y = self.data[rx], self.data[ry]
        if self.kind == "euclidean":
            return torch.cdist(x, y)
        d = torch.bmm(x, y.transpose(1, 2)).clamp_(-1.0, 1.0).arccos_().div_(math.pi)
        if self.zero is None:
            return d
        zx, zy = self.zero[rx][:, :, None], self.zero[ry][:, None, :]
        return torch.where(zx | zy, (zx ^ zy).float(), d)


def _cosine_table(c: torch.Tensor) -> torch.Tensor:
    """``[k, k]`` angular distances between the rows of ``c`` (the frame-distance rules above)."""
    norms = torch.linalg.vector_norm(c, dim=1, keepdim=True)
    zero = norms.squeeze(1) == 0
    u = c / torch.where(norms == 0, torch.ones_like(norms), norms)
    t = (u @ u.T).clamp_(-1.0, 1.0).arccos_().div_(math.pi)
    t = torch.where(zero[:, None] | zero[None, :], (zero[:, None] ^ zero[None, :]).float(), t)
    t.fill_diagonal_(0.0)
    # Exactly symmetric, so that d(X, Y) on rows X is d(Y, X) transposed, as the scoring assumes.
    return (torch.triu(t) + torch.triu(t, 1).T).contiguous()


def _length_batches(n1: np.ndarray, n2: np.ndarray, bin1: int, max_elems: int) -> list[np.ndarray]:
    """Index batches of size pairs ``(n1, n2)`` padded to ``[len, max n1, max n2]``: sorted by
    ``(n1 // bin1, n2)``, a batch stays within one ``n1`` bin (little row padding) and covers a
    short run of ``n2`` (little column padding), with about ``max_elems`` padded elements."""
    key = n1 // bin1
    order = np.lexsort((n1, n2, key))
    ks, cols = key[order], n2[order]
    runs = np.flatnonzero(np.concatenate([[True], ks[1:] != ks[:-1], [True]]))
    out = []
    for r0, r1 in zip(runs[:-1], runs[1:]):
        rows = int(n1[order[r0:r1]].max())
        i = r0
        while i < r1:
            # Columns sorted within the run: stop before they grow by more than 1/8 (+2).
            stop = r0 + int(np.searchsorted(cols[r0:r1], cols[i] + cols[i] // 8 + 2, side="right"))
            j = min(stop, i + max(1, max_elems // (rows * int(cols[i]))))
            while j - i > 1 and (j - i) * rows * int(cols[j - 1]) > max_elems:
                j = i + (j - i) // 2
            out.append(order[i:j])
            i = j
    return out


def group_pair_distances(
    frames: FrameStore, items: dict[str, np.ndarray], g_items: np.ndarray, g_start: np.ndarray,
    g_len: np.ndarray, g1: np.ndarray, g2: np.ndarray, budget: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised DTW of every item pair across the group pairs ``(g1[i], g2[i])`` (``g1 <= g2``;
    ``g1 == g2`` gives the pairs inside a group). Returns sorted keys ``lo * n + hi`` of the item
    pairs (``n`` = number of items) and their distances ``[P, 2]``: ``[:, 0]`` with item ``lo``'s
    frames on the DTW rows, ``[:, 1]`` with item ``hi``'s (they differ only on cost ties).

    Frame distances come from batched matrix products between all frames of a group and all
    frames of its partner groups (libri-light computes distances group by group), into a float32
    buffer of about ``budget`` elements; the item pairs' DTW matrices are blocks of it, gathered
    into length-sorted DTW batches.
    """
    n_items = len(items["len"])
    item_len = items["len"]
    # Frames of each group, concatenated item after item; each item's offset inside its group.
    it_len = item_len[g_items]
    it_off = np.cumsum(it_len) - it_len
    gf_start = it_off[g_start]
    gF = np.add.reduceat(it_len, g_start) if len(g_start) else np.zeros(0, np.int64)
    off_in_group = np.empty(n_items, np.int64)
    off_in_group[g_items] = it_off - np.repeat(gf_start, g_len)
    base = frames.offsets[items["utt"][g_items]] + items["start"][g_items]
    gframes = np.repeat(base - it_off, it_len) + np.arange(int(it_len.sum()))

    # Row groups: the group pairs sorted by g1; each row group's partners are contiguous, and its
    # distances to all of them come from one product against the partners' concatenated frames.
    o = np.lexsort((g2, g1))
    g1, g2 = g1[o], g2[o]
    r_first = np.flatnonzero(np.concatenate([[True], g1[1:] != g1[:-1]])) if len(g1) else g1
    n_part = np.diff(np.append(r_first, len(g1)))
    rows = g1[r_first]
    pF = gF[g2]
    FP = np.add.reduceat(pF, r_first) if len(g1) else pF
    p_off = np.cumsum(pF) - pF - np.repeat(np.cumsum(FP) - FP, n_part)  # partner's column

    width = frames.dim or 1
    chunks = _length_batches(gF[rows], FP, 16, budget // 4)
    keys_out, dist_out = [], []
    ci = 0
    with torch.no_grad():
        while ci < len(chunks):
            # Distance blocks of consecutive chunks of row groups, up to ``budget`` elements.
            buf, used, parts = [], 0, []
            while ci < len(chunks) and (not buf or used < budget):
                sel = chunks[ci]
                ci += 1
                f1, fp = int(gF[rows[sel]].max()), int(FP[sel].max())
                block = torch.empty(len(sel), f1, fp, dtype=torch.float32)
                step = max(1, (budget // 8) // ((f1 + fp) * width))  # frames gathered per product
                for k in range(0, len(sel), step):
                    ks = sel[k : k + step]
                    r = rows[ks]
                    ia = gframes[gf_start[r][:, None] + np.minimum(np.arange(f1), gF[r][:, None] - 1)]
                    q = np.repeat(r_first[ks], n_part[ks]) + _ragged_arange(n_part[ks])  # pairs
                    lr = np.repeat(np.arange(len(ks)), n_part[ks])
                    t = _ragged_arange(pF[q])
                    ib = np.zeros((len(ks), fp), np.int64)  # padding: any valid frame, never read
                    ib[np.repeat(lr, pF[q]), np.repeat(p_off[q], pF[q]) + t] = (
                        gframes[np.repeat(gf_start[g2[q]], pF[q]) + t]
                    )
                    block[k : k + step] = frames.distances(torch.from_numpy(ia), torch.from_numpy(ib))
                # Item pairs of these group pairs (inside one group: each unordered pair once),
                # located in the flat buffer by their row group's block, stride fp.
                q = np.repeat(r_first[sel], n_part[sel]) + _ragged_arange(n_part[sel])
                lr = np.repeat(np.arange(len(sel)), n_part[sel])
                a, b = g1[q], g2[q]
                c, j1, j2 = ragged_product(g_len[a], g_len[b])
                x = g_items[g_start[a][c] + j1]
                o = g_items[g_start[b][c] + j2]
                keep = (a[c] != b[c]) | (j1 < j2)
                c, x, o = c[keep], x[keep], o[keep]
                origin = used + lr[c] * (f1 * fp) + off_in_group[x] * fp + p_off[q[c]] + off_in_group[o]
                parts.append((x, o, origin, np.full(len(x), fp, np.int64)))
                buf.append(block.reshape(-1))
                used += block.numel()
            flat = torch.cat(buf) if len(buf) > 1 else buf[0]
            x, o, origin, stride = (np.concatenate(z) for z in zip(*parts))
            n, m = item_len[x], item_len[o]
            dist = np.empty((len(x), 2))
            for bsel in _length_batches(n, m, 2, budget // 4):
                nn, mm = int(n[bsel].max()), int(m[bsel].max())
                rr = np.minimum(np.arange(nn)[None, :], n[bsel][:, None] - 1) * stride[bsel][:, None]
                cc = np.minimum(np.arange(mm)[None, :], m[bsel][:, None] - 1)
                idx = origin[bsel][:, None, None] + rr[:, :, None] + cc[:, None, :]
                d = flat[torch.from_numpy(idx)]
                nb, mb = torch.from_numpy(n[bsel]), torch.from_numpy(m[bsel])
                dist[bsel] = dtw_batch(d, nb, mb, both=True).numpy()
            keys_out.append(np.minimum(x, o) * n_items + np.maximum(x, o))
            dist_out.append(np.where((x < o)[:, None], dist, dist[:, ::-1]))  # x's frames were the rows
    keys = np.concatenate(keys_out) if keys_out else np.zeros(0, np.int64)
    dist = np.concatenate(dist_out) if dist_out else np.zeros((0, 2))
    o = np.argsort(keys)
    return keys[o], dist[o]


def _ragged_arange(n: np.ndarray) -> np.ndarray:
    """``concatenate([arange(k) for k in n])``."""
    return np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)


def ragged_product(n1: np.ndarray, n2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows r with sizes n1[r], n2[r]: (row, i1, i2) over every i1 < n1[r], i2 < n2[r]."""
    n = n1 * n2
    row = np.repeat(np.arange(len(n)), n)
    r = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return row, r // n2[row], r % n2[row]
