#!/usr/bin/env bash
# Everything the granularity runs read, from nothing (docs/results.md, "SmolLM2 + LoRA on the CPU"):
# the 4-hour 320-word synthetic corpus and its 1,000-pair sets (as scripts/unit_lm_curve.sh makes them,
# without training its LM), Whisper tiny.en layer-3 k-means at k = 125 and 2000 (fitted as the default
# k = 500 was), and every split and pair set tokenized, de-duplicated, at k = 125, 500 (the default
# tokenizer) and 2000: OUT/gran/k{125,500,2000}/{train,dev,test,pairs.lexical,pairs.syntactic}.jsonl
# and OUT/gran/gold/{lexical,syntactic}.csv, the layout scripts/gpu_llm_granularity.sh and
# scripts/llm_granularity_cpu.sh read. One thread; 23 minutes here, partly beside two other jobs. Resumes: done steps are skipped.
#   bash scripts/granularity_data.sh OUT
set -euo pipefail
O=${1:?usage: granularity_data.sh OUT}
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SU=".venv/bin/speechunits"; C=$O/ulm150; G=$O/gran
mkdir -p "$C"
[[ -f $C/lexicon.tsv ]] || $SU corpus lexicon --out $C/lexicon.tsv --words 150 --seed 0
LEX=(--lexicon $C/lexicon.tsv)
[[ -f $C/corpus/test.jsonl ]] || $SU corpus synth --out $C/corpus --minutes 300 --seed 0 --workers 1 --no-progress "${LEX[@]}"
spk() { .venv/bin/python -c "import json,sys; s=sorted({json.loads(l)['speaker'] for l in open(sys.argv[1])}); print(' '.join(s[:3]))" "$1"; }
[[ -f $C/pairs/syntactic/gold.csv ]] || $SU corpus pairs --out $C/pairs --kind all --n 1000 --seed 0 \
  --speakers $(spk $C/corpus/test.jsonl) --workers 1 --no-progress "${LEX[@]}"
for k in 125 2000; do
  [[ -f $O/tok_k$k/config.json ]] || $SU fit --encoder whisper-tiny.en --layer 3 --k $k \
    --data ../shared/data/librispeech-mini/train-clean-100 --n-init 3 --seed 0 --out $O/tok_k$k --threads 1
done
for k in 500 125 2000; do
  tok=$O/tok_k$k; [[ $k == 500 ]] && tok=default
  for s in train dev test; do
    [[ -f $G/k$k/$s.jsonl ]] || $SU tokenize --tokenizer $tok --out $G/k$k/$s.jsonl --dedup --no-progress $C/corpus/$s.jsonl
  done
  for kind in lexical syntactic; do
    [[ -f $G/k$k/pairs.$kind.jsonl ]] || $SU tokenize --tokenizer $tok --out $G/k$k/pairs.$kind.jsonl --dedup --no-progress $C/pairs/$kind
  done
done
mkdir -p $G/gold
cp $C/pairs/lexical/gold.csv $G/gold/lexical.csv
cp $C/pairs/syntactic/gold.csv $G/gold/syntactic.csv
