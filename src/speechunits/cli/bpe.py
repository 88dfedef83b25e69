"""``speechunits bpe``: train BPE over a tokenizer's units and store it in the tokenizer."""

from __future__ import annotations

import argparse

from speechunits.cli._common import add_tokenizer, open_tokenizer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bpe",
        help="train BPE over units (from `speechunits tokenize`) and add it to the tokenizer",
        description="Trains a BPE model (HF tokenizers) over the de-duplicated units of UNITS "
        "and writes tokenizer.json into the tokenizer directory, so `tokenize --bpe` uses it.",
    )
    add_tokenizer(p, required=True, help="tokenizer directory to add the BPE to")
    p.add_argument("--units", required=True, nargs="+", help="JSONL units files made by this tokenizer")
    p.add_argument("--vocab-size", type=int, default=6000, help="final vocabulary incl. the k units (6000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechunits.tokenizer import TokenizerError
    from speechunits.tokens import UnitBPE, expand, read_jsonl

    tok = open_tokenizer(args)
    if len(tok.layers) != 1:
        raise TokenizerError(f"{args.tokenizer}: BPE needs a single-layer tokenizer")
    seqs = []
    for path in args.units:
        for u in read_jsonl(path):
            seqs.append((expand(u) if u.is_deduplicated else u).ids)
    bpe = UnitBPE.train(seqs, vocab_size=args.vocab_size, k=tok.vocab_sizes[0], seed=args.seed)
    tok.bpe = bpe
    tok.save_pretrained(args.tokenizer)
    stats = bpe.compression_stats(seqs)
    print(f"BPE: vocab {bpe.vocab_size}, {stats}")
    return 0
