#!/usr/bin/env bash
# The TTS results of docs/tts.md: train a text-to-units model per tokenizer on the synthetic
# corpus (same budget and seed for each), then speak the corpus' test split (unseen voices and
# sentences) through the tokenizer's vocoder and score it (Whisper tiny.en WER/CER, DNSMOS,
# speaker similarity; the real recordings and their own units through the vocoder beside it).
# One thread each. Finished steps are kept (rerun to resume).
#
#   bash scripts/tts_results.sh OUTDIR CORPUS NAME=TOKENIZER:VOCODER ...
#
# CORPUS: a folder of `speechunits corpus synth` (made there with MINUTES=90 when missing).
# STEPS (default 900), BATCH (16), MAX_FRAMES (250), EVAL_N (all test utterances) set the budget.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash scripts/tts_results.sh OUTDIR CORPUS NAME=TOKENIZER:VOCODER..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; CORPUS=$2; shift 2
SU=${SU:-$ROOT/.venv/bin/speechunits}
PY=${PY:-$ROOT/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/eval"
if [ ! -f "$CORPUS/train.jsonl" ]; then
  "$SU" corpus synth --out "$CORPUS" --minutes "${MINUTES:-90}" --workers 1
fi
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}
  IFS=: read -r tok voc <<< "$rest"
  if [ ! -f "$OUT/$name/training.json" ]; then
    echo "+ tts train $name" >&2
    "$SU" tts train --tokenizer "$tok" --data "$CORPUS/train.jsonl" --dev "$CORPUS/dev.jsonl" --out "$OUT/$name" \
      --steps "${STEPS:-900}" --batch "${BATCH:-16}" --max-frames "${MAX_FRAMES:-250}" \
      --eval-every 100 --patience 4 --no-progress 2>&1 | tee "$OUT/$name.train.log"
  fi
done
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}
  IFS=: read -r tok voc <<< "$rest"
  [ -f "$OUT/eval/$name/scores.json" ] && continue
  echo "+ tts eval $name" >&2
  extra=()
  [ -n "${EVAL_N:-}" ] && extra=(--max-utterances "$EVAL_N")
  "$SU" tts eval --model "$OUT/$name" --vocoder "$voc" --tokenizer "$tok" --data "$CORPUS/test.jsonl" \
    "${extra[@]}" --out "$OUT/eval/$name" --no-progress 2>&1 | tee "$OUT/eval/$name.log"
done
"$PY" "$ROOT/scripts/tts_table.py" "$OUT" | tee "$OUT/table.md"
