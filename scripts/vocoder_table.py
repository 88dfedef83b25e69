"""Print the resynthesis table of docs/results.md from evaluation folders (``eval --vocoder``).

Usage: ``python scripts/vocoder_table.py EVAL_DIR...``; one row per evaluation: librivox-aligned
WER/dWER, test-other dWER, speaker similarity, DNSMOS OVRL, MCD, F0 RMSE, voice conversion, and
the copy-synthesis topline of the first evaluation.

``python scripts/vocoder_table.py --dataset NAME EVAL_DIR...``: the same scores on one dataset
(e.g. ``test`` for the synthetic corpus' test split), with its toplines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(v, pct=False):
    if v is None:
        return "—"
    return f"{100 * v:.1f}" if pct else f"{v:.2f}"


def main(dirs: list[str]) -> None:
    rows, top = [], None
    for d in dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        by = {x["data"]["name"]: x.get("resynthesis") or {} for x in m["datasets"]}
        lv, to = by.get("librivox-aligned", {}), by.get("test-other", {})
        s_lv, s_to = lv.get("scores", {}), to.get("scores", {})
        conv = to.get("conversion") or {}
        rows.append([m["name"], fmt(s_lv.get("wer"), True), fmt(s_lv.get("dwer"), True), fmt(s_to.get("dwer"), True),
                     fmt(s_lv.get("spk_sim")), fmt(s_to.get("spk_sim")), fmt(s_to.get("dnsmos_ovrl")),
                     fmt(s_to.get("mcd")), fmt(s_to.get("f0_rmse_hz")), fmt(conv.get("spk_sim_target")),
                     fmt(conv.get("spk_sim")), fmt(to.get("synthesis_rtf"))])
        if top is None:
            c_lv, c_to = lv.get("copy_synthesis", {}), to.get("copy_synthesis", {})
            o_lv, o_to = lv.get("original", {}), to.get("original", {})
            top = [["copy-synthesis (true mel -> HiFi-GAN)", fmt(c_lv.get("wer"), True), fmt(c_lv.get("dwer"), True),
                    fmt(c_to.get("dwer"), True), fmt(c_lv.get("spk_sim")), fmt(c_to.get("spk_sim")),
                    fmt(c_to.get("dnsmos_ovrl")), fmt(c_to.get("mcd")), fmt(c_to.get("f0_rmse_hz")), "", "", ""],
                   ["original audio", fmt(o_lv.get("wer"), True), "", "", "", "", fmt(o_to.get("dnsmos_ovrl")),
                    "", "", "", "", ""]]
    head = ["vocoder", "librivox WER %", "librivox dWER %", "test-other dWER %", "librivox spk sim",
            "test-other spk sim", "test-other DNSMOS OVRL", "test-other MCD dB", "test-other F0 RMSE Hz",
            "VC sim to target", "VC sim to source", "synthesis RTF"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows + (top or []):
        print("| " + " | ".join(r) + " |")


def one_dataset(name: str, dirs: list[str]) -> None:
    head = ["vocoder", "WER %", "dWER %", "spk sim", "DNSMOS OVRL", "MCD dB", "F0 RMSE Hz", "VC sim to target",
            "VC sim to source"]
    rows, top = [], []
    for d in dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        r = {x["data"]["name"]: x.get("resynthesis") or {} for x in m["datasets"]}.get(name, {})
        s, conv = r.get("scores", {}), r.get("conversion") or {}
        rows.append([m["name"], fmt(s.get("wer"), True), fmt(s.get("dwer"), True), fmt(s.get("spk_sim")),
                     fmt(s.get("dnsmos_ovrl")), fmt(s.get("mcd")), fmt(s.get("f0_rmse_hz")),
                     fmt(conv.get("spk_sim_target")), fmt(conv.get("spk_sim"))])
        if not top and r:
            c, o = r.get("copy_synthesis", {}), r.get("original", {})
            top = [["copy-synthesis (true mel -> HiFi-GAN)", fmt(c.get("wer"), True), fmt(c.get("dwer"), True),
                    fmt(c.get("spk_sim")), fmt(c.get("dnsmos_ovrl")), fmt(c.get("mcd")), fmt(c.get("f0_rmse_hz")), "", ""],
                   ["original audio", fmt(o.get("wer"), True), "", "", fmt(o.get("dnsmos_ovrl")), "", "", "", ""]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows + top:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--dataset":
        one_dataset(sys.argv[2], sys.argv[3:])
    else:
        main(sys.argv[1:])
