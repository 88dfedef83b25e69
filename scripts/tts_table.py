"""Print the TTS results table (Markdown) of a ``scripts/tts_results.sh`` folder.

    python scripts/tts_table.py OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(d: dict, key: str) -> str:
    v = d.get(key)
    return "-" if v is None else f"{100 * v:.1f}"


def num(d: dict, key: str, fmt: str = "{:.2f}") -> str:
    v = d.get(key)
    return "-" if v is None else fmt.format(v)


def main(out: Path) -> None:
    print("| model | tokenizer layers, k | params | steps (best) | s/step | dev unit acc. % | dev dur. err. "
          "(frames/phone) | TTS WER % | TTS CER % | resynth. WER % | real WER % | spk. sim. to ref. | "
          "DNSMOS OVRL TTS / resynth. / real |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tj in sorted(out.glob("*/training.json")):
        name = tj.parent.name
        t = json.loads(tj.read_text())
        cfg = json.loads((tj.parent / "config.json").read_text())
        best = next((c for c in t["dev_curve"] if c["step"] == t["best_step"]), t["dev_curve"][-1] if t["dev_curve"] else {})
        sfile = out / "eval" / name / "scores.json"
        s = json.loads(sfile.read_text()) if sfile.exists() else {"tts": {"mean": {}}}
        m, r = s["tts"]["mean"], s.get("resynthesis", {}).get("mean", {})
        tok = cfg["tokenizer"]
        print(f"| {name} | {tok['layers']}, {tok['k']} | {t['parameters'] / 1e6:.1f} M | {t['steps_run']} ({t['best_step']}) | "
              f"{t['median_step_s']:.2f} | {pct(best, 'dev_acc')} | {num(best, 'dev_duration_abs_frames')} | "
              f"{pct(m, 'wer')} | {pct(m, 'cer')} | {pct(r, 'wer')} | {pct(m, 'orig_wer')} | {num(m, 'spk_sim_target', '{:.3f}')} | "
              f"{num(m, 'dnsmos_ovrl')} / {num(r, 'dnsmos_ovrl')} / {num(m, 'orig_dnsmos_ovrl')} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
