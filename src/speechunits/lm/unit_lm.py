"""A unit LM from scratch: GSLM's uLM as a Hugging Face ``LlamaForCausalLM`` over unit tokens.

A decoder-only transformer over de-duplicated units (plus ``<s> </s> <pad> <unk>``, and
``<|asr|>`` + characters for the DC-Spin unit-LM ASR fine-tuning). It is a plain
``LlamaForCausalLM`` so saving, loading, ``generate`` and SDPA attention come from transformers,
and a trained model directory opens with ``AutoModelForCausalLM.from_pretrained``.

Presets (parameters counted for k = 500 with the default characters):

============ ====== ====== ===== ====== ===========
preset       hidden layers heads MLP    parameters
============ ====== ====== ===== ====== ===========
``tiny``     64     2      2     256    ~0.17 M
``small``    256    10     4     1024   ~10.6 M
``base``     768    16     12    3072   ~151 M
============ ====== ====== ===== ====== ===========

Example:
    >>> model, tok = build_unit_lm(k=50, preset="tiny", seed=0)
    >>> model.config.vocab_size == len(tok), model.config.tie_word_embeddings
    (True, True)
"""

from __future__ import annotations

from typing import Any

from .vocab import DEFAULT_CHARS, build_unit_tokenizer

PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "small": dict(hidden_size=256, num_hidden_layers=10, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=16, num_attention_heads=12, intermediate_size=3072),
}


def unit_lm_config(vocab_size: int, preset: str = "small", max_positions: int = 4096,
                   **overrides: Any):
    """A ``LlamaConfig`` for a unit LM of ``vocab_size`` tokens (see the presets table)."""
    from transformers import LlamaConfig

    if preset not in PRESETS:
        raise ValueError(f"unknown unit LM preset {preset!r}; choose from {', '.join(PRESETS)}")
    params: dict[str, Any] = dict(PRESETS[preset])
    params.update(
        vocab_size=vocab_size,
        num_key_value_heads=params["num_attention_heads"],
        max_position_embeddings=max_positions,
        # tied input/output embeddings: fewer parameters, as in GSLM's uLM
        tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
        attention_dropout=0.0,
        rope_theta=10000.0,
    )
    params.update(overrides)
    return LlamaConfig(**params)


def build_unit_lm(k: int, preset: str = "small", chars: str | None = DEFAULT_CHARS,
                  seed: int = 0, **overrides: Any):
    """A freshly initialised unit LM (float32) and its tokenizer, seeded.

    Returns ``(model, tokenizer)``; ``overrides`` go to the ``LlamaConfig`` (e.g. ``num_hidden_layers``).
    """
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = build_unit_tokenizer(k, chars)
    config = unit_lm_config(len(tokenizer), preset, **overrides)
    config._attn_implementation = "sdpa"  # fused causal attention on CPU and GPU
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
