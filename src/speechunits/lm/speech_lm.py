"""``SpeechLM``: a causal LM over unit tokens (a unit LM, or a text LLM + LoRA), saved and loaded
as one directory.

Sequence formats (token ids; the model predicts every token after the first):

- unit LM: ``<s> <|u..|> ... </s>``; ASR: ``<s> units <|asr|> c h a r s </s>``
- text LLM: ``<|speech|> <|u..|> ... <eos>``; ASR: ``<|speech|> units <|asr|> text <eos>``
  (``<eos>`` is the tokenizer's end-of-sequence token).

Frame-level units are de-duplicated first (``dedup=True``, as in GSLM); units that already carry
durations (de-duplicated or BPE) are used as they are, since collapsing BPE ids would be wrong.

A directory holds ``speechunits_lm.json`` (kind, k, dedup, base model record), the tokenizer,
and either the full model (``config.json`` + ``model.safetensors``, unit LM) or the peft adapter
(``adapter_config.json`` + ``adapter_model.safetensors``, text LLM; the base model is reopened
from where it was first loaded).

Example:
    >>> import numpy as np, tempfile
    >>> lm = create_lm("unit-lm:tiny", k=20, seed=0)
    >>> lm.encode_units(np.array([3, 0])).tolist()  # <s> <|u3|> <|u0|> </s>
    [1, 7, 4, 2]
    >>> d = tempfile.mkdtemp(); _ = lm.save(d)
    >>> SpeechLM.load(d).encode_units(np.array([3, 0])).tolist()
    [1, 7, 4, 2]
"""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.atomic import atomic_write_text
from ..security import safe_from_pretrained
from ..tokens import Units, dedup
from .vocab import ASR, DEFAULT_CHARS, SPEECH, unit_token_ids, vocab_k

META_FILE = "speechunits_lm.json"
FORMAT_VERSION = 1


