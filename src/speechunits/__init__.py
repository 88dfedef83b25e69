"""speechunits: speech to discrete units, unit quality metrics, unit LMs and vocoders.

Data flows one way: audio -> data -> encoders -> quantizers -> tokens -> tokenizer ->
evaluation/metrics -> lm. Each stage is a subpackage that imports only the stages before it.

The main API is importable from the package root, as in Hugging Face libraries::

    from speechunits import Tokenizer, load
    units = Tokenizer.from_pretrained("default").encode(load("a.wav"))

The names are imported on first use (PEP 562), so ``import speechunits`` stays cheap (no torch,
no transformers) and the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module defining it. Submodules import nothing from here but ``__version__``:
# the root is the top of the import graph (tests/test_imports.py checks it).
_EXPORTS: dict[str, str] = {
    # audio in
    "AudioError": "speechunits.audio",
    "load": "speechunits.audio",
    "read_manifest": "speechunits.data.manifest",
    # encoders
    "Encoder": "speechunits.encoders",
    "load_encoder": "speechunits.encoders",
    # units and the tokenizer
    "Units": "speechunits.tokens",
    "UnitBPE": "speechunits.tokens",
    "Tokenizer": "speechunits.tokenizer",
    "TokenizerError": "speechunits.tokenizer",
    "fit_tokenizer": "speechunits.fit",
    "fit_tokenizers": "speechunits.fit",
    # metrics entry points
    "EvalConfig": "speechunits.evaluation",
    "evaluate": "speechunits.evaluation",
    "evaluate_and_report": "speechunits.evaluation",
    "codebook_stats": "speechunits.metrics",
    "pnmi": "speechunits.metrics",
    "abx_error": "speechunits.metrics",
    "ngram_perplexity": "speechunits.metrics",
    "corpus_ued": "speechunits.metrics",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

