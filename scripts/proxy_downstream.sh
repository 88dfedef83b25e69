#!/usr/bin/env bash
# Downstream scores per tokenizer for the proxy study (DC-Spin paper, Figure 3; issue 19.6), after
# scripts/proxy_study.sh has built STUDY (units and unit LMs per tokenizer):
#
#   bash scripts/proxy_downstream.sh asr STUDY CORPUS_DIR STEPS NAME=TOKENIZER_DIR...
#     unit-LM ASR: each tokenizer's unit LM (STUDY/lm/NAME) fine-tuned STEPS steps on `units <|asr|>
#     characters` of the corpus' train split (transcripts of train + dev; dev NLL per character
#     every 50 steps), then the test split decoded greedily: STUDY/asr/NAME/test.json (CER, WER).
#   bash scripts/proxy_downstream.sh resynthesis STUDY TRAIN_AUDIO STEPS NAME=TOKENIZER_DIR...
#     resynthesis: a unit vocoder (the CPU default, unit-mel) trained STEPS steps on TRAIN_AUDIO
#     (STUDY/voc/NAME), scored by scripts/vocoder_results.sh (librivox-aligned and test-other
#     dWER, RESYN_S seconds of each; STUDY/resynth). Every tokenizer gets the same budget.
#
# scripts/proxy_study_table.py then adds these scores to the proxy correlations. Resumes (a
# training from its checkpoint, a scored tokenizer skipped); one thread per job. Several copies
# share the work through atomic claims (STUDY/claims_KIND/NAME), as proxy_study.sh does.
# Env: SU (the speechunits command), DEVICE (cpu; cuda on a GPU machine: training and decoding).
set -euo pipefail
usage() {
  echo "usage: bash scripts/proxy_downstream.sh asr|resynthesis STUDY CORPUS_DIR|TRAIN_AUDIO STEPS NAME=TOKENIZER_DIR..." >&2
  exit 2
}
case ${1:-} in asr | resynthesis) [ $# -ge 5 ] || usage ;; *) usage ;; esac
KIND=$1; OUT=$2; SRC=$3; STEPS=$4; shift 4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SU=${SU:-$ROOT/.venv/bin/speechunits}; DEVICE=${DEVICE:-cpu}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

asr() {  # NAME TOKENIZER: fine-tune the unit LM for ASR and decode the test split
  local name=$1 tok=$2 u="$OUT/units/$1" a="$OUT/asr/$1" text="$OUT/asr/text_train_dev.jsonl"
  if [ ! -f "$OUT/lm/$name/model.safetensors" ]; then
    echo "[$(date +%T)] skip $name: no unit LM in $OUT/lm/$name (run scripts/proxy_study.sh first)" >&2
    rmdir "$OUT/claims_asr/$name"  # free it for a rerun once the LM exists
    return
  fi
  mkdir -p "$OUT/asr"
  [ -f "$text" ] || { cat "$SRC/train.jsonl" "$SRC/dev.jsonl" > "$text.tmp" && mv "$text.tmp" "$text"; }
  [ -f "$u/test.jsonl" ] || "$SU" tokenize --tokenizer "$tok" --out "$u/test.jsonl" --dedup --no-progress "$SRC/test.jsonl" > /dev/null
  if [ ! -f "$a/model.safetensors" ]; then
    echo "[$(date +%T)] asr-train $name" >&2
    "$SU" lm asr-train --units "$u/train.jsonl" --text "$text" --valid "$u/dev.jsonl" --model "$OUT/lm/$name" \
      --out "$a" --steps "$STEPS" --batch-tokens 4096 --max-len 1024 --lr 5e-4 --eval-every 50 --save-every 50 \
      --device "$DEVICE" --no-progress > "$a.log" 2>&1
  fi
  echo "[$(date +%T)] asr-eval $name" >&2
  "$SU" lm asr-eval --model "$a" --units "$u/test.jsonl" --text "$SRC/test.jsonl" --beams 1 --device "$DEVICE" \
    --json "$a/test.json.tmp" \
    > "$a.eval.log" 2>&1
  mv "$a/test.json.tmp" "$a/test.json"
}

resynthesis() {  # NAME TOKENIZER: train the tokenizer's vocoder and score its resynthesis
  local name=$1 tok=$2 v="$OUT/voc/$1"
  mkdir -p "$OUT/voc"
  if [ ! -f "$v/model.safetensors" ]; then
    echo "[$(date +%T)] vocoder $name" >&2
    "$SU" vocoder train "$SRC" --tokenizer "$tok" --out "$v" --steps "$STEPS" --device "$DEVICE" \
      --no-progress > "$v.log" 2>&1
  fi
  echo "[$(date +%T)] resynthesis $name" >&2
  bash "$ROOT/scripts/vocoder_results.sh" "$OUT/resynth" "$name=$v:$tok" > /dev/null
}

mkdir -p "$OUT/claims_$KIND"
for spec in "$@"; do
  name=${spec%%=*}; tok=${spec#*=}
  case $KIND in
    asr) [ -f "$OUT/asr/$name/test.json" ] && continue ;;
    resynthesis) [ -f "$OUT/resynth/eval/$name/metrics.json" ] && continue ;;
  esac
  if ! mkdir "$OUT/claims_$KIND/$name" 2>/dev/null; then
    echo "[$(date +%T)] skip $name: claimed by another copy (remove $OUT/claims_$KIND/$name if none runs)" >&2
    continue
  fi
  "$KIND" "$name" "$tok"
done
