"""A causal LLM that takes speech in one of two ways, for instruction tuning (arXiv 2411.08742).

Sequence: ``Task: {prompt}\\nSpeech: <|speech|> SPEECH <|/speech|>\\nAnswer: {answer}<eos>``; the
loss covers ``{answer}<eos>`` only.

- **discrete**: SPEECH is the utterance's units, de-duplicated and BPE-encoded
  (:class:`speechunits.tokens.bpe.UnitBPE`; k-means 2000 + BPE 6000 in the paper), each BPE token
  a new vocabulary entry ``<|u{i}|>`` (rows initialised to the mean embedding, trained).
- **continuous**: SPEECH is the encoder features of the same frames, standardised per dimension
  with the training frames' statistics (Whisper has a few dimensions tens of times larger than the
  rest), ``stack`` consecutive frames concatenated (2 in the paper: 50 -> 25 Hz), then a linear
  adapter (or a 2-layer MLP) into the LLM's embedding width, placed where token embeddings go.

The LLM is trained with LoRA (only the new rows of the vocabulary besides the adapters) or fully
(``full=True``, as the paper does with Qwen1.5-0.5B). Batches are right-padded with an attention
mask (training, scoring) or left-padded (generation); a padded batch computes what each example
computes alone.

A directory holds ``speechunits_instruct.json``, the LLM tokenizer, the LoRA adapter (or the full
model), ``speech_adapter.safetensors`` (continuous) or ``bpe/`` (discrete); the base LLM is reopened
from where it was first loaded. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from speechunits.data.atomic import atomic_write_text
from speechunits.lm.llm import _quiet_transformers, add_lora, expand_vocab, load_base_from_source, load_text_lm
from speechunits.lm.packing import IGNORE
from speechunits.lm.vocab import SPEECH, unit_token_ids
from speechunits.security import safe_from_pretrained
from speechunits.tokens.bpe import UnitBPE

SPEECH_END = "<|/speech|>"
META_FILE = "speechunits_instruct.json"
ADAPTER_FILE = "speech_adapter.safetensors"
FORMAT_VERSION = 1
INPUTS = ("discrete", "continuous")


def move_contents(src: Path, dest: Path) -> None:
    """Move every file and folder of ``src`` into ``dest`` (replacing same-named ones), then drop ``src``."""
    for f in sorted(src.iterdir()):
        target = dest / f.name
        if target.is_dir():
            shutil.rmtree(target)
        f.replace(target)
    src.rmdir()


class SpeechAdapter(torch.nn.Module):
    """Features ``[T, F]`` -> ``[ceil(T / stack), hidden]``: standardise, stack, project.

    Example:
        >>> a = SpeechAdapter(3, 8, stack=2)
        >>> a(torch.randn(5, 3)).shape  # 5 frames -> 3 stacked (the last padded with zeros)
        torch.Size([3, 8])
    """

    def __init__(self, dim: int, hidden: int, stack: int = 2, kind: str = "linear") -> None:
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if kind not in ("linear", "mlp"):
            raise ValueError(f"adapter kind must be linear or mlp, got {kind!r}")
        self.dim, self.stack, self.kind = dim, stack, kind
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        n = dim * stack
        self.proj = torch.nn.Linear(n, hidden) if kind == "linear" else torch.nn.Sequential(
            torch.nn.Linear(n, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-5), dtype=torch.float32))

    def n_out(self, frames: int) -> int:
        return math.ceil(frames / self.stack)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = (feats - self.mean) / self.std
        pad = (-len(x)) % self.stack
        if pad:  # zero after standardisation = the training mean: no made-up frame content
            x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
        return self.proj(x.reshape(-1, self.dim * self.stack))


@dataclass
class Encoded:
    """One example's pieces: text ids around the speech, the speech (ids or features), the answer."""

    prefix: np.ndarray
    speech: np.ndarray  # discrete: LLM token ids; continuous: features [T, F] (float32)
    suffix: np.ndarray
    answer: np.ndarray  # answer ids + eos (empty when generating)


