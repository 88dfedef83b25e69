"""Codebook statistics: utilization, token distribution, entropy, both bitrates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechunits.metrics import codebook_stats, entropy_bits, token_distribution, unit_counts
from speechunits.tokens import Units, dedup


def test_uniform_code_bitrate_is_log2v_times_rate():
    k = 16
    seqs = [np.tile(np.arange(k), 50), np.tile(np.arange(k), 25)]  # no adjacent repeats
    for dd in (False, True):
        s = codebook_stats(seqs, k=k, frame_rate=50.0, dedup=dd)
        assert s.entropy_bits == pytest.approx(4.0)
        assert s.token_rate_hz == pytest.approx(50.0)
        assert s.entropy_bitrate == pytest.approx(math.log2(k) * 50.0)
        assert s.nominal_bitrate == pytest.approx(math.log2(k) * 50.0)
        assert s.utilization == 1.0 and s.used == k
        assert s.share_tokens_95 == 1.0  # 15 of 16 equal tokens carry only 93.75%
        assert s.top20_coverage == pytest.approx(4 / 16)  # ceil(0.2*16) = 4 tokens


def test_utilization_counts_used_codes():
    s = codebook_stats([np.array([0, 3, 3, 7]), np.array([9])], k=20, dedup=False)
    assert s.used == 4 and s.utilization == 0.2
    assert s.counts.tolist()[:10] == [1, 0, 0, 2, 0, 0, 0, 1, 0, 1]


def test_token_distribution_on_zipf_like_counts():
    counts = np.array([40, 20, 13, 10, 8, 5, 4, 0, 0, 0])  # total 100, k = 10, 7 used
    d = token_distribution(counts)
    # cumulative 40, 60, 73, 83, 91, 96 -> 6 tokens reach 95%.
    assert d["tokens_95"] == 6
    assert d["share_tokens_95"] == pytest.approx(0.6)
    assert d["share_used_tokens_95"] == pytest.approx(6 / 7)
    assert d["top20_coverage"] == pytest.approx(0.6)  # top ceil(2) tokens: 40 + 20
    # Through codebook_stats from sequences realising those counts (order does not matter).
    seq = np.repeat(np.arange(10), counts)
    s = codebook_stats([np.random.default_rng(0).permutation(seq)], k=10, dedup=False)
    assert (s.tokens_95, s.top20_coverage) == (6, pytest.approx(0.6))
    p = counts[counts > 0] / 100
    assert s.entropy_bits == pytest.approx(float(-(p * np.log2(p)).sum()))


def test_exact_95_percent_boundary():
    # 19 of 20 occurrences = exactly 95%: the 19 most frequent tokens suffice, not 20.
    assert token_distribution(np.ones(20, dtype=int))["tokens_95"] == 19


def test_dedup_changes_rate_and_counts():
    seqs = [np.array([1, 1, 1, 2, 2, 3])]  # 6 frames = 0.12 s; 3 runs
    s = codebook_stats(seqs, k=4, frame_rate=50.0, dedup=True)
    assert s.num_tokens == 3 and s.token_rate_hz == pytest.approx(25.0)
    assert s.entropy_bits == pytest.approx(math.log2(3))
    assert s.entropy_bitrate == pytest.approx(25.0 * math.log2(3))
    assert s.nominal_bitrate == pytest.approx(2 * 25.0)
    f = codebook_stats(seqs, k=4, frame_rate=50.0, dedup=False)
    assert f.num_tokens == 6 and f.token_rate_hz == pytest.approx(50.0)
    assert f.nominal_bitrate == pytest.approx(100.0)


def test_units_records_and_dedup_units_keep_frame_duration():
    u = Units(np.array([5, 5, 6, 6, 6, 7]), frame_rate=50.0)
    d = dedup(u)
    a = codebook_stats([u], k=8, frame_rate=50.0)
    b = codebook_stats([d], k=8, frame_rate=50.0)
    assert a.duration_s == b.duration_s == pytest.approx(0.12)
    assert a.num_tokens == b.num_tokens == 3


def test_bpe_ids_with_durations_and_codebooks():
    # BPE ids: their own vocabulary, rate from the audio durations.
    bpe = [np.array([100, 5, 3000, 42]), np.array([7, 7, 9])]
    s = codebook_stats(bpe, k=6000, durations_s=[0.5, 0.3], dedup=False, num_codebooks=2)
    assert s.token_rate_hz == pytest.approx(7 / 0.8)
    assert s.nominal_bitrate == pytest.approx(math.log2(6000) * 2 * 7 / 0.8)
    assert s.to_dict()["k"] == 6000 and "counts" not in s.to_dict()
    assert len(s.to_dict(with_counts=True)["counts"]) == 6000


def test_with_unit_bpe_tokens():
    pytest.importorskip("tokenizers")
    from speechunits.tokens import UnitBPE

    rng = np.random.default_rng(0)
    seqs = [np.repeat(rng.integers(0, 20, 60), 2) for _ in range(20)]
    bpe = UnitBPE.train(seqs, vocab_size=40, k=20)
    toks = bpe.encode_batch(seqs)
    dur = [len(s) / 50.0 for s in seqs]
    s = codebook_stats(toks, k=bpe.vocab_size, durations_s=dur, dedup=False)
    units = codebook_stats(seqs, k=20, frame_rate=50.0, dedup=True)
    assert s.num_tokens < units.num_tokens  # BPE merges -> fewer tokens, lower rate
    assert s.token_rate_hz < units.token_rate_hz


def test_entropy_and_counts_helpers():
    assert entropy_bits(np.zeros(4)) == 0.0
    assert entropy_bits(np.array([2, 2])) == 1.0
    assert unit_counts([[0, 0, 1]], k=2, dedup=True).tolist() == [1, 1]


def test_bad_inputs():
    with pytest.raises(ValueError, match="outside"):
        codebook_stats([np.array([0, 5])], k=5)
    with pytest.raises(ValueError):
        codebook_stats([np.array([0, 1])], k=5, durations_s=[1.0, 2.0])
    with pytest.raises(ValueError):
        codebook_stats([np.array([[0, 1]])], k=5)
    with pytest.raises(ValueError):
        codebook_stats([np.array([0.5])], k=5)
    empty = codebook_stats([], k=5, durations_s=[])
    assert empty.num_tokens == 0 and empty.utilization == 0.0
