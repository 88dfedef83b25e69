#!/usr/bin/env bash
# The data of scripts/gpu_llm_granularity.sh: the 4-hour 320-word corpus of a unit_lm_curve.sh run
# (BASE, e.g. runs/ulm150) tokenized at k = 125 and 2000 with Whisper layer-3 k-means tokenizers
# (fitted as the default k = 500 was; unit_lm_curve.sh's header has the `speechunits fit` command),
# next to BASE's own default-tokenizer (k = 500) units; de-duplicated; train, dev, test and the
# lexical and syntactic pair sets; gold files copied. Two cores: the two k run side by side.
#   bash scripts/granularity_units.sh BASE TOK_K125 TOK_K2000 OUT
set -euo pipefail
BASE=${1:?usage: granularity_units.sh BASE TOK_K125 TOK_K2000 OUT}; T125=${2:?}; T2000=${3:?}; O=${4:?}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"
one() {  # K TOKENIZER
  local o=$O/k$1
  for s in train dev test; do [[ -f $o/$s.jsonl ]] || $SU tokenize --tokenizer $2 --out $o/$s.jsonl --dedup --no-progress $BASE/corpus/$s.jsonl; done
  for kind in lexical syntactic; do
    [[ -f $o/pairs.$kind.jsonl ]] || $SU tokenize --tokenizer $2 --out $o/pairs.$kind.jsonl --dedup --no-progress $BASE/pairs/$kind
  done
}
one 125 $T125 > $O.k125.log 2>&1 & p1=$!
one 2000 $T2000 > $O.k2000.log 2>&1 & p2=$!
wait $p1 && wait $p2 || { echo "tokenizing failed: see $O.k125.log / $O.k2000.log"; exit 1; }
mkdir -p $O/k500 $O/gold
for f in train dev test pairs.lexical pairs.syntactic; do cp $BASE/units/$f.jsonl $BASE/units/$f.jsonl.config.json $O/k500/; done
cp $BASE/pairs/lexical/gold.csv $O/gold/lexical.csv
cp $BASE/pairs/syntactic/gold.csv $O/gold/syntactic.csv
