"""Batch resynthesis: audio files (through their tokenizer) or a units file -> ``<out>/<id>.wav``.

Each output is written atomically; an input that fails is recorded in ``<out>/errors.jsonl``
(id, reason) and the rest go on. ``"default"`` names the vocoder bundled with the package
(trained for the default tokenizer by ``speechunits recipe default-vocoder``).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from speechunits.data.atomic import atomic_write_bytes, atomic_write_text, safe_file_name
from speechunits.data.loader import describe_failure, iter_audio
from speechunits.data.manifest import Utterance
from speechunits.tokens import expand_ids, read_config, read_units

from .artifact import VocoderError
from .vocoder import UnitVocoder

BUNDLED = Path(__file__).resolve().parents[1] / "pretrained" / "default-vocoder"


def resolve(name: str | os.PathLike) -> Path:
    """A vocoder folder from a path or the name ``default``."""
    if str(name) == "default":
        if not (BUNDLED / "config.json").is_file():
            raise VocoderError(f"{BUNDLED}: the bundled vocoder is missing from this installation "
                               "(build it with `speechunits recipe default-vocoder`)")
        return BUNDLED
    return Path(name)


def open_vocoder(vocoder: str, tokenizer: str | None, args=None, device: str = "cpu"):
    """``(UnitVocoder, Tokenizer | None)``; the tokenizer defaults to the one the vocoder names
    when that is a name (``default``), and must match the vocoder's fingerprint."""
    from speechunits.tokenizer import Tokenizer

    path = resolve(vocoder)
    voc = UnitVocoder.from_pretrained(path, device=device)
    name = tokenizer or (voc.config.get("tokenizer", {}).get("source") if str(vocoder) == "default" else None)
    tok = None
    if name:
        tok = Tokenizer.from_pretrained(name, device=device, encoder=getattr(args, "encoder", None),
                                        allow_unhashed=bool(getattr(args, "allow_unhashed", False)))
        voc.check_tokenizer(tok)
    return voc, tok


def write_wav(path: Path, wave: np.ndarray, sample_rate: int = 16000) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    atomic_write_bytes(path, buf.getvalue())


def _safe_name(utt_id: str) -> str:
    """A file name inside the output folder for any id (ids with '/' or '..' cannot escape)."""
    name = safe_file_name(utt_id).lstrip(".")
    return name or "utt"


def _finish(out: Path, failed: list[dict], written: int, audio_s: float, t0: float) -> dict:
    errors = out / "errors.jsonl"
    if failed:
        atomic_write_text(errors, "".join(json.dumps(f) + "\n" for f in failed))
    else:
        errors.unlink(missing_ok=True)
    return {"written": written, "failed": failed, "audio_s": audio_s, "wall_s": time.perf_counter() - t0}


def resynth_audio(voc: UnitVocoder, tokenizer, utts: Sequence[Utterance], out: str | os.PathLike,
                  speaker_wave: np.ndarray | None = None, layers: Sequence[int] | None = None) -> dict:
    """Each utterance through ``tokenizer`` and ``voc``, in its own voice unless ``speaker_wave``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, failed, written, audio_s = time.perf_counter(), [], 0, 0.0
    for item in iter_audio(utts, workers=1):
        if item.wave is None:
            failed.append({"id": item.utt.id, "reason": item.error or "could not be loaded"})
            continue
        try:
            wave = voc.resynthesize(item.wave, tokenizer, speaker_wave=speaker_wave, layers=layers)
        except Exception as e:  # one input's problem (too short, no voice for the speaker encoder...)
            failed.append({"id": item.utt.id, "reason": describe_failure(e, "resynthesis")})
            continue
        write_wav(out / f"{_safe_name(item.utt.id)}.wav", wave)
        written, audio_s = written + 1, audio_s + len(wave) / 16000
    return _finish(out, failed, written, audio_s, t0)


def resynth_units(voc: UnitVocoder, units_file: str | os.PathLike, out: str | os.PathLike,
                  speaker_wave: np.ndarray | None = None, layers: Sequence[int] | None = None,
                  speed: float = 1.0) -> dict:
    """Speak every utterance of a units file: stored durations are used, de-duplicated units
    without them (a unit LM's output, a ``.km`` of de-duplicated ids) get predicted ones."""
    out = Path(out)
    config = read_config(units_file)
    want = voc.config.get("tokenizer", {}).get("k")
    if want is not None and config.get("k") not in (None, want):
        raise VocoderError(f"{units_file}: units of a k={config.get('k')} tokenizer; this vocoder speaks k={want}")
    if config.get("bpe"):
        raise VocoderError(f"{units_file}: holds BPE tokens; write units without --bpe to speak them")
    units = read_units(units_file)
    out.mkdir(parents=True, exist_ok=True)
    dedup_file = bool(config.get("dedup")) or _job_dedup(units_file)
    t0, failed, written, audio_s = time.perf_counter(), [], 0, 0.0
    for u in units:
        try:
            ids = u.ids if u.durations is None else expand_ids(u.ids, u.durations)
            wave = voc.synthesize(ids, dedup=dedup_file and u.durations is None, speaker_wave=speaker_wave,
                                  layers=layers, speed=speed)
        except Exception as e:
            failed.append({"id": u.utt_id, "reason": describe_failure(e, "synthesis")})
            continue
        write_wav(out / f"{_safe_name(u.utt_id or f'utt{written}')}.wav", wave)
        written, audio_s = written + 1, audio_s + len(wave) / 16000
    return _finish(out, failed, written, audio_s, t0)


def _job_dedup(units_file: str | os.PathLike) -> bool:
    from speechunits.tokens.io import job_path

    try:
        return bool(json.loads(job_path(units_file).read_text(encoding="utf-8")).get("dedup"))
    except (OSError, ValueError, AttributeError):
        return False
