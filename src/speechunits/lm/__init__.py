"""Spoken language models on discrete units.

- :func:`create_lm` / :class:`SpeechLM`: a unit LM from scratch (``"unit-lm:tiny|small|base"``,
  GSLM's uLM as a ``LlamaForCausalLM``) or a text LLM continually pre-trained on units
  (``"smollm2"``, an HF directory or hub name: vocabulary expanded with ``<|u0|>``..., LoRA r64 and
  only the new embedding rows trainable; arXiv 2509.05359). One directory saves and loads either.
- :func:`train` with :class:`TrainConfig`: packed batches without cross-utterance attention,
  gradient accumulation, cosine schedule with warm-up, checkpoints and exact resume.
- :func:`evaluate_nll` / :func:`compare_nll`: NLL per token and per second, clean vs perturbed.
- :func:`read_gold` / :func:`score_pairs`: zero-shot pair accuracy (sWUGGY/sBLIMP style).
- :func:`asr_examples` / :func:`evaluate_asr`: unit-LM ASR fine-tuning and beam-search WER/CER;
  :mod:`.ctc` / :mod:`.ctc_decode`: its hybrid CTC/attention variant (``TrainConfig.ctc_weight``,
  greedy CTC and joint CTC/attention beam search).

Example:
    >>> import numpy as np, tempfile
    >>> from speechunits.tokens import Units
    >>> lm = create_lm("unit-lm:tiny", k=10, seed=0)
    >>> utts = [Units(np.array([i % 10, (i + 1) % 10, (i + 2) % 10]), 50.0, utt_id=str(i)) for i in range(20)]
    >>> examples = lm_examples(lm, utts)
    >>> r = train(lm, examples, tempfile.mkdtemp(), TrainConfig(steps=2, batch_tokens=64, max_len=32, progress=False))
    >>> evaluate_nll(lm, utts).n_tokens  # 3 units + </s> per utterance
    80
"""

from __future__ import annotations

from .asr import asr_examples, transcribe
from .asr_eval import ASRResult, evaluate_asr
from .data import read_transcripts, read_units, units_vocab_size
from .evaluate import NLLResult, compare_nll, evaluate_nll, sequence_nll
from .llm import add_lora, expand_vocab, find_smollm2, load_text_lm
from .packing import Batch, Example, collate, plan_batches
from .pairs import Pair, PairResult, read_gold, score_pairs, utterance_logprobs
from .speech_lm import SpeechLM, create_lm
from .train import TrainConfig, TrainResult, train
from .unit_lm import PRESETS, build_unit_lm
from .vocab import build_unit_tokenizer, normalize_text, unit_token


def lm_examples(lm: SpeechLM, units) -> list[Example]:
    """LM pre-training examples (``prefix units eos``, every token after the prefix predicted)."""
    return [Example(lm.encode_units(u)) for u in units]


__all__ = [
    "SpeechLM", "create_lm", "build_unit_lm", "PRESETS", "build_unit_tokenizer", "unit_token",
    "normalize_text", "find_smollm2", "load_text_lm", "expand_vocab", "add_lora",
    "Example", "Batch", "collate", "plan_batches", "lm_examples",
    "TrainConfig", "TrainResult", "train",
    "NLLResult", "evaluate_nll", "compare_nll", "sequence_nll",
    "Pair", "PairResult", "read_gold", "score_pairs", "utterance_logprobs",
    "ASRResult", "asr_examples", "evaluate_asr", "transcribe",
    "read_units", "units_vocab_size", "read_transcripts",
]
