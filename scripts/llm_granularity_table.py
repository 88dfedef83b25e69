"""Tables of the CPU granularity runs (scripts/llm_granularity_cpu.sh), copied from their files:

    python scripts/llm_granularity_table.py OUT NAME=K [NAME=K ...] > OUT/table.md

For each run: the dev NLL per token at every validation and its margin below ln k (a uniform guess
over the k units), the test NLL per token and per second (``eval_NAME.json``), and the zero-shot
accuracies (``score_NAME.{lexical,syntactic}.json``) with the one-sided exact binomial p-value
against chance; then the training loss every STEP_EVERY steps (from ``NAME/train_log.jsonl``).
Missing files leave empty cells.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from scipy.stats import binomtest

STEP_EVERY = 10


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def log_rows(run: Path) -> list[dict]:
    path = run / "train_log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def accuracy(score: dict | None) -> str:
    if score is None:
        return ""
    n, acc = score["n_pairs"], score["accuracy_mean"]
    p = binomtest(round(acc * n), n, 0.5, alternative="greater").pvalue
    return f"{100 * acc:.1f} / {100 * score['accuracy_sum']:.1f} (p = {p:.1g})"


def main(out: Path, runs: list[tuple[str, int]]) -> None:
    print("| run | k | ln k | step (tokens) | dev NLL / token | margin below ln k | test NLL / token | "
          "test NLL / s | lexical % (normalised / summed) | syntactic % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    curves = {}
    for name, k in runs:
        rows = log_rows(out / name)
        train = [r for r in rows if "loss" in r]
        curves[name] = {r["step"]: r["loss"] for r in train}
        tokens_per_step = None
        cfg = load(out / name / "train_config.json")
        if cfg:
            tokens_per_step = cfg["config"]["batch_tokens"] * cfg["config"]["global_accum"]
        ev = load(out / f"eval_{name}.json")
        last = max((r["step"] for r in rows if "valid_nll" in r), default=None)
        for r in (r for r in rows if "valid_nll" in r):
            end = r["step"] == last
            tok = f" ({r['step'] * tokens_per_step / 1e3:.0f} k)" if tokens_per_step else ""
            cells = [name, str(k), f"{math.log(k):.2f}", f"{r['step']}{tok}", f"{r['valid_nll']:.3f}",
                     f"{math.log(k) - r['valid_nll']:.2f}"]
            if end:
                cells += [f"{ev['nll_per_token']:.3f}" if ev else "", f"{ev['nll_per_second']:.1f}" if ev else "",
                          accuracy(load(out / f"score_{name}.lexical.json")),
                          accuracy(load(out / f"score_{name}.syntactic.json"))]
            else:
                cells += [""] * 4
            print("| " + " | ".join(cells) + " |")
    steps = sorted({s for c in curves.values() for s in c if s % STEP_EVERY == 0 or s == 1})
    print()
    print("| training loss at step | " + " | ".join(str(s) for s in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for name, c in curves.items():
        print(f"| {name} | " + " | ".join(f"{c[s]:.2f}" if s in c else "" for s in steps) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[2:]])
