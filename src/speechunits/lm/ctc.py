"""A CTC loss on a unit LM's own head at the unit positions: hybrid CTC / attention ASR fine-tuning.

Fine-tuned on ``<s> units <|asr|> c h a r s </s>`` with the loss on the transcript only, a small
unit LM learns the transcripts' language long before it learns to read the units: after 500 steps
its transcripts were fluent corpus sentences, and decoding another utterance's units cost only ~2
points of CER (docs/results.md, "Unit-LM ASR at 500 fine-tuning steps"). Joint CTC / attention
training (Kim, Hori and Watanabe, ICASSP 2017; ESPnet's ``ctc_weight``) adds, with weight
``lambda``, a CTC loss whose inputs are the unit positions: the loss is
``(1 - lambda) * NLL(transcript) + lambda * CTC(transcript | units)``, which forces every layer to
carry the characters each unit stands for, where the transcript positions can attend to them.

No new parameters: the CTC distribution at a unit position is the LM's own output layer restricted
to ``<pad>`` (the CTC blank: a token the LM never predicts) and the characters, so the model saves
and loads as the plain ``LlamaForCausalLM`` it is, and :func:`ctc_transcribe` reads the units with
the same weights (greedy CTC: best class per unit, repeats merged, blanks dropped). Unit positions
see only earlier units (causal attention): a character may be emitted a few units late, which CTC
allows.

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units
    >>> from speechunits.lm import create_lm
    >>> lm = create_lm("unit-lm:tiny", k=4, seed=0, chars="ab ")
    >>> ctc_vocab(lm).tolist()  # <pad> (the blank), then a, b and space
    [0, 9, 10, 11]
    >>> len(ctc_transcribe(lm, [Units(np.array([0, 1, 2]), 50.0, utt_id="x")]))
    1
"""

from __future__ import annotations

import torch

from ..tokens import Units
from .asr import asr_prompt
from .evaluate import length_batches
from .packing import Batch, Example, collate, forward_logits
from .vocab import normalize_text


def ctc_vocab(lm) -> torch.Tensor:
    """Token ids of the CTC classes: ``<pad>`` (the blank) then every character token."""
    if lm.kind != "unit-lm" or lm.asr_id is None:
        raise ValueError("a CTC loss needs a unit LM with ASR characters (create_lm('unit-lm:...'))")
    mask = lm.text_token_mask(lm.n_logits).clone()
    mask[lm.eos_id] = False
    return torch.cat((torch.tensor([lm.pad_id]), mask.nonzero().flatten()))


def _class_table(vocab: torch.Tensor, n: int) -> torch.Tensor:
    table = torch.full((n,), -1, dtype=torch.long)
    table[vocab] = torch.arange(len(vocab))
    return table


def ctc_log_probs(logits: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the CTC classes, ``[..., len(vocab)]``, from full-vocabulary logits."""
    return torch.log_softmax(logits[..., vocab.to(logits.device)].float(), dim=-1)


def ctc_loss_sum(logits: torch.Tensor, batch: Batch, vocab: torch.Tensor) -> torch.Tensor:
    """Summed CTC loss (nats) of ``batch``'s CTC spans; 0 (with a gradient path) without any.
    A span too short for its transcript contributes 0 (``zero_infinity``)."""
    if not batch.ctc:
        return logits.sum() * 0.0
    table = _class_table(vocab, logits.shape[-1])
    lp = ctc_log_probs(logits, vocab)
    T = max(b - a for _, a, b, _ in batch.ctc)
    x = lp.new_zeros((T, len(batch.ctc), len(vocab)))
    for j, (r, a, b, _) in enumerate(batch.ctc):
        x[: b - a, j] = lp[r, a:b]
    targets = [table[torch.as_tensor(t, dtype=torch.long)] for *_, t in batch.ctc]
    if any(bool((t < 0).any()) for t in targets):
        raise ValueError("a CTC target holds a token outside the characters")
    return torch.nn.functional.ctc_loss(
        x, torch.cat(targets).to(lp.device),
        torch.tensor([b - a for _, a, b, _ in batch.ctc]), torch.tensor([len(t) for t in targets]),
        blank=0, reduction="sum", zero_infinity=True)


@torch.no_grad()
def ctc_transcribe(lm, units: list[Units], batch_tokens: int = 8192) -> list[str]:
    """Greedy CTC transcripts of ``units`` from the LM's head at the unit positions."""
    vocab = ctc_vocab(lm)
    prompts = [asr_prompt(lm, u) for u in units]
    examples = [Example(p) for p in prompts]
    out: list[str] = [""] * len(units)
    was_training = lm.model.training
    lm.model.eval()
    try:
        for idx in length_batches([len(p) for p in prompts], batch_tokens):  # right-padded
            batch = collate(examples, [[i] for i in idx], lm.pad_id)
            best = ctc_log_probs(forward_logits(lm, batch), vocab).argmax(-1).cpu()
            for j, i in enumerate(idx):
                path = best[j, 1:len(prompts[i]) - 1].tolist()
                chars = [vocab[c].item() for n, c in enumerate(path) if c and (n == 0 or c != path[n - 1])]
                out[i] = lm.tokenizer.decode(chars, skip_special_tokens=True)
    finally:
        lm.model.train(was_training)
    return [normalize_text(t) for t in out]
