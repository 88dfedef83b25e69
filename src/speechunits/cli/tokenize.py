"""``speechunits tokenize``: files, folders or manifests in, a units file out."""

from __future__ import annotations

import argparse
import sys

from speechunits.cli._common import (
    INPUT_KINDS,
    add_device,
    add_shards,
    add_tokenizer,
    gather_inputs,
    open_tokenizer,
    positive_int,
    shard_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenize",
        help="tokenize audio files, folders or manifests into a units file",
        description="Tokenize audio into units. The output format follows the suffix of --out: "
        ".jsonl (default, resumable), .parquet, .km (fairseq, plus .ids), .txt (<|u12|> text) or .jsonl.gz "
        "(a Lhotse cuts manifest; --format lhotse for a plain .jsonl). "
        "The tokenizer's config is written beside it as <out>.config.json and the job's options and "
        "inputs as <out>.job.json. A file that fails (undecodable, too large, any error of its own) is "
        "listed with its reason in <out>.errors.jsonl and the job goes on; silent or clipped audio is "
        "tokenized and listed in <out>.warnings.jsonl. A rerun into an existing output resumes only "
        "with the same tokenizer, options and inputs, and otherwise refuses saying what differs; "
        "--no-resume replaces it when the new one is complete.",
        epilog="exit status: 0 every input tokenized; 1 some inputs failed (see <out>.errors.jsonl), "
        "the others are written; 2 usage or user error.",
    )
    p.add_argument("inputs", nargs="+", help=INPUT_KINDS)
    add_tokenizer(p)
    p.add_argument("--out", required=True, help="output units file (.jsonl, .parquet, .km, .txt, or .jsonl.gz: "
                   "Lhotse cuts)")
    p.add_argument("--format", choices=("jsonl", "parquet", "km", "text", "lhotse"), default=None,
                   help="output format (default: from the suffix of --out); lhotse: a Lhotse CutSet manifest "
                   "(.jsonl.gz or .jsonl) whose cuts carry the units in custom['units']")
    p.add_argument("--dedup", action="store_true", default=None, help="collapse repeated units (keeps durations)")
    p.add_argument("--bpe", action="store_true", default=None, help="apply the tokenizer's BPE (implies --dedup)")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh; an existing output is replaced only once the new one is complete")
    p.add_argument("--batch-size", type=positive_int, default=8, help="utterances handed to the encoder at once")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_shards(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechunits.batch import check_output_file, output_format, shard_output_path, tokenize_corpus

    nshard, rank = shard_args(args)
    # A folder, an input or an unwritable place as --out fails now, not after the model loads.
    check_output_file(shard_output_path(args.out, rank, nshard), (), args.inputs)
    output_format(shard_output_path(args.out, rank, nshard), args.format)
    utts = gather_inputs(args.inputs)
    tok = open_tokenizer(args, device=args.device)
    report = tokenize_corpus(
        tok, utts, args.out, dedup=args.dedup, bpe=args.bpe, nshard=nshard, rank=rank,
        resume=not args.no_resume, batch_size=args.batch_size, progress=not args.no_progress,
        inputs=args.inputs, format=args.format,
    )
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 1 if report.failed else 0
