#!/usr/bin/env bash
# The vocoder results of docs/results.md: score resynthesis of each vocoder on librivox-aligned
# (5 utterances with transcripts) and librispeech-mini test-other (speaker labels: voice conversion
# too), RESYN_S seconds of each (default 60), one thread each, token sections skipped; then print
# the table.
#
#   bash scripts/vocoder_results.sh OUTDIR NAME=VOCODER:TOKENIZER[:LAYERS] ...
#
# LAYERS (comma-separated, optional) speaks a subset of a multi-layer vocoder's layers.
# DATA="dir-or-manifest ..." replaces the two datasets (e.g. the synthetic corpus' test.jsonl);
# the table is then printed for its first dataset (scripts/vocoder_table.py --dataset).
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
  data=()
  for d in ${DATA:-$SHARED/librivox-aligned $SHARED/librispeech-mini/test-other}; do data+=(--data "$d"); done
  "$SU" eval --tokenizer "$tok" --vocoder "$voc" "${extra[@]}" --name "$name" "${data[@]}" \
    --skip alignment abx ngram robustness speed --resynthesis-seconds "${RESYN_S:-60}" --resynthesis-examples 2 \
    --threads 1 --no-plots --no-progress --out "$OUT/eval/$name" > "$OUT/eval/$name.log" 2>&1
done
if [ -n "${DATA:-}" ]; then
  first=${DATA%% *}  # its name in the reports: "corpus/test" for corpus/test.jsonl, a folder's own name
  if [ -f "$first" ]; then first="$(basename "$(dirname "$(realpath "$first")")")/$(basename "${first%.*}")"
  else first=$(basename "$first"); fi
  "$ROOT/.venv/bin/python" "$ROOT/scripts/vocoder_table.py" --dataset "$first" "$OUT"/eval/*/ > "$OUT/table.md"
else
  "$ROOT/.venv/bin/python" "$ROOT/scripts/vocoder_table.py" "$OUT"/eval/*/ > "$OUT/table.md"
fi
cat "$OUT/table.md"
