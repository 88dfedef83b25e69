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
``h``'s last character); the blank-ending ``r_b`` likewise. Utterances are decoded in batches
(left-padded prompts, ``beam`` rows each, the decoder's key/value cache reordered along the
beams); a shorter utterance's unit positions are padded with frames that are blank with
probability 1, which leaves every CTC probability unchanged.

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
SHARE_PROMPT = True  # the faster cache (see _SharedPromptLayer); False: transformers' own


def _exclusive_logcumsumexp(x: torch.Tensor) -> torch.Tensor:
    """``out[..., t] = logsumexp(x[..., :t])`` (-inf at t = 0) along the last axis."""
    inc = torch.logcumsumexp(x, dim=-1)
    return torch.cat((torch.full_like(inc[..., :1], _NEG), inc[..., :-1]), dim=-1)


class CTCPrefixScorer:
    """CTC prefix probabilities for ``R`` rows of ``[R, T, C]`` log-probabilities (class 0 = blank;
    one row per hypothesis slot, rows of one utterance share their frames)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.double()
        self.cum = torch.cumsum(self.x, 1).transpose(1, 2)  # [R, C, T]: L_c[t] = sum_{u <= t} x[u, c]

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r_n, r_b)`` of the empty prefix, ``[R, T]`` each."""
        return torch.full(self.x.shape[:2], _NEG, dtype=torch.float64), self.cum[:, 0].clone()

    def extend(self, r_n: torch.Tensor, r_b: torch.Tensor, last: torch.Tensor, empty: torch.Tensor):
        """For the rows' prefixes (``r_n``, ``r_b``: ``[R, T]``; ``last``: their last class, 0 if
        ``empty``) and every non-blank class ``c``: ``(psi, r_n', r_b')``, ``psi [R, C-1]`` the log
        prefix probability of ``h c``, ``r_n' r_b' [R, C-1, T]`` its states."""
        C = self.x.shape[2]
        xc = self.x[:, :, 1:].transpose(1, 2)  # [R, C-1, T]
        lc = self.cum[:, 1:]  # [R, C-1, T]
        same = last[:, None] == torch.arange(1, C)[None]  # [R, C-1]: c repeats the last character
        phi = torch.logaddexp(r_b[:, None], torch.where(same[..., None], _NEG, r_n[:, None]))  # [R, C-1, T]
        init = torch.where(empty, 0.0, _NEG).double()[:, None, None]  # the first character may start at t = 0
        new_n = lc + torch.logaddexp(init.expand_as(phi), _exclusive_logcumsumexp(phi - lc))
        lb = self.cum[:, :1]
        new_b = lb + _exclusive_logcumsumexp(new_n - lb)
        # psi = x_0(c) [empty] (+) logsumexp_{t >= 1} phi[t-1] + x_t(c)
        psi = torch.logaddexp(init[..., 0] + xc[..., 0], torch.logsumexp(phi[..., :-1] + xc[..., 1:], dim=-1))
        return psi, new_n, new_b

    @staticmethod
    def final(r_n: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
        """Log-probability of each row's prefix as the whole transcript, ``[R]``."""
        return torch.logaddexp(r_n[:, -1], r_b[:, -1])


# A padding frame's non-blank log-probability: finite, so the closed forms never meet inf - inf,
# and far below any real one (exp(-1e4) is 0 in float64).
_PAD_LOGP = -1.0e4


def _ctc_frames(logits: torch.Tensor, lengths: list[int], vocab: torch.Tensor) -> torch.Tensor:
    """``[N, T, C]`` CTC log-probabilities of left-padded prompts' unit positions, padded at the
    end with certain blanks."""
    N, P = logits.shape[:2]
    T = max(n - 2 for n in lengths)
    x = torch.full((N, T, len(vocab)), _PAD_LOGP, dtype=torch.float64)
    x[..., 0] = 0.0
    for i, n in enumerate(lengths):  # prompt = <s> units <|asr|>, ending at position P - 1
        x[i, : n - 2] = ctc_log_probs(logits[i, P - n + 1:P - 1], vocab).cpu()
    return x


class _SharedPromptLayer:
    """One layer's key/value cache for beam search where the beams of an utterance share its prompt:
    preallocated for ``capacity`` new tokens (no concatenation per step), and reordered over the
    generated part only (beam reordering stays inside an utterance, whose rows hold the same
    prompt). Profiled on CPU, the stock cache spent about half the decoding time copying itself."""

    def __init__(self, layer, capacity: int) -> None:
        R, H, P, D = layer.keys.shape
        self.layer, self.prompt, self.length = layer, P, P
        self.kbuf = layer.keys.new_empty((R, H, P + capacity, D))
        self.vbuf = layer.values.new_empty((R, H, P + capacity, layer.values.shape[-1]))
        self.kbuf[:, :, :P], self.vbuf[:, :, :P] = layer.keys, layer.values

    def update(self, keys: torch.Tensor, values: torch.Tensor, *args, **kwargs):
        n = keys.shape[-2]
        self.kbuf[:, :, self.length:self.length + n] = keys
        self.vbuf[:, :, self.length:self.length + n] = values
        self.length += n
        self.layer.keys, self.layer.values = self.kbuf[:, :, :self.length], self.vbuf[:, :, :self.length]
        return self.layer.keys, self.layer.values

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        new = slice(self.prompt, self.length)
        self.kbuf[:, :, new] = self.kbuf[beam_idx, :, new]
        self.vbuf[:, :, new] = self.vbuf[beam_idx, :, new]
        self.layer.keys, self.layer.values = self.kbuf[:, :, :self.length], self.vbuf[:, :, :self.length]


def _share_prompt(past, capacity: int) -> None:
    """Give ``past`` (a transformers ``DynamicCache``, after ``batch_repeat_interleave``) shared-prompt
    layers; a cache of another layout (older transformers) is left as it is: slower, same result."""
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # an older transformers: per-layer lists, not layer objects
        return
    layers = getattr(past, "layers", None)
    if not layers or not all(type(x) is DynamicLayer and x.keys is not None for x in layers):
        return
    for layer in layers:
        shared = _SharedPromptLayer(layer, capacity)
        layer.update, layer.reorder_cache = shared.update, shared.reorder_cache


@torch.no_grad()
def _decode_batch(lm, prompts: list, vocab: torch.Tensor, w: float, beam: int, limits: list[int]) -> list[list[int]]:
    dev, N, B = lm.device, len(prompts), beam
    cand = torch.cat((vocab[1:], torch.tensor([lm.eos_id])))  # characters, then </s>
    eos = len(cand) - 1
    P = max(len(p) for p in prompts)
    ids = torch.full((N, P), lm.pad_id, dtype=torch.long)
    mask = torch.zeros((N, P), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding: every prompt ends where decoding starts
        ids[i, P - len(p):] = torch.as_tensor(p)
        mask[i, P - len(p):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with lm.autocast():
        out = lm.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), use_cache=True)
    logits = out.logits.float()
    ctc = CTCPrefixScorer(_ctc_frames(logits, [len(p) for p in prompts], vocab).repeat_interleave(B, 0))
    att_lp = torch.log_softmax(logits[:, -1][:, cand.to(dev)], -1).double().cpu().repeat_interleave(B, 0)
    past = out.past_key_values
    past.batch_repeat_interleave(B)
    if SHARE_PROMPT:
        _share_prompt(past, max(limits) + 1)
    mask, next_pos = mask.repeat_interleave(B, 0).to(dev), pos[:, -1].repeat_interleave(B) + 1
    r_n, r_b = ctc.initial()
    att = torch.zeros(N * B, dtype=torch.float64)
    # one live hypothesis per utterance to begin with; a mask, not -inf scores (0 x -inf is nan at weight 1)
    alive = torch.arange(N * B) % B == 0
    tokens: list[list[int]] = [[] for _ in range(N * B)]
    last = torch.zeros(N * B, dtype=torch.long)
    best: list[tuple[float, list[int]]] = [(_NEG, [])] * N
    done = [False] * N
    for step in range(max(limits)):
        psi, new_n, new_b = ctc.extend(r_n, r_b, last, torch.tensor([not t for t in tokens]))
        att_all = att[:, None] + att_lp
        score = (1 - w) * att_all + w * torch.cat((psi, ctc.final(r_n, r_b)[:, None]), dim=1)  # [N B, C]
        score = score.masked_fill(~alive[:, None], _NEG)
        rows, cls, live = [], [], []
        for i in range(N):
            keep: list[tuple[int, int, float]] = []
            if not done[i]:
                top = torch.topk(score[i * B:(i + 1) * B].flatten(), 2 * B)
                for s, flat in zip(top.values.tolist(), top.indices.tolist()):
                    h, c = divmod(flat, len(cand))
                    if s == _NEG:
                        break
                    if c == eos:  # a finished transcript
                        if s > best[i][0]:
                            best[i] = (s, tokens[i * B + h])
                    elif len(keep) < B:
                        keep.append((i * B + h, c, s))
                # scores only fall as a prefix grows: no live hypothesis can beat a better ended one
                if not keep or best[i][0] >= keep[0][2]:
                    done[i] = True
                elif step + 1 >= limits[i]:  # the length limit: the best live hypothesis
                    done[i] = True
                    if best[i][0] == _NEG:
                        best[i] = (keep[0][2], tokens[keep[0][0]] + [int(cand[keep[0][1]])])
            if done[i]:
                keep = []
            n_live = len(keep)
            keep += [(i * B, 0, _NEG)] * (B - len(keep))  # filler rows, dead
            rows += [r for r, _, _ in keep]
            cls += [c for _, c, _ in keep]
            live += [j < n_live for j in range(B)]
        if all(done):
            break
        hs, cs = torch.tensor(rows), torch.tensor(cls)
        att, alive = att_all[hs, cs], torch.tensor(live)
        r_n, r_b, last = new_n[hs, cs], new_b[hs, cs], cs + 1
        tokens = [tokens[h] + [int(cand[c])] for h, c in zip(rows, cls)]
        past.reorder_cache(hs.to(dev))
        mask = torch.cat((mask, torch.ones_like(mask[:, :1])), dim=1)
        with lm.autocast():
            out = lm.model(input_ids=cand[cs].to(dev)[:, None], attention_mask=mask,
                           position_ids=next_pos.to(dev)[:, None], past_key_values=past, use_cache=True)
        past, next_pos = out.past_key_values, next_pos + 1
        att_lp = torch.log_softmax(out.logits[:, -1].float()[:, cand.to(dev)], -1).double().cpu()
    return [b[1] for b in best]


def joint_transcribe(lm, units: list[Units], ctc_weight: float = 0.3, num_beams: int = 5,
                     max_new_tokens: int | None = None, batch_size: int = 8) -> list[str]:
    """Joint CTC / attention beam-search transcripts of ``units`` (``ctc_weight`` in [0, 1]: 0 is
    the attention decoder alone, 1 CTC prefix search alone); at most ``max_new_tokens`` characters
    each, by default the number of units + 8 (CTC emits at most one character per unit);
    ``batch_size`` utterances at a time, of similar length."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if num_beams < 1 or batch_size < 1:
        raise ValueError(f"num_beams and batch_size must be >= 1, got {num_beams} and {batch_size}")
    vocab = ctc_vocab(lm)
    prompts = [asr_prompt(lm, u) for u in units]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(units)
    was_training = lm.model.training
    lm.model.eval()
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            limits = [max_new_tokens or len(prompts[i]) + 8 for i in idx]
            for i, ids in zip(idx, _decode_batch(lm, [prompts[i] for i in idx], vocab, ctc_weight, num_beams, limits)):
                out[i] = normalize_text(lm.tokenizer.decode(ids, skip_special_tokens=True))
    finally:
        lm.model.train(was_training)
    return out
