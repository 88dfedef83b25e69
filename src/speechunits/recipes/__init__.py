"""Recipes: the experiments and artifacts of speechunits, reproducible from scratch by one call.

- :func:`whisper_default.build_whisper_default`: the bundled default tokenizer (k-means on the
  layer of Whisper tiny.en that a written rule picks against MFCC k-means);
- :func:`interim_default.build_mfcc_default`: the bundled default tokenizer until the SSL
  DC-Spin tokenizer exists (k-means on MFCC, fitted on the synthetic corpus).
"""
