"""Unit-LM ASR (DC-Spin): fine-tune on ``<s> units <|asr|> c h a r s </s>`` with the loss on the
transcript only, decode with beam search restricted to text tokens (scores: :mod:`.asr_eval`).

For a unit LM the transcript is characters (:func:`speechunits.lm.vocab.normalize_text`:
lower case, no punctuation, single spaces; references are normalised the same way before WER);
other characters outside its vocabulary are dropped with a warning. A text
LLM uses its own tokenizer (``<|speech|> units <|asr|> text <eos>``). Decoding is
``generate(num_beams=5)`` on left-padded batches with a logits processor that allows only text
tokens and the end token, so the decoder can never emit a unit or a marker. A briefly fine-tuned
model tends to loop ("the station the station ..."): ``no_repeat_ngram_size`` n > 0 forbids any n
transcript tokens (characters, for a unit LM) from occurring twice, as fairseq's
``--no-repeat-ngram-size`` does (transformers' processor; the unit prompt cannot match, since
units and markers are never generated); 0, the default, decodes unconstrained.

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=4, seed=0, chars="ab ")
    >>> ex = asr_examples(lm, [Units(np.array([0, 1]), 50.0, utt_id="x")], {"x": "Ab"})
    >>> ex[0].ids.tolist(), ex[0].loss_start  # <s> u0 u1 <|asr|> a b </s>
    ([1, 4, 5, 8, 9, 10, 2], 4)
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import torch

from ..tokens import Units
from .packing import Example
from .vocab import normalize_text

log = logging.getLogger(__name__)


def _text_ids(lm, text: str, dropped: Counter) -> np.ndarray:
    text = normalize_text(text)
    if lm.kind == "unit-lm":
        vocab = lm.tokenizer.get_vocab()
        dropped.update(c for c in text if c not in vocab)
        text = normalize_text("".join(c for c in text if c in vocab))
    return lm.encode_text(text)


def asr_prompt(lm, units: Units) -> np.ndarray:
    """``prefix units <|asr|>``: what the decoder continues."""
    if lm.asr_id is None:
        raise ValueError("this model's vocabulary has no <|asr|> token (built with chars=None)")
    return np.append(lm.encode_units(units)[:-1], lm.asr_id)


def asr_examples(lm, units: list[Units], texts: dict[str, str]) -> list[Example]:
    """Training examples ``prompt text eos`` (loss on ``text eos``) for utterances with a text;
    utterances without one are skipped with a warning."""
    out, dropped, missing = [], Counter(), 0
    for u in units:
        if u.utt_id not in texts:
            missing += 1
            continue
        prompt = asr_prompt(lm, u)
        ids = np.concatenate((prompt, _text_ids(lm, texts[u.utt_id], dropped), [lm.eos_id]))
        # a unit LM's examples also name their unit positions, for the optional CTC loss (lm/ctc.py)
        span = (1, len(prompt) - 1) if lm.kind == "unit-lm" else None
        out.append(Example(ids.astype(np.int64), loss_start=len(prompt), ctc_span=span))
    if missing:
        log.warning("%d utterance(s) have no transcript and are left out", missing)
    if dropped:
        log.warning("characters not in the vocabulary were dropped: %s", dict(dropped.most_common(10)))
    return out


class _TextOnly:
    """Logits processor: everything but text tokens and the end token gets -inf."""

    def __init__(self, allowed: torch.Tensor) -> None:
        self.allowed = allowed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed[: scores.shape[-1]].to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))


@torch.no_grad()
def transcribe(lm, units: list[Units], num_beams: int = 5, batch_size: int = 8,
               max_new_tokens: int | None = None, no_repeat_ngram_size: int = 0) -> list[str]:
    """Beam-search transcripts of ``units``: at most ``max_new_tokens`` each, by default the
    prompt's length + 10 (speech has fewer characters than de-duplicated units a second:
    ~15 against 25-40, so a transcript longer than that is a decoder that failed to stop)."""
    from transformers import LogitsProcessorList

    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be >= 0, got {no_repeat_ngram_size}")
    prompts = [asr_prompt(lm, u) for u in units]
    processor = LogitsProcessorList([_TextOnly(lm.text_token_mask(lm.n_logits))])
    out: list[str] = [""] * len(units)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding
    was_training = lm.model.training
    lm.model.eval()
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            T = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), T), lm.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding: every prompt ends where generation starts
                ids[r, T - len(prompts[i]):] = torch.from_numpy(prompts[i])
                mask[r, T - len(prompts[i]):] = 1
            limit = max_new_tokens or T + 10
            with lm.autocast():
                gen = lm.model.generate(
                    input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                    num_beams=num_beams, do_sample=False, max_new_tokens=limit,
                    logits_processor=processor, no_repeat_ngram_size=no_repeat_ngram_size,
                    eos_token_id=lm.eos_id, pad_token_id=lm.pad_id,
                    num_return_sequences=1)
            for r, i in enumerate(idx):
                new = gen[r, T:].tolist()
                if lm.eos_id in new:
                    new = new[: new.index(lm.eos_id)]
                out[i] = lm.tokenizer.decode(new, skip_special_tokens=True)
    finally:
        lm.model.train(was_training)
    return [normalize_text(t) for t in out]
