"""Robustness of units to distortions: unit edit distance (UED) between clean and distorted units.

For each distortion, the corpus UED is

    UED = sum_u lev(dedup(clean_u), dedup(distorted_u)) / sum_u len(dedup(clean_u))

with ``lev`` the Levenshtein distance (:func:`speechunits.tokens.edit_distance`), the clean units
as the reference, both sides de-duplicated (NAST, Messica & Adi 2024; DC-Spin, Chang et al.:
"unit edit distance" on de-duplicated units). Long utterances weigh more, as with WER. The
perturbation runner lives elsewhere; this module only scores.

Utterances are matched by key when both sides are mappings (``{utt_id: units}``; an utterance
missing on the distorted side is an error, an extra one is ignored), by position when lists.

Example:
    >>> clean = {"a": [1, 1, 2, 3], "b": [4, 5]}
    >>> noisy = {"a": [1, 2, 2, 3], "b": [4, 6]}
    >>> ued_by_distortion(clean, {"noise_5db": noisy})["noise_5db"].ued
    0.2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..tokens.dedup import dedup_ids
from ..tokens.distance import edit_distance
from ..tokens.units import Units, as_int_ids

UnitsLike = Any  # 1-D int sequence or Units
Collection = Mapping[str, UnitsLike] | Sequence[UnitsLike]


@dataclass
class UedResult:
    """Corpus UED of one distortion: ``distance / reference_length``."""

    ued: float
    distance: int
    reference_length: int
    num_utterances: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_ued(clean: Collection, distorted: Collection, dedup: bool = True) -> UedResult:
    """Corpus UED of distorted against clean units (see the module docstring).

    >>> corpus_ued([[1, 2, 3]], [[1, 2, 3]]).ued
    0.0
    """
    pairs = _pair_up(clean, distorted)
    dist = ref_len = 0
    for ref, hyp in pairs:
        r, h = _ids(ref, dedup), _ids(hyp, dedup)
        dist += edit_distance(r, h)
        ref_len += len(r)
    if ref_len == 0:
        ued = 0.0 if dist == 0 else float("inf")
    else:
        ued = dist / ref_len
    return UedResult(
        ued=float(ued), distance=int(dist), reference_length=int(ref_len), num_utterances=len(pairs)
    )


def ued_by_distortion(
    clean: Collection, distorted: Mapping[str, Collection], dedup: bool = True
) -> dict[str, UedResult]:
    """:func:`corpus_ued` for each distortion name -> ``UedResult``."""
    return {name: corpus_ued(clean, d, dedup) for name, d in distorted.items()}


def ued_table(results: Mapping[str, UedResult]) -> dict[str, float]:
    """``{distortion: ued}`` plus ``"mean"`` over the distortions (unweighted)."""
    out = {k: r.ued for k, r in results.items()}
    if out:
        out["mean"] = float(np.mean(list(out.values())))
    return out


def _pair_up(clean: Collection, distorted: Collection) -> list[tuple[Any, Any]]:
    if isinstance(clean, Mapping):
        if not isinstance(distorted, Mapping):
            raise TypeError("clean units are keyed by utterance id: key the distorted ones too")
        missing = [k for k in clean if k not in distorted]
        if missing:
            raise KeyError(f"{len(missing)} utterances have no distorted units, e.g. {missing[:3]}")
        return [(clean[k], distorted[k]) for k in clean]
    if isinstance(distorted, Mapping):
        raise TypeError("distorted units are keyed by utterance id; give the clean ones the same way")
    clean, distorted = list(clean), list(distorted)
    if len(clean) != len(distorted):
        raise ValueError(f"{len(clean)} clean but {len(distorted)} distorted utterances")
    return list(zip(clean, distorted))


def _ids(u: Any, dedup: bool) -> np.ndarray:
    ids = u.ids if isinstance(u, Units) else as_int_ids(u)
    if dedup and len(ids):
        ids = dedup_ids(ids)[0]
    return ids
