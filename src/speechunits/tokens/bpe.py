"""BPE over unit sequences, trained and run by Hugging Face ``tokenizers``.

Each unit id ``u`` in ``[0, k)`` is written as the single character ``chr(char_offset + u)``
(default offset 0x4E00, the CJK block, as the discrete-vs-continuous study's code does), so a unit
sequence is a string and a BPE token is a run of units. The tokenizer has no normalizer and no
pre-tokenizer: the whole utterance is one "word", so merges may span any units. ``vocab_size`` is
the final vocabulary size *including* the k base units (k = 2000 -> 6000 in that study); all k
base units are always in the vocabulary, seen in training or not.

By default (``dedup=True``) BPE works on de-duplicated units, as in that study: ``train`` and
``encode`` first collapse runs of repeated units, so ``decode(encode(x)) == dedup_ids(x)[0]``
(durations are not tokenized; keep them from :func:`speechunits.tokens.dedup.dedup` if you need
them). With ``dedup=False``, ``decode(encode(x)) == x`` for every sequence. Either way the round
trip is exact: ``decode`` maps each BPE token back to the units it spells. A ``Units`` that is
already de-duplicated is encoded as its collapsed ids. Unit ids outside ``[0, k)`` raise
``ValueError`` (the tokenizer has no unknown token, so nothing is ever dropped silently).

Artifacts: ``save_pretrained(dir)`` writes ``tokenizer.json`` (the HF tokenizer, loadable by
``tokenizers.Tokenizer.from_file``) and ``bpe_config.json`` (k, sizes, dedup, seed, training
summary). The BPE config has its own file so that a parent tokenizer directory can keep its
``config.json``.

Example:
    >>> import numpy as np
    >>> seqs = [np.array([1, 2, 3, 1, 2, 3, 4]), np.array([1, 2, 3, 3, 5])]
    >>> bpe = UnitBPE.train(seqs, vocab_size=8, k=6)
    >>> toks = bpe.encode(np.array([1, 2, 3, 4]))
    >>> bpe.decode(toks).tolist()
    [1, 2, 3, 4]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..data.atomic import atomic_write_text
from .dedup import dedup_ids
from .units import Units, as_int_ids

CONFIG_NAME = "bpe_config.json"
TOKENIZER_NAME = "tokenizer.json"
DEFAULT_CHAR_OFFSET = 0x4E00
_MAX_CODEPOINT = 0x10FFFF

UnitSeq = np.ndarray | Sequence[int] | Units


def _require_tokenizers():
    try:
        import tokenizers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("UnitBPE needs the `tokenizers` package: pip install tokenizers") from e
    return tokenizers


class UnitBPE:
    """BPE tokenizer over discrete unit ids. Build with :meth:`train` or :meth:`from_pretrained`."""

    def __init__(self, tokenizer: Any, config: dict[str, Any]) -> None:
        self._tok = tokenizer
        self.config = dict(config)
        self.k = int(config["k"])
        self.dedup = bool(config["dedup"])
        self.char_offset = int(config["char_offset"])
        self._build_tables()

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(
        cls,
        sequences: Iterable[UnitSeq],
        vocab_size: int = 6000,
        k: int = 2000,
        seed: int = 0,
        *,
        dedup: bool = True,
        max_sequences: int | None = None,
        char_offset: int = DEFAULT_CHAR_OFFSET,
        max_token_length: int | None = None,
    ) -> "UnitBPE":
        """Train on unit sequences (arrays of ids in ``[0, k)`` or ``Units``).

        ``seed`` picks the subset when ``max_sequences`` caps the training set; the HF trainer
        itself is deterministic (ties broken by pair order), so same data + seed = same merges.
        """
        tk = _require_tokenizers()
        if k < 1 or vocab_size < k:
            raise ValueError(f"need 1 <= k <= vocab_size, got k={k}, vocab_size={vocab_size}")
        if char_offset < 0 or char_offset + k - 1 > _MAX_CODEPOINT or (
            char_offset <= 0xDFFF and char_offset + k - 1 >= 0xD800
        ):
            raise ValueError(
                f"k={k} units do not fit in valid code points from {char_offset:#x} "
                "(use char_offset=0xF0000, the supplementary private-use planes, for k <= 131072)"
            )
        seqs = [cls._prepare(s, dedup, k, f"training sequence {i}") for i, s in enumerate(sequences)]
        num_frames = sum(n for _, n in seqs)
        if max_sequences is not None and len(seqs) > max_sequences:
            pick = np.sort(np.random.default_rng(seed).choice(len(seqs), max_sequences, replace=False))
            seqs = [seqs[i] for i in pick]
        texts = [_to_text(ids, char_offset) for ids, _ in seqs]
        tok = tk.Tokenizer(tk.models.BPE(unk_token=None))
        # No normalizer / pre-tokenizer: the defaults are None, stated here so it stays that way.
        kwargs: dict[str, Any] = {}
        if max_token_length is not None:
            kwargs["max_token_length"] = int(max_token_length)
        trainer = tk.trainers.BpeTrainer(
            vocab_size=int(vocab_size),
            initial_alphabet=[chr(char_offset + u) for u in range(k)],
            special_tokens=[],
            show_progress=False,
            **kwargs,
        )
        tok.train_from_iterator(texts, trainer, length=len(texts))
        config = {
            "type": "unit_bpe",
            "k": int(k),
            "vocab_size": int(vocab_size),
            "actual_vocab_size": int(tok.get_vocab_size()),
            "dedup": bool(dedup),
            "char_offset": int(char_offset),
            "seed": int(seed),
            "max_sequences": max_sequences,
            "max_token_length": max_token_length,
            "train_summary": {
                "num_sequences": len(texts),
                "num_units": int(sum(len(t) for t in texts)),
                "num_frames_before_dedup": int(num_frames),
            },
            "tokenizers_version": tk.__version__,
        }
        return cls(tok, config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "UnitBPE":
        """Load what :meth:`save_pretrained` wrote."""
        tk = _require_tokenizers()
        directory = Path(directory)
        cfg_path, tok_path = directory / CONFIG_NAME, directory / TOKENIZER_NAME
        for p in (cfg_path, tok_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: missing (not a UnitBPE directory)")
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: invalid JSON ({e})") from None
        if config.get("type") != "unit_bpe":
            raise ValueError(f"{cfg_path}: not a unit BPE config (type={config.get('type')!r})")
        try:
            tok = tk.Tokenizer.from_file(str(tok_path))
        except Exception as e:  # tokenizers raises a bare Exception on parse errors
            raise ValueError(f"{tok_path}: cannot load tokenizer ({e})") from None
        try:
            return cls(tok, config)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{tok_path}: not a unit BPE tokenizer for this config ({e})") from None

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` and ``bpe_config.json`` into ``directory`` (atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / TOKENIZER_NAME, self._tok.to_str(pretty=True))
        atomic_write_text(directory / CONFIG_NAME, json.dumps(self.config, indent=2) + "\n")

    # ------------------------------------------------------------------ encode / decode
    @property
    def vocab_size(self) -> int:
        """Number of BPE tokens (base units included)."""
        return int(len(self._tok_len))

    @property
    def tokenizer(self) -> Any:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def encode(self, units: UnitSeq) -> np.ndarray:
        """Unit ids ``[T]`` (or a ``Units``) -> BPE ids (int64). De-duplicates first if ``dedup``."""
        return self.encode_batch([units])[0]

    def encode_batch(self, batch: Iterable[UnitSeq]) -> list[np.ndarray]:
        """:meth:`encode` over many sequences (the Rust side runs them in parallel)."""
        prepared = [self._prepare(u, self.dedup, self.k, f"sequence {i}") for i, u in enumerate(batch)]
        texts = [_to_text(ids, self.char_offset) for ids, _ in prepared]
        encs = self._tok.encode_batch(texts, add_special_tokens=False) if texts else []
        out = []
        for (ids, _), enc in zip(prepared, encs):
            bpe = np.asarray(enc.ids, dtype=np.int64)
            # The model has no unk token: a unit it could not spell would vanish silently.
            if int(self._tok_len[bpe].sum()) != len(ids):
                raise RuntimeError("BPE encoding lost units; the tokenizer does not cover [0, k)")
            out.append(bpe)
        return out

    def decode(self, bpe_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """BPE ids -> unit ids (int64 ``[T]``): the exact inverse of :meth:`encode`."""
        bpe = as_int_ids(bpe_ids, "bpe ids")
        if bpe.ndim != 1:
            raise ValueError(f"bpe ids must have shape [N], got {bpe.shape}")
        bad = (bpe < 0) | (bpe >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"BPE ids outside [0, {self.vocab_size}): {np.unique(bpe[bad])[:10].tolist()}"
            )
        lens = self._tok_len[bpe]
        total = int(lens.sum())
        # Gather each token's slice of the flat table without a Python loop.
        out_start = np.cumsum(lens) - lens
        idx = np.repeat(self._tok_start[bpe] - out_start, lens) + np.arange(total)
        return self._flat[idx].copy()

    def compression_stats(self, sequences: Iterable[UnitSeq]) -> dict[str, float]:
        """Frames, units fed to BPE (after de-dup if on), BPE tokens, and the ratios."""
        prepared = [self._prepare(s, self.dedup, self.k, f"sequence {i}") for i, s in enumerate(sequences)]
        frames = sum(n for _, n in prepared)
        units = sum(len(ids) for ids, _ in prepared)
        tokens = sum(len(t) for t in self.encode_batch([ids for ids, _ in prepared]))
        return {
            "num_frames": frames,
            "num_units": units,
            "num_tokens": tokens,
            "units_per_token": units / tokens if tokens else float("nan"),
            "frames_per_token": frames / tokens if tokens else float("nan"),
        }

    def compression_ratio(self, sequences: Iterable[UnitSeq]) -> float:
        """Units per BPE token over a set (units after de-dup when ``dedup``; pooled, not averaged)."""
        return self.compression_stats(sequences)["units_per_token"]

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _prepare(seq: UnitSeq, dedup: bool, k: int, what: str) -> tuple[np.ndarray, int]:
        """Validated 1-D ids (de-duplicated if asked) and the frame count they came from."""
        if isinstance(seq, Units):
            ids, dur, frames = seq.ids, seq.durations, seq.num_frames
        else:
            ids, dur = as_int_ids(seq, what), None
            frames = len(ids)
        if ids.ndim != 1:
            raise ValueError(f"{what}: BPE takes one codebook ([T] ids), got shape {ids.shape}")
        if dedup and len(ids):
            ids = dedup_ids(ids, dur)[0]
        bad = (ids < 0) | (ids >= k)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what}: unit ids outside [0, {k}) (unseen by this BPE): "
                f"{np.unique(ids[bad])[:10].tolist()} (first at position {pos})"
            )
        return ids, frames

    def _build_tables(self) -> None:
        """Flat table of the units each BPE token spells, for vectorised decoding."""
        vocab = self._tok.get_vocab()
        n = len(vocab)
        if sorted(vocab.values()) != list(range(n)):
            raise ValueError("tokenizer ids are not contiguous 0..N-1")
        spelled: list[np.ndarray] = [np.zeros(0, np.int64)] * n
        for piece, i in vocab.items():
            u = np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
            u -= self.char_offset
            if len(u) == 0 or u.min() < 0 or u.max() >= self.k:
                raise ValueError(f"token {i} ({piece!r}) is not a run of unit characters")
            spelled[i] = u
        self._tok_len = np.array([len(s) for s in spelled], dtype=np.int64)
        singles = {int(s[0]) for s in spelled if len(s) == 1}
        if len(singles) != self.k:
            # Without every base unit some sequences could not be spelled (there is no unk).
            raise ValueError(f"tokenizer lacks {self.k - len(singles)} of the {self.k} base units")
        self._tok_start = np.cumsum(self._tok_len) - self._tok_len
        self._flat = np.concatenate(spelled) if n else np.zeros(0, np.int64)


def _to_text(ids: np.ndarray, char_offset: int) -> str:
    """Unit ids -> one character each (vectorised through UTF-32)."""
    return (ids + char_offset).astype("<u4").tobytes().decode("utf-32-le")
