#!/usr/bin/env bash
# First evaluation results (docs/results.md): the spectral (MFCC) encoder and a tiny *random* HF
# HuBERT, each with k-means at k = 125, 500, 2000, evaluated by `speechunits eval` on the synthetic
# corpus's test speakers and, when present, on ../shared/data (librivox-aligned: PNMI/CNMI;
# librispeech-mini: utilization, bitrates, UED).
#
#   bash scripts/first_results.sh OUTDIR
#
# Writes OUTDIR/{corpus,hubert-random,tok-mfcc,tok-hubert-random,eval/*,compare}, OUTDIR/env.txt
# (machine, commit, load), OUTDIR/timings.tsv (seconds per step) and OUTDIR/results_tables.md
# (the Markdown tables of docs/results.md, made by scripts/results_table.py) and
# OUTDIR/pnmi_chance.md (PNMI/CNMI with the codes permuted: scripts/pnmi_chance.py).
# Everything runs on one thread (the development machine is shared). Re-running into the same
# OUTDIR resumes the corpus and redoes the rest.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash scripts/first_results.sh OUTDIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SU=${SU:-$ROOT/.venv/bin/speechunits}
SHARED=${SPEECHUNITS_SHARED_DATA:-$ROOT/../shared/data}
SHARED=$(cd "$SHARED" 2>/dev/null && pwd || echo "$SHARED")
KS=(125 500 2000)

# One thread everywhere: `eval` takes --threads 1; `fit` and the snippet read these.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

T0=$(date +%s)
: > "$OUT/timings.tsv"
step() {  # step NAME CMD...: run, log the command, record its wall time
  local name=$1; shift
  local t=$(date +%s)
  echo "+ $*" >&2
  "$@"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - t ))" >> "$OUT/timings.tsv"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "uncommitted files: $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -v '^??' | awk '{print $2}' | tr '\n' ' ')"
  echo "python: $("$PY" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "threads", torch.get_num_threads())')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/env.txt"

# 1. The synthetic aligned corpus (30 min; 3 test speakers unseen in training).
step corpus "$SU" corpus synth --out "$OUT/corpus" --minutes 30 --seed 0 --workers 1 --no-progress

# 2a. A tiny random HuBERT: real 50 Hz CNN (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2), 256 wide,
#     4 transformer layers, untrained weights (seed 0), no input normalisation.
step hubert-random "$PY" - "$OUT/hubert-random" <<'EOF'
import sys
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

torch.manual_seed(0)
cfg = HubertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                   conv_dim=(256,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
model = HubertModel(cfg).eval()
model.save_pretrained(sys.argv[1])
Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=False).save_pretrained(sys.argv[1])
print(f"{sys.argv[1]}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
EOF

# 2b. Tokenizers: one encoder pass each, every k from the same frames, one k-means++ init.
step fit-mfcc "$SU" fit --encoder mfcc --k "${KS[@]}" --sweep --data "$OUT/corpus/train.jsonl" \
  --out "$OUT/tok-mfcc" --n-init 1 --seed 0 --no-progress
step fit-hubert-random "$SU" fit --encoder "$OUT/hubert-random" --layer -1 --k "${KS[@]}" --sweep \
  --data "$OUT/corpus/train.jsonl" --out "$OUT/tok-hubert-random" --n-init 1 --seed 0 --no-progress

# 3. Evaluate each tokenizer (default subset budgets: robustness 600 s, speed 300 s, stream 60 s).
DATA=(--data "$OUT/corpus/test.jsonl")
for d in librivox-aligned librispeech-mini; do
  if [ -d "$SHARED/$d" ]; then
    DATA+=(--data "$SHARED/$d")
  else
    echo "note: $SHARED/$d absent, skipped" | tee -a "$OUT/env.txt" >&2
  fi
done
rm -rf "$OUT/eval"
for enc in mfcc hubert-random; do
  for k in "${KS[@]}"; do
    tok=$(echo "$OUT/tok-$enc"/layer*_k"$k")
    name="$enc-k$k"
    step "eval-$name" "$SU" eval --tokenizer "$tok" "${DATA[@]}" --out "$OUT/eval/$name" --name "$name" \
      --threads 1 --no-progress
  done
done

# 4. Side by side.
step compare "$SU" compare "$OUT"/eval/* --out "$OUT/compare"

# 5. Chance level of PNMI/CNMI (codes permuted over the labelled frames) on the aligned datasets.
ALIGNED=("$OUT/corpus/test.jsonl")
if [ -d "$SHARED/librivox-aligned" ]; then ALIGNED+=("$SHARED/librivox-aligned"); fi
step pnmi-chance "$PY" "$ROOT/scripts/pnmi_chance.py" "$OUT" "${ALIGNED[@]}" > "$OUT/pnmi_chance.md"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
printf 'total\t%s\n' "$(( $(date +%s) - T0 ))" >> "$OUT/timings.tsv"
"$PY" "$ROOT/scripts/results_table.py" "$OUT" > "$OUT/results_tables.md"
echo "done in $(( $(date +%s) - T0 )) s: $OUT/results_tables.md, $OUT/compare/compare.md" >&2
