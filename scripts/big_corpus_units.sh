#!/usr/bin/env bash
# The data of scripts/gpu_lm_round.sh: the 4-hour training split of a unit_lm_curve.sh run made with
# a small lexicon (BASE, e.g. runs/ulm150 from `bash scripts/unit_lm_curve.sh runs/ulm150 600 default 150`)
# plus HOURS more hours per extra seed (two seeds: 1 and 2) synthesized from the SAME lexicon, all
# tokenized with the default tokenizer (de-duplicated) and merged (ids prefixed s0/s1/s2); dev, test
# and the pair sets are BASE's, so the scores compare with its 4-hour LM. Two cores: the two seeds
# run side by side, one thread each (for 20 h: about 2 minutes of synthesis and 8 of tokenizing here).
#   bash scripts/big_corpus_units.sh BASE OUT [MINUTES_PER_SEED]      (default 1200: 20 h; 16 h train each)
set -euo pipefail
BASE=${1:?usage: big_corpus_units.sh BASE OUT [MINUTES]}; O=${2:?usage: big_corpus_units.sh BASE OUT [MINUTES]}
MIN=${3:-1200}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"; PY=".venv/bin/python"
one() {  # SEED: synthesize and tokenize one extra corpus
  local c=$O/c$1
  $SU corpus synth --out $c/corpus --minutes $MIN --seed $1 --workers 1 --no-progress --lexicon $BASE/lexicon.tsv
  [[ -f $c/units/train.jsonl ]] || $SU tokenize --tokenizer default --out $c/units/train.jsonl --dedup --no-progress $c/corpus/train.jsonl
}
one 1 > $O.c1.log 2>&1 & p1=$!
one 2 > $O.c2.log 2>&1 & p2=$!
wait $p1 && wait $p2 || { echo "a corpus failed: see $O.c1.log / $O.c2.log"; exit 1; }
mkdir -p $O/data/units $O/data/gold $O/data/text
$PY scripts/merge_corpora.py --units $O/data/units/train.jsonl --text $O/data/text/train.jsonl \
  s0=$BASE/units/train.jsonl:$BASE/corpus/train.jsonl \
  s1=$O/c1/units/train.jsonl:$O/c1/corpus/train.jsonl \
  s2=$O/c2/units/train.jsonl:$O/c2/corpus/train.jsonl
# the dev transcripts keep their ids: the dev units are BASE's, unprefixed
cat $O/data/text/train.jsonl $BASE/corpus/dev.jsonl > $O/data/text/train_dev.jsonl
cp $BASE/corpus/test.jsonl $O/data/text/test.jsonl
for f in dev test pairs.lexical pairs.syntactic pairs_tv.lexical; do cp $BASE/units/$f.jsonl $BASE/units/$f.jsonl.config.json $O/data/units/; done
cp $BASE/pairs/lexical/gold.csv $O/data/gold/lexical.csv
cp $BASE/pairs/syntactic/gold.csv $O/data/gold/syntactic.csv
cp $BASE/pairs_trainvoices/lexical/gold.csv $O/data/gold/tv_lexical.csv
$PY -c "import json,sys; n=sum(len(json.loads(l)['units']) for l in open(sys.argv[1])); print(f'{sys.argv[1]}: {n} training tokens')" $O/data/units/train.jsonl
