"""The Whisper results table of docs/results.md, from `speechunits eval` outputs.

    python scripts/whisper_table.py EVAL_DIR [EVAL_DIR ...] > table.md

Each EVAL_DIR holds a metrics.json of one tokenizer evaluated on the synthetic test split
(ABX), librivox-aligned (PNMI, CNMI) and librispeech-mini/test-other (UED, bitrate, 4-gram,
position leakage, RTF). Every number is copied from metrics.json, only rounded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def rows_of(m: dict) -> dict[str, dict]:
    return {r["dataset"]: r for r in m["summary"]}


def main(paths: list[str]) -> None:
    head = ["tokenizer", "PNMI librivox (permuted) margin", "CNMI", "ABX within / across % (synth, units)",
            "UED test-other", "position margin (flag)", "bitrate bit/s", "4-gram ppl", "RTF offline / stream"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    dist_rows = []
    for p in paths:
        m = json.loads((Path(p) / "metrics.json").read_text())
        r = rows_of(m)
        lv, to = r.get("librivox-aligned", {}), r.get("test-other", {})
        sy = next((v for k, v in r.items() if k.endswith("test") and k != "test-other"), {})
        margin = None if lv.get("pnmi") is None else lv["pnmi"] - lv["pnmi_chance"]
        ds = {d["data"]["name"]: d for d in m["datasets"]}
        pos = next(iter(ds["test-other"]["layers"].values())).get("position", {})
        flag = " (flagged)" if pos.get("flagged") else ""
        lines.append("| " + " | ".join([
            m["name"],
            f"{fmt(lv.get('pnmi'))} ({fmt(lv.get('pnmi_chance'))}) {fmt(margin)}",
            fmt(lv.get("cnmi")),
            f"{fmt(sy.get('abx_within_units_pct'), 1)} / {fmt(sy.get('abx_across_units_pct'), 1)}",
            fmt(to.get("ued_mean")),
            fmt(to.get("position_nmi_margin")) + flag,
            fmt(to.get("entropy_bitrate"), 0),
            fmt(to.get("ngram_perplexity"), 1),
            f"{fmt(to.get('rtf'), 4)} / {fmt(to.get('stream_rtf'), 4)}",
        ]) + " |")
        rob = next(iter(ds["test-other"]["layers"].values())).get("robustness", {})
        if "distortions" in rob:
            dist_rows.append((m["name"], {k: v.get("ued") for k, v in rob["distortions"].items()}))
    print("\n".join(lines))
    if dist_rows:
        names = list(dist_rows[0][1])
        print("\nUED per distortion (test-other):\n")
        print("| tokenizer | " + " | ".join(names) + " |")
        print("|" + "---|" * (len(names) + 1))
        for name, d in dist_rows:
            print(f"| {name} | " + " | ".join(fmt(d.get(n)) for n in names) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
