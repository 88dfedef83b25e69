"""Score a text-to-units model through a vocoder on held-out sentences and voices.

For every utterance of a test manifest (the synthetic corpus' ``test`` split: sentences and
voices never trained on) the model speaks the ``text`` field in the voice of a *reference*:
another utterance of the same speaker (the utterance itself only when its speaker has no
other). The text is phonemized with the MBROLA voice the speaker id names (``en1-...`` reads
British phones, as in training; ``us1`` for any other id). Scores
(:func:`speechunits.metrics.resynthesis.resynthesis_scores`, the evaluation's scorers):

- ``wer`` / ``cer``: Whisper tiny.en's transcript of the synthesized speech against the text;
- ``orig_wer`` / ``orig_cer``: the same ASR on the *real* test recording: the topline;
- ``dwer`` / ``dcer``: the synthesized transcript against the real recording's transcript;
- ``spk_sim_target``: speaker similarity (d-vector cosine) to the reference voice, ``spk_sim``
  to the real recording of the same sentence (same speaker);
- ``dnsmos_*``: DNSMOS P.808 / SIG / BAK / OVRL of the synthesized speech (``orig_dnsmos_*``: of
  the real recordings).

With the tokenizer, the real recording's own units through the same vocoder are scored too
(``resynthesis``): the ceiling a perfect text-to-units model could reach with this vocoder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from speechunits.data.atomic import atomic_write_text
from speechunits.data.loader import describe_failure, iter_audio
from speechunits.data.manifest import Utterance

from .artifact import TextToSpeech
from .text import VOICES


def phonemizer_voice(speaker: str | None) -> str:
    """The MBROLA voice a corpus speaker id starts with (``en1-f1.08-l14600`` -> ``en1``), else us1."""
    base = (speaker or "").split("-")[0]
    return base if base in VOICES else "us1"


def references(utts: Sequence[Utterance]) -> dict[str, str]:
    """For each utterance id, the id of the next utterance of the same speaker (cyclically)."""
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker or u.id, []).append(u.id)
    out = {}
    for ids in by_spk.values():
        for j, i in enumerate(ids):
            out[i] = ids[(j + 1) % len(ids)]
    return out


def balanced(utts: Sequence[Utterance], n: int) -> list[Utterance]:
    """``n`` utterances taken in turn from each speaker (in manifest order), so that a subset
    still covers every test voice."""
    by_spk: dict[str, list[Utterance]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker or u.id, []).append(u)
    out, j = [], 0
    while len(out) < n and any(j < len(v) for v in by_spk.values()):
        out += [v[j] for v in by_spk.values() if j < len(v)][: n - len(out)]
        j += 1
    return out


def evaluate_tts(tts: TextToSpeech, vocoder, utts: Sequence[Utterance], out: str | os.PathLike, *,
                 scorers: dict | None = None, tokenizer=None, max_utterances: int | None = None,
                 layers: Sequence[int] | None = None, progress: bool = True) -> dict:
    """Speak every test text (``<out>/wav/<id>.wav``; ``max_utterances``: that many, taken in
    turn from each speaker), score it, write ``<out>/scores.json``."""
    from speechunits.metrics.resynthesis import ResynthesisPair, load_scorers, resynthesis_scores
    from speechunits.vocoder.resynth import _safe_name, write_wav

    tts.check_vocoder(vocoder)
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    utts = [u for u in utts if u.text]
    if not utts:
        raise ValueError("no test utterance has a text field to speak")
    refs = references(utts)
    chosen = balanced(utts, max_utterances) if max_utterances else utts
    want = {u.id for u in chosen} | {refs[u.id] for u in chosen}
    waves, failed = {}, []
    for item in iter_audio([u for u in utts if u.id in want], workers=1):
        if item.wave is None:
            failed.append({"id": item.utt.id, "reason": item.error or "could not be loaded"})
        else:
            waves[item.utt.id] = item.wave
    notes: list[str] = []
    if scorers is None:
        scorers, notes = load_scorers()
    tts_pairs, resyn_pairs, t_tts, audio_s = [], [], 0.0, 0.0
    from tqdm.auto import tqdm

    for u in tqdm(chosen, desc="tts eval", disable=not progress):
        if u.id not in waves or refs[u.id] not in waves:
            continue
        ref = waves[refs[u.id]]
        try:
            t0 = time.perf_counter()
            wave = tts.say(u.text, vocoder, speaker_wave=ref, voice=phonemizer_voice(u.speaker), layers=layers)
            t_tts += time.perf_counter() - t0
        except Exception as e:  # one text's problem: record it, go on
            failed.append({"id": u.id, "reason": describe_failure(e, "synthesis")})
            continue
        audio_s += len(wave) / 16000
        write_wav(out / "wav" / f"{_safe_name(u.id)}.wav", wave)
        tts_pairs.append(ResynthesisPair(u.id, u.text, waves[u.id], wave, ref))
        if tokenizer is not None:
            resyn_pairs.append(ResynthesisPair(u.id, u.text, waves[u.id], vocoder.resynthesize(waves[u.id], tokenizer,
                                                                                              layers=layers)))
    if not tts_pairs:
        raise ValueError(f"no test utterance could be synthesized ({failed[:1]})")
    res = resynthesis_scores(tts_pairs, mcd=False, f0=False, score_original=True, **scorers)
    report = {"model": str(tts.path), "vocoder": str(vocoder.path), "layers": None if layers is None else list(layers),
              "utterances": len(tts_pairs), "audio_s": round(audio_s, 1), "synthesis_s": round(t_tts, 1),
              "tts": {"mean": res.mean, "counts": res.counts}, "notes": notes, "failed": failed,
              "items": res.items, "skipped": res.skipped}
    if resyn_pairs:
        rs = resynthesis_scores(resyn_pairs, mcd=False, f0=False, **scorers)
        report["resynthesis"] = {"mean": rs.mean, "counts": rs.counts}
    atomic_write_text(out / "scores.json", json.dumps(report, indent=2, default=_json_default) + "\n")
    return report


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON: {type(x).__name__}")


def headline(report: dict) -> str:
    """One line: WER / CER of the synthesized speech beside the real recordings' topline."""
    m = report["tts"]["mean"]

    def pct(key: str, d: dict = m) -> str:
        v = d.get(key)
        return "n/a" if v is None else f"{100 * v:.1f} %"

    line = (f"{report['utterances']} sentences: WER {pct('wer')} (CER {pct('cer')}), real recordings "
            f"{pct('orig_wer')}; speaker similarity to the reference {m.get('spk_sim_target', float('nan')):.3f}; "
            f"DNSMOS OVRL {m.get('dnsmos_ovrl', float('nan')):.2f}")
    if "resynthesis" in report:
        line += f"; resynthesized real units WER {pct('wer', report['resynthesis']['mean'])}"
    return line
