"""Discrete vs continuous speech input to a text LLM, instruction-tuned (arXiv 2411.08742).

The same frozen encoder layer feeds an LLM two ways, on the same tasks, data and budget:

- ``discrete``: k-means units -> de-duplication -> BPE (k = 2000 -> 6000 tokens in the paper), new
  vocabulary rows;
- ``continuous``: the layer's features -> ``stack`` frames concatenated -> a linear (or MLP)
  adapter into the embedding space.

Each example is ``Task: <prompt> / Speech: <|speech|> ... <|/speech|> / Answer: <answer>`` with the
loss on the answer; tasks (ASR, phones, keywords, speaker, any labelled JSONL manifest) share one
model. :func:`run_instruct` trains (LoRA or full fine-tuning, early stopping on the dev score),
:func:`run_instruct_eval` scores the test sets, :func:`input_statistics` measures what each path
costs (positions per second, token distribution, bitrates). CLI: ``speechunits lm instruct`` and
``speechunits lm instruct-eval``.
"""

from .data import PROMPTS, InstructItem, prepare_instruct
from .model import InstructLM, SpeechAdapter
from .run import instruct_tasks, run_instruct, run_instruct_eval
from .score import score_answers
from .stats import coverage_share, input_statistics
from .train import InstructSettings, train_instruct

__all__ = ["PROMPTS", "InstructItem", "prepare_instruct", "InstructLM", "SpeechAdapter", "instruct_tasks",
           "run_instruct", "run_instruct_eval", "score_answers", "coverage_share", "input_statistics",
           "InstructSettings", "train_instruct"]
