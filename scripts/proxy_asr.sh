#!/usr/bin/env bash
# Unit-LM ASR per tokenizer for the proxy study (DC-Spin paper, Figure 3; issue 19.6): for each
# tokenizer of a finished scripts/proxy_study.sh run, fine-tune its unit LM (STUDY/lm/NAME) on
# `units <|asr|> characters` of the corpus' train split (transcripts of train + dev; dev NLL per
# character every 50 steps), then decode the test split greedily: STUDY/asr/NAME/test.json (CER,
# WER). scripts/proxy_study_table.py then adds the ASR columns to the proxy correlations.
#
#   bash scripts/proxy_asr.sh STUDY CORPUS_DIR STEPS NAME=TOKENIZER_DIR [NAME=TOKENIZER_DIR ...]
#
# Resumes (a fine-tuning from its checkpoint, a decoded tokenizer skipped); one thread per job.
# Several copies share the work through atomic claims (STUDY/claims_asr/NAME), as proxy_study.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash scripts/proxy_asr.sh STUDY CORPUS_DIR STEPS NAME=TOKENIZER_DIR..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; C=$2; STEPS=$3; shift 3
SU=${SU:-$ROOT/.venv/bin/speechunits}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/asr" "$OUT/claims_asr"
text="$OUT/asr/text_train_dev.jsonl"
[ -f "$text" ] || { cat "$C/train.jsonl" "$C/dev.jsonl" > "$text.tmp" && mv "$text.tmp" "$text"; }
for spec in "$@"; do
  name=${spec%%=*}; tok=${spec#*=}
  u="$OUT/units/$name"; a="$OUT/asr/$name"
  [ -f "$a/test.json" ] && continue
  if ! mkdir "$OUT/claims_asr/$name" 2>/dev/null; then
    echo "[$(date +%T)] skip $name: claimed by another copy (remove $OUT/claims_asr/$name if none runs)" >&2
    continue
  fi
  if [ ! -f "$OUT/lm/$name/model.safetensors" ]; then
    echo "[$(date +%T)] skip $name: no unit LM in $OUT/lm/$name (run scripts/proxy_study.sh first)" >&2
    continue
  fi
  [ -f "$u/test.jsonl" ] || "$SU" tokenize --tokenizer "$tok" --out "$u/test.jsonl" --dedup --no-progress "$C/test.jsonl" > /dev/null
  if [ ! -f "$a/model.safetensors" ]; then
    echo "[$(date +%T)] asr-train $name" >&2
    "$SU" lm asr-train --units "$u/train.jsonl" --text "$text" --valid "$u/dev.jsonl" --model "$OUT/lm/$name" \
      --out "$a" --steps "$STEPS" --batch-tokens 4096 --max-len 1024 --lr 5e-4 --eval-every 50 --save-every 50 \
      --no-progress > "$a.log" 2>&1
  fi
  echo "[$(date +%T)] asr-eval $name" >&2
  "$SU" lm asr-eval --model "$a" --units "$u/test.jsonl" --text "$C/test.jsonl" --beams 1 --json "$a/test.json.tmp" \
    > "$a.eval.log" 2>&1
  mv "$a/test.json.tmp" "$a/test.json"
done
