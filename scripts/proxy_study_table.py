"""The tables of scripts/proxy_study.sh: every tokenizer's proxies and LM scores, and the Pearson
correlation of each proxy with each score across tokenizers, with 95 % intervals (Fisher's z).

    python scripts/proxy_study_table.py OUT CORPUS_DEV_JSONL > OUT/proxy_study.md   (and OUT/proxy_study.json)

Proxies come from OUT/eval/NAME/metrics.json (its one dataset, the corpus test split); scores
from the last validation in OUT/lm/NAME/train_log.jsonl: zero-shot lexical and syntactic accuracy
and the dev NLL per second of speech (mean NLL per token x dev tokens / dev seconds, lower is
better); where `scripts/proxy_downstream.sh asr` ran, unit-LM ASR: the fine-tuning's last dev
NLL per character (OUT/asr/NAME/train_log.jsonl; its curve in a table of its own) and the test CER
and WER (OUT/asr/NAME/test.json); where
`scripts/proxy_downstream.sh resynthesis` ran, resynthesis dWER on librivox-aligned and test-other
(OUT/resynth/eval/NAME/metrics.json). A score a tokenizer lacks is left out of its pairs (n).
One point per tokenizer; lower-is-better metrics are negated, so a positive r means the proxy
and the score agree on which tokenizer is better. Every number is copied, only rounded.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from speechunits.metrics import proxy_correlation

PROXIES = {  # metric: (label, lower is better)
    "entropy_bitrate": ("bitrate (entropy, bit/s)", True),
    "ngram_perplexity": ("4-gram perplexity", True),
    "abx_within_units_pct": ("ABX within %", True),
    "abx_across_units_pct": ("ABX across %", True),
    "pnmi": ("PNMI", False),
    "cnmi": ("CNMI", False),
    "position_nmi_margin": ("position leakage (NMI margin)", True),
    "ued_mean": ("UED", True),
}
SCORES = {"lexical_acc": ("lexical acc.", False), "syntactic_acc": ("syntactic acc.", False),
          "dev_nll_per_second": ("dev NLL / s", True),
          "asr_dev_nll_per_char": ("ASR dev NLL / char", True), "asr_cer": ("ASR CER", True),
          "asr_wer": ("ASR WER", True),
          "dwer_librivox": ("resynthesis dWER librivox", True),
          "dwer_test_other": ("resynthesis dWER test-other", True)}


def fmt(v, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def validations(log: Path) -> list[dict]:
    """The records of a training log (train_log.jsonl) that hold a validation, in order."""
    return [r for r in map(json.loads, log.read_text().splitlines()) if "valid_nll" in r]


def last_validation(log: Path) -> dict | None:
    """The last record of a training log that holds a validation, or None."""
    valid = validations(log)
    return valid[-1] if valid else None


def asr_scores(out: Path, name: str) -> dict[str, float]:
    """Unit-LM ASR of one tokenizer (scripts/proxy_downstream.sh asr), or {} where it did not run."""
    folder = out / "asr" / name
    log, test = folder / "train_log.jsonl", folder / "test.json"
    if not (log.is_file() and test.is_file()):
        return {}
    v = last_validation(log)
    if v is None:  # a fine-tuning that never reached a validation has no dev score to give
        return {}
    result = json.loads(test.read_text())
    return {"asr_dev_nll_per_char": v["valid_nll"], "asr_cer": result["cer"], "asr_wer": result["wer"]}


def print_asr_curves(out: Path, names: list[str]) -> None:
    """The ASR fine-tuning's dev NLL per character at every validation step, one row per tokenizer."""
    curves = {n: {r["step"]: r["valid_nll"] for r in validations(out / "asr" / n / "train_log.jsonl")}
              for n in names if (out / "asr" / n / "train_log.jsonl").is_file()}
    steps = sorted({s for c in curves.values() for s in c})
    if not steps:
        return
    print("\n| ASR dev NLL / char at step | " + " | ".join(map(str, steps)) + " |")
    print("|---|" + "---|" * len(steps))
    for n, c in curves.items():
        print(f"| {n} | " + " | ".join(fmt(c.get(s)) for s in steps) + " |")


def resynthesis_scores(out: Path, name: str) -> dict[str, float]:
    """Resynthesis dWER of one tokenizer's vocoder (scripts/proxy_downstream.sh resynthesis), or {}."""
    metrics = out / "resynth" / "eval" / name / "metrics.json"
    if not metrics.is_file():
        return {}
    by = {x["data"]["name"]: (x.get("resynthesis") or {}).get("scores", {})
          for x in json.loads(metrics.read_text())["datasets"]}
    found = {"dwer_librivox": by.get("librivox-aligned", {}).get("dwer"),
             "dwer_test_other": by.get("test-other", {}).get("dwer")}
    return {k: v for k, v in found.items() if v is not None}


def main(out: Path, dev: Path) -> None:
    dev_seconds = sum(r["num_samples"] / r["sample_rate"] for r in map(json.loads, dev.read_text().splitlines()))
    table: dict[str, dict[str, float]] = {}
    steps = {}
    for log in sorted(out.glob("lm/*/train_log.jsonl")):
        name = log.parent.name
        metrics = out / "eval" / name / "metrics.json"
        v = last_validation(log)
        if not metrics.is_file() or v is None:
            continue
        (row,) = json.loads(metrics.read_text())["summary"]
        steps[name] = v["step"]
        table[name] = {**{k: row[k] for k in PROXIES if row.get(k) is not None},
                       "lexical_acc": v["pairs_lexical"], "syntactic_acc": v["pairs_syntactic"],
                       "dev_nll_per_second": v["valid_nll"] * v["valid_tokens"] / dev_seconds,
                       **asr_scores(out, name), **resynthesis_scores(out, name)}
    lower = [k for k, (_, low) in {**PROXIES, **SCORES}.items() if low]
    corr = proxy_correlation(table, lower_is_better=lower, metrics=[*PROXIES, *SCORES])
    print("| tokenizer | LM steps | " + " | ".join(lab for lab, _ in {**PROXIES, **SCORES}.values()) + " |")
    print("|---|---|" + "---|" * (len(PROXIES) + len(SCORES)))
    for name, row in table.items():
        print(f"| {name} | {steps[name]} | " + " | ".join(fmt(row.get(k)) for k in [*PROXIES, *SCORES]) + " |")
    print()
    print("| proxy | " + " | ".join(f"{lab}: r [95 % CI] (n)" for lab, _ in SCORES.values()) + " |")
    print("|---|" + "---|" * len(SCORES))
    for p, (lab, _) in PROXIES.items():
        cells = []
        for s in SCORES:
            lo, hi = corr.interval(p, s)
            cells.append(f"{fmt(corr.get(p, s), 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}] ({corr.n[corr.metrics.index(p)][corr.metrics.index(s)]})")
        print(f"| {lab} | " + " | ".join(cells) + " |")
    print_asr_curves(out, list(table))
    (out / "proxy_study.json").write_text(json.dumps({"table": table, "lm_steps": steps,
                                                      "correlation": corr.to_dict()}, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
