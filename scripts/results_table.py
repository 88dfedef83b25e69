"""Markdown tables of docs/results.md from the evaluations that scripts/first_results.sh writes.

    python scripts/results_table.py OUTDIR > tables.md

Reads OUTDIR/eval/*/metrics.json (and OUTDIR/timings.tsv when present) and prints, per dataset
found, one table with a row per tokenizer (sorted by encoder, then k). Every number is copied
from metrics.json (the `summary` rows and the per-distortion UEDs), only rounded; a skipped
metric prints as an em dash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SYNTH, LIBRIVOX, LIBRISPEECH = "corpus/test", "librivox-aligned", "librispeech-mini"


def fmt(v, digits: int) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def load(out: Path) -> list[dict]:
    evals = [json.loads(p.read_text()) for p in sorted(out.glob("eval/*/metrics.json"))]
    return sorted(evals, key=lambda m: (m["tokenizer"]["encoder"] != "mfcc", m["name"].rsplit("-k", 1)[0], m["tokenizer"]["k"]))


def label(m: dict) -> list[str]:
    tok = m["tokenizer"]
    if tok["encoder"] == "mfcc":
        enc = "MFCC"
    elif tok.get("quantizer") == "spin":
        enc = "our SSL encoder + Spin/DC-Spin codebook"
    elif "random" in str(tok["encoder"]):
        enc = "random HuBERT"
    else:
        enc = f"HF encoder `{Path(str(tok['encoder'])).name}`"
    return [f"`{m['name']}`", enc, ", ".join(map(str, tok["layers"])), ", ".join(map(str, tok["k"]))]


def rows_for(evals: list[dict], dataset: str):
    for m in evals:
        ds = {d["data"]["name"]: d for d in m["datasets"]}
        if dataset not in ds:
            continue
        d = ds[dataset]
        for s in m["summary"]:
            if s["dataset"] == dataset:
                yield m, d, d["layers"][str(s["layer"])], s


def data_line(evals: list[dict], dataset: str) -> str:
    for m, d, _, _ in rows_for(evals, dataset):
        x = d["data"]
        spk = f"{x['speakers']} speakers" if x["speakers"] else "no speaker labels"
        return f"{x['utterances']} utterances, {x['seconds'] / 60:.1f} min, {spk}, {x['aligned_utterances']} aligned."
    return ""


def main(out: Path) -> None:
    evals = load(out)
    if not evals:
        sys.exit(f"no {out}/eval/*/metrics.json")
    head = ["tokenizer", "encoder", "layer", "k"]
    blocks = []

    rows, robust, notes = [], [], []
    for m, d, sec, s in rows_for(evals, SYNTH):
        rows.append(label(m) + [fmt(s["pnmi"], 3), fmt(s["cnmi"], 3), fmt(s["phone_purity"], 3),
                                fmt(s["abx_within_units_pct"], 1), fmt(s["abx_across_units_pct"], 1),
                                fmt(s["ngram_perplexity"], 1), fmt(s["utilization"], 3),
                                fmt(s["entropy_bitrate"], 0), fmt(s["ued_mean"], 3), fmt(s["rtf"], 4)])
        dist = sec["robustness"].get("distortions", {}) if isinstance(sec.get("robustness"), dict) else {}
        robust.append(label(m)[:1] + [fmt(v.get("ued"), 2) for v in dist.values()] + [fmt(s["ued_mean"], 3)])
        names = list(dist)
        abx, ng = sec.get("abx", {}), sec.get("ngram", {})
        notes.append((m["name"], abx, ng, s))
    if rows:
        blocks.append(f"**Synthetic corpus, test speakers** (`corpus/test`; {data_line(evals, SYNTH)})\n\n" + table(
            head + ["PNMI ↑", "CNMI ↑", "phone purity ↑", "ABX within, units % ↓", "ABX across, units % ↓",
                    "4-gram PPL ↓", "utilization ↑", "entropy bitrate (bit/s)", "mean UED ↓", "RTF ↓"], rows))
        feats = {(round(s["abx_within_features_pct"] or -1, 3), round(s["abx_across_features_pct"] or -1, 3), n.split("-k")[0])
                 for n, _, _, s in notes}
        fl = "; ".join(f"`{enc}`: {w:.1f} % within, {a:.1f} % across" for w, a, enc in sorted(feats, key=lambda t: t[2]))
        a0, ng0 = notes[0][1], notes[0][2]
        cells = ""
        if isinstance(a0.get("units", {}).get("within"), dict) and "num_cells" in a0["units"]["within"]:
            cells = (f" ABX: {a0['units']['within']['num_cells']} within / {a0['units'].get('across', {}).get('num_cells', '—')} "
                     f"across cells, {a0['num_items']} items.")
        if "test_tokens" in ng0:
            toks = [n[2]["test_tokens"] for n in notes if "test_tokens" in n[2]]
            cells += (f" 4-gram: trained on {ng0['train_utterances']} utterances, scored on {ng0['test_utterances']} "
                      f"({min(toks)} to {max(toks)} de-duplicated test tokens, depending on the tokenizer).")
        blocks.append(f"ABX on the continuous features (the same for every k of an encoder): {fl}.{cells}")
        blocks.append("**UED per distortion, synthetic test speakers**\n\n" + table(["tokenizer"] + names + ["mean"], robust))

    rows = []
    for m, d, sec, s in rows_for(evals, LIBRIVOX):
        p = sec.get("pnmi", {})
        rows.append(label(m) + [fmt(s["pnmi"], 3), fmt(s["cnmi"], 3), fmt(s["phone_purity"], 3),
                                str(p.get("num_frames", "—")), fmt(s["utilization"], 3)])
    if rows:
        blocks.append(f"**librivox-aligned** ({data_line(evals, LIBRIVOX)} Forced-aligned phones.)\n\n" + table(
            head + ["PNMI ↑", "CNMI ↑", "phone purity ↑", "frames", "utilization"], rows))

    for ds_name, title in ((LIBRISPEECH, "librispeech-mini"), ("test-other", "librispeech-mini/test-other")):
        rows, robust = [], []
        for m, d, sec, s in rows_for(evals, ds_name):
            rb = sec.get("robustness", {})
            sub = rb.get("subset", {}) if isinstance(rb, dict) else {}
            rows.append(label(m) + [fmt(s["utilization"], 3), fmt(s["entropy_bits"], 2), fmt(s["entropy_bitrate"], 0),
                                    fmt(s["nominal_bitrate"], 0), fmt(s["ngram_perplexity"], 1), fmt(s["ued_mean"], 3),
                                    f"{sub.get('utterances', '—')} utt / {sub.get('seconds', 0):.0f} s", fmt(s["rtf"], 4)])
            dist = rb.get("distortions", {}) if isinstance(rb, dict) else {}
            robust.append(label(m)[:1] + [fmt(v.get("ued"), 2) for v in dist.values()] + [fmt(s["ued_mean"], 3)])
            names = list(dist)
        if rows:
            blocks.append(f"**{title}** ({data_line(evals, ds_name)} No transcripts or alignments.)\n\n" + table(
                head + ["utilization ↑", "entropy (bits/token)", "entropy bitrate (bit/s)", "nominal bitrate (bit/s)",
                        "4-gram PPL ↓", "mean UED ↓", "UED subset", "RTF ↓"], rows))
            blocks.append(f"**UED per distortion, {title}**\n\n" + table(["tokenizer"] + names + ["mean"], robust))

    timings = out / "timings.tsv"
    if timings.exists():
        t = [line.split("\t") for line in timings.read_text().splitlines() if line.strip()]
        blocks.append("**Wall time per step** (s)\n\n" + table([n for n, _ in t], [[v for _, v in t]]))
    print("\n\n".join(blocks))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/results_table.py OUTDIR")
    main(Path(sys.argv[1]))
