"""Joint CTC / attention beam search for a unit LM fine-tuned with a CTC loss (:mod:`speechunits.lm.ctc`).

A hypothesis is scored ``(1 - w) * log p_att(h) + w * log p_ctc(h...)``: the decoder's
log-probability of the transcript so far, and the CTC *prefix* probability that the units'
transcript begins with ``h`` (Watanabe et al., "Hybrid CTC/Attention Architecture for End-to-End
Speech Recognition", 2017, Algorithm 2; ESPnet's ``CTCPrefixScore``). The CTC term keeps the
decoder on what the units say: it cannot skip or repeat a stretch of speech, nor end before the
units do. ``</s>`` gets the probability of the whole transcript, ``h`` complete.

The prefix recursions over the T unit positions are linear in probability space, so for every
hypothesis and every character at once they are computed in closed form with log-cumulative sums
(float64) instead of a Python loop over T:
``r_n(hc)[t] = L_c[t] + logsumexp_{s<t}(phi[s] - L_c[s])`` with ``L_c`` the cumulative log-probability
of ``c`` and ``phi[s] = r_b(h)[s] (+) r_n(h)[s]`` (the second term only when ``c`` differs from
``h``'s last character); the blank-ending ``r_b`` likewise. One utterance at a time, with the
decoder's key/value cache reordered along the beam.

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=4, seed=0, chars="ab ")
    >>> hyps = joint_transcribe(lm, [Units(np.array([0, 1, 2]), 50.0, utt_id="x")], ctc_weight=0.5)
    >>> len(hyps), set(hyps[0]) <= set("ab ")
    (1, True)
"""

from __future__ import annotations

import torch

from ..tokens import Units
from .asr import asr_prompt
from .ctc import ctc_log_probs, ctc_vocab
from .vocab import normalize_text

_NEG = float("-inf")


def _exclusive_logcumsumexp(x: torch.Tensor) -> torch.Tensor:
    """``out[..., t] = logsumexp(x[..., :t])`` (-inf at t = 0) along the last axis."""
    inc = torch.logcumsumexp(x, dim=-1)
    return torch.cat((torch.full_like(inc[..., :1], _NEG), inc[..., :-1]), dim=-1)


