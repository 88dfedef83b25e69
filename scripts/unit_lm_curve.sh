#!/usr/bin/env bash
# A unit LM from scratch with a zero-shot learning curve (docs/results.md, "A unit LM on 4 hours
# with a zero-shot curve"): a 5-hour synthetic corpus (4 h train), 1000 lexical/syntactic/story
# pairs spoken by its 3 test voices (and 1000 lexical pairs by 3 training voices), the default
# tokenizer's de-duplicated units, unit-lm:small trained with lexical and syntactic accuracy
# scored every 60 steps.   bash scripts/unit_lm_curve.sh OUTDIR [STEPS] [TOKENIZER] [WORDS]
# (TOKENIZER: default, or a tokenizer folder, e.g. Whisper layer 3 at k = 125 from
#  speechunits fit --encoder whisper-tiny.en --layer 3 --k 125 --data ../shared/data/librispeech-mini/train-clean-100
#  --n-init 3 --seed 0 --out tok_k125, fitted as the default k = 500 was.)
# (WORDS: 0 for the packaged lexicon, ~1,600 words; N > 0 for a seeded subset of about N
#  open-class words written by `corpus lexicon` and used for the corpus and the pairs alike.)
set -euo pipefail
O=${1:?usage: unit_lm_curve.sh OUTDIR [STEPS] [TOKENIZER] [WORDS]}; STEPS=${2:-360}; TOK=${3:-default}; WORDS=${4:-0}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"
LEX=()
if (( WORDS > 0 )); then
  [[ -f $O/lexicon.tsv ]] || $SU corpus lexicon --out $O/lexicon.tsv --words $WORDS --seed 0
  LEX=(--lexicon $O/lexicon.tsv)
fi
$SU corpus synth --out $O/corpus --minutes 300 --seed 0 --workers 1 --no-progress "${LEX[@]}"
spk() { .venv/bin/python -c "import json,sys; s=sorted({json.loads(l)['speaker'] for l in open(sys.argv[1])}); print(' '.join(s[:3]))" "$1"; }
[[ -f $O/pairs/story/gold.csv ]] || $SU corpus pairs --out $O/pairs --kind all --n 1000 --seed 0 --speakers $(spk $O/corpus/test.jsonl) --workers 1 --no-progress "${LEX[@]}"
[[ -f $O/pairs_trainvoices/lexical/gold.csv ]] || $SU corpus pairs --out $O/pairs_trainvoices --kind lexical --n 1000 --seed 0 --speakers $(spk $O/corpus/train.jsonl) --workers 1 --no-progress "${LEX[@]}"
for split in train dev test; do $SU tokenize --tokenizer $TOK --out $O/units/$split.jsonl --dedup --no-progress $O/corpus/$split.jsonl; done
for kind in lexical syntactic story; do $SU tokenize --tokenizer $TOK --out $O/units/pairs.$kind.jsonl --dedup --no-progress $O/pairs/$kind; done
$SU tokenize --tokenizer $TOK --out $O/units/pairs_tv.lexical.jsonl --dedup --no-progress $O/pairs_trainvoices/lexical
$SU lm train --units $O/units/train.jsonl --valid $O/units/dev.jsonl --model unit-lm:small --out $O/ulm_small \
  --steps $STEPS --batch-tokens 4096 --max-len 1024 --lr 1e-3 --eval-every 60 --save-every 60 --no-progress \
  --pairs lexical=$O/units/pairs.lexical.jsonl:$O/pairs/lexical/gold.csv \
  --pairs syntactic=$O/units/pairs.syntactic.jsonl:$O/pairs/syntactic/gold.csv
for kind in lexical syntactic; do
  $SU lm score --model $O/ulm_small --units $O/units/pairs.$kind.jsonl --gold $O/pairs/$kind/gold.csv --json $O/score.$kind.json
done
$SU lm score --model $O/ulm_small --units $O/units/pairs_tv.lexical.jsonl --gold $O/pairs_trainvoices/lexical/gold.csv --json $O/score_tv.lexical.json
