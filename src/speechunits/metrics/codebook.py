"""Codebook statistics of unit sequences: utilization, token distribution, entropy and bitrate.

All statistics are computed over a list of 1-D integer sequences (one per utterance) with ids in
``[0, k)``. They apply unchanged to frame-level k-means units (``dedup=False``), to de-duplicated
units (``dedup=True``, the default) and to BPE tokens (pass the BPE ids, ``k`` = the BPE
vocabulary size, ``dedup=False``, and ``durations_s`` since BPE tokens no longer map to frames).

Definitions (``c_v`` = occurrences of token ``v`` over all sequences, ``N = sum_v c_v`` tokens,
``T`` seconds of audio, ``p_v = c_v / N``):

- **utilization** = ``|{v : c_v > 0}| / k``: the share of the k codes that are used (the
  "cluster utilization" of the discrete-unit LM study, arXiv 2509.05359).
- **token distribution** (discrete-vs-continuous study, arXiv 2411.08742): sort counts in
  decreasing order; ``tokens_95`` = the smallest ``m`` such that the ``m`` most frequent tokens
  carry at least 95% of all occurrences; ``share_tokens_95 = tokens_95 / k`` (share of the
  vocabulary; ``tokens_95 / used`` is ``share_used_tokens_95``). ``top20_coverage`` = the share of
  occurrences carried by the ``ceil(0.2 * k)`` most frequent tokens (unused codes count as 0). A
  uniform code gives ``share_tokens_95 = 0.95`` and ``top20_coverage = 0.2``; a skewed one gives a
  small share and a large coverage.
- **unigram entropy** ``H = -sum_v p_v log2 p_v`` (bits per token), maximum ``log2 k``.
- **entropy bitrate** = ``N / T * H`` bits/s: the token rate times the expected code length under
  the empirical unigram distribution, ``N/T * E[-log2 p(v)]``, as DC-Spin and "How Should We
  Extract Discrete Audio Tokens from Self-Supervised Models?" (arXiv 2406.10735) define it (on
  de-duplicated tokens, hence ``dedup=True`` by default; ``p`` is estimated on the same data).
- **nominal bitrate** = ``log2(V) * C * Rs`` bits/s (arXiv 2411.08742), ``V = k`` the vocabulary
  size, ``C`` the number of codebooks (``num_codebooks``), ``Rs = N / T`` the measured token rate
  in Hz (= ``frame_rate`` for frame-level units, lower after de-duplication or BPE).

For a uniform code without de-duplication the two bitrates agree: ``log2(k) * frame_rate``.

Example:
    >>> import numpy as np
    >>> seqs = [np.array([0, 1, 2, 3] * 25)]          # uniform over 4 codes, 100 frames, 2 s
    >>> s = codebook_stats(seqs, k=8, frame_rate=50.0, dedup=False)
    >>> s.utilization, s.entropy_bits, s.entropy_bitrate, s.nominal_bitrate
    (0.5, 2.0, 100.0, 150.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..tokens.dedup import dedup_ids
from ..tokens.units import Units, as_int_ids

UnitSeq = np.ndarray | Sequence[int] | Units


@dataclass
class CodebookStats:
    """Result of :func:`codebook_stats` (see the module docstring for each definition)."""

    k: int
    num_sequences: int
    num_tokens: int
    duration_s: float
    token_rate_hz: float
    used: int
    utilization: float
    tokens_95: int
    share_tokens_95: float
    share_used_tokens_95: float
    top20_coverage: float
    entropy_bits: float
    entropy_bitrate: float
    nominal_bitrate: float
    num_codebooks: int
    dedup: bool
    counts: np.ndarray = field(repr=False)

    def to_dict(self, with_counts: bool = False) -> dict[str, Any]:
        """JSON-able dict; ``counts`` (length k) only when asked."""
        d = asdict(self)
        counts = d.pop("counts")
        if with_counts:
            d["counts"] = np.asarray(counts).tolist()
        return d


def unit_counts(seqs: Sequence[UnitSeq], k: int, dedup: bool = False) -> np.ndarray:
    """Occurrences of each id in ``[0, k)`` over all sequences (int64 ``[k]``).

    >>> unit_counts([[0, 0, 2], [2]], k=3).tolist()
    [2, 0, 2]
    >>> unit_counts([[0, 0, 2], [2]], k=3, dedup=True).tolist()
    [1, 0, 2]
    """
    counts = np.zeros(int(k), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids = _ids(s, dedup, f"sequence {i}")
        if len(ids) == 0:
            continue
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"sequence {i}: ids outside [0, {k}) (min {lo}, max {hi})")
        counts += np.bincount(ids, minlength=k)
    return counts


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of the distribution proportional to ``counts``.

    >>> entropy_bits(np.array([1, 1, 1, 1, 0]))
    2.0
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return 0.0
    p = c[c > 0] / total
    return float(max(0.0, -(p * np.log2(p)).sum()))


def token_distribution(counts: np.ndarray, mass: float = 0.95, top: float = 0.2) -> dict[str, float]:
    """``tokens_95``, its shares, and ``top20_coverage`` (module docstring) from counts ``[k]``.

    >>> token_distribution(np.array([70, 20, 5, 3, 2, 0, 0, 0, 0, 0]))["tokens_95"]
    3
    """
    c = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    k, total = len(c), int(c.sum())
    if k == 0 or total == 0:
        return {"tokens_95": 0, "share_tokens_95": 0.0, "share_used_tokens_95": 0.0,
                "top20_coverage": 0.0}
    cum = np.cumsum(c)
    # Integer comparison cum >= mass * total, robust to float rounding for round shares.
    need = mass * total
    m = int(np.searchsorted(cum, need - 1e-9 * total, side="left")) + 1
    used = int((c > 0).sum())
    n_top = max(1, math.ceil(top * k - 1e-9))
    return {
        "tokens_95": m,
        "share_tokens_95": m / k,
        "share_used_tokens_95": m / used,
        "top20_coverage": float(cum[n_top - 1] / total),
    }


def codebook_stats(
    seqs: Sequence[UnitSeq],
    k: int,
    frame_rate: float = 50.0,
    durations_s: Sequence[float] | None = None,
    dedup: bool = True,
    num_codebooks: int = 1,
) -> CodebookStats:
    """Codebook statistics of ``seqs`` (ids in ``[0, k)``); see the module docstring.

    Args:
        seqs: 1-D int sequences (or ``Units``; de-duplicated ``Units`` keep their frame count).
        k: vocabulary size V (k-means k, or the BPE vocabulary size for BPE ids).
        frame_rate: Hz of the frames the ids were read at; gives ``T`` when ``durations_s`` is
            not given (``T = frames / frame_rate``, counted *before* de-duplication).
        durations_s: seconds of audio per sequence (needed for BPE ids).
        dedup: collapse runs of repeated ids first (entropy bitrate is defined on de-duplicated
            tokens).
        num_codebooks: C in the nominal bitrate ``log2(V) * C * Rs``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if num_codebooks < 1:
        raise ValueError(f"num_codebooks must be >= 1, got {num_codebooks}")
    seqs = list(seqs)
    if durations_s is not None:
        durations = [float(d) for d in durations_s]
        if len(durations) != len(seqs):
            raise ValueError(f"{len(durations)} durations for {len(seqs)} sequences")
        if any(not (d >= 0 and math.isfinite(d)) for d in durations):
            raise ValueError("durations_s must be finite and >= 0")
        total_s = float(sum(durations))
    else:
        if not (frame_rate > 0 and math.isfinite(frame_rate)):
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        frames = sum(s.num_frames if isinstance(s, Units) else len(as_int_ids(s)) for s in seqs)
        total_s = frames / float(frame_rate)
    counts = unit_counts(seqs, k, dedup=dedup)
    n = int(counts.sum())
    rate = n / total_s if total_s > 0 else float("nan")
    h = entropy_bits(counts)
    used = int((counts > 0).sum())
    dist = token_distribution(counts)
    return CodebookStats(
        k=int(k),
        num_sequences=len(seqs),
        num_tokens=n,
        duration_s=total_s,
        token_rate_hz=rate,
        used=used,
        utilization=used / k,
        tokens_95=int(dist["tokens_95"]),
        share_tokens_95=float(dist["share_tokens_95"]),
        share_used_tokens_95=float(dist["share_used_tokens_95"]),
        top20_coverage=float(dist["top20_coverage"]),
        entropy_bits=h,
        entropy_bitrate=rate * h,
        nominal_bitrate=math.log2(k) * num_codebooks * rate,
        num_codebooks=int(num_codebooks),
        dedup=bool(dedup),
        counts=counts,
    )


def _ids(seq: UnitSeq, dedup: bool, what: str) -> np.ndarray:
    ids = seq.ids if isinstance(seq, Units) else as_int_ids(seq, what)
    if ids.ndim != 1:
        raise ValueError(f"{what}: codebook statistics take [T] ids, got shape {ids.shape}")
    if dedup and len(ids):
        ids = dedup_ids(ids)[0]
    return ids
