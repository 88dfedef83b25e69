#!/usr/bin/env bash
# Unit LMs on 36 hours of speech, on one GPU (docs/results.md, "Unit LMs on 36 hours, on a GPU";
# issue 19 items 2 and 5). Two unit LMs from scratch, unit-lm:small (10.6 M) and unit-lm:base
# (151 M), side by side on the GPU, each for about TRAIN_S seconds with zero-shot lexical and
# syntactic accuracy every 1/6 of its steps; the pair scores of both on the unseen and the training
# voices; then each fine-tuned for unit-LM ASR for about ASR_S seconds and decoded (beam 3) on the
# test split's unseen voices.
#   bash scripts/gpu_lm_round.sh DATA OUT      (DATA from scripts/big_corpus_units.sh)
# The step counts come from a 40-step probe of both models run together, so that the time budget,
# not a guess of the GPU's speed, sets them; they are written to OUT/plan.jsonl.
# Env: SU (the speechunits command), DEVICE (cuda), TRAIN_S (150), ASR_S (60), B (16384 tokens/step),
# MODELS ("small base").
set -uo pipefail
D=${1:?usage: gpu_lm_round.sh DATA OUT}; O=${2:?usage: gpu_lm_round.sh DATA OUT}
SU=${SU:-speechunits}; DEV=${DEVICE:-cuda}; TRAIN_S=${TRAIN_S:-150}; ASR_S=${ASR_S:-60}; B=${B:-16384}
PY=${PY:-python3}
mkdir -p "$O"
U=$D/units
PAIRS=(--pairs "lexical=$U/pairs.lexical.jsonl:$D/gold/lexical.csv"
       --pairs "syntactic=$U/pairs.syntactic.jsonl:$D/gold/syntactic.csv")
declare -A LR=([small]=1e-3 [base]=3e-4)
read -r -a MODELS <<< "${MODELS:-small base}"

# 1. probe: 40 steps of both models at once; tokens/s of the last 20 steps
for m in "${MODELS[@]}"; do
  $SU lm train --units $U/train.jsonl --model unit-lm:$m --out $O/probe_$m --steps 40 --batch-tokens $B \
    --max-len 1024 --log-every 20 --save-every 0 --no-progress --device $DEV --no-resume > $O/probe_$m.log 2>&1 &
done
wait
steps() { $PY "$(dirname "$0")/steps_for_budget.py" $O/probe_$1/train_log.jsonl "$2" $B; }  # MODEL SECONDS
declare -A STEPS ASTEPS
for m in "${MODELS[@]}"; do STEPS[$m]=$(steps $m $TRAIN_S) && ASTEPS[$m]=$(steps $m $ASR_S) || exit 1; done
for m in "${MODELS[@]}"; do echo "{\"model\": \"unit-lm:$m\", \"train_steps\": ${STEPS[$m]}, \"asr_steps\": ${ASTEPS[$m]}, \"batch_tokens\": $B}"; done | tee $O/plan.jsonl

# 2. pre-training, both at once
for m in "${MODELS[@]}"; do
  $SU lm train --units $U/train.jsonl --valid $U/dev.jsonl --model unit-lm:$m --out $O/ulm_$m \
    --steps ${STEPS[$m]} --batch-tokens $B --max-len 1024 --lr ${LR[$m]} --eval-every $(( STEPS[$m] / 6 )) \
    --save-every $(( STEPS[$m] / 6 )) --no-progress --device $DEV "${PAIRS[@]}" > $O/ulm_$m.log 2>&1 &
done
wait

# 3. zero-shot on unseen voices (lexical, syntactic) and on training voices (lexical); NLL of the test split
for m in "${MODELS[@]}"; do
  [[ -f $O/ulm_$m/model.safetensors ]] || { echo "ulm_$m did not finish"; continue; }
  for kind in lexical syntactic; do
    $SU lm score --model $O/ulm_$m --units $U/pairs.$kind.jsonl --gold $D/gold/$kind.csv --device $DEV --json $O/score_$m.$kind.json
  done
  $SU lm score --model $O/ulm_$m --units $U/pairs_tv.lexical.jsonl --gold $D/gold/tv_lexical.csv --device $DEV --json $O/score_$m.tv_lexical.json
  $SU lm eval --model $O/ulm_$m --units $U/test.jsonl --device $DEV --json $O/eval_$m.test.json
done > $O/scores.log 2>&1

# 4. unit-LM ASR from each pre-trained LM, both at once; then beam-3 decoding of the test split
for m in "${MODELS[@]}"; do
  [[ -f $O/ulm_$m/model.safetensors ]] || continue
  ( $SU lm asr-train --units $U/train.jsonl --text $D/text/train_dev.jsonl --valid $U/dev.jsonl \
      --model $O/ulm_$m --out $O/asr_$m --steps ${ASTEPS[$m]} --batch-tokens $B --max-len 1024 --lr 5e-4 \
      --eval-every $(( ASTEPS[$m] / 6 )) --save-every 0 --no-progress --device $DEV &&
    $SU lm asr-eval --model $O/asr_$m --units $U/test.jsonl --text $D/text/test.jsonl --beams 3 \
      --batch-size 64 --device $DEV --json $O/asr_$m.test.json ) > $O/asr_$m.log 2>&1 &
done
wait
echo done
