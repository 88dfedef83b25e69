"""Small helpers shared by the evaluation sections: skipped metrics and JSON-safe values.

A metric whose inputs are missing is never estimated: its entry in ``metrics.json`` is
``{"skipped": true, "reason": "..."}`` and the report shows the reason.

>>> skipped("no alignments")
{'skipped': True, 'reason': 'no alignments'}
>>> is_skipped(skipped("x")), is_skipped({"pnmi": 0.5})
(True, False)
>>> json_safe({"a": float("nan"), "b": [1.0, float("inf")]})
{'a': None, 'b': [1.0, None]}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def skipped(reason: str) -> dict[str, Any]:
    """The entry of a metric that could not be computed, with the reason."""
    return {"skipped": True, "reason": str(reason)}


def is_skipped(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("skipped") is True


def json_safe(x: Any) -> Any:
    """Numpy scalars/arrays to Python, NaN and infinities to None (strict JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
