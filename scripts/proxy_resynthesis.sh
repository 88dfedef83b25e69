#!/usr/bin/env bash
# Resynthesis per tokenizer for the proxy study (DC-Spin paper, Figure 3; issue 19.6): for each
# tokenizer, a unit vocoder (the CPU default, unit-mel) trained STEPS steps on TRAIN_AUDIO
# (STUDY/voc/NAME), then scored by scripts/vocoder_results.sh (librivox-aligned WER/dWER and
# test-other dWER, RESYN_S seconds of it; STUDY/resynth). scripts/proxy_study_table.py then adds
# the dWER columns to the proxy correlations. Every tokenizer gets the same vocoder budget.
#
#   bash scripts/proxy_resynthesis.sh STUDY TRAIN_AUDIO STEPS NAME=TOKENIZER_DIR [NAME=TOKENIZER_DIR ...]
#
# Resumes (a vocoder from its checkpoint, a scored tokenizer skipped); one thread per job. Several
# copies share the work through atomic claims (STUDY/claims_voc/NAME), as proxy_study.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash scripts/proxy_resynthesis.sh STUDY TRAIN_AUDIO STEPS NAME=TOKENIZER_DIR..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; TRAIN=$2; STEPS=$3; shift 3
SU=${SU:-$ROOT/.venv/bin/speechunits}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/voc" "$OUT/claims_voc"
for spec in "$@"; do
  name=${spec%%=*}; tok=${spec#*=}
  v="$OUT/voc/$name"
  [ -f "$OUT/resynth/eval/$name/metrics.json" ] && continue
  if ! mkdir "$OUT/claims_voc/$name" 2>/dev/null; then
    echo "[$(date +%T)] skip $name: claimed by another copy (remove $OUT/claims_voc/$name if none runs)" >&2
    continue
  fi
  if [ ! -f "$v/model.safetensors" ]; then
    echo "[$(date +%T)] vocoder $name" >&2
    "$SU" vocoder train "$TRAIN" --tokenizer "$tok" --out "$v" --steps "$STEPS" --no-progress > "$v.log" 2>&1
  fi
  echo "[$(date +%T)] resynthesis $name" >&2
  bash "$ROOT/scripts/vocoder_results.sh" "$OUT/resynth" "$name=$v:$tok" > /dev/null
done
