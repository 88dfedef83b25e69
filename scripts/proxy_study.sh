#!/usr/bin/env bash
# Proxies vs downstream over many tokenizers (DC-Spin paper, Figure 3; issue 19.6): for each
# tokenizer, `speechunits eval` (the proxies, as scripts/whisper_results.sh: ABX on the corpus test
# split, PNMI/CNMI on librivox-aligned, UED/bitrate/4-gram/position on librispeech-mini test-other)
# and a unit LM trained from scratch on the corpus's de-duplicated units (unit-lm:small, STEPS x 4096
# tokens, lr 1e-3, zero-shot lexical/syntactic accuracy every 60 steps); then the Pearson
# correlation of every proxy with every LM score across tokenizers, with 95 % intervals
# (scripts/proxy_study_table.py: OUT/proxy_study.md and .json).
#
#   bash scripts/proxy_study.sh OUT CORPUS_DIR PAIRS_DIR STEPS NAME=TOKENIZER_DIR [NAME=TOKENIZER_DIR ...]
#
# CORPUS_DIR / PAIRS_DIR: from scripts/unit_lm_curve.sh (corpus synth / corpus pairs). Every stage
# resumes (finished tokenizers are skipped, an LM resumes from its checkpoint); one thread per job.
# Several copies of the same command share the work (one per core): each claims a tokenizer with
# an atomic `mkdir OUT/claims/NAME` and skips those claimed by another; after a crash, remove the
# crashed copy's claim (OUT/claims/NAME) to let a rerun finish it.
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: bash scripts/proxy_study.sh OUT CORPUS_DIR PAIRS_DIR STEPS NAME=TOKENIZER_DIR..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; C=$2; P=$3; STEPS=$4; shift 4
SU=${SU:-$ROOT/.venv/bin/speechunits}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/eval" "$OUT/units" "$OUT/lm" "$OUT/claims"
for spec in "$@"; do
  name=${spec%%=*}; tok=${spec#*=}
  u="$OUT/units/$name"; m="$OUT/lm/$name"
  if ! mkdir "$OUT/claims/$name" 2>/dev/null && [ ! -f "$m/model.safetensors" ]; then
    echo "[$(date +%T)] skip $name: claimed by another copy (remove $OUT/claims/$name if none runs)" >&2
    continue
  fi
  if [ ! -f "$OUT/eval/$name/metrics.json" ]; then
    echo "[$(date +%T)] eval $name" >&2
    "$SU" eval --tokenizer "$tok" --name "$name" --data "$C/test.jsonl" --robustness-seconds 180 --threads 1 \
      --no-plots --no-progress --out "$OUT/eval/$name" > "$OUT/eval/$name.log" 2>&1
  fi
  echo "[$(date +%T)] units $name" >&2
  for split in train dev; do
    [ -f "$u/$split.jsonl" ] || "$SU" tokenize --tokenizer "$tok" --out "$u/$split.jsonl" --dedup --no-progress "$C/$split.jsonl" > /dev/null
  done
  for kind in lexical syntactic; do
    [ -f "$u/pairs.$kind.jsonl" ] || "$SU" tokenize --tokenizer "$tok" --out "$u/pairs.$kind.jsonl" --dedup --no-progress "$P/$kind" > /dev/null
  done
  if [ ! -f "$m/model.safetensors" ]; then
    echo "[$(date +%T)] lm $name" >&2
    "$SU" lm train --units "$u/train.jsonl" --valid "$u/dev.jsonl" --model unit-lm:small --out "$m" \
      --steps "$STEPS" --batch-tokens 4096 --max-len 1024 --lr 1e-3 --eval-every 60 --save-every 60 --no-progress \
      --pairs "lexical=$u/pairs.lexical.jsonl:$P/lexical/gold.csv" \
      --pairs "syntactic=$u/pairs.syntactic.jsonl:$P/syntactic/gold.csv" > "$m.log" 2>&1
  fi
done
"$ROOT/.venv/bin/python" "$ROOT/scripts/proxy_study_table.py" "$OUT" "$C/dev.jsonl" > "$OUT/proxy_study.md"
cat "$OUT/proxy_study.md"
