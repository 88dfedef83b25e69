"""Distorted inputs, clean targets: augmentation for masked-prediction pre-training.

Measured here (docs/results.md): k-means units of our small encoder's layers change more under
noise, pitch shifts and speaker changes than k-means units of the log-mel features the encoder
reads (mean UED 0.80 against 0.71 on LibriSpeech test-other): 1,000 steps of masked prediction
teach it nothing about invariance. So, as WavLM's denoising pre-training and ContentVec do, the
input of a crop may be distorted while its targets stay the cluster ids of the *clean* audio;
the model can only predict them by ignoring the distortion. All distortions keep the length, so
frames and targets stay aligned:

* ``speaker``: the Spin/ContentVec speaker perturbation (formant and F0 scaling, pitch range, EQ;
  :func:`~speechunits.audio.perturb.random_speaker_perturbation`), probability 0.5;
* ``noise``: white or babble (the batch's other crops as talkers), SNR uniform in 0-20 dB,
  probability 0.5;
* ``reverb``: a synthetic room, RT60 uniform in 0.2-0.8 s, probability 0.25.

``augment`` (0-1) is the share of crops that get the chain at all. Every draw comes from the
crop's own seed (step, position in the batch), so a run is reproducible and resumes exactly.
A step that cannot apply (a silent crop has no speech level to set an SNR against) is skipped.

Example:
    >>> import numpy as np
    >>> x = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3
    >>> y, applied = augment_crop(x, seed=3, others=[x[::-1].copy()])
    >>> y.shape == x.shape, set(applied) <= {"speaker", "noise", "reverb"}
    (True, True)
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

P_SPEAKER, P_NOISE, P_REVERB = 0.5, 0.5, 0.25
SNR_DB = (0.0, 20.0)
RT60_S = (0.2, 0.8)


def augment_crop(raw: np.ndarray, seed: int, others: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, list[str]]:
    """A distorted copy of ``raw`` (same length, clipped to [-1, 1]) and the names of what was applied."""
    from speechunits.audio.errors import AudioError, AudioWarning
    from speechunits.audio.perturb import random_speaker_perturbation
    from speechunits.audio.perturb.noise import add_noise
    from speechunits.audio.perturb.reverb import reverberate

    rng = np.random.default_rng(seed)
    draws = [rng.random() for _ in range(3)]
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=3)]
    snr, rt60 = float(rng.uniform(*SNR_DB)), float(rng.uniform(*RT60_S))
    babble = bool(rng.random() < 0.5) and len(others) > 0
    kind = "babble" if babble else "white"
    steps = [
        ("speaker", draws[0] < P_SPEAKER, lambda x: random_speaker_perturbation(seeds[0]).apply(x)),
        ("noise", draws[1] < P_NOISE,
         lambda x: add_noise(x, snr, kind, seed=seeds[1], sources=list(others) if babble else None)),
        ("reverb", draws[2] < P_REVERB, lambda x: reverberate(x, rt60, seed=seeds[2])),
    ]
    y, applied = np.asarray(raw, dtype=np.float32), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)  # EQ boosts may peak above 1: clipped below
        for name, chosen, apply in steps:
            if not chosen:
                continue
            try:
                y = apply(y)
            except AudioError:  # e.g. a silent crop has no speech level to set an SNR against
                continue
            applied.append(name)
    if len(y) != len(raw):
        raise RuntimeError(f"augmentation changed the length ({len(raw)} -> {len(y)} samples)")
    return np.clip(y, -1.0, 1.0).astype(np.float32), applied
