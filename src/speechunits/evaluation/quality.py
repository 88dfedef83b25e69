"""Per-layer unit statistics: codebook use and bitrates, PNMI/CNMI/purity, 4-gram perplexity.

Each function takes the frame-level ids of one layer (``[T]`` per utterance) and returns a
JSON-able dict (or :func:`~._result.skipped` with the reason) plus, where a plot needs it, the
arrays behind it. The formulas are those of :mod:`speechunits.metrics`; see docs/evaluation.md.

- :func:`codebook_section`: :func:`~speechunits.metrics.codebook_stats` on frame ids, on
  de-duplicated ids and, when the tokenizer has BPE, on BPE tokens (``k`` = the BPE vocabulary,
  durations = the frames each utterance covers), so the three bitrates share one time base.
- :func:`alignment_section`: PNMI on the phone tier and CNMI on the character tier of the aligned
  utterances, frames labelled by their true centre (``window_s`` = the encoder's window).
- :func:`ngram_section`: 4-gram interpolated modified Kneser-Ney on de-duplicated units, trained
  on one set of utterances and scored on another (:func:`lm_split`: 80/20 by utterance, seeded).

Example:
    >>> import numpy as np
    >>> ids = [np.array([0, 0, 1, 1, 2, 3]), np.array([3, 3, 2])]
    >>> sec, counts = codebook_section(ids, k=4, frame_rate=50.0)
    >>> sec["frames"]["utilization"], sec["dedup"]["num_tokens"], sec["bpe"]["skipped"]
    (1.0, 6, True)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from speechunits.data.alignment import Alignment
from speechunits.metrics import KneserNeyLM, codebook_stats, frame_label_pairs, label_code_stats, position_nmi
from speechunits.metrics.alignment_metrics import UNKNOWN, AlignmentStats

from ._result import skipped
from .dataset import stable_seed


def codebook_section(
    ids: Sequence[np.ndarray],
    k: int,
    frame_rate: float,
    bpe: Callable[[np.ndarray], np.ndarray] | None = None,
    bpe_vocab_size: int | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Codebook statistics before/after de-dup (and after BPE); returns (section, counts by stage).

    ``bpe`` maps one utterance's frame ids to its BPE token ids (``Tokenizer.postprocess``).
    """
    seconds = [len(x) / frame_rate for x in ids]
    frames = codebook_stats(ids, k, frame_rate, dedup=False)
    dedup = codebook_stats(ids, k, frame_rate, dedup=True)
    out: dict[str, Any] = {
        "frames": frames.to_dict(),
        "dedup": dedup.to_dict(),
        "dedup_ratio": frames.num_tokens / dedup.num_tokens if dedup.num_tokens else None,
    }
    counts = {"frames": frames.counts, "dedup": dedup.counts}
    if bpe is None or bpe_vocab_size is None:
        out["bpe"] = skipped("the tokenizer has no BPE (train one with `speechunits bpe`)")
    else:
        tokens = [bpe(x) for x in ids]
        s = codebook_stats(tokens, bpe_vocab_size, durations_s=seconds, dedup=False)
        out["bpe"] = s.to_dict()
        counts["bpe"] = s.counts
    return out, counts


def nmi_chance(pairs: Sequence[tuple[np.ndarray, list[str]]], seed: int) -> float:
    """NMI with the codes randomly permuted over the labelled frames: what codes unrelated to
    the labels score with the same code and label counts.

    The plug-in NMI is biased upwards when codes are many for the frames (k = 2000 on a few
    thousand frames), so a score means something only by its distance above this level.
    """
    codes = np.concatenate([np.asarray(c)[: len(lab)] for c, lab in pairs])
    labels = np.array([x for _, lab in pairs for x in lab], dtype=object)
    keep = labels != UNKNOWN
    shuffled = np.random.default_rng(seed).permutation(codes[keep])
    return float(label_code_stats([(shuffled, list(labels[keep]))], unknown=UNKNOWN, max_frame_diff=0).to_dict()["nmi"])


