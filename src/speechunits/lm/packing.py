"""Batches for LM training and scoring: sequence packing without cross-utterance attention, and
length-grouped padded batches.

Packing (``pack=True``): several utterances share one row of ``max_len`` tokens. Attention stays
inside each utterance: every utterance's ``position_ids`` restart at 0, and transformers
(``masking_utils.find_packed_sequence_indices``, used by Llama and the other models on the common
mask code) turns position resets into a block-diagonal causal mask when no 2-D attention mask is
given, for SDPA, eager and flash attention alike. :func:`verify_packing` checks that a model
honours this before training relies on it. Targets are shifted here, per utterance, so no token
is ever predicted from the previous utterance's last token. The padding tail of a row continues
the last utterance's positions (pads see real tokens, never the reverse, and are not scored).

Padded (``pack=False``): one utterance per row, rows of similar length grouped into a batch under
the token budget (length grouping), right padding. With causal attention a real token never
attends to the padding after it, so no attention mask is needed and a padded row computes what
the utterance alone computes.

Utterances longer than a row are cut into windows of ``max_len`` overlapping by one token, so
every token is still predicted exactly once.

Example:
    >>> import numpy as np
    >>> ex = [Example(np.array([1, 5, 6, 2])), Example(np.array([1, 7, 2]))]
    >>> b = collate(ex, [[0, 1]], pad_id=0, length=8)
    >>> b.input_ids.tolist(), b.position_ids.tolist()
    ([[1, 5, 6, 2, 1, 7, 2, 0]], [[0, 1, 2, 3, 0, 1, 2, 3]])
    >>> b.targets.tolist()  # position t predicts token t+1 of the same utterance
    [[5, 6, 2, -100, 7, 2, -100, -100]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass(frozen=True, eq=False)
class Example:
    """One training sequence: token ``ids``; tokens from ``loss_start`` on are predicted (1 for
    LM pre-training; the first text token for ASR, so the loss covers the transcript only)."""

    ids: np.ndarray
    loss_start: int = 1
    # positions [a, b) of ``ids`` that a CTC loss reads (ASR: the units), with the transcript
    # ``ids[loss_start:-1]`` (the predicted tokens before the end token) as its target; None: no CTC
    ctc_span: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T], restarting at 0 for each packed utterance
    targets: torch.Tensor  # [B, T]: the token position t must predict, or IGNORE
    n_real: int  # non-padding tokens
    # one (row, start, end, target ids) per example with a ctc_span, positions in the row
    ctc: tuple[tuple[int, int, int, np.ndarray], ...] = ()

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.input_ids.to(device), self.position_ids.to(device),
                     self.targets.to(device), self.n_real, self.ctc)


def split_long(examples: list[Example], max_len: int) -> list[Example]:
    """Cut examples longer than ``max_len`` into windows overlapping by one token."""
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2, got {max_len}")
    out, cut_prompts = [], 0
    for ex in examples:
        if len(ex) <= max_len:
            out.append(ex)
            continue
        cut_prompts += ex.loss_start > 1
        stride = max_len - 1
        for s in range(0, len(ex) - 1, stride):
            window = ex.ids[s:s + max_len]
            if ex.loss_start <= s + len(window) - 1:  # something left to predict
                out.append(Example(window, max(1, ex.loss_start - s)))
    if cut_prompts:
        log.warning("%d prompted example(s) (e.g. ASR) are longer than max_len=%d and were cut: "
                    "their later windows lose the prompt; raise max_len", cut_prompts, max_len)
    return out


def _first_fit(order: list[int], lengths: np.ndarray, max_len: int) -> list[list[int]]:
    """First-fit decreasing bin packing of ``order`` into rows of ``max_len`` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(order, key=lambda j: -int(lengths[j])):
        n = int(lengths[i])
        for r, f in enumerate(free):
            if n <= f:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(max_len - n)
    return rows


