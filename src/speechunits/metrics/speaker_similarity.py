"""Speaker similarity of resynthesized speech: cosine of Resemblyzer d-vectors.

``spk_sim`` is the cosine between the d-vectors (:class:`speechunits.encoders.speaker.SpeakerEncoder`,
Resemblyzer's GE2E encoder) of the original and the resynthesized utterance; when the voice is
converted, ``spk_sim_target`` is the cosine between the resynthesized utterance and a reference
utterance of the target speaker. Resemblyzer d-vectors are non-negative, so cosines lie in
[0, 1]; on librispeech-mini test-other, different utterances of one speaker average 0.87 and
different speakers 0.53 (docs/metrics.md).

Example:
    >>> from speechunits.encoders.speaker import SpeakerEncoder
    >>> enc = SpeakerEncoder.from_installed()  # doctest: +SKIP
    >>> speaker_similarity(enc, original, resynthesized)  # doctest: +SKIP
    {'spk_sim': 0.91, 'spk_sim_target': None}
"""

from __future__ import annotations

import numpy as np

from ..encoders.speaker import SpeakerEncoder, cosine_similarity

__all__ = ["speaker_similarity"]


def speaker_similarity(encoder: SpeakerEncoder, original: np.ndarray, resynth: np.ndarray,
                       target: np.ndarray | None = None) -> dict[str, float | None]:
    """``{spk_sim: cos(original, resynth), spk_sim_target: cos(target, resynth) or None}``.

    Raises a ``ValueError`` naming the wave ("original", "resynthesized", "target") that cannot
    be embedded (empty, silent, less than 0.3 s of voice).
    """
    names = ["original", "resynthesized"] + (["target"] if target is not None else [])
    waves = [original, resynth] + ([target] if target is not None else [])
    emb = encoder.embed_batch(waves, names)
    return {"spk_sim": cosine_similarity(emb[0], emb[1]),
            "spk_sim_target": cosine_similarity(emb[2], emb[1]) if target is not None else None}