def alignment_section(
    ids: Sequence[np.ndarray],
    alignments: Sequence[Alignment | None],
    frame_rate: float,
    window_s: float,
) -> tuple[dict[str, Any], AlignmentStats | None]:
    """PNMI (phones) and CNMI (characters) over the aligned utterances; returns the phone stats
    too (for the P(phone | code) heat map)."""
    pairs = [(x, a) for x, a in zip(ids, alignments) if a is not None]
    if not pairs:
        reason = ("no alignments (use a manifest whose lines name an 'alignment', or a folder with "
                  "<stem>.alignment.json / <stem>.phone.json files)")
        return {"pnmi": skipped(reason), "cnmi": skipped(reason)}, None
    centre = f"frame centre (window {window_s * 1000:g} ms, hop {1000 / frame_rate:g} ms)"
    out: dict[str, Any] = {"labelling": {"aligned_utterances": len(pairs), "utterances": len(ids), "rule": centre}}
    phone_stats = None
    for key, tier in (("pnmi", "phones"), ("cnmi", "chars")):
        lab = frame_label_pairs([x for x, _ in pairs], [a for _, a in pairs], tier, frame_rate,
                                unknown=UNKNOWN, window_s=window_s)
        if not any(lbl != UNKNOWN for _, labels in lab for lbl in labels):
            out[key] = skipped(f"the alignments have no {tier} tier")
            continue
        stats = label_code_stats(lab, unknown=UNKNOWN, max_frame_diff=0)
        out[key] = stats.to_dict()
        out[key]["nmi_chance"] = nmi_chance(lab, seed=stable_seed(0, f"{key}-chance"))
        if key == "pnmi":
            phone_stats = stats
    return out, phone_stats


# Units whose position margin exceeds this (with no alignments to compare against) are flagged.
POSITION_FLAG_MARGIN = 0.2


def position_section(ids: Sequence[np.ndarray], frame_rate: float, pnmi: dict[str, Any] | None) -> dict[str, Any]:
    """Position leakage (:func:`~speechunits.metrics.position_nmi`) and whether it explains robustness.

    Flagged when the units say more about where a frame is than about its phone (position margin
    above the PNMI margin over its own chance level), or, without alignments, when the position
    margin exceeds ``POSITION_FLAG_MARGIN``: such units' UED is low because noise cannot move a
    position, not because they are robust.
    """
    if not any(len(x) for x in ids):
        return skipped("no frames")
    out: dict[str, Any] = position_nmi(ids, frame_rate)
    phone_margin = None
    if isinstance(pnmi, dict) and "nmi" in pnmi and pnmi.get("nmi_chance") is not None:
        phone_margin = pnmi["nmi"] - pnmi["nmi_chance"]
    out["phone_margin"] = phone_margin
    if phone_margin is not None:
        out["flagged"] = bool(out["margin"] > phone_margin)
        out["rule"] = "flagged when the position margin exceeds the PNMI margin (both over their permuted-code level)"
    else:
        out["flagged"] = bool(out["margin"] > POSITION_FLAG_MARGIN)
        out["rule"] = f"no alignments: flagged when the position margin exceeds {POSITION_FLAG_MARGIN}"
    return out


def lm_split(n: int, seed: int, train_share: float = 0.8) -> tuple[list[int], list[int]]:
    """Utterance indices (train, test): a seeded permutation, the first ``round(0.8 n)``
    (at least 1, at most ``n - 1``) for training.

    >>> lm_split(10, 0)[1].__len__()
    2
    """
    if n < 2:
        raise ValueError("need at least 2 utterances to split")
    perm = np.random.default_rng(stable_seed(seed, "ngram-split")).permutation(n)
    n_train = min(n - 1, max(1, int(round(train_share * n))))
    return sorted(perm[:n_train].tolist()), sorted(perm[n_train:].tolist())


def ngram_section(train: Sequence[np.ndarray], test: Sequence[np.ndarray], k: int, order: int = 4,
                  split: str = "") -> dict[str, Any]:
    """Perplexity of ``test`` under an ``order``-gram KN LM fitted on ``train`` (de-duplicated)."""
    if not train or not test:
        return skipped("need training and test utterances for the n-gram LM")
    lm = KneserNeyLM.train(train, order=order, vocab_size=k, dedup=True)
    ppl = lm.perplexity(test)
    n_test = sum(len(s) for s in lm_tokens(test))
    return {
        "order": order,
        "split": split,
        "train_utterances": len(train),
        "test_utterances": len(test),
        "train_tokens": sum(len(s) for s in lm_tokens(train)),
        "test_tokens": n_test,
        "perplexity": float(ppl),
        # perplexity counts one </s> per sentence, as kenlm's query does
        "predicted_tokens": n_test + len(test),
        "num_ngrams": lm.num_ngrams(),
        "fallback_orders": list(lm.fallback_orders),
    }


def lm_tokens(seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """De-duplicated sequences (what the LM sees)."""
    from speechunits.tokens import dedup_ids

    return [dedup_ids(np.asarray(s))[0] if len(s) else np.asarray(s) for s in seqs]
