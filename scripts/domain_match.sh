#!/usr/bin/env bash
# Domain match (paper 1; docs/results.md "Domain-matched k-means and the clean/noisy gap"): Whisper
# L3 k = 500 k-means fitted on the LM's own speech (3,140 s of the synthetic corpus train split, as
# many seconds as the default tokenizer's LibriSpeech fit) against the default tokenizer (fitted on
# librispeech-mini train-clean-100); a unit LM per tokenizer on the same budget (360 steps x 4096
# tokens); NLL on the clean dev split and on white-noise 10/0 dB and reverberant (RT60 0.6 s) copies.
#
#   bash scripts/domain_match.sh RUN OUT
#
# RUN: an output folder of scripts/unit_lm_curve.sh with the default tokenizer (its corpus/, units/
# and ulm_small/ are reused: the mismatched side). Every stage resumes; one thread per job.
set -euo pipefail
C=${1:?usage: domain_match.sh RUN OUT}; O=${2:?usage: domain_match.sh RUN OUT}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=.venv/bin/speechunits
DIST=(white_10dB white_0dB reverb_0.6s)
[[ -f $O/perturbed/reverb_0.6s.jsonl ]] || $SU perturb --data $C/corpus/dev.jsonl --distortion "${DIST[@]}" --out $O/perturbed --seed 0
# every train utterance in a seeded order until 3,140 s (the LibriSpeech fit's size)
[[ -f $C/corpus/train_fit3140.jsonl ]] || .venv/bin/python - $C/corpus <<'PY'
import json, random, sys
d = sys.argv[1]; rows = [json.loads(l) for l in open(f"{d}/train.jsonl")]
random.Random(0).shuffle(rows); out, s = [], 0.0
for r in rows:
    if s >= 3140.74: break
    out.append(r); s += r["num_samples"] / r["sample_rate"]
open(f"{d}/train_fit3140.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in out))
print(len(out), "utterances", round(s, 1), "s")
PY
[[ -f $O/tok_matched/config.json ]] || $SU fit --encoder whisper-tiny.en --layer 3 --k 500 --data $C/corpus/train_fit3140.jsonl \
  --out $O/tok_matched --n-init 3 --seed 0 --threads 1 --no-progress
for d in "${DIST[@]}"; do
  $SU tokenize --tokenizer default --out $O/units_default/dev.$d.jsonl --dedup --no-progress $O/perturbed/$d.jsonl
  $SU tokenize --tokenizer $O/tok_matched --out $O/units_matched/dev.$d.jsonl --dedup --no-progress $O/perturbed/$d.jsonl
done
for split in train dev; do $SU tokenize --tokenizer $O/tok_matched --out $O/units_matched/$split.jsonl --dedup --no-progress $C/corpus/$split.jsonl; done
[[ -f $O/ulm_matched/model.safetensors ]] || $SU lm train --units $O/units_matched/train.jsonl --valid $O/units_matched/dev.jsonl \
  --model unit-lm:small --out $O/ulm_matched --steps 360 --batch-tokens 4096 --max-len 1024 --lr 1e-3 --eval-every 60 --save-every 60 --no-progress
for d in "${DIST[@]}"; do
  $SU lm eval --model $C/ulm_small --units $C/units/dev.jsonl --perturbed $O/units_default/dev.$d.jsonl --json $O/eval.default.$d.json > /dev/null
  $SU lm eval --model $O/ulm_matched --units $O/units_matched/dev.jsonl --perturbed $O/units_matched/dev.$d.jsonl --json $O/eval.matched.$d.json > /dev/null
done
.venv/bin/python - $O "${DIST[@]}" <<'PY'
import json, sys
o, dist = sys.argv[1], sys.argv[2:]
print("| k-means fitted on | clean NLL / token | clean NLL / s | " + " | ".join(f"{d} gap / token (/ s)" for d in dist) + " |")
print("|---|---|---|" + "---|" * len(dist))
for side, label in (("default", "LibriSpeech (mismatched)"), ("matched", "the synthetic corpus (matched)")):
    ev = [json.load(open(f"{o}/eval.{side}.{d}.json")) for d in dist]
    c = ev[0]["clean"]
    print(f"| {label} | {c['nll_per_token']:.3f} | {c['nll_per_second']:.1f} | "
          + " | ".join(f"{e['gap_per_token']:.3f} ({e['gap_per_second']:.1f})" for e in ev) + " |")
PY
