"""N-gram predictability of units: interpolated modified Kneser-Ney LM and perplexity.

An exact numpy implementation of the model kenlm's ``lmplz`` builds (Heafield et al. 2013,
"Scalable Modified Kneser-Ney Language Model Estimation"; Chen & Goodman 1998, "An Empirical
Study of Smoothing Techniques for Language Modeling", eqs. 17 and 26), used by DC-Spin as a
proxy (4-gram perplexity of de-duplicated units: the more predictable, the better for an LM).

**Sentences.** Each sequence ``w_1 .. w_L`` (de-duplicated first when ``dedup``) becomes
``<s> w_1 .. w_L </s>``. ``</s>`` is predicted, ``<s>`` is only a context (never predicted).

**Counts.** For the highest order N: raw counts ``c``. For a lower order n < N, the *adjusted*
count ``a(g)`` of an n-gram ``g`` is its number of distinct one-word left extensions
``|{x : x g occurs}|`` (the Kneser-Ney continuation count), except when ``g`` starts with
``<s>`` (no left extension possible): then its raw count (kenlm's ``adjust_counts.cc``).

**Discounts** per order from the counts-of-counts ``t_j = |{g : a(g) = j}|`` (eq. 26):
``Y = t_1 / (t_1 + 2 t_2)``, ``D_j = j - (j + 1) Y t_{j+1} / t_j`` for ``j = 1, 2, 3`` (``D_3``
applies to every count >= 3). Where some ``t_j`` is 0 or a ``D_j`` leaves ``[0, j]`` (small or
artificial data) kenlm stops unless ``--discount_fallback``; here the fallback
``(0.5, 1.0, 1.5)`` (kenlm's default fallback) is always used and the order is recorded in
``fallback_orders``. ``discounts=`` overrides them.

**Probabilities** (interpolated): for a context ``h`` seen at order n, with ``h'`` = ``h``
without its first word,

    p(w | h) = max(a(h w) - D(a(h w)), 0) / sum_x a(h x)  +  gamma(h) p(w | h'),
    gamma(h) = (D_1 N_1(h .) + D_2 N_2(h .) + D_3 N_3+(h .)) / sum_x a(h x),

``N_j(h .)`` = the number of words following ``h`` with adjusted count j (3+: >= 3). A context
never seen at order n is skipped: ``p(w | h) = p(w | h')``. The unigram level is interpolated
with the uniform distribution: ``p(w) = u(w) + gamma() / |V|``.

**Vocabulary.** ``|V| = vocab_size + 1``: every unit id in ``[0, vocab_size)`` (seen or not)
plus ``</s>``. So ``sum_w p(w | h) = 1`` over the units and ``</s>`` for every context, and an
unseen unit gets ``gamma() / |V|`` at the unigram level. (kenlm's vocabulary is the *seen* words
plus ``<unk>`` and ``</s>``; with every unit seen the only difference is that kenlm's uniform
share also covers ``<unk>``.) ``vocab_size`` defaults to the largest training id + 1.

**Perplexity** = ``2 ** (-sum log2 p / N)`` over every predicted token including each ``</s>``
(as kenlm's ``query`` reports it), ``N`` = units + sentences.

Example:
    >>> import numpy as np
    >>> lm = KneserNeyLM.train([np.arange(8).repeat(2).tolist() * 20], order=3, vocab_size=8)
    >>> float(lm.distribution([0, 1]).sum()).__round__(9)
    1.0
    >>> round(lm.perplexity([list(range(8)) * 5]), 2) < 1.3
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..tokens.dedup import dedup_ids
from ..tokens.units import Units, as_int_ids

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass
class _Order:
    keys: np.ndarray  # sorted n-gram keys
    u: np.ndarray  # discounted probability mass (a - D) / denominator, per n-gram
    ctx_keys: np.ndarray  # sorted context keys
    gamma: np.ndarray  # interpolation weight per context
    counts: np.ndarray  # adjusted (or raw, highest order) counts per n-gram


class KneserNeyLM:
    """Interpolated modified Kneser-Ney n-gram LM over unit ids (see the module docstring)."""

    def __init__(
        self,
        order: int,
        vocab_size: int,
        levels: list[_Order],
        discounts: list[tuple[float, float, float]],
        fallback_orders: list[int],
        dedup: bool,
    ) -> None:
        self.order = order
        self.vocab_size = vocab_size
        self.eos = vocab_size
        self.bos = vocab_size + 1
        self.base = vocab_size + 2
        self.levels = levels
        self.discounts = discounts
        self.fallback_orders = fallback_orders
        self.dedup = dedup

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        seqs: Sequence[Any],
        order: int = 4,
        vocab_size: int | None = None,
        dedup: bool = True,
        discounts: Sequence[Sequence[float]] | None = None,
    ) -> "KneserNeyLM":
        """Estimate the model from unit sequences (1-D int arrays, lists or ``Units``).

        ``discounts``: one ``(D1, D2, D3+)`` per order (1..order) to override the estimates.
        """
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        ids = [_prepare(s, dedup, f"sequence {i}") for i, s in enumerate(seqs)]
        max_id = max((int(s.max()) for s in ids if len(s)), default=-1)
        if vocab_size is None:
            vocab_size = max_id + 1
        if vocab_size < 1:
            raise ValueError("no units to train on and no vocab_size")
        if max_id >= vocab_size or any(len(s) and s.min() < 0 for s in ids):
            raise ValueError(f"unit ids outside [0, {vocab_size})")
        if discounts is not None and len(discounts) != order:
            raise ValueError(f"need {order} discount triples, got {len(discounts)}")
        base = vocab_size + 2
        _check_base(base, order)
        bos = vocab_size + 1
        tok, sent = _pad(ids, vocab_size)
        windows = [_windows(tok, sent, n, base) for n in range(1, order + 1)]

        levels, used_discounts, fallback = [], [], []
        for n in range(1, order + 1):
            if n == order:
                w = windows[n - 1]
                if n == 1:
                    w = w[w != bos]
                keys, counts = np.unique(w, return_counts=True)
            else:
                upper = np.unique(windows[n])  # distinct (n+1)-grams
                keys, counts = np.unique(upper % base**n, return_counts=True)
                w = windows[n - 1]
                if n > 1:  # n-grams starting with <s>: raw counts
                    sk, sc = np.unique(w[w // base ** (n - 1) == bos], return_counts=True)
                    keys, counts = np.concatenate([keys, sk]), np.concatenate([counts, sc])
                    o = np.argsort(keys, kind="stable")
                    keys, counts = keys[o], counts[o]
            counts = counts.astype(np.int64)
            if discounts is not None:
                d = tuple(float(x) for x in discounts[n - 1])
            else:
                d = _estimate_discounts(counts)
                if d is None:
                    d = FALLBACK_DISCOUNTS
                    fallback.append(n)
            used_discounts.append(d)
            levels.append(_level(keys, counts, d, base, n))
        return cls(order, int(vocab_size), levels, used_discounts, fallback, dedup)

    # ------------------------------------------------------------------ queries
    def log2probs(self, seqs: Sequence[Any]) -> list[np.ndarray]:
        """log2 p of every predicted token (units then ``</s>``) of each sequence."""
        ids = [_prepare(s, self.dedup, f"sequence {i}") for i, s in enumerate(seqs)]
        for i, s in enumerate(ids):
            if len(s) and (s.min() < 0 or s.max() >= self.vocab_size):
                raise ValueError(f"sequence {i}: unit ids outside [0, {self.vocab_size})")
        tok, sent = _pad(ids, self.vocab_size)
        targets = np.flatnonzero(tok != self.bos)
        ctx = []
        for n in range(2, self.order + 1):
            ctx_win = _windows_all(tok, sent, n - 1, self.base)  # key of window starting at i, or -1
            s0 = targets - (n - 1)
            ok = (s0 >= 0)
            ok[ok] = sent[s0[ok]] == sent[targets[ok]]
            c = np.full(len(targets), -1, dtype=np.int64)
            c[ok] = ctx_win[s0[ok]]
            ctx.append(c)
        lp = np.log2(self._prob(tok[targets], ctx))
        bounds = np.cumsum([len(s) + 1 for s in ids])[:-1]
        return np.split(lp, bounds)

    def perplexity(self, seqs: Sequence[Any]) -> float:
        """``2 ** (-mean log2 p)`` over all predicted tokens, ``</s>`` included."""
        lps = self.log2probs(seqs)
        n = sum(len(x) for x in lps)
        if n == 0:
            raise ValueError("no sequence to score")
        return float(2.0 ** (-sum(float(x.sum()) for x in lps) / n))

    def distribution(self, context: Sequence[int], bos: bool = True) -> np.ndarray:
        """``p(w | context)`` for every unit ``w`` and then ``</s>`` (``[vocab_size + 1]``).

        ``bos``: the context starts the sentence (``<s>`` is prepended).
        """
        hist = [int(x) for x in context]
        if any(x < 0 or x >= self.vocab_size for x in hist):
            raise ValueError(f"context ids outside [0, {self.vocab_size})")
        if bos:
            hist = [self.bos] + hist
        v = self.vocab_size + 1
        ctx = []
        for n in range(2, self.order + 1):
            if len(hist) >= n - 1:
                key = 0
                for t in hist[len(hist) - (n - 1):]:
                    key = key * self.base + t
            else:
                key = -1
            ctx.append(np.full(v, key, dtype=np.int64))
        return self._prob(np.arange(v, dtype=np.int64), ctx)

    def prob(self, word: int, context: Sequence[int] = (), bos: bool = True) -> float:
        """``p(word | context)``; ``word == vocab_size`` is ``</s>``."""
        return float(self.distribution(context, bos)[int(word)])

    def _prob(self, w: np.ndarray, ctx: list[np.ndarray]) -> np.ndarray:
        """Interpolate from the uniform distribution up to the longest available context."""
        lv = self.levels[0]
        p = np.full(len(w), float(lv.gamma[0]) / (self.vocab_size + 1))
        p += _lookup(lv.keys, lv.u, w)
        for n in range(2, self.order + 1):
            lv, c = self.levels[n - 1], ctx[n - 2]
            has = c >= 0
            g = _lookup(lv.ctx_keys, lv.gamma, np.where(has, c, 0), missing=np.nan)
            seen = has & ~np.isnan(g)
            u = _lookup(lv.keys, lv.u, np.where(seen, c * self.base + w, 0))
            p = np.where(seen, u + np.where(seen, g, 0.0) * p, p)
        return p

    # ------------------------------------------------------------------ info
    def num_ngrams(self) -> list[int]:
        """Distinct n-grams stored per order (1..order)."""
        return [len(lv.keys) for lv in self.levels]

    def summary(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "vocab_size": self.vocab_size,
            "dedup": self.dedup,
            "num_ngrams": self.num_ngrams(),
            "discounts": [list(d) for d in self.discounts],
            "fallback_orders": list(self.fallback_orders),
        }


def ngram_perplexity(train: Sequence[Any], test: Sequence[Any], order: int = 4,
                     vocab_size: int | None = None, dedup: bool = True) -> float:
    """Train a :class:`KneserNeyLM` on ``train`` and return its perplexity on ``test``."""
    return KneserNeyLM.train(train, order, vocab_size, dedup).perplexity(test)


# ---------------------------------------------------------------------- helpers
def _prepare(seq: Any, dedup: bool, what: str) -> np.ndarray:
    ids = seq.ids if isinstance(seq, Units) else as_int_ids(seq, what)
    if ids.ndim != 1:
        raise ValueError(f"{what}: the n-gram LM takes [T] ids, got shape {ids.shape}")
    if dedup and len(ids):
        ids = dedup_ids(ids)[0]
    return ids


def _check_base(base: int, order: int) -> None:
    if base**order >= 2**63:
        raise ValueError(
            f"vocabulary of {base - 2} units is too large for int64 {order}-gram keys "
            f"(need (vocab + 2) ** order < 2 ** 63)"
        )


def _pad(ids: list[np.ndarray], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``<s> w .. </s>`` for every sequence, concatenated, with the sentence index per token."""
    lens = np.array([len(s) + 2 for s in ids], dtype=np.int64)
    tok = np.empty(int(lens.sum()), dtype=np.int64)
    starts = np.cumsum(lens) - lens
    for s, st in zip(ids, starts):
        tok[st] = vocab_size + 1
        tok[st + 1 : st + 1 + len(s)] = s
        tok[st + 1 + len(s)] = vocab_size
    sent = np.repeat(np.arange(len(ids)), lens)
    return tok, sent


