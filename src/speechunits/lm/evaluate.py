"""Likelihood of unit sequences: per-token NLL / perplexity and NLL per second of speech, clean
against perturbed (paper 2509.05359 evaluates the LM on clean and noisy units).

Scoring runs in batches: utterances sorted by length, right-padded, one forward per batch. Under
causal attention a padded row computes what the utterance alone computes (see
:mod:`speechunits.lm.packing`), so batched and one-at-a-time scores agree to float rounding.

The scored tokens of an utterance are its units and the end-of-sequence token (the first, the
``<s>``/``<|speech|>`` prefix, has no context). Per second of speech divides the total NLL by the
audio duration that the units cover (durations / frame rate; units without durations count one
frame each).

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=8, seed=0)
    >>> r = evaluate_nll(lm, [Units(np.array([1, 1, 2, 3]), 50.0, utt_id="a")])
    >>> r.n_tokens, round(r.seconds, 2)  # 3 de-duplicated units + </s>; 4 frames at 50 Hz
    (4, 0.08)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..tokens import Units
from .packing import IGNORE, Example, collate, token_nll


def length_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``batch_tokens`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    return batches + ([cur] if cur else [])


@torch.inference_mode()
def sequence_nll(lm, examples: list[Example], batch_tokens: int = 4096,
                 progress: bool = False) -> list[np.ndarray]:
    """Per-token NLL (nats, float64) of the predicted tokens of each example, in input order.

    ``batch_tokens=0`` scores one example at a time (the reference the batched path must match).
    """
    lengths = [len(e) for e in examples]
    batches = [[i] for i in range(len(examples))] if batch_tokens <= 0 else length_batches(lengths, batch_tokens)
    out: list[np.ndarray] = [np.zeros(0)] * len(examples)
    was_training = lm.model.training
    lm.model.eval()
    try:
        for idx in tqdm(batches, desc="scoring", unit="batch", disable=not progress, leave=False):
            batch = collate(examples, [[i] for i in idx], lm.pad_id)
            nll = token_nll(lm, batch).double().cpu().numpy()
            keep = (batch.targets != IGNORE).numpy()
            for row, i in enumerate(idx):
                out[i] = nll[row][keep[row]]
    finally:
        lm.model.train(was_training)
    return out


@dataclass
class NLLResult:
    """Corpus NLL: totals, then per token (nats), perplexity, and per second of speech."""

    n_utterances: int
    n_tokens: int
    total_nll: float
    seconds: float

    @property
    def per_token(self) -> float:
        return self.total_nll / max(self.n_tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.per_token, 700.0))

    @property
    def per_second(self) -> float:
        return self.total_nll / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nll_per_token": self.per_token, "perplexity": self.perplexity,
                "nll_per_second": self.per_second,
                "bits_per_second": self.per_second / math.log(2)}


def evaluate_nll(lm, units: Iterable[Units], batch_tokens: int = 4096,
                 progress: bool = False) -> NLLResult:
    """NLL of a units corpus under ``lm`` (see the module docstring for what is scored)."""
    units = list(units)
    scores = sequence_nll(lm, [Example(lm.encode_units(u)) for u in units], batch_tokens, progress)
    return NLLResult(
        n_utterances=len(units),
        n_tokens=int(sum(len(s) for s in scores)),
        total_nll=float(sum(s.sum() for s in scores)),
        seconds=float(sum(u.duration_s for u in units)),
    )


def compare_nll(lm, clean: Iterable[Units], perturbed: Iterable[Units],
                batch_tokens: int = 4096, progress: bool = False) -> dict[str, Any]:
    """Clean and perturbed NLL (the perturbation is applied upstream) and the gap
    (perturbed - clean, per token and per second; positive = the LM finds perturbed units less
    likely)."""
    c = evaluate_nll(lm, clean, batch_tokens, progress)
    p = evaluate_nll(lm, perturbed, batch_tokens, progress)
    return {"clean": c.to_dict(), "perturbed": p.to_dict(),
            "gap_per_token": p.per_token - c.per_token, "gap_per_second": p.per_second - c.per_second}
