"""Tables of scripts/lm_results.sh: python scripts/lm_results_table.py OUTDIR > OUTDIR/lm_results.md

Copies numbers from the JSON files the run wrote (OUTDIR/lm/*/eval*.json, score.*.json,
asr.json, train_log.jsonl) and writes OUTDIR/scores.json (tokenizer ->
downstream scores) for `speechunits compare --scores`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DISTORTIONS = ("white_10dB", "white_0dB", "reverb_0.6s")
KINDS = ("lexical", "syntactic", "story")


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def train_stats(model: Path) -> tuple[float | None, int]:
    """(median logged tokens/s, last step) from train_log.jsonl."""
    log = model / "train_log.jsonl"
    if not log.exists():
        return None, 0
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "step" in r]
    tps = sorted(r["tokens_per_s"] for r in rows if r.get("tokens_per_s"))
    return (tps[len(tps) // 2] if tps else None), (rows[-1]["step"] if rows else 0)


def fmt(x, nd=3) -> str:
    return "" if x is None else f"{x:.{nd}f}"


def main(out: Path) -> None:
    lm = out / "lm"
    names = sorted(p.name[len("unit-"):] for p in lm.glob("unit-*"))
    mfcc = sorted((n for n in names if n.startswith("mfcc-k")), key=lambda n: int(n.split("k")[-1]))
    others = [n for n in names if n not in mfcc]
    scores: dict[str, dict[str, float]] = {}

    print("### NLL on the synthetic test speakers after a fixed number of steps (k sweep, MFCC k-means)\n")
    print("| tokenizer | tokens / s of speech | unit LM steps | unit LM NLL / token | unit LM NLL / s | "
          "unit LM train tokens/s | SmolLM2+LoRA steps | SmolLM2+LoRA NLL / token | SmolLM2+LoRA NLL / s | "
          "SmolLM2+LoRA train tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in mfcc + others:
        u = load(lm / f"unit-{n}" / "eval.json")
        s = load(lm / f"smollm2-{n}" / "eval.json")
        tps_u, steps_u = train_stats(lm / f"unit-{n}")
        tps_s, steps_s = train_stats(lm / f"smollm2-{n}")
        rate = u["n_tokens"] / u["seconds"] if u else None
        print(f"| `{n}` | {fmt(rate, 1)} | {steps_u} | {fmt(u and u['nll_per_token'])} | "
              f"{fmt(u and u['nll_per_second'], 1)} | {fmt(tps_u, 0)} | {steps_s or ''} | "
              f"{fmt(s and s['nll_per_token'])} | {fmt(s and s['nll_per_second'], 1)} | {fmt(tps_s, 0)} |")
        if u:
            scores.setdefault(n, {})["nll_per_second"] = u["nll_per_second"]

    print("\n### Clean vs distorted NLL per token (unit LM; gap = distorted - clean)\n")
    print("| tokenizer | clean | " + " | ".join(f"{d} gap" for d in DISTORTIONS) + " |")
    print("|---|---|" + "---|" * len(DISTORTIONS))
    for n in mfcc + others:
        gaps = [load(lm / f"unit-{n}" / f"eval.{d}.json") for d in DISTORTIONS]
        clean = next((g["clean"]["nll_per_token"] for g in gaps if g), None)
        print(f"| `{n}` | {fmt(clean)} | " + " | ".join(fmt(g and g["gap_per_token"]) for g in gaps) + " |")

    print("\n### Zero-shot pair accuracy (unit LM, length-normalised log-probability)\n")
    print("| tokenizer | " + " | ".join(KINDS) + " | pairs per kind |")
    print("|---|" + "---|" * (len(KINDS) + 1))
    for n in mfcc + others:
        res = [load(lm / f"unit-{n}" / f"score.{k}.json") for k in KINDS]
        print(f"| `{n}` | " + " | ".join(fmt(r and r["accuracy_mean"]) for r in res)
              + f" | {'/'.join(str(r['n_pairs']) for r in res if r)} |")
        for kind, r in zip(KINDS, res):
            if r:
                scores.setdefault(n, {})[f"{kind}_acc"] = r["accuracy_mean"]

    print("\n### Unit-LM ASR (fine-tuned unit LM, beam 5, test speakers)\n")
    print("| tokenizer | ASR steps | WER | CER | utterances |")
    print("|---|---|---|---|---|")
    for p in sorted(lm.glob("asr-*")):
        r = load(p / "asr.json")
        _, steps = train_stats(p)
        n = p.name[len("asr-"):]
        if r:
            print(f"| `{n}` | {steps} | {fmt(r['wer'])} | {fmt(r['cer'])} | {r['n_utterances']} |")
            scores.setdefault(n, {}).update(wer=r["wer"], cer=r["cer"])
    (out / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
