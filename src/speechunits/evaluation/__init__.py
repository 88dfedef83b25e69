"""The evaluation runner: every proxy of token quality for a tokenizer, in one report.

- :mod:`.run`: :func:`evaluate` computes, per dataset and per layer, codebook statistics and
  bitrates (frames, de-duplicated, BPE), PNMI/CNMI/purity, ABX on units and features, 4-gram
  perplexity, UED under distortions, and speed (offline and streaming);
- :mod:`.dataset`, :mod:`.quality`, :mod:`.abx`, :mod:`.robustness`, :mod:`.speed`: the sections;
- :mod:`.report`: ``metrics.json``, ``report.md``, ``report.html`` (plots embedded);
- :mod:`.compare`: several evaluations in one table, plus the proxy/downstream correlation.

The metrics themselves live in :mod:`speechunits.metrics`; definitions in docs/evaluation.md.

Example:
    >>> import numpy as np, soundfile as sf, tempfile, pathlib
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.fit import fit_tokenizer
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sf.write(d / "a.wav", np.random.default_rng(0).standard_normal(16000).astype("float32") * .1, 16000)
    >>> tok = fit_tokenizer(load_encoder("mfcc"), [str(d / "a.wav")], layers=[0], k=8, seed=0)
    >>> from speechunits.evaluation import EvalConfig, evaluate_and_report
    >>> m = evaluate_and_report(tok, [d], d / "eval", EvalConfig(distortions=["identity"], progress=False))
    >>> sorted(p.name for p in (d / "eval").iterdir() if p.is_file())
    ['metrics.json', 'report.html', 'report.md']
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Sequence

# Public names -> the submodule defining them. Imported on first use (PEP 562), so that
# `speechunits --help` (which reads .defaults) does not pay for torch, matplotlib and Praat.
_EXPORTS = {
    "AbxSettings": "abx",
    "DEFAULT_DISTORTIONS": "defaults",
    "Distortion": "robustness",
    "EvalConfig": "run",
    "EvalData": "dataset",
    "HEADLINE": "run",
    "LOWER_IS_BETTER": "run",
    "compare": "compare",
    "evaluate": "run",
    "load_dataset": "dataset",
    "parse_distortion": "robustness",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate_and_report(
    tokenizer: Any,
    data: Sequence[str | os.PathLike | Any],
    out: str | os.PathLike,
    config: Any = None,
    *,
    name: str | None = None,
    tokenizer_path: str | None = None,
) -> dict[str, Any]:
    """:func:`~.run.evaluate` (``config``: an :class:`~.run.EvalConfig`), then write
    ``metrics.json``, ``report.md`` and ``report.html`` to ``out``; returns the metrics."""
    from .report import write_report
    from .run import evaluate

    metrics = evaluate(tokenizer, data, config, out=out, name=name, tokenizer_path=tokenizer_path)
    write_report(metrics, out)
    return metrics


__all__ = [*sorted(_EXPORTS), "evaluate_and_report"]
