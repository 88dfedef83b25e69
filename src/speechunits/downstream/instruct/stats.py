"""What each input path costs the LLM: sequence length per second, token distribution, bitrates.

- positions per second of speech: frames (encoder rate), de-duplicated units, BPE tokens
  (discrete) and stacked frames (continuous);
- the share of distinct tokens that carries 95 % of all occurrences, before BPE (de-duplicated
  units) and after (the paper: about 20 % of the discrete tokens carry 95 %), over the tokens seen
  and over the vocabulary;
- bitrates: discrete tokens x log2(vocabulary) (nominal) and x their unigram entropy; continuous
  stacked frames x dimensions x 16 bits (the float16 features handed over).

Example:
    >>> coverage_share(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 0.95)
    0.5
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from speechunits.tokens.dedup import dedup_ids


def coverage_share(tokens: np.ndarray, mass: float = 0.95) -> float:
    """Smallest share of the distinct tokens seen whose occurrences reach ``mass`` of the total."""
    counts = np.sort(np.bincount(np.asarray(tokens, dtype=np.int64)))[::-1]
    counts = counts[counts > 0]
    if not counts.size:
        raise ValueError("no tokens")
    need = int(np.searchsorted(np.cumsum(counts), mass * counts.sum() - 1e-9) + 1)
    return need / counts.size


def _entropy_bits(tokens: np.ndarray) -> float:
    c = np.bincount(tokens)
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def _distribution(tokens: np.ndarray, vocab: int) -> dict:
    share = coverage_share(tokens)
    distinct = int(np.unique(tokens).size)
    return {"vocabulary": vocab, "distinct_seen": distinct, "share_for_95pct_seen": share,
            "share_for_95pct_vocabulary": share * distinct / vocab, "entropy_bits": _entropy_bits(tokens)}


def input_statistics(items: Sequence, bpe=None, stack: int = 2, feat_dim: int | None = None) -> dict:
    """Both paths' statistics over ``items`` (their units, and with ``bpe`` their BPE tokens)."""
    seconds = sum(it.seconds for it in items)
    if seconds <= 0:
        raise ValueError("the items hold no speech")
    units = [it.units() for it in items]
    frames = sum(len(u) for u in units)
    k = int(bpe.k) if bpe is not None else int(max(int(u.max()) for u in units) + 1)
    dd = np.concatenate([dedup_ids(u)[0] for u in units])
    out = {"seconds": round(seconds, 2), "utterances": len(items), "frames_per_second": frames / seconds,
           "dedup_units_per_second": len(dd) / seconds, "units": _distribution(dd, k)}
    stacked = sum(math.ceil(len(u) / stack) for u in units)
    out["continuous"] = {"positions_per_second": stacked / seconds, "stack": stack}
    if feat_dim:
        out["continuous"]["bitrate_float16"] = stacked / seconds * feat_dim * stack * 16
    if bpe is not None:
        toks = np.concatenate(bpe.encode_batch(units))
        rate = len(toks) / seconds
        out["bpe"] = _distribution(toks, bpe.vocab_size)
        out["discrete"] = {"positions_per_second": rate, "bitrate_nominal": rate * math.log2(bpe.vocab_size),
                           "bitrate_entropy": rate * out["bpe"]["entropy_bits"]}
    return out