def plan_batches(lengths: np.ndarray | list[int], max_len: int, batch_tokens: int, pack: bool,
                 seed: int, epoch: int = 0, window: int = 2048) -> list[list[list[int]]]:
    """One epoch's batches: a list of batches, each a list of rows, each a list of example indices.

    Deterministic in ``(seed, epoch)``, which is what makes resume exact. Packed: rows of
    ``max_len``, ``batch_tokens // max_len`` rows a batch. Padded: utterances sorted by length
    inside shuffled windows, cut into batches of at most ``batch_tokens`` padded tokens.
    """
    lengths = np.asarray(lengths)
    if lengths.size and lengths.max() > max_len:
        raise ValueError(f"an example of {lengths.max()} tokens exceeds max_len={max_len}; split_long() first")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    if pack:
        rows_per_batch = max(1, batch_tokens // max_len)
        rows = []
        for w in range(0, len(order), window):
            rows.extend(_first_fit(order[w:w + window], lengths, max_len))
        rows = [rows[i] for i in rng.permutation(len(rows))]
        return [rows[i:i + rows_per_batch] for i in range(0, len(rows), rows_per_batch)]
    batches: list[list[list[int]]] = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda j: int(lengths[j]))
        cur: list[list[int]] = []
        for i in chunk:  # ascending, so the newest example is the longest of the batch
            if cur and (len(cur) + 1) * int(lengths[i]) > batch_tokens:
                batches.append(cur)
                cur = []
            cur.append([i])
        if cur:
            batches.append(cur)
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(examples: list[Example], rows: list[list[int]], pad_id: int,
            length: int | None = None) -> Batch:
    """Tensors for ``rows`` of ``examples`` (padded to ``length``, default the longest row)."""
    lens = [sum(len(examples[i]) for i in row) for row in rows]
    T = length or max(lens)
    if max(lens) > T:
        raise ValueError(f"a row of {max(lens)} tokens does not fit length {T}")
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    pos = np.zeros((len(rows), T), dtype=np.int64)
    tgt = np.full((len(rows), T), IGNORE, dtype=np.int64)
    ctc = []
    for r, row in enumerate(rows):
        t = 0
        for i in row:
            ex = examples[i]
            n = len(ex)
            ids[r, t:t + n] = ex.ids
            pos[r, t:t + n] = np.arange(n)
            # position t+j predicts token j+1 of the same utterance, for j+1 >= loss_start
            start = max(ex.loss_start, 1)
            tgt[r, t + start - 1:t + n - 1] = ex.ids[start:]
            if ex.ctc_span is not None:
                a, b = ex.ctc_span
                ctc.append((r, t + a, t + b, ex.ids[ex.loss_start:n - 1]))
            t += n
        last = int(pos[r, t - 1]) + 1 if t else 0
        pos[r, t:] = np.arange(last, last + T - t)  # pad tail: no reset, so no new "sequence"
    return Batch(torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(tgt), sum(lens), tuple(ctc))


def forward_logits(lm, batch: Batch) -> torch.Tensor:
    """Float32 logits ``[B, T, V]`` for ``batch`` (bf16 autocast on CUDA)."""
    dev = lm.device
    with lm.autocast():
        out = lm.model(input_ids=batch.input_ids.to(dev), position_ids=batch.position_ids.to(dev),
                       use_cache=False)
    return out.logits.float()


def token_nll(lm, batch: Batch) -> torch.Tensor:
    """Negative log-likelihood (nats) of each target, ``[B, T]`` with 0 where ignored."""
    return logits_nll(forward_logits(lm, batch), batch)


def logits_nll(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """:func:`token_nll` from logits already computed."""
    tgt = batch.targets.to(logits.device)
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE, reduction="none")
    return nll.view(tgt.shape)


@torch.no_grad()
def verify_packing(lm, tol: float = 1e-3) -> None:
    """Raise ``RuntimeError`` if ``lm``'s model lets packed utterances attend to each other (an
    architecture whose attention code ignores position resets); a two-utterance forward."""
    g = torch.Generator().manual_seed(0)
    seqs = [Example(lm.unit_ids[torch.randint(0, lm.k, (n,), generator=g).numpy()]) for n in (5, 7)]
    was_training = lm.model.training
    lm.model.eval()
    try:
        packed = token_nll(lm, collate(seqs, [[0, 1]], lm.pad_id))[0]
        alone = token_nll(lm, collate(seqs, [[1]], lm.pad_id))[0]
    finally:
        lm.model.train(was_training)
    if (packed[5:11] - alone[:6]).abs().max() > tol:
        raise RuntimeError(
            "this model does not isolate packed sequences (its attention ignores position_ids "
            "resets); train it with pack=False (--no-pack)")
