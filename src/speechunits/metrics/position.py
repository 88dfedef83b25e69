"""Position leakage: how much units say *where* in an utterance a frame is, not what is said.

Encoders with absolute positional embeddings (Whisper's sinusoids above all) can produce layers
whose k-means units mostly encode the frame's position. Such units look perfectly robust (noise
cannot move a position, so the unit edit distance under distortion is near 0) while carrying
little phonetic content. No peer toolkit measures this; UED alone rewards it.

The metric is the normalised mutual information between the unit of a frame and the bin of its
absolute time in the utterance, ``I(unit; bin) / H(bin)`` (HuBERT's PNMI formula with position
bins as labels), beside the same with the units permuted over the frames (its chance level: the
plug-in estimate is biased upwards when codes are many), and their difference, the *margin*.
Times past ``max_s`` fall into the last bin (an encoder windowed at 30 s restarts positions).

Example:
    >>> import numpy as np
    >>> positional = [np.arange(200) // 25 for _ in range(20)]  # one unit per 0.5 s of position
    >>> r = position_nmi(positional, frame_rate=50.0)
    >>> round(r["nmi"], 3), r["margin"] > 0.9
    (1.0, True)
    >>> rng = np.random.default_rng(0)
    >>> phonetic = [rng.integers(0, 8, 200) for _ in range(20)]
    >>> position_nmi(phonetic, frame_rate=50.0)["margin"] < 0.05
    True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .alignment_metrics import label_code_stats

__all__ = ["position_nmi"]


def position_nmi(ids: Sequence[np.ndarray], frame_rate: float, bin_s: float = 0.5, max_s: float = 30.0,
                 seed: int = 0) -> dict[str, float | int]:
    """NMI between units and position bins, its permuted-units chance level, and the margin."""
    seqs = [np.asarray(x).reshape(len(x), -1)[:, 0] for x in ids if len(x)]
    if not seqs:
        raise ValueError("position_nmi needs at least one non-empty utterance")
    n_bins = max(1, int(np.ceil(max_s / bin_s)))
    bins = [np.minimum((np.arange(len(x)) / frame_rate / bin_s).astype(np.int64), n_bins - 1) for x in seqs]
    pairs = [(x, [str(b) for b in bb]) for x, bb in zip(seqs, bins)]
    nmi = float(label_code_stats(pairs, unknown="\0", max_frame_diff=0).to_dict()["nmi"])
    codes = np.concatenate(seqs)
    shuffled = np.random.default_rng(seed).permutation(codes)
    labels = [s for _, lab in pairs for s in lab]
    chance = float(label_code_stats([(shuffled, labels)], unknown="\0", max_frame_diff=0).to_dict()["nmi"])
    return {"nmi": nmi, "nmi_chance": chance, "margin": nmi - chance, "bin_s": bin_s, "bins": n_bins,
            "frames": int(codes.size)}
