#!/usr/bin/env bash
# The vocoder results of docs/results.md: score resynthesis of each vocoder on librivox-aligned
# (5 utterances with transcripts) and 60 s of librispeech-mini test-other (speaker labels: voice
# conversion too), one thread each, token sections skipped; then print the table.
#
#   bash scripts/vocoder_results.sh OUTDIR NAME=VOCODER:TOKENIZER[:LAYERS] ...
#
# LAYERS (comma-separated, optional) speaks a subset of a multi-layer vocoder's layers.
# An evaluation already in OUTDIR/eval/NAME is kept (resume).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/vocoder_results.sh OUTDIR NAME=VOCODER:TOKENIZER[:LAYERS]..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; shift
SU=${SU:-$ROOT/.venv/bin/speechunits}
SHARED=${SPEECHUNITS_SHARED_DATA:-$ROOT/../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/eval"
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}
  IFS=: read -r voc tok layers <<< "$rest"
  [ -f "$OUT/eval/$name/metrics.json" ] && continue
  extra=()
  [ -n "${layers:-}" ] && extra=(--vocoder-layers ${layers//,/ })
  echo "+ eval $name" >&2
  "$SU" eval --tokenizer "$tok" --vocoder "$voc" "${extra[@]}" --name "$name" \
    --data "$SHARED/librivox-aligned" --data "$SHARED/librispeech-mini/test-other" \
    --skip alignment abx ngram robustness speed --resynthesis-seconds 60 --resynthesis-examples 2 \
    --threads 1 --no-plots --no-progress --out "$OUT/eval/$name" > "$OUT/eval/$name.log" 2>&1
done
"$ROOT/.venv/bin/python" "$ROOT/scripts/vocoder_table.py" "$OUT"/eval/*/ > "$OUT/table.md"
cat "$OUT/table.md"
