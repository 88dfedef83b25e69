"""ABX: DTW against libri-light's algorithm (both orientations), the full score against a
brute-force reference with libri-light's DTW orientation, and the known answers (separable -> 0,
identical -> 0.5 by ties, random -> ~0.5). Item framing and .item files: test_abx_librilight.py."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

from speechunits.data.alignment import Alignment, Segment
from speechunits.metrics import abx_error, abx_items, abx_scores, dtw_normalized, span_frames
from speechunits.metrics._abx_dtw import dtw_batch as _dtw_batch

PHONES = ["a", "e", "i", "o", "p", "t", "k", "s"]


def ref_dtw(d: np.ndarray) -> float:
    """libri-light eval/ABX_src/dtw.pyx ``_dtw(normalized=True)``, transcribed to Python."""
    n, m = d.shape
    cost = np.empty((n, m))
    cost[0, 0] = d[0, 0]
    for i in range(1, n):
        cost[i, 0] = d[i, 0] + cost[i - 1, 0]
    for j in range(1, m):
        cost[0, j] = d[0, j] + cost[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            cost[i, j] = d[i, j] + min(cost[i - 1, j], cost[i - 1, j - 1], cost[i, j - 1])
    path_len, i, j = 1, n - 1, m - 1
    while i > 0 and j > 0:
        up, left, diag = cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        path_len += 1
    if i == 0:
        path_len += j
    if j == 0:
        path_len += i
    return cost[n - 1, m - 1] / path_len


def corpus(n_utts=12, n_spk=3, phones_per_utt=40, seed=0, n_phones=4):
    """Utterances of random phones (few phones -> many repeated contexts), 2-5 frames each."""
    rng = np.random.default_rng(seed)
    tiers, speakers, labels = [], [], []
    for u in range(n_utts):
        t, segs, lab = 0.0, [], []
        for _ in range(phones_per_utt):
            p = PHONES[rng.integers(n_phones)]
            nf = int(rng.integers(2, 6))
            segs.append(Segment(t, t + nf * 0.02, p))
            lab += [p] * nf
            t += nf * 0.02
        tiers.append(segs)
        speakers.append(f"s{u % n_spk}")
        labels.append(lab)
    return tiers, speakers, labels


def features(labels, speakers, noise, dim=16, seed=1, spk_shift=0.0):
    rng = np.random.default_rng(seed)
    emb = {p: rng.normal(size=dim) for p in PHONES}
    spk_vec = {s: rng.normal(size=dim) for s in sorted(set(speakers))}
    out = []
    for lab, s in zip(labels, speakers):
        x = np.stack([emb[p] for p in lab]) + spk_shift * spk_vec[s]
        out.append((x + noise * rng.normal(size=x.shape)).astype(np.float32))
    return out


def brute_force_abx(items, feats, mode, frame_dist, orient=None):
    """ZeroSpeech ABX by plain loops over every triplet (no sampling), libri-light aggregation and
    DTW orientation: X's frames on the rows, except within speaker for (X, A) from one group,
    where libri-light's symmetric DTW puts the item that comes first in the group on the rows.
    ``orient(x, y) -> (rows, cols)`` replaces that rule."""
    groups = defaultdict(list)  # items in item order, as libri-light's (stable) grouping keeps them
    for i, it in enumerate(items):
        groups[(it.prev, it.next, it.speaker, it.phone)].append(i)

    def seg(i):
        it = items[i]
        return feats[it.utt][it.start : it.end]

    def d(i, j):
        return ref_dtw(frame_dist(seg(i), seg(j)))

    cells = defaultdict(list)  # (speaker, pa, pb) -> errors over contexts (and X speakers)
    for (p, n, s, a), A in groups.items():
        for (p2, n2, s2, b), B in groups.items():
            if (p2, n2, s2) != (p, n, s) or b == a:
                continue
            if mode == "within":
                xs = [(A, True)] if len(A) >= 2 else []
            else:
                xs = [(X, False) for (q, r, sx, ax), X in groups.items()
                      if (q, r, ax) == (p, n, a) and sx != s]
            for X, same in xs:
                score, tot = 0.0, 0
                for x in X:
                    for a_ in A:
                        if same and a_ == x:
                            continue
                        for b_ in B:
                            if orient is not None:
                                dxa, dxb = d(*orient(x, a_)), d(*orient(x, b_))
                            else:
                                dxa = d(min(x, a_), max(x, a_)) if same else d(x, a_)
                                dxb = d(x, b_)
                            score += 1.0 if dxa < dxb else 0.5 if dxa == dxb else 0.0
                            tot += 1
                cells[(s, a, b)].append(1 - score / tot)
    per_pair = defaultdict(list)
    for (s, a, b), errs in cells.items():
        per_pair[(a, b)].append(np.mean(errs))
    return float(np.mean([np.mean(v) for v in per_pair.values()])), len(per_pair)


def cosine_frames(x, y):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    return np.arccos(np.clip(xn @ yn.T, -1, 1)) / np.pi


# ----------------------------------------------------------------------------- DTW
def test_dtw_matches_librilight_algorithm_including_path_length():
    rng = np.random.default_rng(0)
    for t in range(200):
        n, m = rng.integers(1, 10, 2)
        d = rng.integers(0, 2, (n, m)).astype(float) if t % 2 else rng.random((n, m))  # 0/1: many ties
        assert dtw_normalized(d) == pytest.approx(ref_dtw(d), abs=1e-12)


def test_dtw_batch_with_padding():
    rng = np.random.default_rng(1)
    n, m = rng.integers(1, 13, 40), rng.integers(1, 13, 40)
    d = torch.rand(40, 12, 12, dtype=torch.float64)
    out = _dtw_batch(d, torch.tensor(n), torch.tensor(m))
    for b in range(40):
        assert out[b].item() == pytest.approx(ref_dtw(d[b, : n[b], : m[b]].numpy()), abs=1e-12)


def test_dtw_batch_gives_both_orientations():
    # On ties libri-light's backtracking prefers the horizontal step: d(X, Y) != d(Y, X) sometimes.
    rng = np.random.default_rng(2)
    n, m = rng.integers(1, 9, 300), rng.integers(1, 9, 300)
    d = torch.from_numpy(rng.integers(0, 2, (300, 8, 8)).astype(np.float64))
    out = _dtw_batch(d, torch.tensor(n), torch.tensor(m), both=True)
    flips = 0
    for b in range(300):
        x = d[b, : n[b], : m[b]].numpy()
        assert out[b, 0].item() == pytest.approx(ref_dtw(x), abs=1e-12)
        assert out[b, 1].item() == pytest.approx(ref_dtw(x.T.copy()), abs=1e-12)
        flips += ref_dtw(x) != ref_dtw(x.T.copy())
    assert flips > 10  # the orientation matters on these matrices


def test_dtw_known_values():
    assert dtw_normalized(np.zeros((3, 5))) == 0.0
    assert dtw_normalized(np.ones((2, 3))) == 1.0
    # Diagonal of zeros in a 3x3 of ones: cost 0 along a 3-step path.
    assert dtw_normalized(1 - np.eye(3)) == 0.0


# ----------------------------------------------------------------------------- items
def test_span_frames_follow_librilight_slicing():
    # libri-light: frames ceil(50 on - 1/2) <= i < floor(50 off - 1/2), centres at 20 i + 10 ms
    assert span_frames(0.0, 0.1, 50) == (0, 4)  # centres 10..70 ms; 90 ms is in only if 110 <= 100
    assert span_frames(0.0, 0.11, 50) == (0, 5)  # the offset on a centre (110 ms): 90 ms is in
    assert span_frames(0.01, 0.05, 50) == (0, 2)  # onset on a centre: in
    assert span_frames(0.011, 0.051, 50) == (1, 2)
    assert span_frames(0.5, 0.6, 50, num_frames=27) == (25, 27)


def test_items_triphone_and_phone_spans_and_exclusions():
    segs = [Segment(0, 0.1, "sil"), Segment(0.1, 0.2, "b"), Segment(0.2, 0.3, "a"),
            Segment(0.3, 0.4, "t"), Segment(0.4, 0.5, "sil")]
    items = abx_items([Alignment(phones=segs)], ["spk"], span="triphone")
    assert [(i.prev, i.phone, i.next) for i in items] == [("b", "a", "t")]
    assert (items[0].start, items[0].end, items[0].speaker) == (5, 19, "spk")
    items = abx_items([segs], ["spk"], span="phone", exclude=set())
    assert [(i.phone, i.start, i.end) for i in items] == [("b", 5, 9), ("a", 10, 14), ("t", 15, 19)]
    with pytest.raises(ValueError):
        abx_items([segs], ["a", "b"])


# ----------------------------------------------------------------------------- known answers
@pytest.fixture(scope="module")
def small():
    tiers, speakers, labels = corpus()
    items = abx_items(tiers, speakers, span="phone")
    return tiers, speakers, labels, items


def test_separable_features_give_zero_error(small):
    _, speakers, labels, items = small
    feats = features(labels, speakers, noise=0.05)
    for mode in ("within", "across"):
        r = abx_error(items, feats, mode)
        assert r.error == 0.0 and r.num_phone_pairs == 12 and r.num_triplets > 0


def test_identical_items_are_ties():
    # Every item has identical frames (constant features): each triplet is a tie -> 0.5.
    tiers, speakers, labels = corpus(n_utts=6)
    items = abx_items(tiers, speakers)
    feats = [np.ones((len(lab), 4), np.float32) for lab in labels]
    r = abx_error(items, feats, "within")
    assert r.error == 0.5
    units = [np.zeros(len(lab), np.int64) for lab in labels]
    assert abx_error(items, units, "across").error == 0.5


def test_random_features_near_chance():
    tiers, speakers, labels = corpus(n_utts=24, phones_per_utt=60, seed=3)
    items = abx_items(tiers, speakers, span="phone")
    rng = np.random.default_rng(5)
    feats = [rng.normal(size=(len(lab), 8)).astype(np.float32) for lab in labels]
    for mode in ("within", "across"):
        r = abx_error(items, feats, mode)
        assert 0.4 < r.error < 0.6, (mode, r.error)


def test_units_onehot_and_centroids(small):
    _, speakers, labels, items = small
    # Units = the phone index: perfectly separable under 0/1 distance.
    units = [np.array([PHONES.index(p) for p in lab]) for lab in labels]
    assert abx_error(items, units, "within").error == 0.0
    assert abx_error(items, units, "within").distance == "onehot"
    # With centroids: two phones share a centroid direction -> their pair is a coin flip.
    cents = np.eye(len(PHONES), dtype=np.float32)
    cents[1] = cents[0] * 3  # "e" looks like "a" (cosine distance 0)
    r = abx_error(items, units, "within", centroids=cents)
    assert r.distance == "centroid-cosine"
    assert r.pair_errors[("a", "e")] == 0.5 and r.pair_errors[("a", "i")] == 0.0
    with pytest.raises(ValueError):
        abx_error(items, units, "within", distance="cosine")


def test_zero_frames_follow_librilight_singularity():
    tiers, speakers, labels = corpus(n_utts=6)
    items = abx_items(tiers, speakers, span="phone")
    # Phone "a" frames are zero vectors, the others distinct non-zero: still separable.
    feats = features(labels, speakers, noise=0.0)
    for f, lab in zip(feats, labels):
        f[np.array(lab) == "a"] = 0.0
    assert abx_error(items, feats, "within").error == 0.0


# ----------------------------------------------------------------------------- reference score
@pytest.mark.parametrize("mode", ["within", "across"])
def test_matches_brute_force_reference(mode):
    tiers, speakers, labels = corpus(n_utts=6, phones_per_utt=30, seed=7, n_phones=3)
    items = abx_items(tiers, speakers, span="phone")
    feats = features(labels, speakers, noise=1.0, dim=6, spk_shift=0.5, seed=2)
    ref, n_pairs = brute_force_abx(items, feats, mode, cosine_frames)
    # No sampling: every group and X speaker is used.
    r = abx_error(items, feats, mode, max_size_group=1000, max_x_across=1000)
    assert r.num_phone_pairs == n_pairs
    assert r.error == pytest.approx(ref, abs=1e-6)
    assert 0.02 < r.error < 0.45  # noisy enough not to be trivial


@pytest.mark.parametrize("mode", ["within", "across"])
def test_units_with_ties_match_librilight_orientation(mode):
    # Units from 3 codes: 0/1 frame distances, so DTW costs tie often and d(X, Y) != d(Y, X) for
    # some pairs. libri-light's orientation (X on the rows; within, the group's first item) is
    # reproduced exactly, not only to within a few ties.
    tiers, speakers, labels = corpus(n_utts=6, phones_per_utt=30, seed=7, n_phones=3)
    items = abx_items(tiers, speakers)  # triphones: long spans, more ties
    rng = np.random.default_rng(4)
    units = [np.where(rng.random(len(lab)) < 0.5, [PHONES.index(p) for p in lab], rng.integers(0, 3, len(lab)))
             for lab in labels]

    def onehot(x, y):
        return (x[:, None] != y[None, :]).astype(float)

    ref, n_pairs = brute_force_abx(items, units, mode, onehot)
    r = abx_error(items, units, mode, max_size_group=1000, max_x_across=1000)
    assert r.distance == "onehot" and r.num_phone_pairs == n_pairs
    assert r.error == pytest.approx(ref, abs=1e-12)
    # The other orientation (A or B on the rows) gives another score on these units.
    other, _ = brute_force_abx(items, units, mode, onehot, orient=lambda x, y: (y, x))
    assert abs(other - ref) > 1e-4


def test_sampling_is_seeded_and_bounded(small):
    _, speakers, labels, items = small
    feats = features(labels, speakers, noise=2.0)
    a = abx_error(items, feats, "across", max_size_group=2, max_x_across=1, max_cells_per_pair=3, seed=4)
    b = abx_error(items, feats, "across", max_size_group=2, max_x_across=1, max_cells_per_pair=3, seed=4)
    full = abx_error(items, feats, "across")
    assert a.error == b.error and a.num_dtw == b.num_dtw
    assert a.num_cells <= 3 * a.num_phone_pairs < full.num_cells
    assert a.num_triplets < full.num_triplets
    res = abx_scores(items, feats, max_size_group=3)
    assert set(res) == {"within", "across"} and "pair_errors" in res["within"].to_dict()


def test_bad_inputs(small):
    _, speakers, labels, items = small
    feats = features(labels, speakers, noise=0.1)
    with pytest.raises(ValueError):
        abx_error(items, feats, "sideways")
    with pytest.raises(ValueError):
        abx_error(items, feats[:2], "within")  # items refer to missing utterances
    assert np.isnan(abx_error([], feats, "within").error)


def test_no_minimal_pair_gives_nan():
    # Every triphone context holds a single central phone: there is no (A, B) pair to test.
    tiers = [[Segment(0, .1, "x"), Segment(.1, .2, "a"), Segment(.2, .3, "y"), Segment(.3, .4, "z")]]
    items = abx_items(tiers * 2, ["s"] * 2, span="phone")
    feats = [np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)] * 2
    r = abx_error(items, feats, "within")
    assert np.isnan(r.error) and r.num_cells == 0


def test_centroid_table_equals_gathered_centroids():
    # Units through a centroid table must equal the same centroids given as float features.
    tiers, speakers, labels = corpus(n_utts=8, seed=11)
    items = abx_items(tiers, speakers, span="phone")
    rng = np.random.default_rng(3)
    units = [rng.integers(0, 6, len(lab)) for lab in labels]
    cents = rng.normal(size=(6, 5)).astype(np.float32)
    cents[2] = 0.0  # a zero centroid: distance 1 to the others, 0 to itself
    by_table = abx_error(items, units, "across", centroids=cents, max_size_group=1000)
    by_frames = abx_error(items, [cents[u] for u in units], "across", max_size_group=1000)
    assert by_table.error == pytest.approx(by_frames.error, abs=2e-3)  # only ties differ
    with pytest.raises(ValueError, match="centroids"):
        abx_error(items, [cents[u] for u in units], "within", centroids=cents)