def _windows_all(tok: np.ndarray, sent: np.ndarray, n: int, base: int) -> np.ndarray:
    """Key of the n-token window starting at each position (-1 where it would leave the sentence)."""
    key = tok.copy()
    for k in range(1, n):
        key[: len(tok) - k] = key[: len(tok) - k] * base + tok[k:]
    valid = np.zeros(len(tok), dtype=bool)
    if len(tok) >= n:
        valid[: len(tok) - n + 1] = sent[: len(tok) - n + 1] == sent[n - 1 :]
    return np.where(valid, key, -1)


def _windows(tok: np.ndarray, sent: np.ndarray, n: int, base: int) -> np.ndarray:
    """Keys of every n-token window inside a sentence."""
    k = _windows_all(tok, sent, n, base)
    return k[k >= 0]


def _estimate_discounts(counts: np.ndarray) -> tuple[float, float, float] | None:
    """Chen & Goodman eq. 26 from counts-of-counts; ``None`` when kenlm would refuse them."""
    t = np.bincount(np.minimum(counts, 5), minlength=6).astype(np.float64)
    if t[1] == 0 or t[2] == 0 or t[3] == 0:
        return None
    y = t[1] / (t[1] + 2 * t[2])
    d = tuple(float(j - (j + 1) * y * t[j + 1] / t[j]) for j in (1, 2, 3))
    if any(not (0.0 <= dj <= j) for j, dj in zip((1, 2, 3), d)):
        return None
    return d  # type: ignore[return-value]


def _level(
    keys: np.ndarray, counts: np.ndarray, d: tuple[float, float, float], base: int, n: int
) -> _Order:
    ctx = keys // base if n > 1 else np.zeros(len(keys), dtype=np.int64)
    first = np.concatenate([[True], ctx[1:] != ctx[:-1]]) if len(ctx) else np.zeros(0, bool)
    ctx_of = np.cumsum(first) - 1
    denom = np.bincount(ctx_of, weights=counts.astype(np.float64))
    disc = np.array([0.0, *d])[np.minimum(counts, 3)]
    gamma = np.bincount(ctx_of, weights=disc) / denom
    u = np.maximum(counts - disc, 0.0) / denom[ctx_of]
    return _Order(keys, u, ctx[first], gamma, counts)


def _lookup(keys: np.ndarray, values: np.ndarray, q: np.ndarray, missing: float = 0.0) -> np.ndarray:
    """``values[keys == q]`` for each query, ``missing`` where absent (``keys`` sorted)."""
    if len(keys) == 0:
        return np.full(len(q), missing)
    i = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return np.where(keys[i] == q, values[i], missing)
