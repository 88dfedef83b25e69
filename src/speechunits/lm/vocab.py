"""Unit vocabularies as real Hugging Face tokenizers.

A unit LM's vocabulary is ``<pad> <s> </s> <unk>``, then the k unit tokens ``<|u0|>`` ...
``<|u{k-1}|>`` (ids 4 ... k+3, so unit ``i`` is token ``i + 4``), then ``<|asr|>`` and the ASR
characters. It is a ``tokenizers`` WordLevel model whose pre-tokenizer isolates ``<|...|>``
markers and single characters, wrapped as a ``PreTrainedTokenizerFast``, so
``save_pretrained``/``AutoTokenizer.from_pretrained`` round-trip it with the model, and the
string form written by :func:`speechunits.tokens.to_unit_text` tokenizes to the same ids as the
fast id path (:func:`unit_token_ids`) that training and scoring use.

The characters are part of every unit vocabulary (a few dozen rows) so that a unit LM pre-trained
on units can be fine-tuned for ASR (``units <|asr|> c h a r s </s>``) without resizing.

Example:
    >>> tok = build_unit_tokenizer(k=3, chars="ab ")
    >>> tok("<|u2|><|u0|><|asr|>ab a", add_special_tokens=False).input_ids
    [6, 4, 7, 8, 9, 10, 8]
    >>> unit_token_ids(tok, 3).tolist()
    [4, 5, 6]
"""

from __future__ import annotations

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPEECH, ASR = "<|speech|>", "<|asr|>"
# Lower-case English letters, apostrophe and space: LibriSpeech transcripts after
# :func:`normalize_text`. Pass ``chars=`` for another language.
DEFAULT_CHARS = "abcdefghijklmnopqrstuvwxyz' "
# Isolate <|u12|>-style markers and <s>-style specials; everything else is one token per char.
_SPLIT = r"<\|[^|<>]+\|>|<[^<>\s]+>|."


def unit_token(i: int) -> str:
    """The token string of unit ``i``: ``<|u{i}|>``."""
    return f"<|u{int(i)}|>"


def unit_tokens(k: int) -> list[str]:
    """``["<|u0|>", ..., "<|u{k-1}|>"]``."""
    if k < 1:
        raise ValueError(f"need k >= 1 units, got {k}")
    return [unit_token(i) for i in range(k)]


def normalize_text(text: str) -> str:
    """Transcript normalisation for character ASR, the usual WER convention: lower case,
    punctuation removed (apostrophes inside words kept, hyphens and dashes become spaces),
    single spaces, stripped. Letters of any script and digits are kept.

    >>> normalize_text("Does one seal sneeze?  It's a well-known  FACT, 'he' said.")
    "does one seal sneeze it's a well known fact he said"
    """
    chars = [c if (c.isalnum() or c == "'" or c.isspace()) else " " for c in text.lower()]
    words = ("".join(chars)).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def build_unit_tokenizer(k: int, chars: str | None = DEFAULT_CHARS):
    """A ``PreTrainedTokenizerFast`` over ``<pad> <s> </s> <unk>``, k unit tokens, ``<|asr|>``
    and ``chars`` (``None`` or ``""``: units only, no ASR)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = chars or ""
    if len(set(chars)) != len(chars):
        raise ValueError(f"duplicate characters in chars={chars!r}")
    if any(c in "<>|\n" for c in chars):
        raise ValueError("chars may not contain '<', '>', '|' or a newline (they delimit markers)")
    specials = [PAD, BOS, EOS, UNK] + ([ASR] if chars else [])
    vocab = {t: i for i, t in enumerate([PAD, BOS, EOS, UNK] + unit_tokens(k))}
    for t in ([ASR] if chars else []) + list(chars):
        vocab[t] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated")
    tk.decoder = decoders.Fuse()  # characters concatenate back, spaces included
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        clean_up_tokenization_spaces=False,
    )


def unit_token_ids(tokenizer, k: int) -> np.ndarray:
    """Token id of each unit ``0..k-1`` in ``tokenizer`` (a lookup table: ``table[units]``).

    Raises ``ValueError`` when a unit token is missing (a tokenizer built for a smaller k).
    """
    ids = tokenizer.convert_tokens_to_ids(unit_tokens(k))
    unk = tokenizer.unk_token_id
    bad = [i for i, t in enumerate(ids) if t is None or (unk is not None and t == unk)]
    if bad:
        raise ValueError(f"tokenizer has no token for unit {bad[0]} ({unit_token(bad[0])}); "
                         f"it was built for fewer than k={k} units")
    return np.asarray(ids, dtype=np.int64)


def vocab_k(tokenizer) -> int:
    """How many unit tokens ``<|u0|>``, ``<|u1|>`` ... ``tokenizer`` holds (contiguous from 0)."""
    vocab = tokenizer.get_vocab()
    k = 0
    while unit_token(k) in vocab:
        k += 1
    return k
