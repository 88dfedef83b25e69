"""Decoding CTC outputs and scoring probes, with confidence intervals for small test sets.

- :func:`ctc_greedy` and :func:`ctc_beam` (prefix beam search without a language model, as in
  DASB's CTC decoding) turn ``[T, V]`` log-probabilities (blank 0) into symbol indices.
- :func:`error_rate` pools edit counts over utterances (WER, CER, PER) and gives a 95 %
  bootstrap interval over utterances; :func:`accuracy` gives the Wilson 95 % interval.

Example:
    >>> import numpy as np
    >>> lp = np.log(np.array([[.1, .8, .1], [.1, .8, .1], [.8, .1, .1], [.1, .1, .8]]))
    >>> ctc_greedy(lp), ctc_beam(lp, width=4)
    ([1, 2], [1, 2])
    >>> r = accuracy([True, True, False, True])
    >>> r["value"], round(r["ci95"][0], 3)
    (0.75, 0.301)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

import numpy as np


def ctc_greedy(log_probs: np.ndarray) -> list[int]:
    """Best path: arg-max per frame, repeats merged, blanks (0) dropped."""
    best = np.asarray(log_probs).argmax(-1)
    out, prev = [], -1
    for s in best.tolist():
        if s != prev and s != 0:
            out.append(s)
        prev = s
    return out


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_beam(log_probs: np.ndarray, width: int = 8, prune: float = -8.0) -> list[int]:
    """CTC prefix beam search (no LM): the most probable label sequence summed over alignments.

    ``prune``: symbols whose frame log-probability is below it are not extended (speed only).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (log p blank-end, non-blank-end)
    for t in range(lp.shape[0]):
        row = lp[t]
        cand = [s for s in np.argsort(row)[::-1][: width + 1].tolist() if row[s] >= prune or s == int(row.argmax())]
        nxt: dict[tuple, list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (pb, pnb) in beams.items():
            total = _logsumexp(pb, pnb)
            for s in cand:
                p = float(row[s])
                if s == 0:
                    e = nxt[prefix]
                    e[0] = _logsumexp(e[0], total + p)
                    continue
                last = prefix[-1] if prefix else None
                ext = prefix + (s,)
                e = nxt[ext]
                # a repeated symbol extends only from a blank-ending path; otherwise it merges
                e[1] = _logsumexp(e[1], (pb if s == last else total) + p)
                if s == last:
                    same = nxt[prefix]
                    same[1] = _logsumexp(same[1], pnb + p)
        ranked = sorted(nxt.items(), key=lambda kv: _logsumexp(*kv[1]), reverse=True)[:width]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    best = max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0]
    return list(best)


def error_rate(edits: Sequence[int], lengths: Sequence[int], seed: int = 0, resamples: int = 1000) -> dict:
    """Pooled error rate ``sum(edits) / sum(lengths)`` with a 95 % bootstrap interval over utterances."""
    e, n = np.asarray(edits, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    if len(e) == 0 or n.sum() <= 0:
        raise ValueError("an error rate needs at least one utterance with a reference")
    value = float(e.sum() / n.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(e), (resamples, len(e)))
    boot = e[idx].sum(1) / np.maximum(n[idx].sum(1), 1)
    return {"value": value, "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "utterances": int(len(e)), "reference_units": int(n.sum())}


def accuracy(correct: Sequence[bool]) -> dict:
    """Share correct, with the Wilson 95 % score interval."""
    c = np.asarray(correct, dtype=bool)
    n = len(c)
    if n == 0:
        raise ValueError("accuracy needs at least one test example")
    p, z = float(c.mean()), 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"value": p, "ci95": [max(0.0, centre - half), min(1.0, centre + half)], "examples": n}
