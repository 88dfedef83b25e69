"""Thin adapters onto existing engines; the stages themselves stay engine-free, and nothing here
is imported unless a job asks for it.

- :mod:`.ddp`: data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPUs).
- :mod:`.ray_tokenize`: ``tokenize --engine ray`` on Ray Data (the ``ray`` extra).
- :mod:`.ray_features`: ``encoders.dump_features`` shards on a Ray actor pool.
- :mod:`.ray_eval`: the robustness section of ``eval --engine ray``.
"""
