"""Two decodes of the same test set (`speechunits lm asr-eval --json`), compared on the utterances
both hold: each one's CER and WER, and the 95 % paired bootstrap interval (over utterances, 5,000
resamples, seed 0) of B - A. With scripts/swap_units.py it says how much of a CER the units' content
explains.

    python scripts/asr_compare.py A.json B.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from speechunits.metrics.intelligibility import error_counts


def compare(a: dict, b: dict, resamples: int = 5000, seed: int = 0) -> dict:
    ua = {u["id"]: u for u in a["utterances"]}
    ub = {u["id"]: u for u in b["utterances"]}
    ids = sorted(set(ua) & set(ub))
    if not ids:
        raise ValueError("the two decodes share no utterance")
    idx = np.random.default_rng(seed).integers(0, len(ids), (resamples, len(ids)))
    out: dict = {"utterances": len(ids)}
    for rate, unit in (("cer", "char"), ("wer", "word")):
        ea, n = np.array([error_counts(ua[i]["ref"], ua[i]["hyp"], unit) for i in ids], dtype=float).T
        eb = np.array([error_counts(ub[i]["ref"], ub[i]["hyp"], unit)[0] for i in ids], dtype=float)
        diff = (eb[idx].sum(1) - ea[idx].sum(1)) / n[idx].sum(1)
        out[rate] = {"a": ea.sum() / n.sum(), "b": eb.sum() / n.sum(), "b_minus_a": (eb.sum() - ea.sum()) / n.sum(),
                     "ci95": [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))]}
    return out


if __name__ == "__main__":
    a, b = (json.loads(open(p).read()) for p in sys.argv[1:3])
    print(json.dumps(compare(a, b), indent=2))
