"""Inputs of the LM stage: unit files (any format ``speechunits tokenize`` writes), their unit
vocabulary size, and transcripts for unit-LM ASR.

Example:
    >>> import numpy as np, tempfile, os
    >>> from speechunits.tokens import Units, write_jsonl
    >>> p = os.path.join(tempfile.mkdtemp(), "u.jsonl")
    >>> write_jsonl(p, [Units(np.array([1, 1, 7]), 50.0, utt_id="a")], {"frame_rate": 50.0, "k": 10})
    >>> [u.utt_id for u in read_units(p)], units_vocab_size(p)
    (['a'], 10)
"""

from __future__ import annotations

import json
from pathlib import Path

from ..tokens import Units, UnitsFileError, read_config, read_units


def units_vocab_size(path: str | Path, units: list[Units] | None = None) -> int:
    """Unit vocabulary size for the file: the BPE vocabulary or ``k`` recorded in its tokenizer
    config, else (or if the data exceed it) the largest id + 1."""
    config = read_config(path)
    bpe = config.get("bpe")
    k = bpe.get("vocab_size") if isinstance(bpe, dict) else bpe if isinstance(bpe, int) else None
    if k is None:
        k = config.get("k")
    if isinstance(k, list):
        raise UnitsFileError(path, f"multi-codebook units (k={k}); LMs take one codebook")
    seen = 0
    for u in units if units is not None else read_units(path):
        if u.ids.ndim != 1:
            raise UnitsFileError(path, f"{u.utt_id}: LMs take one codebook, got shape {u.ids.shape}")
        if u.ids.size:
            seen = max(seen, int(u.ids.max()) + 1)
    return max(int(k or 0), seen, 1)


def read_transcripts(path: str | Path) -> dict[str, str]:
    """``{utterance id: text}`` from a JSONL file (``{"id", "text"}`` per line, e.g. a manifest)
    or a text file of ``id<TAB or space>text`` lines (LibriSpeech ``*.trans.txt``)."""
    p = Path(path)
    out: dict[str, str] = {}
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if p.suffix.lower() == ".jsonl":
                try:
                    rec = json.loads(line)
                    utt, text = rec["id"], rec["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise UnitsFileError(p, f"expected a JSON object with 'id' and 'text' ({e})", lineno) from None
            else:
                utt, _, text = line.strip().replace("\t", " ", 1).partition(" ")
            if not isinstance(text, str) or not text.strip():
                raise UnitsFileError(p, f"no transcript for {utt!r}", lineno)
            if utt in out:
                raise UnitsFileError(p, f"duplicate utterance id {utt!r}", lineno)
            out[utt] = text
    return out
