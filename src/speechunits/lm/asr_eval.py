"""Unit-LM ASR scores: WER and CER (jiwer, corpus level) of a decoder's transcripts against
normalised references, for the attention decoder (:func:`speechunits.lm.asr.transcribe`), greedy
CTC (:mod:`speechunits.lm.ctc`) or the joint CTC/attention search (:mod:`speechunits.lm.ctc_decode`);
and the dev-CER curve of a fine-tuning (:func:`asr_evaluator`).

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=4, seed=0, chars="ab ")
    >>> r = evaluate_asr(lm, [Units(np.array([0, 1]), 50.0, utt_id="x")], {"x": "ab"}, decoder="ctc")
    >>> r.n_utterances, 0.0 <= r.cer
    (1, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..tokens import Units
from .asr import transcribe
from .ctc import ctc_transcribe
from .ctc_decode import joint_transcribe
from .vocab import normalize_text


@dataclass
class ASRResult:
    wer: float
    cer: float
    n_utterances: int
    utterances: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self, with_utterances: bool = False) -> dict[str, Any]:
        d = {"wer": self.wer, "cer": self.cer, "n_utterances": self.n_utterances}
        return {**d, "utterances": self.utterances} if with_utterances else d


DECODERS = ("attention", "ctc", "joint")


def evaluate_asr(lm, units: list[Units], texts: dict[str, str], num_beams: int = 5,
                 batch_size: int = 8, max_new_tokens: int | None = None,
                 no_repeat_ngram_size: int = 0, decoder: str = "attention",
                 ctc_weight: float = 0.3) -> ASRResult:
    """WER and CER (jiwer, corpus level) of the transcripts against normalised references.
    ``decoder``: ``"attention"`` (beam search after ``<|asr|>``), ``"ctc"`` (greedy CTC on the
    LM's head at the unit positions, for a model fine-tuned with a CTC loss, :mod:`speechunits.lm.ctc`)
    or ``"joint"`` (beam search on ``(1 - ctc_weight) attention + ctc_weight CTC prefix`` scores,
    :mod:`speechunits.lm.ctc_decode`)."""
    import jiwer

    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; choose from {', '.join(DECODERS)}")
    if decoder != "attention" and no_repeat_ngram_size:
        raise ValueError("no_repeat_ngram_size is for the attention decoder only")
    units = [u for u in units if u.utt_id in texts and normalize_text(texts[u.utt_id])]
    if not units:
        raise ValueError("no utterance has a (non-empty) transcript")
    if decoder == "ctc":
        hyps = ctc_transcribe(lm, units)
    elif decoder == "joint":
        hyps = joint_transcribe(lm, units, ctc_weight, num_beams, max_new_tokens)
    else:
        hyps = transcribe(lm, units, num_beams, batch_size, max_new_tokens, no_repeat_ngram_size)
    refs = [normalize_text(texts[u.utt_id]) for u in units]
    return ASRResult(
        wer=float(jiwer.wer(refs, hyps)), cer=float(jiwer.cer(refs, hyps)), n_utterances=len(units),
        utterances=[{"id": u.utt_id, "ref": r, "hyp": h} for u, r, h in zip(units, refs, hyps)])


def asr_evaluator(units: list[Units], texts: dict[str, str], decoders: tuple[str, ...] = ("attention",),
                  num_beams: int = 1) -> Callable[[Any], dict[str, float]]:
    """An ``evaluate`` for :func:`speechunits.lm.train`: the CER of ``units`` (a dev subset) with each
    decoder, as ``valid_cer`` (attention) and ``valid_cer_ctc``: a learning curve of the error rate,
    not only of the loss."""
    def run(lm) -> dict[str, float]:
        return {"valid_cer" if d == "attention" else f"valid_cer_{d}":
                evaluate_asr(lm, units, texts, num_beams=num_beams, decoder=d).cer for d in decoders}
    return run
