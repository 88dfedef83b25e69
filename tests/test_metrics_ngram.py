"""Interpolated modified Kneser-Ney: normalisation, known perplexities, a hand-computed
probability, and agreement with a plain-dict reference implementation of Chen & Goodman."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from speechunits.metrics import KneserNeyLM, ngram_perplexity
from speechunits.metrics.ngram import _estimate_discounts


# --------------------------------------------------------------------------- reference
class RefKN:
    """Interpolated modified KN written directly from the formulas, with Python dicts."""

    def __init__(self, sents, order, vocab, discounts=None):
        self.order, self.V = order, vocab
        self.EOS, self.BOS = vocab, vocab + 1
        raw = [Counter() for _ in range(order)]
        for s in sents:
            t = [self.BOS] + list(s) + [self.EOS]
            for n in range(1, order + 1):
                for i in range(len(t) - n + 1):
                    raw[n - 1][tuple(t[i : i + n])] += 1
        self.a = [None] * order
        top = dict(raw[order - 1])
        if order == 1:
            top.pop((self.BOS,), None)
        self.a[order - 1] = top
        for n in range(order - 1, 0, -1):
            left = defaultdict(set)
            for g in raw[n]:  # (n+1)-grams
                left[g[1:]].add(g[0])
            a = {}
            for g, c in raw[n - 1].items():
                if g[0] == self.BOS:
                    if n > 1:
                        a[g] = c
                else:
                    a[g] = len(left[g])
            self.a[n - 1] = a
        self.D = []
        for n in range(order):
            if discounts is not None:
                self.D.append(tuple(discounts[n]))
                continue
            t = Counter(self.a[n].values())  # n_j = number with count exactly j
            y = t[1] / (t[1] + 2 * t[2])
            self.D.append(tuple(j - (j + 1) * y * t[j + 1] / t[j] for j in (1, 2, 3)))
        self.ctx = [defaultdict(list) for _ in range(order)]
        for n in range(order):
            for g, c in self.a[n].items():
                self.ctx[n][g[:-1]].append(c)

    def disc(self, n, c):
        return self.D[n][min(c, 3) - 1]

    def p(self, w, h):
        h = tuple(h)[-(self.order - 1):] if self.order > 1 else ()
        L = len(h)
        lower = 1.0 / (self.V + 1) if L == 0 else self.p(w, h[1:])
        cs = self.ctx[L].get(h)
        if not cs:
            return lower
        denom = sum(cs)
        gamma = sum(self.disc(L, c) for c in cs) / denom
        c = self.a[L].get(h + (w,), 0)
        u = max(c - self.disc(L, c), 0) / denom if c else 0.0
        return u + gamma * lower

    def sentence_log2probs(self, s):
        hist, out = [self.BOS], []
        for w in list(s) + [self.EOS]:
            out.append(math.log2(self.p(w, hist)))
            hist.append(w)
        return out


def markov_corpus(n_sents, length, k, seed, branch=3):
    rng = np.random.default_rng(seed)
    succ = rng.integers(0, k, size=(k, branch))
    out = []
    for _ in range(n_sents):
        cur, s = int(rng.integers(k)), []
        for _ in range(int(rng.integers(1, length))):
            s.append(cur)
            cur = int(succ[cur, rng.integers(branch)])
        out.append(np.array(s))
    return out


# --------------------------------------------------------------------------- tests
def test_hand_computed_bigram_probability():
    # Corpus: "<s> 0 1 </s>" twice and "<s> 1 0 </s>", order 2, discounts fixed to (0.5, 1, 1.5).
    lm = KneserNeyLM.train([[0, 1], [0, 1], [1, 0]], order=2, vocab_size=2, dedup=False,
                           discounts=[(0.5, 1.0, 1.5)] * 2)
    # Bigrams after context 0: "0 1" (count 2), "0 </s>" (count 1): denominator 3,
    #   u(1 | 0) = (2 - D2) / 3 = 1/3,  gamma(0) = (D1 * 1 + D2 * 1) / 3 = 0.5.
    # Unigram continuation counts: 0 <- {<s>, 1}, 1 <- {0, <s>}, </s> <- {1, 0}: all 2, sum 6,
    #   u(1) = (2 - D2) / 6 = 1/6,  gamma() = 3 * D2 / 6 = 0.5,  |V| = 2 units + </s> = 3,
    #   p(1) = 1/6 + 0.5 / 3 = 1/3.
    # p(1 | 0) = 1/3 + 0.5 * 1/3 = 1/2.
    assert lm.prob(1, [0], bos=False) == pytest.approx(0.5)
    assert lm.prob(0, [0], bos=False) == pytest.approx(0.5 * (1 / 6 + 0.5 / 3))  # unseen bigram
    assert lm.prob(2, [0], bos=False) == pytest.approx((1 - 0.5) / 3 + 0.5 * (1 / 3))  # </s>
    # Context "<s>": "<s> 0" (2), "<s> 1" (1) -> p(0 | <s>) = (2 - 1)/3 + 0.5 * p(0) = 1/3 + 1/6.
    assert lm.prob(0, []) == pytest.approx(0.5)
    assert lm.perplexity([[0, 1]]) == pytest.approx((0.5 * 0.5 * lm.prob(2, [1], bos=False)) ** (-1 / 3))


def test_discount_formula():
    # t1..t4 = 10, 5, 3, 2: Y = 0.5; D1 = 1 - 2*.5*5/10, D2 = 2 - 3*.5*3/5, D3 = 3 - 4*.5*2/3.
    counts = np.array([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9])
    assert _estimate_discounts(counts) == pytest.approx((0.5, 1.1, 3 - 4 / 3))
    assert _estimate_discounts(np.array([1, 1, 2])) is None  # no count 3: kenlm would refuse


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distribution_sums_to_one(order):
    train = markov_corpus(200, 30, k=12, seed=0)
    lm = KneserNeyLM.train(train, order=order, vocab_size=15)  # 3 units never seen
    contexts = [[], [0], [3, 4], [1, 2, 3], [14, 13, 12], [5, 5, 5, 5, 5], [int(train[0][0])]]
    for ctx in contexts:
        for bos in (True, False):
            d = lm.distribution(ctx, bos=bos)
            assert d.shape == (16,)
            assert d.sum() == pytest.approx(1.0, abs=1e-9)
            assert (d > 0).all()


@pytest.mark.parametrize("order", [2, 3, 4])
def test_matches_dict_reference(order):
    train = markov_corpus(150, 25, k=40, seed=1)  # discounts estimable at every order
    test = markov_corpus(20, 25, k=40, seed=2) + [np.array([39, 0, 39])]
    lm = KneserNeyLM.train(train, order=order, vocab_size=42, dedup=False)  # 2 units unseen
    ref = RefKN([s.tolist() for s in train], order, 42)
    for n in range(order):
        assert lm.discounts[n] == pytest.approx(ref.D[n])
    assert lm.fallback_orders == []
    got = np.concatenate(lm.log2probs(test))
    want = np.concatenate([ref.sentence_log2probs(s.tolist()) for s in test])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for ctx in ([1, 2, 3], [9], [], [41, 40]):
        for w in range(43):
            assert lm.prob(w, ctx, bos=False) == pytest.approx(ref.p(w, ctx), rel=1e-10)


def test_cyclic_sequence_perplexity_near_one():
    cyc = np.tile(np.arange(10), 100)
    train = [np.roll(cyc, s)[: 400 + 37 * s] for s in range(10)]
    lm = KneserNeyLM.train(train, order=4, vocab_size=10)
    assert 1.0 <= lm.perplexity([np.roll(cyc, 3)[:500]]) < 1.05


def test_uniform_random_units_perplexity_approaches_v():
    rng = np.random.default_rng(3)
    v = 8
    # No de-duplication here: the units are i.i.d. uniform (de-dup would forbid repeats).
    train = [rng.integers(0, v, 1000) for _ in range(200)]
    test = [rng.integers(0, v, 1000) for _ in range(20)]
    ppl = ngram_perplexity(train, test, order=4, vocab_size=v, dedup=False)
    assert v * 0.98 < ppl < v * 1.1


def test_dedup_and_validation():
    a = KneserNeyLM.train([[0, 0, 1, 1, 2, 2]], order=3, vocab_size=3)
    b = KneserNeyLM.train([[0, 1, 2]], order=3, vocab_size=3, dedup=False)
    assert a.num_ngrams() == b.num_ngrams()
    assert a.perplexity([[0, 0, 1, 2]]) == pytest.approx(b.perplexity([[0, 1, 2]]))
    assert a.fallback_orders == [1, 2, 3]  # far too little data for estimated discounts
    assert a.summary()["order"] == 3
    with pytest.raises(ValueError):
        a.perplexity([[0, 5]])
    with pytest.raises(ValueError):
        KneserNeyLM.train([[0, 9]], vocab_size=3)
    with pytest.raises(ValueError):
        KneserNeyLM.train([[0]], order=4, vocab_size=100_000)  # keys would overflow int64


def test_trains_fast_on_200k_units():
    train = markov_corpus(400, 1000, k=500, seed=4, branch=8)
    t = time.perf_counter()
    lm = KneserNeyLM.train(train, order=4, vocab_size=500, dedup=False)
    ppl = lm.perplexity(train[:20])
    assert time.perf_counter() - t < 10
    assert 1 < ppl < 20  # 8 successors per unit
