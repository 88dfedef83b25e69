"""PNMI / CNMI / purities: known answers and HuBERT's measure_teacher_quality.py computation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from speechunits.data.alignment import Alignment, Segment
from speechunits.metrics import cnmi, frame_label_pairs, pnmi
from speechunits.tokens import Units, dedup

PHONES = [f"p{i}" for i in range(12)]


# --- fairseq examples/hubert/measure_teacher_quality.py, re-implemented from the script ---------
def ref_joint(refs, hyps):
    cnts = Counter()
    for r, h in zip(refs, hyps):
        n = min(len(r), len(h))
        cnts.update(zip(r[:n], h[:n]))
    ref_set = sorted({r for r, _ in cnts})
    hyp_set = sorted({h for _, h in cnts})
    p = np.zeros((len(ref_set), len(hyp_set)))
    for (r, h), c in cnts.items():
        p[ref_set.index(r), hyp_set.index(h)] = c
    return p / p.sum()


def ref_purity(p_xy, axis):
    return p_xy.max(axis=axis).sum()


def ref_entropy(p):
    return (-p * np.log(p + 1e-8)).sum()


def ref_nmi(p_xy):
    p_x = p_xy.sum(axis=1, keepdims=True)
    p_y = p_xy.sum(axis=0, keepdims=True)
    pmi = np.log(p_xy / np.matmul(p_x, p_y) + 1e-8)
    mi = (p_xy * pmi).sum()
    h_x, h_y = ref_entropy(p_x), ref_entropy(p_y)
    return mi, mi / h_x, h_x, h_y


def noisy_units(n_utts, n_frames, k, noise, seed):
    """Phones from a random walk; each phone maps to a few codes; ``noise`` share random codes."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_utts):
        phones = rng.choice(PHONES, size=n_frames, p=np.linspace(2, 1, len(PHONES)) / np.linspace(2, 1, len(PHONES)).sum())
        idx = np.array([PHONES.index(p) for p in phones])
        codes = (idx * 3 + rng.integers(0, 3, n_frames)) % k
        flip = rng.random(n_frames) < noise
        codes[flip] = rng.integers(0, k, flip.sum())
        pairs.append((codes, list(phones)))
    return pairs


def test_matches_hubert_script_numerically():
    pairs = noisy_units(6, 300, k=50, noise=0.4, seed=0)
    r = pnmi(pairs)
    p_xy = ref_joint([lab for _, lab in pairs], [c.tolist() for c, _ in pairs])
    mi, nmi, h_x, h_y = ref_nmi(p_xy)
    assert r.pnmi == pytest.approx(nmi, abs=1e-6)
    assert r.mutual_info_bits * math.log(2) == pytest.approx(mi, abs=1e-6)
    assert r.h_label_bits * math.log(2) == pytest.approx(h_x, abs=1e-6)
    assert r.h_code_bits * math.log(2) == pytest.approx(h_y, abs=1e-6)
    assert r.phone_purity == pytest.approx(ref_purity(p_xy, axis=0))  # "ref pur"
    assert r.cluster_purity == pytest.approx(ref_purity(p_xy, axis=1))  # "hyp pur"
    assert r.h_phone_given_code_bits == pytest.approx(r.h_label_bits - r.mutual_info_bits)
    assert 0.2 < r.pnmi < 0.9


def test_units_identical_to_phones_give_one():
    rng = np.random.default_rng(1)
    labels = [list(rng.choice(PHONES, 200)) for _ in range(3)]
    codes = [np.array([PHONES.index(p) + 100 for p in lab]) for lab in labels]
    r = pnmi(list(zip(codes, labels)))
    assert r.pnmi == pytest.approx(1.0)
    assert r.phone_purity == pytest.approx(1.0) and r.cluster_purity == pytest.approx(1.0)
    assert r.h_phone_given_code_bits == pytest.approx(0.0, abs=1e-12)
    # A finer code (each phone split over 3 codes) still determines the phone: PNMI 1.
    fine = [c * 3 + rng.integers(0, 3, len(c)) for c in codes]
    r = pnmi(list(zip(fine, labels)))
    assert r.pnmi == pytest.approx(1.0) and r.phone_purity == pytest.approx(1.0)
    assert r.cluster_purity < 0.5


