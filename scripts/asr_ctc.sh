#!/usr/bin/env bash
# Unit-LM ASR with and without a CTC loss (docs/results.md, "Unit-LM ASR with a CTC loss"; issue 19,
# item 5): fine-tune the granularity study's unit LM (k = 500, the default tokenizer) on
# `units <|asr|> characters` of the 4-hour 320-word corpus, STEPS x 4,096 tokens, lr 5e-4, with the
# CTC loss at weight W on the LM's own head at the unit positions (W = 0: the attention-only recipe),
# the dev NLL and the dev CER of 40 utterances every EVAL steps (greedy attention, and greedy CTC when
# W > 0); then decode the 211 test utterances: greedy attention, and for W > 0 greedy CTC and joint
# CTC/attention beam search (beam 5, weight 0.3), also on swapped units (each utterance decoded from
# the units of another of about its length: what the units' content is worth). One thread; about
# 6 s a step here beside one other job, the joint decodes 15-20 minutes each. Re-running resumes
# the training.
#   [BASE=MODEL] [LR=5e-4] [SWAP=1] bash scripts/asr_ctc.sh RUNS NAME W STEPS EVAL
# BASE: start from another model (e.g. RUNS/asr/ctc03 to fine-tune it further); SWAP=0: no swapped-units decodes.
# RUNS: the folder of scripts/granularity_data.sh, with the base LM RUNS/llm/ulm_k500 of
# scripts/llm_granularity_cpu.sh (MODEL=unit-lm:small ... ulm_k500 500 120 --lr 1e-3). Writes
# RUNS/asr/NAME (the model, train_log.jsonl) and RUNS/asr/NAME_{test,swap}_{att,ctc,joint}.json.
set -euo pipefail
R=${1:?usage: asr_ctc.sh RUNS NAME W STEPS EVAL}; N=${2:?}; W=${3:?}; S=${4:?}; E=${5:?}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"; G=$R/gran/k500; C=$R/ulm150/corpus; O=$R/asr
mkdir -p $O
[[ -f $O/text_traindev.jsonl ]] || { cat $C/train.jsonl $C/dev.jsonl > $O/text_traindev.jsonl.tmp && mv $O/text_traindev.jsonl.tmp $O/text_traindev.jsonl; }
$SU lm asr-train --model ${BASE:-$R/llm/ulm_k500} --units $G/train.jsonl --text $O/text_traindev.jsonl \
  --valid $G/dev.jsonl --out $O/$N --steps $S --batch-tokens 4096 --max-len 1024 --lr ${LR:-5e-4} \
  --eval-every $E --save-every 50 --eval-cer 40 --ctc-weight $W --no-progress
[[ -f $O/swap_test.jsonl ]] || .venv/bin/python scripts/swap_units.py $G/test.jsonl $O/swap_test.jsonl
ev() { $SU lm asr-eval --model $O/$N --text $C/test.jsonl "$@"; }
ev --units $G/test.jsonl --beams 1 --json $O/${N}_test_att.json
if [[ $W != 0 && $W != 0.0 ]]; then
  ev --units $G/test.jsonl --decoder ctc --json $O/${N}_test_ctc.json
  ev --units $G/test.jsonl --decoder joint --ctc-weight 0.3 --beams 5 --json $O/${N}_test_joint.json
  if [[ ${SWAP:-1} == 1 ]]; then
    ev --units $O/swap_test.jsonl --decoder ctc --json $O/${N}_swap_ctc.json
    ev --units $O/swap_test.jsonl --decoder joint --ctc-weight 0.3 --beams 5 --json $O/${N}_swap_joint.json
  fi
fi
