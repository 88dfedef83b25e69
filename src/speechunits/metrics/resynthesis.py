"""All resynthesis metrics of a set of (original, resynthesized) pairs, per item and on average.

:func:`resynthesis_scores` takes :class:`ResynthesisPair` items (or tuples
``(id, ref_text | None, original, resynth[, target])``, 16 kHz mono float waves) and the scorers to
use (any may be None to leave its metrics out):

- ``transcriber`` (:class:`~speechunits.metrics.asr.WhisperTranscriber`): ``wer``, ``cer`` (against
  ``ref_text``), ``dwer``, ``dcer`` (against the ASR transcript of the original), and the
  topline ``orig_wer``, ``orig_cer`` of the original audio through the same ASR; corpus rates on
  average (summed edits over summed reference lengths);
- ``speaker_encoder`` (:class:`~speechunits.encoders.speaker.SpeakerEncoder`): ``spk_sim`` and, for
  items with a ``target`` wave, ``spk_sim_target``;
- ``dnsmos`` (:class:`~speechunits.metrics.dnsmos.Dnsmos`): ``dnsmos_p808``, ``dnsmos_sig``,
  ``dnsmos_bak``, ``dnsmos_ovrl`` of the resynthesized audio (and ``orig_dnsmos_*`` of the
  original when ``score_original``);
- ``mcd=True``: ``mcd`` (dB, DTW); ``f0=True``: ``f0_rmse_hz``, ``f0_rmse_cents``,
  ``vuv_agreement`` (``f0_alignment`` "dtw" or "time").

An item whose waves are unusable (empty, NaN, not 1-D) is skipped entirely; a metric that cannot
apply to an item (no reference text, too little voice for a speaker embedding, no frame voiced
in both for F0) is left out of that item. Both are recorded in ``skipped`` as
``{"id", "metric", "reason"}``, and the averages are over the items that have the metric
(``counts`` says how many).

Example:
    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> x = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    >>> r = resynthesis_scores([("a", None, x, x)], f0=False)
    >>> r.items[0]["mcd"], r.mean["mcd"]
    (0.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .f0 import f0_scores
from .intelligibility import intelligibility_batch
from .mcd import mcd_with_path
from .speaker_similarity import speaker_similarity

__all__ = ["ResynthesisPair", "ResynthesisScores", "load_scorers", "resynthesis_scores"]


@dataclass
class ResynthesisPair:
    id: str
    ref_text: str | None
    original: np.ndarray
    resynth: np.ndarray
    target: np.ndarray | None = None  # an utterance of the target voice, when converting voice


@dataclass
class ResynthesisScores:
    items: list[dict[str, Any]]  # {"id", metric: value, "asr_original", "asr_resynth"}
    mean: dict[str, float | None]
    counts: dict[str, int]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "counts": self.counts, "items": self.items, "skipped": self.skipped}


def _as_pair(p: ResynthesisPair | Sequence) -> ResynthesisPair:
    return p if isinstance(p, ResynthesisPair) else ResynthesisPair(*p)


def _wave_problem(w: np.ndarray | None) -> str | None:
    a = np.asarray(w) if w is not None else None
    if a is None or a.ndim != 1 or a.size == 0:
        return f"expected a non-empty 1-D waveform, got {None if a is None else a.shape}"
    if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
        return "waveform is not finite float samples"
    return None


def resynthesis_scores(pairs: Iterable[ResynthesisPair | Sequence], *, transcriber=None, speaker_encoder=None,
                       dnsmos=None, mcd: bool = True, f0: bool = True, f0_alignment: str = "dtw",
                       score_original: bool = False, sr: int = 16000) -> ResynthesisScores:
    """Per-item and mean resynthesis scores; unusable items and inapplicable metrics are recorded."""
    items, skipped, usable = [], [], []
    for p in map(_as_pair, pairs):
        problems = [f"{side}: {msg}" for side, w in (("original", p.original), ("resynthesized", p.resynth))
                    if (msg := _wave_problem(w)) is not None]
        if problems:
            skipped.append({"id": p.id, "metric": "all", "reason": "; ".join(problems)})
            continue
        usable.append(p)
        items.append({"id": p.id})

    def attempt(item: dict, metric: str, fn) -> None:
        try:
            item.update(fn())
        except ValueError as e:  # AudioError and other bad-input errors: record, go on
            skipped.append({"id": item["id"], "metric": metric, "reason": str(e)})

    corpus: dict[str, float | None] = {}
    if transcriber is not None and usable:
        per, corpus = intelligibility_batch(transcriber, [p.ref_text for p in usable], [p.original for p in usable],
                                            [p.resynth for p in usable], [p.id for p in usable])
        for p, item, s in zip(usable, items, per):
            item.update({k: v for k, v in s.items() if v is not None})
            if s["wer"] is None:
                skipped.append({"id": p.id, "metric": "wer", "reason": "no reference text"})
            if s["dwer"] is None:
                skipped.append({"id": p.id, "metric": "dwer", "reason": "the ASR hears no words in the original"})
    for p, item in zip(usable, items):
        if speaker_encoder is not None:
            attempt(item, "spk_sim", lambda: {k: v for k, v in speaker_similarity(
                speaker_encoder, p.original, p.resynth, p.target).items() if v is not None})
        if dnsmos is not None:
            attempt(item, "dnsmos", lambda: {f"dnsmos_{'p808' if k == 'p808_mos' else k}": v
                                             for k, v in dnsmos.score(p.resynth, "resynthesized").items()})
            if score_original:
                attempt(item, "orig_dnsmos", lambda: {f"orig_dnsmos_{'p808' if k == 'p808_mos' else k}": v
                                                      for k, v in dnsmos.score(p.original, "original").items()})
        path: list = []  # the DTW path of the MCD, reused for F0

        def mcd_part() -> dict:
            value, rows, cols = mcd_with_path(p.original, p.resynth, sr)
            path.extend((rows, cols))
            return {"mcd": value}

        if mcd or (f0 and f0_alignment == "dtw"):
            attempt(item, "mcd", mcd_part)
            if not mcd:
                item.pop("mcd", None)
        if f0:
            def f0_part() -> dict:
                s = f0_scores(p.original, p.resynth, sr, alignment=f0_alignment,
                              path=tuple(path) if f0_alignment == "dtw" and path else None)
                if s["voiced_pairs"] == 0:
                    skipped.append({"id": p.id, "metric": "f0_rmse", "reason": "no frame voiced in both"})
                return {k: v for k, v in s.items() if v is not None and k != "voiced_pairs"}
            attempt(item, "f0", f0_part)

    mean: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    keys = sorted({k for it in items for k, v in it.items() if isinstance(v, float)})
    for k in keys:
        values = [it[k] for it in items if isinstance(it.get(k), float)]
        counts[k] = len(values)
        mean[k] = corpus[k] if k in corpus else float(np.mean(values))
    return ResynthesisScores(items=items, mean=mean, counts=counts, skipped=skipped)


def load_scorers() -> tuple[dict[str, Any], list[str]]:
    """The ASR (Whisper tiny.en), speaker encoder and DNSMOS that are installed, as keyword
    arguments of :func:`resynthesis_scores`, and a note for each one that is not."""
    from speechunits.encoders.speaker import SpeakerEncoder

    from .asr import WhisperTranscriber
    from .dnsmos import Dnsmos

    scorers, notes = {}, []
    loaders = {"transcriber": WhisperTranscriber.from_pretrained, "speaker_encoder": SpeakerEncoder.from_installed,
               "dnsmos": Dnsmos.from_installed}
    for name, load in loaders.items():
        try:
            scorers[name] = load()
        except (ImportError, OSError, ValueError) as e:
            notes.append(f"{name} unavailable: {str(e).splitlines()[0]}")
    return scorers, notes
