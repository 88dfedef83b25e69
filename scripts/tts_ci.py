"""TTS WER with a 95 % bootstrap interval over sentences, and paired differences against the first model.

    python scripts/tts_ci.py EVAL_DIR NAME [NAME ...] --corpus CORPUS

``EVAL_DIR/NAME/scores.json`` are ``speechunits tts eval`` outputs on the same sentences; the
reference word counts come from ``CORPUS/test.jsonl``. WER is word-weighted (errors / words),
resampled over sentences 2000 times with seed 0 (``downstream.score.error_rate``, the probes'
interval; each row is resampled on its own, so a row does not depend on the other names given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from speechunits.downstream.score import error_rate

RESAMPLES = 2000


def load(eval_dir: Path, name: str, words_of: dict[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    items = json.loads((eval_dir / name / "scores.json").read_text())["items"]
    ids = [it["id"] for it in items]
    missing = [i for i in ids if i not in words_of]
    if missing:
        raise SystemExit(f"{eval_dir / name}: sentence {missing[0]!r} is not in the corpus' test split")
    words = np.array([words_of[i] for i in ids], float)
    return ids, np.array([it["wer"] for it in items]) * words, words


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("names", nargs="+")
    ap.add_argument("--corpus", type=Path, required=True)
    args = ap.parse_args()
    lines = [json.loads(x) for x in (args.corpus / "test.jsonl").read_text().splitlines() if x.strip()]
    words_of = {x["id"]: len(x["text"].split()) for x in lines}
    runs = {n: load(args.eval_dir, n, words_of) for n in args.names}
    base = args.names[0]
    for n, (ids, err, w) in runs.items():
        r = error_rate(err, w, resamples=RESAMPLES)
        lo, hi = r["ci95"]
        line = f"{n}: WER {100 * r['value']:.1f} % (95 % CI {100 * lo:.1f}-{100 * hi:.1f}), {len(w)} sentences, {int(w.sum())} words"
        if n != base:
            if ids != runs[base][0]:
                raise SystemExit(f"{n} and {base} were scored on different sentences; no paired difference")
            d = error_rate(err - runs[base][1], runs[base][2], resamples=RESAMPLES)
            lo, hi = d["ci95"]
            line += f"; minus {base}: {100 * d['value']:+.1f} points (95 % CI {100 * lo:+.1f} to {100 * hi:+.1f})"
        print(line)


if __name__ == "__main__":
    main()
