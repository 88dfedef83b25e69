"""Correlation of proxy metrics with each other and with downstream scores, across tokenizers.

DC-Spin compares tokenizers by how well cheap proxies (entropy bitrate, 4-gram perplexity, ABX,
PNMI, CNMI, UED) predict downstream results, with Pearson correlations computed across the
tokenizers. Given ``{tokenizer: {metric: value}}``:

1. metrics named in ``lower_is_better`` are negated, so that for every metric larger is better
   and a positive correlation means "agree";
2. for each pair of metrics, Pearson's ``r = cov(x, y) / (sd(x) sd(y))`` over the tokenizers
   that have both values (finite), with that ``n`` recorded per pair;
3. ``r`` is NaN when ``n < 2`` or a metric is constant over those tokenizers; a ``note`` warns
   when any pair has ``n < 3`` (two points always correlate at +-1);
4. a 95 % confidence interval per pair by Fisher's z (``atanh(r) +- 1.96 / sqrt(n - 3)``),
   NaN below ``n = 4``: with the handful of tokenizers a study can afford, the interval is
   the honest part of the number.

Example:
    >>> table = {"a": {"abx": 10.0, "pnmi": 0.3}, "b": {"abx": 8.0, "pnmi": 0.5},
    ...          "c": {"abx": 5.0, "pnmi": 0.6}}
    >>> c = proxy_correlation(table, lower_is_better=["abx"])
    >>> round(c.get("abx", "pnmi"), 3), c.n[0][1]
    (0.954, 3)
    >>> [round(v, 2) for v in pearson_ci(0.9, 10)]
    [0.62, 0.98]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass
class CorrelationResult:
    metrics: list[str]
    matrix: list[list[float]]  # Pearson r, metrics x metrics (after negation)
    n: list[list[int]]  # tokenizers used for each pair
    tokenizers: list[str]
    negated: list[str]
    note: str | None
    ci_low: list[list[float]] | None = None  # 95 % interval of each r (Fisher z), NaN for n < 4
    ci_high: list[list[float]] | None = None

    def get(self, a: str, b: str) -> float:
        return self.matrix[self.metrics.index(a)][self.metrics.index(b)]

    def interval(self, a: str, b: str) -> tuple[float, float]:
        i, j = self.metrics.index(a), self.metrics.index(b)
        if self.ci_low is None or self.ci_high is None:
            return float("nan"), float("nan")
        return self.ci_low[i][j], self.ci_high[i][j]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN written as ``None``)."""
        def clean(m: list[list[float]] | None) -> list[list[float | None]] | None:
            return None if m is None else [[None if math.isnan(v) else v for v in row] for row in m]

        return {
            "metrics": self.metrics,
            "matrix": clean(self.matrix),
            "ci_low": clean(self.ci_low),
            "ci_high": clean(self.ci_high),
            "n": self.n,
            "tokenizers": self.tokenizers,
            "negated": self.negated,
            "note": self.note,
        }

    def as_array(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.float64)


def proxy_correlation(
    table: Mapping[str, Mapping[str, float]],
    lower_is_better: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
) -> CorrelationResult:
    """Pearson correlation matrix of metrics across tokenizers (see the module docstring)."""
    tokenizers = list(table)
    if metrics is None:
        seen: dict[str, None] = {}
        for row in table.values():
            for m in row:
                seen.setdefault(m, None)
        metrics = list(seen)
    metrics = list(metrics)
    lower = set(lower_is_better)
    x = np.full((len(tokenizers), len(metrics)), np.nan)
    for i, t in enumerate(tokenizers):
        for j, m in enumerate(metrics):
            v = table[t].get(m)
            if v is not None:
                v = float(v)
                x[i, j] = -v if m in lower else v
    k = len(metrics)
    r = np.full((k, k), np.nan)
    n = np.zeros((k, k), dtype=np.int64)
    for a in range(k):
        for b in range(a, k):
            ok = np.isfinite(x[:, a]) & np.isfinite(x[:, b])
            n[a, b] = n[b, a] = int(ok.sum())
            r[a, b] = r[b, a] = pearson(x[ok, a], x[ok, b])
    ci = np.array([[pearson_ci(r[a, b], int(n[a, b])) for b in range(k)] for a in range(k)]).reshape(k, k, 2)
    note = None
    if k and n.min() < 3:
        note = (f"only {int(n.min())} tokenizer(s) for some metric pairs: "
                "correlations from fewer than 3 points are not meaningful")
    return CorrelationResult(
        metrics=metrics,
        matrix=r.tolist(),
        n=n.tolist(),
        tokenizers=tokenizers,
        negated=[m for m in metrics if m in lower],
        note=note,
        ci_low=ci[..., 0].tolist(),
        ci_high=ci[..., 1].tolist(),
    )


def pearson_ci(r: float, n: int, z_crit: float = 1.959964) -> tuple[float, float]:
    """The 95 % confidence interval of a Pearson ``r`` from ``n`` points (Fisher's z transform);
    NaN when ``n < 4`` or ``r`` is NaN. ``|r| = 1`` gives the point itself."""
    if n < 4 or not math.isfinite(r):
        return float("nan"), float("nan")
    if abs(r) >= 1.0:
        return float(r), float(r)
    z, half = math.atanh(r), z_crit / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two equal-length vectors; NaN for ``n < 2`` or a constant vector.

    >>> pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 7]))  # doctest: +ELLIPSIS
    0.993...
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    if den == 0:
        return float("nan")
    return float(max(-1.0, min(1.0, float((dx * dy).sum()) / den)))
