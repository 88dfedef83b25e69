"""Speech enhancement on tokens: noisy units -> clean units, and its scoring through a vocoder.

The multi-layer-tokens paper (arXiv 2406.10735) enhances speech in the token domain: a model
reads the units of a noisy utterance and predicts, frame by frame, the units of the clean one
(a classification over each layer's codebook); a vocoder speaks the result. Here:

- :func:`distort` makes the noisy copy of an utterance: white or pink noise at an SNR drawn in
  [0, 10] dB and, for half the utterances, reverberation with RT60 in [0.3, 0.8] s, all drawn
  from a seed derived from the utterance id (``audio.perturb``), so the same utterance always
  gets the same distortion, on any machine. Length is kept, so noisy and clean frames align.
- :func:`unit_accuracy` is the share of real frames whose predicted unit equals the clean one,
  per layer, beside the same share for the noisy units themselves (the do-nothing baseline).
- :func:`vocoder_scores` speaks the clean, noisy and enhanced units with a unit vocoder (in the
  voice of the noisy recording) and scores each against the clean recording: dWER (Whisper
  transcripts), speaker similarity, DNSMOS.

Example:
    >>> import numpy as np
    >>> w = (0.3 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32)
    >>> noisy, how = distort(w, "utt1")
    >>> noisy.shape == w.shape, sorted(how)
    (True, ['noise', 'reverb_rt60', 'snr_db'])
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np

SEED_STREAM = "enhance"


def _seed(seed: int, *keys: str) -> int:
    """A 31-bit seed from ``seed`` and string keys (CRC32: the same on every machine)."""
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode("utf-8")) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def distortion_params(utt_id: str, seed: int = 0) -> dict[str, Any]:
    """The distortion of one utterance, drawn from ``(seed, utt_id)`` only."""
    rng = np.random.default_rng(_seed(seed, SEED_STREAM, utt_id))
    return {"noise": str(rng.choice(["white", "pink"])), "snr_db": round(float(rng.uniform(0.0, 10.0)), 2),
            "reverb_rt60": round(float(rng.uniform(0.3, 0.8)), 3) if rng.random() < 0.5 else None}


def distort(wave: np.ndarray, utt_id: str, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """The noisy (and maybe reverberant) copy of ``wave`` and how it was made."""
    from speechunits.audio.perturb.noise import add_noise
    from speechunits.audio.perturb.reverb import reverberate

    how = distortion_params(utt_id, seed)
    s = _seed(seed, SEED_STREAM, utt_id, "signal")
    out = np.asarray(wave, dtype=np.float32)
    if how["reverb_rt60"] is not None:
        out = reverberate(out, how["reverb_rt60"], seed=s)
    out = add_noise(out, how["snr_db"], how["noise"], seed=s)
    return np.clip(out, -1.0, 1.0).astype(np.float32), how


def unit_accuracy(pred: Sequence[np.ndarray], clean: Sequence[np.ndarray], noisy: Sequence[np.ndarray]) -> dict:
    """Per-layer share of frames equal to the clean units: enhanced and (baseline) noisy."""
    p, c, n = (np.concatenate([np.asarray(a).reshape(len(a), -1) for a in xs]) for xs in (pred, clean, noisy))
    return {"enhanced": (p == c).mean(0).round(4).tolist(), "noisy": (n == c).mean(0).round(4).tolist(),
            "frames": int(len(c))}


def vocoder_scores(vocoder, items: Sequence[dict], scorers: dict, layers: Sequence[int] | None = None) -> dict:
    """Speak clean / noisy / enhanced units of ``items`` and score each against the clean audio.

    ``items``: ``{"id", "text", "clean_wave", "noisy_wave", "clean", "noisy", "enhanced"}`` (units
    ``[T, L]`` in the vocoder's layers). Returns ``{"clean_units"|"noisy_units"|"enhanced_units":
    mean scores}``.
    """
    from speechunits.metrics.resynthesis import ResynthesisPair, resynthesis_scores

    out = {}
    for which in ("clean", "noisy", "enhanced"):
        pairs = []
        for it in items:
            wave = vocoder.synthesize(np.asarray(it[which]), speaker_wave=it["noisy_wave"], layers=layers)
            n = min(len(wave), len(it["clean_wave"]))
            pairs.append(ResynthesisPair(it["id"], it.get("text"), it["clean_wave"][:n], wave[:n]))
        res = resynthesis_scores(pairs, mcd=False, f0=False, **scorers)
        out[f"{which}_units"] = {k: v for k, v in res.mean.items() if v is not None}
    return out


def speak_enhanced(vocoder, units: dict[str, tuple], columns: Sequence[int], waves: dict[str, np.ndarray],
                   texts: dict[str, str | None], scorers: dict) -> dict:
    """Vocoder scores of the enhancement units of ``units`` (id -> (enhanced, clean, noisy) over
    the tokenizer ``columns``), for the ids in ``waves`` (their clean recordings)."""
    vcols = list(vocoder.config.get("tokenizer", {}).get("unit_layers") or range(vocoder.num_layers))
    if not set(columns) <= set(vcols):
        raise ValueError(f"the vocoder speaks the tokenizer's layers {vcols}; the probe predicts {list(columns)}")
    pos = [vcols.index(c) for c in columns]

    def full(a: np.ndarray) -> np.ndarray:
        z = np.zeros((len(a), len(vcols)), dtype=np.int64)
        z[:, pos] = a
        return z

    items = []
    for uid, clean_wave in waves.items():
        enh, clean, noisy = units[uid]
        items.append({"id": uid, "text": texts.get(uid), "clean_wave": clean_wave,
                      "noisy_wave": distort(clean_wave, uid)[0], "clean": full(clean), "noisy": full(noisy),
                      "enhanced": full(enh)})
    return vocoder_scores(vocoder, items, scorers, layers=pos if len(vcols) > 1 else None)
