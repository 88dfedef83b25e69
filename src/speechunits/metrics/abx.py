"""ABX phone discriminability (ZeroSpeech / libri-light style) for features and for units.

**Items.** An item is a phone in context: central phone, previous and next phone, speaker, and a
frame span (:func:`abx_items`). ``span="triphone"`` (default) takes the frames of the whole
triphone, from the start of the previous phone to the end of the next one (the ZeroSpeech 2017 /
libri-light ``.item`` files give triphone onsets and offsets); ``span="phone"`` only the central
phone. Frames are placed at their centres, by one of two conventions (``window_s``):

- **Libri-light** (``window_s=None``, the default): frame ``i`` is at ``(i + 1/2) / frame_rate``,
  half a hop after its start, 20 i + 10 ms at 50 Hz, as libri-light, ABXpy and fastabx place the
  frames of any model;
- **the encoder's window** (``window_s`` = the frames' analysis window): ``i / frame_rate +
  window_s / 2``, 20 i + 12.5 ms for the 25 ms windows of wav2vec2-style encoders, 20 i for
  Whisper (``window_s=0``: its frame ``i`` is centred on 20 i ms).

With ``c`` the centre's offset in frames (1/2, or ``frame_rate * window_s / 2``), an item takes the
frames ``ceil(rate * onset - c) <= i < floor(rate * offset - c)``: libri-light's slicing
(``eval/ABX_src/abx_iterators.py``), i.e. a frame whose centre is at or after the onset and
whose *next* frame's centre is at or before the offset. This is one frame fewer than "centre in
``[onset, offset]``" (ABXpy; fastabx unless ``FASTABX_WITH_LIBRILIGHT_BUG=1``) except when the
offset falls exactly on a frame centre. Both roundings use exact decimal times (a 1e-9 tolerance,
as fastabx's decimals); libri-light's float products land on the other side of an integer for a
few times (68 of 200,000 times on a 0.1 ms grid).

**Triplets.** A and X share the central phone and the context, B differs only in its central
phone (same context). *Within* speaker: A, B, X all from one speaker, X ranging over A's group
(X != A). *Across* speakers: A and B from one speaker, X from another speaker with the same
context and phone. X is correct when ``d(A, X) < d(B, X)``; a tie counts 0.5.

**Distance.** ``d`` is DTW over a frame-distance matrix, the accumulated cost divided by the
length of the optimal path, exactly libri-light's ``eval/ABX_src/dtw.pyx``: steps (1,0), (0,1),
(1,1) with unit weight, path length found by backtracking from the end preferring the diagonal,
then the horizontal, then the vertical step. That preference makes ``d(X, Y)`` depend on which
item is on the rows when costs tie (frequent with units), so the orientation is libri-light's:
X on the rows of ``d(X, B)`` and, across speakers, of ``d(X, A)``; within a speaker, where X and
A come from one group, ``d(X, A) = d(A, X)`` has on its rows the item that comes first in the
group (item order, or the sampled order in groups larger than ``max_size_group``), as
libri-light's symmetric DTW of a group with itself. Frame distances:

- ``"cosine"`` (features; libri-light's default): angle between the frames divided by pi,
  ``arccos(<x, y> / |x||y|) / pi`` in ``[0, 1]``; a zero frame is at distance 1 from any non-zero
  frame and 0 from another zero frame (libri-light's ``normalize_with_singularity``);
- ``"euclidean"``: ``|x - y|``;
- units with ``centroids`` (``[k, D]``): the cosine distance between the codes' centroids;
- units without centroids (``"onehot"``): 0 when the codes are equal, 1 otherwise.

**Score** (libri-light ``eval_ABX.py``, its aggregation order): a *cell* is one (speaker of A/B,
phone of A, phone of B, context[, speaker of X]); its error is the share of wrong triplets
``(X, A, B)`` over all its X in the X group, A in the A group (A != X within speaker) and B in
the B group. Cell errors are averaged over contexts (and X speakers, across), giving an error per
(speaker, A phone, B phone); these are averaged over speakers, giving an error per ordered phone
pair; the score is the mean over the ordered phone pairs that have any cell.

**Bounded sampling** (seeded): each (context, speaker, phone) group keeps at most
``max_size_group`` items (libri-light's ``--max_size_group``; it resamples per use, here once per
group, in random order; smaller groups keep their items in item order), at most
``max_x_across`` X speakers per A group (``--max_x_across``), and optionally at most
``max_cells_per_pair`` cells per ordered phone pair. DTW runs once per distinct item pair
(:mod:`speechunits.metrics._abx_dtw`): frame distances by batched matrix products between whole
groups, DTW in length-sorted batches vectorised with torch over the batch and along each row.
Cost grows with the number of distinct item pairs (``num_dtw``); ``max_cells_per_pair`` bounds it.

Example:
    >>> import numpy as np
    >>> from speechunits.data.alignment import Segment
    >>> segs = [Segment(0.1 * i, 0.1 * i + 0.1, p) for i, p in enumerate("babapapa")]
    >>> items = abx_items([segs, segs], speakers=["s1", "s1"], span="phone")
    >>> feats = [np.eye(2)[[int(s.label == "p") for s in segs for _ in range(5)]]] * 2
    >>> r = abx_error(items, feats, mode="within")
    >>> r.error, r.num_phone_pairs
    (0.0, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data.alignment import Alignment, Segment
from ._abx_dtw import FrameStore, group_pair_distances, ragged_product

_TRIPLET_CHUNK = 2_000_000
DEFAULT_EXCLUDE = frozenset({"sil", "SIL", "sp", "SP", "spn", "SPN", "<unk>", "", "_", "#"})


@dataclass(frozen=True)
class AbxItem:
    """One phone in context: frames ``[start, end)`` of utterance ``utt`` (index in features)."""

    utt: int
    start: int
    end: int
    phone: str
    prev: str
    next: str
    speaker: str


@dataclass
class AbxResult:
    """ABX error rate in ``[0, 1]`` (multiply by 100 for the usual %) and its bookkeeping."""

    mode: str
    error: float
    num_phone_pairs: int
    num_cells: int
    num_triplets: int
    num_dtw: int
    distance: str
    pair_errors: dict[tuple[str, str], float] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "error": self.error,
            "num_phone_pairs": self.num_phone_pairs,
            "num_cells": self.num_cells,
            "num_triplets": self.num_triplets,
            "num_dtw": self.num_dtw,
            "distance": self.distance,
            "pair_errors": {f"{a}|{b}": e for (a, b), e in sorted(self.pair_errors.items())},
        }


# --------------------------------------------------------------------------- items
def span_frames(
    onset: float, offset: float, frame_rate: float, num_frames: int | None = None, window_s: float | None = None
) -> tuple[int, int]:
    """Frames ``[start, end)`` of the span ``[onset, offset]`` by libri-light's slicing (module doc).

    Frame ``i`` is centred at ``(i + 1/2) / frame_rate`` (``window_s=None``, libri-light's
    convention) or at ``i / frame_rate + window_s / 2`` (the encoder's analysis window). It is
    kept when its centre is at or after ``onset`` and the next frame's centre at or before
    ``offset``.

    >>> span_frames(0.1, 0.2, 50.0)  # centres 110, 130, 150, 170 ms; 190 ms is last: 210 > 200
    (5, 9)
    >>> span_frames(0.1, 0.21, 50.0)  # the offset on a centre: 190 ms comes in
    (5, 10)
    >>> span_frames(0.111, 0.2, 50.0)  # frame 5's centre, 110 ms, is before the onset
    (6, 9)
    >>> span_frames(0.111, 0.2, 50.0, window_s=0.025)  # with a 25 ms window it is at 112.5 ms
    (5, 9)
    """
    half = 0.5 if window_s is None else frame_rate * window_s / 2  # centre offset, in frames
    start = max(0, math.ceil(frame_rate * onset - half - 1e-9))
    end = math.floor(frame_rate * offset - half + 1e-9)
    if num_frames is not None:
        end = min(end, num_frames)
    return start, max(start, end)


def abx_items(
    phone_tiers: Sequence[Sequence[Segment] | Alignment],
    speakers: Sequence[str],
    frame_rate: float = 50.0,
    num_frames: Sequence[int] | None = None,
    span: str = "triphone",
    exclude: frozenset[str] | set[str] = DEFAULT_EXCLUDE,
    window_s: float | None = None,
) -> list[AbxItem]:
    """Triphone items of every utterance (``utt`` = its index in ``phone_tiers``).

    The first and last phone of an utterance have no context and give no item; a triphone with
    any of its three phones in ``exclude`` (silences, unknowns) is skipped, as are spans with no
    frame. ``num_frames`` (per utterance) clips spans to the features' length. ``window_s``:
    ``None`` for libri-light's frame centres (the default), else the frames' analysis window
    (see :func:`span_frames`).
    """
    if span not in ("triphone", "phone"):
        raise ValueError(f"span must be 'triphone' or 'phone', got {span!r}")
    if len(speakers) != len(phone_tiers):
        raise ValueError(f"{len(speakers)} speakers for {len(phone_tiers)} utterances")
    if num_frames is not None and len(num_frames) != len(phone_tiers):
        raise ValueError(f"{len(num_frames)} frame counts for {len(phone_tiers)} utterances")
    items = []
    for u, tier in enumerate(phone_tiers):
        n = None if num_frames is None else int(num_frames[u])
        for on, off, prev, cur, nxt in triphones(tier, span, exclude):
            start, end = span_frames(on, off, frame_rate, n, window_s)
            if end > start:
                items.append(AbxItem(u, start, end, cur, prev, nxt, str(speakers[u])))
    return items


def triphones(
    tier: Sequence[Segment] | Alignment, span: str = "triphone", exclude: frozenset[str] | set[str] = DEFAULT_EXCLUDE
) -> list[tuple[float, float, str, str, str]]:
    """``(onset, offset, prev, phone, next)`` in seconds of each item of one utterance (see
    :func:`abx_items`; ``span`` chooses the triphone's or the central phone's onset and offset)."""
    if span not in ("triphone", "phone"):
        raise ValueError(f"span must be 'triphone' or 'phone', got {span!r}")
    segs = sorted(tier.phones if isinstance(tier, Alignment) else tier, key=lambda s: s.start)
    out = []
    for p in range(1, len(segs) - 1):
        prev, cur, nxt = segs[p - 1], segs[p], segs[p + 1]
        if prev.label in exclude or cur.label in exclude or nxt.label in exclude:
            continue
        on, off = (prev.start, nxt.end) if span == "triphone" else (cur.start, cur.end)
        out.append((on, off, prev.label, cur.label, nxt.label))
    return out


# --------------------------------------------------------------------------- cells and scoring
def _encode(*cols: np.ndarray) -> np.ndarray:
    """Rows of small non-negative ints -> one int64 key per row (mixed radix)."""
    key = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        key = key * (int(c.max(initial=0)) + 1) + c
    return key


def abx_error(
    items: Sequence[AbxItem],
    features: Sequence[Any],
    mode: str = "within",
    *,
    distance: str = "auto",
    centroids: np.ndarray | None = None,
    max_size_group: int = 10,
    max_x_across: int = 5,
    max_cells_per_pair: int | None = None,
    seed: int = 0,
) -> AbxResult:
    """ABX error rate (``mode`` ``"within"`` or ``"across"`` speakers); see the module docstring.

    ``features[u]`` belongs to utterance ``u`` of the items: ``[T, D]`` floats (features) or
    ``[T]`` ints (units; with ``centroids [k, D]`` the distance is between centroids, else 0/1).
    """
    if mode not in ("within", "across"):
        raise ValueError(f"mode must be 'within' or 'across', got {mode!r}")
    if max_size_group < 1 or max_x_across < 1:
        raise ValueError("max_size_group and max_x_across must be >= 1")
    frames = FrameStore(features, distance, centroids)
    rng = np.random.default_rng(seed)
    empty = AbxResult(mode, float("nan"), 0, 0, 0, 0, frames.distance)

    # Items as arrays; spans clipped to the features (libri-light skips empty ones).
    utt = np.array([it.utt for it in items], dtype=np.int64)
    if len(utt) and (utt.min() < 0 or utt.max() >= len(frames.lengths)):
        raise ValueError(f"item utterance index outside the {len(frames.lengths)} feature arrays")
    start = np.array([it.start for it in items], dtype=np.int64)
    end = np.array([it.end for it in items], dtype=np.int64)
    if len(utt):
        end = np.minimum(end, frames.lengths[utt])
    keep = end > start
    kept = [it for it, k in zip(items, keep) if k]
    if not kept:
        return empty
    phone_names, phone = np.unique([it.phone for it in kept], return_inverse=True)
    _, ctx = np.unique([f"{it.prev}\t{it.next}" for it in kept], return_inverse=True)
    _, spk = np.unique([it.speaker for it in kept], return_inverse=True)
    arr = {"utt": utt[keep], "start": start[keep], "len": (end - start)[keep]}

    g = _Groups(ctx, spk, phone, max_size_group, rng)
    ga, gb, gx = _cells(g, mode, max_x_across, rng)
    if len(ga) == 0:
        return empty
    nph = len(phone_names)
    pair_key = g.phone[ga] * nph + g.phone[gb]
    if max_cells_per_pair is not None:
        o = np.sort(_first_per_key(pair_key, rng.random(len(ga)), max_cells_per_pair))
        ga, gb, gx, pair_key = ga[o], gb[o], gx[o], pair_key[o]

    # Distinct group pairs (X, A) and (X, B) over all cells; one DTW per item pair in them.
    ng = len(g.start)
    p1, p2 = np.concatenate([gx, gx]), np.concatenate([ga, gb])
    gp = np.unique(np.minimum(p1, p2) * ng + np.maximum(p1, p2))
    ukeys, dist = group_pair_distances(frames, arr, g.items, g.start, g.len, gp // ng, gp % ng)
    score, valid = _score_cells(g, ga, gb, gx, ukeys, dist, len(kept), within=mode == "within")
    err = 1.0 - score / valid

    # Average over contexts (and X speakers), then speakers, then ordered phone pairs.
    u_sab, first, inv = np.unique(_encode(g.spk[ga], pair_key), return_index=True, return_inverse=True)
    e_sab = np.bincount(inv, weights=err) / np.bincount(inv)
    u_pair, inv2 = np.unique(pair_key[first], return_inverse=True)
    e_pair = np.bincount(inv2, weights=e_sab) / np.bincount(inv2)
    pair_errors = {
        (str(phone_names[k // nph]), str(phone_names[k % nph])): float(e) for k, e in zip(u_pair, e_pair)
    }
    return AbxResult(
        mode=mode,
        error=float(e_pair.mean()),
        num_phone_pairs=len(u_pair),
        num_cells=len(ga),
        num_triplets=int(valid.sum()),
        num_dtw=len(ukeys),
        distance=frames.distance,
        pair_errors=pair_errors,
    )


class _Groups:
    """Items grouped by (context, speaker, phone), each group sampled to ``max_size`` items.

    Groups are sorted by (context, speaker, phone); group ``g`` holds the item indices
    ``items[start[g] : start[g] + len[g]]``: in item order when the group has at most
    ``max_size`` items, else a random sample in random order (libri-light's ``random.sample``);
    the order decides the DTW orientation inside a group.
    """

    def __init__(self, ctx: np.ndarray, spk: np.ndarray, phone: np.ndarray, max_size: int,
                 rng: np.random.Generator) -> None:
        _, key0 = np.unique(_encode(ctx, spk, phone), return_inverse=True)
        big = np.bincount(key0)[key0] > max_size
        prio = np.where(big, rng.random(len(ctx)), np.arange(len(ctx)) / max(1, len(ctx)))
        order = np.lexsort((prio, phone, spk, ctx))
        key = _encode(ctx[order], spk[order], phone[order])
        first = _starts(key)
        gid = np.cumsum(first) - 1
        rank = np.arange(len(order)) - np.flatnonzero(first)[gid]
        sel = rank < max_size
        self.items = order[sel]
        self.start = np.flatnonzero(_starts(gid[sel]))
        self.len = np.diff(np.append(self.start, len(self.items)))
        head = self.items[self.start]
        self.ctx, self.spk, self.phone = ctx[head], spk[head], phone[head]


def _cells(g: _Groups, mode: str, max_x: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Group ids (A, B, X) of every cell (see the module docstring)."""
    ng = len(g.start)
    gi = np.arange(ng)
    # A paired with every other group (phone B) of its (context, speaker) block.
    cs = _encode(g.ctx, g.spk)
    b_first = np.flatnonzero(_starts(cs))
    b_len = np.diff(np.append(b_first, ng))
    block = np.repeat(np.arange(len(b_first)), b_len)
    row, _, j = ragged_product(np.ones(ng, np.int64), b_len[block])
    ga, gb = gi[row], b_first[block[row]] + j
    ok = ga != gb
    ga, gb = ga[ok], gb[ok]
    if mode == "within":
        ok = g.len[ga] >= 2  # X ranges over A's group, X != A
        return ga[ok], gb[ok], ga[ok]
    # X groups: same (context, phone), another speaker; at most max_x per A group.
    cp = _encode(g.ctx, g.phone)
    cp_order = np.lexsort((g.spk, cp))
    c_first = np.flatnonzero(_starts(cp[cp_order]))
    c_len = np.diff(np.append(c_first, ng))
    c_of = np.empty(ng, np.int64)
    c_of[cp_order] = np.repeat(np.arange(len(c_first)), c_len)
    row, _, j = ragged_product(np.ones(ng, np.int64), c_len[c_of])
    xa, xx = gi[row], cp_order[c_first[c_of[row]] + j]
    ok = g.spk[xx] != g.spk[xa]
    xa, xx = xa[ok], xx[ok]
    o = _first_per_key(xa, rng.random(len(xa)), max_x)
    xa, xx = xa[o], xx[o]
    # Each (A, X) with every B group of A's block (ga is sorted, so A's B groups are contiguous).
    nb = np.bincount(ga, minlength=ng)
    b0 = np.cumsum(nb) - nb
    row, _, j = ragged_product(np.ones(len(xa), np.int64), nb[xa])
    return xa[row], gb[b0[xa[row]] + j], xx[row]


def _score_cells(g: _Groups, ga: np.ndarray, gb: np.ndarray, gx: np.ndarray, ukeys: np.ndarray,
                 dist: np.ndarray, n_items: int, within: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: sum over triplets of ``[d(A,X) < d(B,X)] + 0.5 [equal]`` and the triplet count
    (``A == X`` skipped), enumerated in chunks of cells. ``dist[:, 0]`` / ``[:, 1]``: the pair's
    lower / higher item on the DTW rows (see the module doc for whose rows libri-light uses)."""
    n_trip = g.len[gx] * g.len[ga] * g.len[gb]
    cum = np.cumsum(n_trip)
    score = np.zeros(len(ga))
    valid = np.zeros(len(ga))
    last = len(ukeys) - 1
    rank = np.zeros(n_items, np.int64)  # position in the group order (sampled items only)
    rank[g.items] = np.arange(len(g.items))

    def lookup(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        key = np.minimum(rows, cols) * n_items + np.maximum(rows, cols)
        k = np.minimum(np.searchsorted(ukeys, key), last)  # X == A: masked below
        return dist[k, (rows > cols).astype(np.int64)]

    lo = 0
    while lo < len(ga):
        hi = max(lo + 1, int(np.searchsorted(cum, cum[lo] - n_trip[lo] + _TRIPLET_CHUNK, side="right")))
        cells = np.arange(lo, hi)
        nb = g.len[gb[cells]]
        c, ix, rest = ragged_product(g.len[gx[cells]], g.len[ga[cells]] * nb)
        cc = cells[c]
        x = g.items[g.start[gx[cc]] + ix]
        a = g.items[g.start[ga[cc]] + rest // nb[c]]
        b = g.items[g.start[gb[cc]] + rest % nb[c]]
        ok = (x != a).astype(np.float64)
        if within:  # X and A from one group: its first item on the rows, d(X, A) = d(A, X)
            first = rank[x] < rank[a]
            dxa = lookup(np.where(first, x, a), np.where(first, a, x))
        else:
            dxa = lookup(x, a)
        dxb = lookup(x, b)
        s = (dxa < dxb) + 0.5 * (dxa == dxb)
        score[lo:hi] = np.bincount(c, weights=s * ok, minlength=hi - lo)
        valid[lo:hi] = np.bincount(c, weights=ok, minlength=hi - lo)
        lo = hi
    return score, valid


def _starts(key: np.ndarray) -> np.ndarray:
    """True where a run of equal keys begins."""
    return np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, bool)


def _first_per_key(key: np.ndarray, prio: np.ndarray, k: int) -> np.ndarray:
    """Indices of the (at most) ``k`` lowest-``prio`` entries of each key, grouped by key."""
    o = np.lexsort((prio, key))
    f = _starts(key[o])
    rank = np.arange(len(o)) - np.flatnonzero(f)[np.cumsum(f) - 1] if len(o) else np.zeros(0, np.int64)
    return o[rank < k]


def abx_scores(
    items: Sequence[AbxItem],
    features: Sequence[Any],
    modes: Sequence[str] = ("within", "across"),
    **kwargs: Any,
) -> dict[str, AbxResult]:
    """:func:`abx_error` for each mode: ``{"within": ..., "across": ...}``."""
    return {m: abx_error(items, features, m, **kwargs) for m in modes}