@dataclass
class SpeechLM:
    """A causal LM and tokenizer with the unit/marker token ids it needs."""

    model: Any
    tokenizer: Any
    kind: str  # "unit-lm" or "llm"
    k: int
    dedup: bool = True
    source: dict[str, Any] | None = None  # where a text LLM's base weights come from
    unit_ids: np.ndarray = field(init=False)
    prefix_id: int = field(init=False)
    eos_id: int = field(init=False)
    asr_id: int | None = field(init=False)
    pad_id: int = field(init=False)

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self.unit_ids = unit_token_ids(tok, self.k)
        vocab = tok.get_vocab()
        if self.kind == "unit-lm":
            self.prefix_id = tok.bos_token_id
        else:
            self.prefix_id = vocab[SPEECH]
        if tok.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-sequence token")
        self.eos_id = int(tok.eos_token_id)
        self.asr_id = vocab.get(ASR)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.eos_id)

    # ------------------------------------------------------------------ encoding
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def n_logits(self) -> int:
        """Rows of the output layer (``resize_token_embeddings`` keeps ``config.vocab_size`` in step)."""
        return int(self.model.config.vocab_size)

    def unit_sequence(self, units: Units | np.ndarray) -> np.ndarray:
        """The unit ids the model sees for ``units`` (de-duplicated when frame-level)."""
        if isinstance(units, Units):
            if units.ids.ndim != 1:
                raise ValueError(f"{units.utt_id}: LMs take one codebook, got ids of shape {units.ids.shape}")
            if self.dedup and units.durations is None:
                units = dedup(units)
            ids = units.ids
        else:
            ids = np.asarray(units, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.k):
            bad = int(ids.max() if ids.max() >= self.k else ids.min())
            raise ValueError(f"unit {bad} is outside this model's vocabulary 0..{self.k - 1}")
        return ids

    def encode_units(self, units: Units | np.ndarray) -> np.ndarray:
        """Token ids ``prefix units eos`` for one utterance."""
        return np.concatenate(([self.prefix_id], self.unit_ids[self.unit_sequence(units)],
                               [self.eos_id])).astype(np.int64)

    def encode_text(self, text: str) -> np.ndarray:
        """Token ids of a transcript (characters for a unit LM, BPE for a text LLM)."""
        return np.asarray(self.tokenizer(text, add_special_tokens=False).input_ids, dtype=np.int64)

    def text_token_mask(self, n: int) -> torch.Tensor:
        """Boolean ``[n]`` over the ``n`` logits: tokens an ASR decoder may emit (text tokens and
        ``eos``; never units, markers, padding or embedding rows no token maps to)."""
        mask = torch.ones(n, dtype=torch.bool)
        mask[torch.as_tensor(self.unit_ids)] = False
        tok = self.tokenizer
        for t in {tok.bos_token_id, tok.pad_token_id, tok.unk_token_id, self.prefix_id, self.asr_id}:
            if t is not None and t < n:
                mask[t] = False
        mask[len(tok):] = False  # padded embedding rows no token maps to
        mask[self.eos_id] = True
        return mask

    def autocast(self):
        """bf16 autocast on CUDA (master weights stay float32); plain float32 on CPU, where bf16
        was 3-4x slower on these machines (DESIGN.md)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def to(self, device: str | torch.device) -> "SpeechLM":
        self.model.to(device)
        return self

    # ------------------------------------------------------------------ saving/loading
    def save(self, directory: str | Path) -> Path:
        """Write model (or adapter), tokenizer and ``speechunits_lm.json`` into ``directory``.

        Files are written to a temporary folder first and moved in one by one, so an
        interrupted save never leaves a half-written weight file under its final name."""
        from .llm import _quiet_transformers

        _quiet_transformers()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".saving"
        shutil.rmtree(tmp, ignore_errors=True)
        if self.kind == "llm":
            # the new rows live in the trainable-token adapter; never save the 49k-row matrix
            self.model.save_pretrained(tmp, save_embedding_layers=False)
        else:
            self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        for f in sorted(tmp.iterdir()):
            f.replace(out / f.name)
        tmp.rmdir()
        meta = {"format_version": FORMAT_VERSION, "kind": self.kind, "k": self.k,
                "dedup": self.dedup, "source": self.source}
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", trainable: bool = False,
             allow_download: bool = False) -> "SpeechLM":
        """Open a directory written by :meth:`save` (the base model of a text LLM is reopened
        from its recorded source)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .llm import _quiet_transformers

        _quiet_transformers()
        d = Path(directory)
        meta_path = d / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{d}: not a speechunits LM directory (no {META_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: unsupported format_version {meta.get('format_version')!r}")
        tokenizer = safe_from_pretrained(AutoTokenizer, d)
        if meta["kind"] == "unit-lm":
            model = safe_from_pretrained(AutoModelForCausalLM, d, dtype=torch.float32)
        elif meta["kind"] == "llm":
            from peft import PeftModel

            from .llm import expand_vocab, load_base_from_source

            base = load_base_from_source(meta["source"], allow_download=allow_download)
            expand_vocab(base, tokenizer, int(meta["k"]))  # rows for the saved tokens
            model = safe_from_pretrained(PeftModel, d, base_model=base, is_trainable=trainable)
        else:
            raise ValueError(f"{meta_path}: unknown kind {meta['kind']!r}")
        lm = cls(model, tokenizer, meta["kind"], int(meta["k"]), bool(meta.get("dedup", True)),
                 meta.get("source"))
        model.train(trainable)
        return lm.to(device)


def is_lm_dir(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()


def create_lm(spec: str, k: int, seed: int = 0, chars: str | None = DEFAULT_CHARS,
              dedup: bool = True, lora_r: int = 64, lora_alpha: int = 16,
              lora_dropout: float = 0.05, allow_download: bool = False, new_rows_noise: float = 1.0,
              **unit_lm_overrides: Any) -> SpeechLM:
    """A model to train on units of vocabulary ``k``.

    ``spec``: ``"unit-lm:tiny|small|base"`` (from scratch), a speechunits LM directory (continue
    training it), or a text LLM for continual pre-training: ``"smollm2"``, a ``.gguf`` file, an
    HF model directory or a hub name (expanded with unit tokens, LoRA ``lora_r``/``lora_alpha``;
    the new rows start at the mean text embedding plus ``new_rows_noise`` x its per-dimension
    spread of seeded noise, so they differ from the first step; see
    :func:`~speechunits.lm.llm.expand_vocab`).
    """
    if spec.startswith("unit-lm"):
        from .unit_lm import build_unit_lm

        preset = spec.partition(":")[2] or "small"
        model, tok = build_unit_lm(k, preset, chars=chars, seed=seed, **unit_lm_overrides)
        return SpeechLM(model, tok, "unit-lm", k, dedup)
    if is_lm_dir(spec):
        lm = SpeechLM.load(spec, trainable=True, allow_download=allow_download)
        if k > lm.k:
            raise ValueError(f"{spec} knows {lm.k} units but the data needs k={k}")
        return lm
    from .llm import add_lora, expand_vocab, load_text_lm

    model, tok, source = load_text_lm(spec, allow_download=allow_download)
    if vocab_k(tok):
        raise ValueError(f"{spec} already has unit tokens; give its speechunits LM directory instead")
    ex = expand_vocab(model, tok, k, noise=new_rows_noise, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # LoRA A matrices are random: seed them
        model = add_lora(model, ex.new_token_ids, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    return SpeechLM(model, tok, "llm", k, dedup, source)
