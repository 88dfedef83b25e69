"""Chance level of PNMI/CNMI for the tokenizers of scripts/first_results.sh (docs/results.md).

    python scripts/pnmi_chance.py OUTDIR [ALIGNED_DATA...]

PNMI is a plug-in estimate of I(phone; code) / H(phone) from a finite joint histogram, so it is
biased upwards when there are many codes per labelled frame (k = 2000 on 9.5k frames, or on the
1.2k frames of librivox-aligned). This re-tokenizes each aligned dataset with every tokenizer in
OUTDIR/tok-*/layer*_k*, recomputes PNMI/CNMI exactly as `speechunits eval` does (frames labelled
at their true centre) and then again after randomly permuting the codes over the labelled frames
(same code and label histograms, no dependence): the mean of 5 seeded permutations is the level
a tokenizer unrelated to phones would reach. Prints a Markdown table. One torch thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from speechunits.evaluation.dataset import load_dataset
from speechunits.metrics import frame_label_pairs, label_code_stats
from speechunits.metrics.alignment_metrics import UNKNOWN
from speechunits.tokenizer import Tokenizer

PERMUTATIONS = 5


def nmi_and_chance(ids, alignments, tier, frame_rate, window_s):
    pairs = frame_label_pairs(ids, alignments, tier, frame_rate, unknown=UNKNOWN, window_s=window_s)
    real = label_code_stats(pairs, unknown=UNKNOWN, max_frame_diff=0)
    codes = np.concatenate([c[: len(lab)] for c, lab in pairs])
    labels = [x for c, lab in pairs for x in lab[: len(c)]]
    keep = np.array([x != UNKNOWN for x in labels])
    codes, labels = codes[keep], [x for x, k in zip(labels, keep) if k]
    rng = np.random.default_rng(0)
    chance = [label_code_stats([(rng.permutation(codes), labels)], unknown=UNKNOWN, max_frame_diff=0).nmi
              for _ in range(PERMUTATIONS)]
    return real, float(np.mean(chance)), float(np.std(chance))


def main(out: Path, datasets: list[str]) -> None:
    torch.set_num_threads(1)
    toks = sorted(out.glob("tok-*/layer*_k*"), key=lambda p: (p.parent.name != "tok-mfcc", p.parent.name,
                                                                int(p.name.split("_k")[-1])))
    data = [load_dataset(d) for d in datasets]
    print("| tokenizer | dataset | frames | codes used | PNMI | PNMI, permuted codes | CNMI | CNMI, permuted codes |")
    print("|---|---|---|---|---|---|---|---|")
    for path in toks:
        tok = Tokenizer.from_pretrained(path)
        name = f"{path.parent.name.removeprefix('tok-')}-k{path.name.split('_k')[-1]}"
        window_s = tok.encoder.config()["window_samples"] / tok.encoder.sample_rate
        for ds in data:
            idx = [i for i, a in enumerate(ds.alignments) if a is not None]
            units = tok.frame_units([ds.waves[i] for i in idx])
            ids = [u if u.ndim == 1 else u[:, 0] for u in units]
            al = [ds.alignments[i] for i in idx]
            p, pc, ps = nmi_and_chance(ids, al, "phones", tok.frame_rate, window_s)
            c, cc, cs = nmi_and_chance(ids, al, "chars", tok.frame_rate, window_s)
            print(f"| `{name}` | {ds.name} | {p.num_frames} | {len(p.codes)} | {p.nmi:.3f} | {pc:.3f} ± {ps:.3f} "
                  f"| {c.nmi:.3f} | {cc:.3f} ± {cs:.3f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python scripts/pnmi_chance.py OUTDIR [ALIGNED_DATA...]")
    root = Path(sys.argv[1])
    main(root, sys.argv[2:] or [str(root / "corpus" / "test.jsonl")])
