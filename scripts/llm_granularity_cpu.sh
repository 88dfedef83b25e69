#!/usr/bin/env bash
# One SmolLM2-135M + LoRA r64 run of the granularity study on one CPU thread (docs/results.md,
# "SmolLM2 + LoRA on the CPU"; issue 19 item 3, paper 1): continual pre-training on the
# de-duplicated units at vocabulary K (STEPS x 1,024 tokens, dev NLL on the first 40 dev utterances
# every STEPS/4 steps, a checkpoint every 10 steps: re-running resumes), then NLL per token and per
# second on the first 40 test utterances and zero-shot accuracy on the 1,000 lexical and 1,000
# syntactic pairs. 64-71 tokens/s median on one thread here, two runs side by side: 120 steps took
# 35-41 minutes, the pair scoring about 15 more. Run one per core. More args go to `lm train` (e.g. --new-rows-lr 2e-4
# --new-rows-noise 0 for the recipe before the unit rows had their own rate). MODEL=unit-lm:small
# (with --lr 1e-3) trains the from-scratch unit LM on the same tokens instead (725 tokens/s median here).
#   [MODEL=smollm2] bash scripts/llm_granularity_cpu.sh GRAN OUT NAME K STEPS [lm-train args]
# GRAN: the gran/ folder of scripts/granularity_data.sh.
set -euo pipefail
G=${1:?usage: llm_granularity_cpu.sh GRAN OUT NAME K STEPS [args]}; O=${2:?}; N=${3:?}; K=${4:?}; S=${5:?}; shift 5
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"
mkdir -p "$O"
for s in dev test; do  # the first 40 utterances, with their tokenizer sidecar (once: runs side by side share them)
  [[ -f $G/k$K/${s}40.jsonl ]] && continue
  cp $G/k$K/$s.jsonl.config.json $G/k$K/${s}40.jsonl.config.json
  head -40 $G/k$K/$s.jsonl > $G/k$K/${s}40.jsonl.tmp && mv $G/k$K/${s}40.jsonl.tmp $G/k$K/${s}40.jsonl
done
$SU lm train --units $G/k$K/train.jsonl --valid $G/k$K/dev40.jsonl --model ${MODEL:-smollm2} --lora-r 64 --out $O/$N \
  --steps $S --batch-tokens 1024 --max-len 1024 --eval-every $(( S / 4 )) --save-every 10 --log-every 1 --no-progress "$@"
$SU lm eval --model $O/$N --units $G/k$K/test40.jsonl --json $O/eval_$N.json
for kind in lexical syntactic; do
  $SU lm score --model $O/$N --units $G/k$K/pairs.$kind.jsonl --gold $G/gold/$kind.csv --json $O/score_$N.$kind.json
done
