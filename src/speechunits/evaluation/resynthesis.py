"""The resynthesis section of an evaluation (``speechunits eval --vocoder V``).

For up to ``seconds`` of a dataset (a seeded subset), every utterance goes through the tokenizer
and the vocoder in its own voice, and is scored against the original (``metrics.resynthesis``:
WER/CER against the transcript where there is one, dWER/dCER against the ASR of the original,
speaker similarity, DNSMOS, MCD, F0). Measured beside it, as toplines: the original audio through
the same ASR and DNSMOS, and *copy-synthesis* (the true log-mels through the same HiFi-GAN), which
bounds what any unit-to-mel model in front of that HiFi-GAN can reach. Where the dataset has
speaker labels, a **voice conversion** test speaks each utterance in the voice of another
speaker's utterance and reports the similarity to the target and to the source voice.
A few original / copy / resynthesized triples are saved as WAV for the report's players.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from speechunits.metrics.resynthesis import load_scorers, resynthesis_scores

log = logging.getLogger("speechunits.evaluation")


def _subset(n: int, seconds_each: list[float], budget: float | None, seed: int) -> list[int]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    if not budget:
        return sorted(order)
    out, total = [], 0.0
    for i in order:
        if total >= budget:
            break
        out.append(i)
        total += seconds_each[i]
    return sorted(out)


def resynthesis_section(vocoder: Any, tok: Any, ds: Any, *, seconds: float | None, examples: int, out: Path,
                        slug: str, seed: int = 0, conversion: bool = True,
                        layers: list[int] | None = None,
                        scorers: tuple[dict[str, Any], list[str]] | None = None) -> dict[str, Any]:
    """Scores of ``vocoder`` on ``ds`` (an ``EvalData``), toplines, voice conversion, audio examples.
    ``scorers``: what :func:`load_scorers` returns, loaded once for every dataset of a run."""
    from speechunits.vocoder.mel import log_mel
    from speechunits.vocoder.resynth import write_wav

    secs = [len(w) / 16000 for w in ds.waves]
    idx = _subset(len(ds.waves), secs, seconds, seed)
    scorers, notes = scorers or load_scorers()
    t0 = time.perf_counter()
    resynth, failed = {}, []
    for i in idx:
        try:
            resynth[i] = vocoder.resynthesize(ds.waves[i], tok, layers=layers)
        except Exception as e:  # one utterance's problem: recorded, the rest go on
            failed.append({"id": ds.utts[i].id, "reason": f"resynthesis: {str(e).splitlines()[0]}"})
    synth_s = time.perf_counter() - t0
    done = [i for i in idx if i in resynth]
    audio_s = sum(secs[i] for i in done)
    pairs = [(ds.utts[i].id, ds.utts[i].text, ds.waves[i], resynth[i]) for i in done]
    scores = resynthesis_scores(pairs, score_original=True, **scorers)
    copies = {i: _fit(vocoder.mel_to_wave(log_mel(ds.waves[i])), len(ds.waves[i])) for i in done}
    copy_scores = resynthesis_scores([(ds.utts[i].id, ds.utts[i].text, ds.waves[i], copies[i]) for i in done],
                                     **{k: v for k, v in scorers.items()})
    from speechunits.vocoder.backend import get_backend

    section: dict[str, Any] = {
        "vocoder": str(vocoder.path), "vocoder_layers": None if layers is None else list(layers),
        "hifigan_backend": get_backend(vocoder.device, getattr(vocoder, "backend", None)).kind,
        "utterances": len(done), "audio_seconds": audio_s,
        "synthesis_rtf": synth_s / audio_s if audio_s else None,
        "scores": scores.mean, "counts": scores.counts,
        "original": {k[5:]: v for k, v in scores.mean.items() if k.startswith("orig_")},
        "copy_synthesis": {k: v for k, v in copy_scores.mean.items() if not k.startswith("orig_")},
        "skipped": scores.skipped, "failed": failed, "notes": notes, "examples": [],
    }
    if conversion:
        section["conversion"] = _conversion(vocoder, tok, ds, done, scorers, seed, layers)
    audio_dir = out / "audio"
    for n, i in enumerate(done[:examples]):
        audio_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for label, wave in (("original", ds.waves[i]), ("copy-synthesis", copies[i]), ("resynthesized", resynth[i])):
            f = f"audio/{slug}_{n}_{label}.wav"
            write_wav(out / f, wave)
            files.append((label, f))
        section["examples"].append({"id": ds.utts[i].id, "files": files})
    return section


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    return np.pad(wave, (0, max(0, n - len(wave))))[:n]


def _conversion(vocoder: Any, tok: Any, ds: Any, done: list[int], scorers: dict, seed: int,
                layers: list[int] | None = None) -> dict[str, Any]:
    """Each utterance spoken in the voice of another speaker's utterance (seeded choice)."""
    speakers = [ds.utts[i].speaker for i in done]
    if len({s for s in speakers if s}) < 2 or not vocoder.mel_model.config.speaker_dim:
        return {"skipped": "needs speaker labels with at least two speakers and a speaker-conditioned vocoder"}
    if "speaker_encoder" not in scorers:
        return {"skipped": "no speaker encoder installed"}
    rng = np.random.default_rng(seed + 1)
    pairs = []
    for i, spk in zip(done, speakers):
        others = [j for j, s in zip(done, speakers) if s and s != spk]
        if not spk or not others:
            continue
        j = others[int(rng.integers(len(others)))]
        try:
            wave = vocoder.resynthesize(ds.waves[i], tok, speaker_wave=ds.waves[j], layers=layers)
        except Exception as e:  # noqa: BLE001 - recorded below like any other failure
            log.info("conversion of %s failed: %s", ds.utts[i].id, e)
            continue
        pairs.append((ds.utts[i].id, ds.utts[i].text, ds.waves[i], wave, ds.waves[j]))
    s = resynthesis_scores(pairs, transcriber=scorers.get("transcriber"), speaker_encoder=scorers["speaker_encoder"],
                           mcd=False, f0=False)
    keep = ("spk_sim", "spk_sim_target", "dwer", "wer")
    return {"utterances": len(pairs), **{k: s.mean.get(k) for k in keep}}
