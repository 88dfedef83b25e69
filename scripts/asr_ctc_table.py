"""Tables of scripts/asr_ctc.sh: the dev curves (NLL per character, CER of the greedy attention
and CTC decoders) and the test CER / WER of every decode, with 95 % bootstrap intervals over
utterances, and true against swapped units (paired, scripts/asr_compare.py).

    python scripts/asr_ctc_table.py RUNS/asr NAME [NAME ...] > table.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_compare import compare  # noqa: E402

from speechunits.metrics.intelligibility import error_counts  # noqa: E402

DECODERS = (("att", "greedy attention"), ("ctc", "greedy CTC"), ("joint", "joint CTC/attention, beam 5, weight 0.3"))


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def interval(decode: dict, unit: str, resamples: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval (over utterances) of the corpus-level error rate."""
    e, n = np.array([error_counts(u["ref"], u["hyp"], unit) for u in decode["utterances"]], dtype=float).T
    idx = np.random.default_rng(seed).integers(0, len(e), (resamples, len(e)))
    rates = e[idx].sum(1) / n[idx].sum(1)
    return float(np.quantile(rates, 0.025)), float(np.quantile(rates, 0.975))


def curves(out: Path, names: list[str]) -> list[str]:
    lines = ["| run | step | dev NLL / char | dev CER greedy attention % | dev CER greedy CTC % |", "|---|---|---|---|---|"]
    for name in names:
        for line in (out / name / "train_log.jsonl").read_text().splitlines():
            r = json.loads(line)
            if "valid_nll" in r:
                lines.append(f"| {name} | {r['step']} | {r['valid_nll']:.3f} | {pct(r.get('valid_cer'))} | "
                             f"{pct(r.get('valid_cer_ctc'))} |")
    return lines


def tests(out: Path, names: list[str]) -> list[str]:
    lines = ["| run | decoder | test CER % (95 % CI) | test WER % (95 % CI) | utterances | swapped units: CER % | swapped - true CER (95 % CI) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        for key, label in DECODERS:
            path = out / f"{name}_test_{key}.json"
            if not path.exists():
                continue
            d = json.loads(path.read_text())
            c, w = interval(d, "char"), interval(d, "word")
            row = [name, label, f"{pct(d['cer'])} ({pct(c[0])}-{pct(c[1])})", f"{pct(d['wer'])} ({pct(w[0])}-{pct(w[1])})",
                   str(d["n_utterances"]), "", ""]
            swap = out / f"{name}_swap_{key}.json"
            if swap.exists():
                cmp = compare(d, json.loads(swap.read_text()))["cer"]
                row[5] = pct(cmp["b"])
                row[6] = f"{pct(cmp['b_minus_a'])} ({pct(cmp['ci95'][0])} to {pct(cmp['ci95'][1])})"
            lines.append("| " + " | ".join(row) + " |")
    return lines


def main(out: Path, names: list[str]) -> str:
    return "\n".join(curves(out, names) + [""] + tests(out, names)) + "\n"


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), sys.argv[2:]), end="")
