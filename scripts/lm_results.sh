#!/usr/bin/env bash
# Spoken-LM results of docs/results.md ("Speech language models on units"), end to end:
#   bash scripts/lm_results.sh OUTDIR [NAME=TOKENIZER_DIR ...]
# 1. a 120-minute synthetic corpus; lexical/syntactic/story pairs spoken by its 3 test speakers;
# 2. MFCC k-means tokenizers at k = 125..2000 fitted on its train split (matched), and at k = 500
#    on librispeech-mini (mismatched; skipped without ../shared/data); the bundled default (or
#    DEFAULT_TOKENIZER) as a third kind of tokenizer;
# 3. per tokenizer: a small unit LM (10.6 M parameters) for a fixed number of steps; per k:
#    SmolLM2-135M + LoRA r64 for a fixed number of steps; NLL on the test speakers;
# 4. clean vs noisy/reverberant NLL gap for matched vs mismatched k-means (k = 500);
# 5. zero-shot pair accuracy for every unit LM; unit-LM ASR (beam 5) for k = 500 and the default;
# 6. the evaluation report of every tokenizer on the test speakers, and OUTDIR/compare: Pearson r
#    of its proxies with the LM scores across tokenizers;
# 7. OUTDIR/lm_results.md, the tables (scripts/lm_results_table.py).
# Sizes: UNIT_STEPS, UNIT_BATCH (tokens), LLM_STEPS, ASR_STEPS, MINUTES, PAIRS, KS, LLM_KS (the k
# values SmolLM2 is trained on; default KS) environment variables (defaults below);
# SMOKE=1 shrinks everything to a few-minute check. Two lanes run side by side, one thread each.
# Re-running the same command resumes: finished steps are skipped.
set -euo pipefail
OUT=${1:?usage: lm_results.sh OUTDIR [NAME=TOKENIZER_DIR ...]}
shift
EXTRA=("$@"); (( ${#EXTRA[@]} )) || EXTRA=("default=default")
HERE=$(cd "$(dirname "$0")/.." && pwd)
DATA=${SPEECHUNITS_SHARED_DATA:-$HERE/../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
if [[ "${SMOKE:-0}" == 1 ]]; then
  MINUTES=${MINUTES:-6} PAIRS=${PAIRS:-10} UNIT_STEPS=${UNIT_STEPS:-4} LLM_STEPS=${LLM_STEPS:-1} ASR_STEPS=${ASR_STEPS:-4}
  KS=${KS:-"125 500"}
fi
MINUTES=${MINUTES:-120}; PAIRS=${PAIRS:-200}; UNIT_STEPS=${UNIT_STEPS:-150}; LLM_STEPS=${LLM_STEPS:-24}
ASR_STEPS=${ASR_STEPS:-150}; KS=${KS:-"125 250 500 1000 2000"}; UNIT_BATCH=${UNIT_BATCH:-4096}
LLM_KS=${LLM_KS:-$KS}
SU="speechunits"
mkdir -p "$OUT"
T0=$(date +%s)
# Run FUNC on every item, in two background lanes (alternate items), and wait for both.
two_lanes() { local f=$1; shift; local a=() b=() i=0
  for x in "$@"; do if (( i % 2 == 0 )); then a+=("$x"); else b+=("$x"); fi; i=$((i + 1)); done
  ( for x in "${a[@]}"; do $f "$x"; done ) & local p1=$!
  ( for x in "${b[@]}"; do $f "$x"; done ) & local p2=$!
  wait $p1; wait $p2; }  # under set -e a failed lane stops the script
stamp() { echo "$(( $(date +%s) - T0 ))s $*" | tee -a "$OUT/timings.log"; }
{ date -u; uname -a; python -c "import torch, transformers, speechunits; print('torch', torch.__version__, 'transformers', transformers.__version__, 'speechunits', speechunits.__version__)"; git -C "$HERE" rev-parse HEAD; echo "MINUTES=$MINUTES PAIRS=$PAIRS UNIT_STEPS=$UNIT_STEPS LLM_STEPS=$LLM_STEPS ASR_STEPS=$ASR_STEPS KS=$KS"; } > "$OUT/env.txt"

# --- data ---------------------------------------------------------------------------------------
$SU corpus synth --out "$OUT/corpus" --minutes "$MINUTES" --seed 0 --workers 2 --no-progress
TEST_SPK=$(python -c "import json,sys; print(' '.join(sorted({json.loads(l)['speaker'] for l in open(sys.argv[1])})))" "$OUT/corpus/test.jsonl")
[[ -f "$OUT/pairs/story/gold.csv" ]] || $SU corpus pairs --out "$OUT/pairs" --kind all --n "$PAIRS" --seed 0 --speakers $TEST_SPK --workers 2 --no-progress
[[ -f "$OUT/perturbed/reverb_0.6s.jsonl" ]] || $SU perturb --data "$OUT/corpus/test.jsonl" --distortion white_10dB white_0dB reverb_0.6s --out "$OUT/perturbed"
stamp data

# --- tokenizers ---------------------------------------------------------------------------------
LAST_K=${KS##* }
[[ -f "$OUT/tok/layer0_k$LAST_K/config.json" ]] || $SU fit --encoder mfcc --k $KS --sweep --data "$OUT/corpus/train.jsonl" --out "$OUT/tok" --n-init 1 --seed 0 --threads 2 --no-progress
TOKS=""
for k in $KS; do TOKS="$TOKS mfcc-k$k:$OUT/tok/layer0_k$k"; done
if [[ -d "$DATA/librispeech-mini/train-clean-100" ]]; then
  [[ -f "$OUT/tok/libri_k500/config.json" ]] || $SU fit --encoder mfcc --k 500 --data "$DATA/librispeech-mini/train-clean-100" --out "$OUT/tok/libri_k500" --n-init 1 --seed 0 --threads 2 --no-progress
  TOKS="$TOKS mfcc-libri-k500:$OUT/tok/libri_k500"
fi
for e in "${EXTRA[@]}"; do TOKS="$TOKS ${e%%=*}:${e#*=}"; done
stamp fit

tokenize_all() {  # name:dir -> units of train/test/perturbed test/pairs (tokenize resumes)
  local name=${1%%:*} dir=${1#*:}; local u="$OUT/units/$name"
  [[ -f "$u/.done" ]] && return 0
  mkdir -p "$u"
  for split in train test; do
    $SU tokenize --tokenizer "$dir" --out "$u/$split.jsonl" --dedup --no-progress "$OUT/corpus/$split.jsonl"
  done
  for d in white_10dB white_0dB reverb_0.6s; do
    $SU tokenize --tokenizer "$dir" --out "$u/test.$d.jsonl" --dedup --no-progress "$OUT/perturbed/$d.jsonl"
  done
  for kind in lexical syntactic story; do
    $SU tokenize --tokenizer "$dir" --out "$u/pairs.$kind.jsonl" --dedup --no-progress "$OUT/pairs/$kind"
  done
  touch "$u/.done"
}
two_lanes tokenize_all $TOKS
stamp tokenize

# --- unit LMs: train, NLL clean and perturbed, zero-shot pairs, ASR --------------------------------
unit_lm() {  # name:dir
  local name=${1%%:*}; local u="$OUT/units/$name" m="$OUT/lm/unit-$name"
  [[ -f "$m/score.story.json" ]] && return 0
  $SU lm train --units "$u/train.jsonl" --model unit-lm:small --out "$m" --steps "$UNIT_STEPS" \
    --batch-tokens "$UNIT_BATCH" --max-len 1024 --seed 0 --no-progress --log-every 25
  for d in white_10dB white_0dB reverb_0.6s; do
    $SU lm eval --model "$m" --units "$u/test.jsonl" --perturbed "$u/test.$d.jsonl" --json "$m/eval.$d.json" > /dev/null
  done
  $SU lm eval --model "$m" --units "$u/test.jsonl" --json "$m/eval.json"
  for kind in lexical syntactic story; do
    $SU lm score --model "$m" --units "$u/pairs.$kind.jsonl" --gold "$OUT/pairs/$kind/gold.csv" --json "$m/score.$kind.json"
  done
}
asr() {  # name
  local name=$1 u="$OUT/units/$1" m="$OUT/lm/asr-$1"
  [[ -f "$m/asr.json" ]] && return 0
  $SU lm asr-train --units "$u/train.jsonl" --text "$OUT/corpus/train.jsonl" --model "$OUT/lm/unit-$name" \
    --out "$m" --steps "$ASR_STEPS" --batch-tokens "$UNIT_BATCH" --seed 0 --no-progress --log-every 25
  $SU lm asr-eval --model "$m" --units "$u/test.jsonl" --text "$OUT/corpus/test.jsonl" --beams 5 --json "$m/asr.json"
}
two_lanes unit_lm $TOKS
stamp unit-lm
ASR_OTHER=${EXTRA[0]%%=*}
asr mfcc-k500 & p1=$!; asr "$ASR_OTHER" & p2=$!; wait $p1; wait $p2
stamp asr

# --- SmolLM2-135M + LoRA over the k sweep (one lane: it uses both cores) ----------------------------
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
for k in $LLM_KS; do
  m="$OUT/lm/smollm2-mfcc-k$k"
  [[ -f "$m/eval.json" ]] && continue
  $SU lm train --units "$OUT/units/mfcc-k$k/train.jsonl" --model smollm2 --out "$m" --steps "$LLM_STEPS" \
    --batch-tokens 2048 --max-len 512 --seed 0 --no-progress --log-every 4
  $SU lm eval --model "$m" --units "$OUT/units/mfcc-k$k/test.jsonl" --json "$m/eval.json"
done
stamp smollm2

# --- proxies of every tokenizer on the same test speakers, correlated with the LM scores -----------
eval_one() { local t=$1
  [[ -f "$OUT/eval/${t%%:*}/metrics.json" ]] || $SU eval --tokenizer "${t#*:}" --name "${t%%:*}" --data "$OUT/corpus/test.jsonl" --out "$OUT/eval/${t%%:*}" \
    --skip speed --robustness-seconds 0 --no-plots --threads 1 --no-progress > "$OUT/eval.${t%%:*}.log" 2>&1; }
two_lanes eval_one $TOKS
stamp eval

python "$HERE/scripts/lm_results_table.py" "$OUT" > "$OUT/lm_results.md"  # also writes OUT/scores.json
$SU compare "$OUT"/eval/* --out "$OUT/compare" --scores "$OUT/scores.json" --lower-is-better nll_per_second wer cer
stamp done
