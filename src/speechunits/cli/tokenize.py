"""``speechunits tokenize``: files, folders or manifests in, a units file out."""

from __future__ import annotations

import argparse
import sys

from speechunits.cli._common import (
    INPUT_KINDS,
    add_device,
    add_ray_engine,
    add_shards,
    add_tokenizer,
    check_ray_engine,
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
    r = add_ray_engine(p, "run on Ray Data instead of this process (the ray extra: pip install 'speechunits[ray]'); "
                       "same output, resumable from <out>.ray/",
                       "local: this process (default); ray: decode in Ray tasks, tokenize in a pool of actors",
                       "GPUs per actor (default 0); >0 puts the model on cuda unless --device names one")
    r.add_argument("--shard-size", type=positive_int, default=64, metavar="N",
                   help="utterances per Ray block and per finished shard (default 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechunits.batch import check_output_file, output_format, shard_output_path, tokenize_corpus

    if args.engine == "ray" and not check_ray_engine(args):
        return 2
    nshard, rank = shard_args(args)
    # A folder, an input or an unwritable place as --out fails now, not after the model loads.
    check_output_file(shard_output_path(args.out, rank, nshard), (), args.inputs)
    output_format(shard_output_path(args.out, rank, nshard), args.format)
    utts = gather_inputs(args.inputs)
    if args.engine == "ray":
        report = _run_ray(args, utts, nshard, rank)
    else:
        tok = open_tokenizer(args, device=args.device)
        report = tokenize_corpus(
            tok, utts, args.out, dedup=args.dedup, bpe=args.bpe, nshard=nshard, rank=rank,
            resume=not args.no_resume, batch_size=args.batch_size, progress=not args.no_progress,
            inputs=args.inputs, format=args.format,
        )
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 1 if report.failed else 0


def _run_ray(args: argparse.Namespace, utts: list, nshard: int, rank: int):
    from speechunits.distributed.ray_tokenize import tokenize_ray

    # The tokenizer is loaded in each actor; --device cpu (the default) with GPUs means cuda there.
    device = None if args.device == "cpu" and args.gpus_per_worker > 0 else args.device
    return tokenize_ray(
        args.tokenizer, utts, args.out, dedup=args.dedup, bpe=args.bpe, nshard=nshard, rank=rank,
        resume=not args.no_resume, batch_size=args.batch_size, progress=not args.no_progress,
        inputs=args.inputs, format=args.format, address=args.ray_address, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker, shard_size=args.shard_size,
        device=device, encoder=args.encoder, allow_unhashed=args.allow_unhashed,
    )
