"""Recipes: the experiments and artifacts of speechunits, reproducible from scratch by one call.

- :func:`interim_default.build_mfcc_default`: the bundled default tokenizer until the SSL
  DC-Spin tokenizer exists (k-means on MFCC, fitted on the synthetic corpus).
"""
