#!/usr/bin/env bash
# The Whisper results of docs/results.md: evaluate every tokenizer directory given on the command
# line on the synthetic test split (ABX), librivox-aligned (PNMI/CNMI) and librispeech-mini
# test-other (UED over the ten default distortions on 180 s, bitrate, 4-gram, position leakage, RTF),
# one thread each, then print the table (scripts/whisper_table.py).
#
#   bash scripts/whisper_results.sh OUTDIR CORPUS_TEST_JSONL TOKENIZER_DIR [TOKENIZER_DIR ...]
#
# The corpus: `speechunits corpus synth --out corpus --minutes 30 --seed 0` (its test.jsonl).
# An evaluation already in OUTDIR/eval/NAME is kept (resume); NAME is PARENT-FOLDER of the tokenizer
# (or the run folder, for a RUN/tokenizer).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash scripts/whisper_results.sh OUTDIR CORPUS_TEST_JSONL TOKENIZER_DIR..." >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; CORPUS=$2; shift 2
SU=${SU:-$ROOT/.venv/bin/speechunits}
SHARED=${SPEECHUNITS_SHARED_DATA:-$ROOT/../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/eval"
for tok in "$@"; do
  # NAME: the tokenizer folder, prefixed by its parent (sweeps name their folders layer{L}_k{K})
  name="$(basename "$(dirname "$tok")")-$(basename "$tok")"
  [ "$(basename "$tok")" = tokenizer ] && name=$(basename "$(dirname "$tok")")
  if [ -f "$OUT/eval/$name/metrics.json" ]; then continue; fi
  echo "+ eval $name" >&2
  t=$(date +%s)
  "$SU" eval --tokenizer "$tok" --name "$name" --data "$CORPUS" --data "$SHARED/librivox-aligned" \
    --data "$SHARED/librispeech-mini/test-other" --robustness-seconds 180 --threads 1 --no-plots --no-progress \
    --out "$OUT/eval/$name" > "$OUT/eval/$name.log" 2>&1
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - t ))" >> "$OUT/timings.tsv"
done
"$ROOT/.venv/bin/python" "$ROOT/scripts/whisper_table.py" "$OUT"/eval/*/ > "$OUT/table.md"
cat "$OUT/table.md"