class InstructLM(torch.nn.Module):
    """An LLM with a speech input path (``discrete`` or ``continuous``); see the module doc."""

    def __init__(self, llm: Any, tokenizer: Any, input_kind: str, *, adapter: SpeechAdapter | None = None,
                 bpe: UnitBPE | None = None, source: dict | None = None, settings: dict | None = None) -> None:
        super().__init__()
        if input_kind not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input_kind!r}")
        if (input_kind == "continuous") != (adapter is not None) or (input_kind == "discrete") != (bpe is not None):
            raise ValueError("a continuous model needs an adapter, a discrete one a BPE tokenizer")
        self.llm, self.tokenizer, self.input_kind = llm, tokenizer, input_kind
        self.adapter, self.bpe = adapter, bpe
        self.source, self.settings = source, dict(settings or {})
        vocab = tokenizer.get_vocab()
        self.speech_id, self.speech_end_id = vocab[SPEECH], vocab[SPEECH_END]
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        if bpe is not None:
            self.unit_ids = unit_token_ids(tokenizer, bpe.vocab_size)
        # the text around the speech repeats in every example: tokenize it once (per prompt)
        self._suffix = np.concatenate(([self.speech_end_id], self.text_ids("\nAnswer:")))
        self._prefixes: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def create(cls, base: str, input_kind: str, *, feat_dim: int | None = None, bpe: UnitBPE | None = None,
               stack: int = 2, adapter_kind: str = "linear", full: bool = False, lora_r: int = 64,
               lora_alpha: int = 16, seed: int = 0, row_noise: float = 1.0,
               allow_download: bool = False) -> "InstructLM":
        """A fresh model on the text LLM ``base`` (``"smollm2"``, a directory, a ``.gguf`` or a hub name).

        ``row_noise``: the discrete input's new vocabulary rows start at the mean row plus this many
        per-dimension standard deviations of seeded noise (:func:`~speechunits.lm.llm.expand_vocab`)."""
        llm, tok, source = load_text_lm(base, allow_download=allow_download)
        k = bpe.vocab_size if input_kind == "discrete" and bpe is not None else 0
        # discrete: the unit rows start distinct (mean + noise); rows that all start equal hide the
        # speech until training has separated them, a handicap the continuous input (a random
        # adapter) does not have. Continuous: only the two marker rows are new; they stay at the mean.
        ex = expand_vocab(llm, tok, k, markers=(SPEECH, SPEECH_END), seed=seed,
                          noise=row_noise if input_kind == "discrete" else 0.0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # LoRA A matrices and the adapter are random: seed them
            if not full:
                llm = add_lora(llm, ex.new_token_ids, r=lora_r, alpha=lora_alpha)
            adapter = None
            if input_kind == "continuous":
                if not feat_dim:
                    raise ValueError("the continuous input needs the feature dimension")
                adapter = SpeechAdapter(feat_dim, llm.get_input_embeddings().weight.shape[1], stack, adapter_kind)
        settings = {"stack": stack, "adapter": adapter_kind, "feat_dim": feat_dim, "full": full,
                    "lora_r": None if full else lora_r, "lora_alpha": None if full else lora_alpha}
        return cls(llm, tok, input_kind, adapter=adapter, bpe=bpe, source=source, settings=settings)

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    def text_ids(self, text: str) -> np.ndarray:
        return np.asarray(self.tokenizer(text, add_special_tokens=False).input_ids, dtype=np.int64)

    def speech_input(self, item) -> np.ndarray:
        """What the LLM sees of an item's speech: BPE token ids (discrete) or features (continuous)."""
        if self.input_kind == "discrete":
            return self.unit_ids[self.bpe.encode(item.units())]
        return item.features()

    def speech_length(self, speech: np.ndarray) -> int:
        """Positions the speech takes in the LLM's sequence."""
        return len(speech) if self.input_kind == "discrete" else self.adapter.n_out(len(speech))

    def positions(self, e: Encoded) -> int:
        """The length of an encoded example in the LLM's sequence (what a step's cost follows)."""
        return len(e.prefix) + self.speech_length(e.speech) + len(e.suffix) + len(e.answer)

    def encode(self, item, with_answer: bool = True) -> Encoded:
        prefix = self._prefixes.get(item.prompt)
        if prefix is None:
            prefix = np.append(self.text_ids(f"Task: {item.prompt}\nSpeech: "), self.speech_id)
            self._prefixes[item.prompt] = prefix
        answer = np.append(self.text_ids(" " + item.answer), self.eos_id) if with_answer else np.zeros(0, np.int64)
        return Encoded(prefix, self.speech_input(item), self._suffix, answer)

    # ------------------------------------------------------------------ batches
    def _embed_one(self, e: Encoded) -> torch.Tensor:
        emb = self.llm.get_input_embeddings()
        dev = self.device
        ids = lambda a: torch.as_tensor(a, dtype=torch.long, device=dev)  # noqa: E731
        if self.input_kind == "discrete":
            return emb(ids(np.concatenate((e.prefix, e.speech, e.suffix, e.answer))))
        speech = self.adapter(torch.as_tensor(e.speech, device=dev))
        return torch.cat([emb(ids(e.prefix)), speech, emb(ids(np.concatenate((e.suffix, e.answer))))])

    def batch(self, encs: Sequence[Encoded], left_pad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(inputs_embeds [B, T, H], attention_mask [B, T], labels [B, T])``; labels are the
        answer tokens at their own positions (the model shifts them), ``IGNORE`` (-100) elsewhere."""
        rows = [self._embed_one(e) for e in encs]
        T, H = max(len(r) for r in rows), rows[0].shape[1]
        dev = self.device
        x = rows[0].new_zeros(len(rows), T, H)
        mask = torch.zeros(len(rows), T, dtype=torch.long, device=dev)
        labels = torch.full((len(rows), T), IGNORE, dtype=torch.long, device=dev)
        for b, (r, e) in enumerate(zip(rows, encs)):
            s = T - len(r) if left_pad else 0
            x[b, s:s + len(r)] = r
            mask[b, s:s + len(r)] = 1
            if len(e.answer):
                labels[b, s + len(r) - len(e.answer):s + len(r)] = torch.as_tensor(e.answer, device=dev)
        return x, mask, labels

    def answer_nll(self, encs: Sequence[Encoded]) -> tuple[torch.Tensor, int]:
        """Summed NLL (nats) of the answer tokens of ``encs`` and how many there are."""
        x, mask, labels = self.batch(encs)
        logits = self.llm(inputs_embeds=x, attention_mask=mask, use_cache=False).logits.float()
        tgt = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                ignore_index=IGNORE, reduction="sum")
        return nll, int((tgt != IGNORE).sum())

    @torch.no_grad()
    def generate(self, items: Sequence, max_new_tokens: int = 48, batch_size: int = 8) -> list[str]:
        """Greedy answers for ``items`` (text after ``Answer:``, up to the end token)."""
        was = self.training
        self.eval()
        out: list[str] = []
        try:
            for s in range(0, len(items), batch_size):
                x, mask, _ = self.batch([self.encode(it, with_answer=False) for it in items[s:s + batch_size]],
                                        left_pad=True)
                gen = self.llm.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=max_new_tokens,
                                        do_sample=False, num_beams=1, eos_token_id=self.eos_id,
                                        pad_token_id=self.pad_id)
                for row in gen.tolist():
                    if self.eos_id in row:
                        row = row[:row.index(self.eos_id)]
                    out.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        finally:
            self.train(was)
        return out

    # ------------------------------------------------------------------ saving/loading
    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write the model into ``directory`` (files land under their names only when complete)."""
        _quiet_transformers()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".saving"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if self.settings.get("full"):
            self.llm.save_pretrained(tmp, safe_serialization=True)
        else:  # the new rows live in the trainable-token adapter; never save the whole matrix
            self.llm.save_pretrained(tmp, save_embedding_layers=False)
        self.tokenizer.save_pretrained(tmp)
        if self.adapter is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.adapter.state_dict().items()},
                      str(tmp / ADAPTER_FILE))
        if self.bpe is not None:
            self.bpe.save_pretrained(tmp / "bpe")
        move_contents(tmp, out)
        meta = {"format_version": FORMAT_VERSION, "input": self.input_kind, "source": self.source,
                "settings": self.settings, **(extra or {})}
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", allow_download: bool = False) -> "InstructLM":
        """Open a directory written by :meth:`save` (safetensors only; the base LLM from its record)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        d = Path(directory)
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{d}: not a speechunits instruction-tuned model ({META_FILE}: {e})") from None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("input") not in INPUTS:
            raise ValueError(f"{d / META_FILE}: unsupported format_version or input")
        s = meta.get("settings") or {}
        tok = safe_from_pretrained(AutoTokenizer, d)
        bpe = UnitBPE.from_pretrained(d / "bpe") if meta["input"] == "discrete" else None
        if s.get("full"):
            llm = safe_from_pretrained(AutoModelForCausalLM, d, dtype=torch.float32)
        else:
            from peft import PeftModel

            base = load_base_from_source(meta["source"], allow_download=allow_download)
            expand_vocab(base, tok, bpe.vocab_size if bpe is not None else 0, markers=(SPEECH, SPEECH_END))
            llm = safe_from_pretrained(PeftModel, d, base_model=base)
        adapter = None
        if meta["input"] == "continuous":
            adapter = SpeechAdapter(int(s["feat_dim"]), llm.get_input_embeddings().weight.shape[1],
                                    int(s["stack"]), s["adapter"])
            adapter.load_state_dict(load_file(str(d / ADAPTER_FILE)))
        m = cls(llm, tok, meta["input"], adapter=adapter, bpe=bpe, source=meta.get("source"), settings=s)
        m.meta = meta
        m.eval()
        return m.to(device)