def test_independent_random_units_near_zero_and_shrinking():
    # The plug-in MI of independent variables is biased up by about
    # (|X| - 1)(|Y| - 1) / (2 N ln 2) bits; PNMI stays within a few times that and shrinks with N.
    rng = np.random.default_rng(2)
    out = []
    for n in (5_000, 50_000):
        labels = list(rng.choice(PHONES, n))
        codes = rng.integers(0, 20, n)
        r = pnmi([(codes, labels)])
        bias = (len(PHONES) - 1) * 19 / (2 * n * math.log(2))
        assert r.pnmi < 3 * bias / r.h_label_bits
        out.append(r.pnmi)
    assert out[1] < out[0] / 3


def test_unknown_frames_excluded_and_length_mismatch():
    codes = np.array([1, 1, 2, 2, 9, 9])
    labels = ["a", "a", "b", "b", "<unk>", "<unk>"]
    r = pnmi([(codes, labels)])
    assert r.num_frames == 4 and r.pnmi == pytest.approx(1.0)
    assert 9 not in r.codes.tolist()
    # One frame too many on the code side: truncated and reported, as the script does.
    r = pnmi([(np.append(codes, 3), labels)])
    assert r.frame_diff == 1 and r.num_frames == 4
    with pytest.raises(ValueError, match="max_frame_diff"):
        pnmi([(codes[:2], labels)])
    assert pnmi([(codes[:2], labels)], max_frame_diff=None).num_frames == 2
    with pytest.raises(ValueError, match="no frame"):
        pnmi([(codes, ["<unk>"] * 6)])
    assert pnmi([(codes, ["sil"] * 2 + ["a"] * 4)], unknown="sil").num_frames == 4


def test_matrix_for_heat_map():
    pairs = noisy_units(3, 400, k=60, noise=0.2, seed=3)
    r = pnmi(pairs)
    m = r.p_label_given_code
    assert m.shape == (len(r.labels), len(r.codes))
    np.testing.assert_allclose(m.sum(axis=0), 1.0)
    assert (np.diff(r.label_counts) <= 0).all()  # phones by decreasing frequency
    best = m.argmax(axis=0)
    assert (np.diff(best) >= 0).all()  # codes grouped by their most likely phone -> block diagonal
    assert r.code_counts.sum() == r.num_frames == r.label_counts.sum()
    d = r.to_dict()
    assert d["num_labels"] == len(PHONES) and set(d) >= {"nmi", "label_purity", "cluster_purity"}


def test_dedup_units_are_expanded_and_alignment_helper():
    al = Alignment(
        phones=[Segment(0.0, 0.1, "h"), Segment(0.1, 0.2, "i")],
        chars=[Segment(0.0, 0.1, "h"), Segment(0.1, 0.2, "i")],
    )
    u = Units(np.array([4] * 5 + [8] * 5), frame_rate=50.0)
    pairs = frame_label_pairs([dedup(u)], [al], tier="phones")
    assert pairs[0][0].tolist() == u.ids.tolist()
    assert pairs[0][1] == ["h"] * 5 + ["i"] * 5
    assert pnmi(pairs).pnmi == pytest.approx(1.0)
    assert cnmi(frame_label_pairs([u], [al], tier="chars")).nmi == pytest.approx(1.0)
    # Frames past the alignment are unknown and excluded.
    longer = Units(np.array([4] * 5 + [8] * 5 + [1] * 3), frame_rate=50.0)
    assert pnmi(frame_label_pairs([longer], [al])).num_frames == 10
    with pytest.raises(ValueError):
        frame_label_pairs([u, u], [al])