class CTCPrefixScorer:
    """CTC prefix probabilities of one utterance's ``[T, C]`` log-probabilities (class 0 = blank)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.double()
        self.cum = torch.cumsum(self.x, 0).T  # [C, T]: L_c[t] = sum_{u <= t} x[u, c]

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r_n, r_b)`` of the empty prefix, ``[1, T]`` each."""
        return torch.full((1, self.x.shape[0]), _NEG, dtype=torch.float64), self.cum[0][None].clone()

    def extend(self, r_n: torch.Tensor, r_b: torch.Tensor, last: torch.Tensor, empty: torch.Tensor):
        """For ``H`` prefixes (``r_n``, ``r_b``: ``[H, T]``; ``last``: their last class, 0 if
        ``empty``) and every non-blank class ``c``: ``(psi, r_n', r_b')``, ``psi [H, C-1]`` the log
        prefix probability of ``h c``, ``r_n' r_b' [H, C-1, T]`` its states."""
        C = self.x.shape[1]
        cls = torch.arange(1, C)
        xc = self.x[:, 1:].T[None]  # [1, C-1, T]
        lc = self.cum[1:][None]  # [1, C-1, T]
        same = last[:, None] == cls[None]  # [H, C-1]: c repeats the last character
        phi = torch.logaddexp(r_b[:, None], torch.where(same[..., None], _NEG, r_n[:, None]))  # [H, C-1, T]
        init = torch.where(empty, 0.0, _NEG).double()[:, None, None]  # the first character may start at t = 0
        new_n = lc + torch.logaddexp(init.expand_as(phi), _exclusive_logcumsumexp(phi - lc))
        lb = self.cum[0][None, None]
        new_b = lb + _exclusive_logcumsumexp(new_n - lb)
        # psi = x_0(c) [empty] (+) logsumexp_{t >= 1} phi[t-1] + x_t(c)
        start = init[..., 0] + xc[..., 0]
        psi = torch.logaddexp(start, torch.logsumexp(phi[..., :-1] + xc[..., 1:], dim=-1))
        return psi, new_n, new_b

    @staticmethod
    def final(r_n: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
        """Log-probability of each prefix as the whole transcript, ``[H]``."""
        return torch.logaddexp(r_n[:, -1], r_b[:, -1])


@torch.no_grad()
def _decode_one(lm, prompt, vocab: torch.Tensor, w: float, beam: int, limit: int) -> list[int]:
    dev = lm.device
    cand = torch.cat((vocab[1:], torch.tensor([lm.eos_id])))  # characters, then </s>
    with lm.autocast():
        out = lm.model(input_ids=torch.as_tensor(prompt, device=dev)[None], use_cache=True)
    logits = out.logits[0].float()
    ctc = CTCPrefixScorer(ctc_log_probs(logits[1:len(prompt) - 1], vocab).cpu())
    past, att_lp = out.past_key_values, torch.log_softmax(logits[-1, cand.to(dev)], -1).double().cpu()[None]
    r_n, r_b = ctc.initial()
    tokens: list[list[int]] = [[]]
    att = torch.zeros(1, dtype=torch.float64)
    last = torch.zeros(1, dtype=torch.long)
    best_end, best_tokens = _NEG, []
    for _ in range(limit):
        psi, new_n, new_b = ctc.extend(r_n, r_b, last, torch.tensor([not t for t in tokens]))
        ctc_all = torch.cat((psi, ctc.final(r_n, r_b)[:, None]), dim=1)  # [H, C]
        att_all = att[:, None] + att_lp
        score = (1 - w) * att_all + w * ctc_all
        top = torch.topk(score.flatten(), min(2 * beam, score.numel()))
        keep: list[tuple[int, int]] = []
        for s, flat in zip(top.values.tolist(), top.indices.tolist()):
            h, c = divmod(flat, score.shape[1])
            if c == len(cand) - 1:  # </s>: a finished transcript
                if s > best_end:
                    best_end, best_tokens = s, tokens[h]
            elif len(keep) < beam:
                keep.append((h, c))
        # scores only fall as a prefix grows, so no live hypothesis can beat a better ended one
        if not keep or best_end >= score[keep[0]].item():
            break
        hs = torch.tensor([h for h, _ in keep])
        cs = torch.tensor([c for _, c in keep])
        tokens = [tokens[h] + [int(cand[c])] for h, c in keep]
        att = att_all[hs, cs]
        r_n, r_b, last = new_n[hs, cs], new_b[hs, cs], cs + 1
        past.reorder_cache(hs.to(dev))
        with lm.autocast():
            out = lm.model(input_ids=cand[cs].to(dev)[:, None], past_key_values=past, use_cache=True)
        past = out.past_key_values
        att_lp = torch.log_softmax(out.logits[:, -1].float()[:, cand.to(dev)], -1).double().cpu()
    else:
        if best_end == _NEG:  # the length limit: the best live hypothesis
            best_tokens = tokens[0]
    return best_tokens


def joint_transcribe(lm, units: list[Units], ctc_weight: float = 0.3, num_beams: int = 5,
                     max_new_tokens: int | None = None) -> list[str]:
    """Joint CTC / attention beam-search transcripts of ``units`` (``ctc_weight`` in [0, 1]: 0 is
    the attention decoder alone, 1 CTC prefix search alone); at most ``max_new_tokens`` characters
    each, by default the number of units + 10 (CTC emits at most one character per unit)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    vocab = ctc_vocab(lm)
    was_training = lm.model.training
    lm.model.eval()
    try:
        out = []
        for u in units:
            prompt = asr_prompt(lm, u)
            ids = _decode_one(lm, prompt, vocab, ctc_weight, num_beams, max_new_tokens or len(prompt) + 8)
            out.append(normalize_text(lm.tokenizer.decode(ids, skip_special_tokens=True)))
    finally:
        lm.model.train(was_training)
    return out
