"""Helpers shared by the CLI verbs: gathering inputs, devices, shard defaults."""

from __future__ import annotations

import argparse
import os
import sys

from speechunits.data.formats import expand_pattern, is_container, read_input
from speechunits.data.manifest import AUDIO_SUFFIXES, ManifestError, Utterance, check_unique_ids, input_missing_reason

INPUT_KINDS = ("audio files, folders, manifests (.tsv, .jsonl), Parquet files or folders, Hugging Face save_to_disk "
               "folders, WebDataset .tar shards (brace/glob patterns too), Lhotse cuts (.jsonl[.gz])")


def gather_inputs(inputs: list[str]) -> list[Utterance]:
    """Utterances from audio files, folders, manifests and containers (``data.formats``), in the
    order given; a pattern that names no file (``shard-{000..009}.tar``, ``data/*.parquet``) is
    expanded."""
    utts: list[Utterance] = []
    for item in inputs:
        for p in expand_pattern(item):
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
                utts.append(Utterance(p.stem, p.resolve()))
            elif p.is_dir() or p.suffix in (".tsv", ".jsonl") or (p.is_file() and is_container(p)):
                utts.extend(read_input(p))
            elif not p.exists():  # or a link loop, or a folder it may not enter: say which
                raise ManifestError(p, input_missing_reason(p))
            else:
                raise ManifestError(p, f"not one of the inputs read: {INPUT_KINDS}")
    return check_unique_ids(utts, "the inputs")  # the rule read_manifest applies to a folder


def add_tokenizer(p: argparse.ArgumentParser, *, required: bool = False,
                  help: str = "tokenizer directory (default: the bundled one)") -> None:
    """``--tokenizer`` plus the two explicit trust flags a tokenizer directory may need."""
    p.add_argument("--tokenizer", required=required, default=None if required else "default", help=help)
    p.add_argument("--encoder", default=None, metavar="DIR",
                   help="use this encoder model directory instead of the one the tokenizer names (needed when "
                   "its config names the encoder by a path); its weights must match the config's sha256")
    p.add_argument("--allow-unhashed", action="store_true",
                   help="load a tokenizer whose config.json lacks sha256 hashes for some files it loads "
                   "(warns; the files are not verified)")


def open_tokenizer(args: argparse.Namespace, device: str = "cpu"):
    """The tokenizer named by the flags of :func:`add_tokenizer`."""
    from speechunits.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(args.tokenizer, device=device, encoder=args.encoder,
                                     allow_unhashed=args.allow_unhashed)


def add_device(p: argparse.ArgumentParser) -> None:
    # Checked once for every verb in cli.main before anything is loaded (a misspelt name, or
    # cuda on a machine without it, is a usage error on the MFCC path as on the others).
    p.add_argument("--device", default="cpu", help="torch device for the models: cpu (default), cuda, cuda:1 ...")


def print_failures(headline: str, failed: list[dict], *, key: str | None = None) -> int:
    """Print ``headline`` and the first 20 failures (``key``: a field shown before the id) on
    stderr; return 1, the exit status of a batch verb whose inputs failed."""
    print(headline, file=sys.stderr)
    for f in failed[:20]:
        where = f"{f[key]} " if key else ""
        print(f"  {where}{f['id']}: {f['reason']}", file=sys.stderr)
    return 1


def _int_at_least(minimum: int, words: str):
    """An argparse type: an integer >= ``minimum`` (``words`` says the bound in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "at least 1")
non_negative_int = _int_at_least(0, "0 or more")


def add_shards(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nshard", type=positive_int, default=None,
                   help="number of shards, >= 1 (default: $WORLD_SIZE under torchrun, $SLURM_ARRAY_TASK_COUNT, else 1)")
    p.add_argument("--rank", type=non_negative_int, default=None,
                   help="this shard, 0 .. nshard-1 (default: $RANK, $SLURM_ARRAY_TASK_ID, else 0)")


def _env_int(names: tuple[str, ...], minimum: int) -> tuple[int, str] | None:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"${name}={raw!r} is not an integer") from None
            if value < minimum:
                raise ValueError(f"${name}={value} must be at least {minimum}")
            return value, f"${name}"
    return None


def shard_args(args: argparse.Namespace) -> tuple[int, int]:
    """(nshard, rank) from the flags, else from torchrun or SLURM array variables."""
    if args.nshard is not None:
        nshard, n_from = args.nshard, "--nshard"
    else:
        nshard, n_from = _env_int(("WORLD_SIZE", "SLURM_ARRAY_TASK_COUNT"), 1) or (1, "the default")
    if args.rank is not None:
        rank, r_from = args.rank, "--rank"
    else:
        rank, r_from = _env_int(("RANK", "SLURM_ARRAY_TASK_ID"), 0) or (0, "the default")
    if not 0 <= rank < nshard:
        raise ValueError(f"rank {rank} (from {r_from}) must be in 0..{nshard - 1} for {nshard} shard(s) (from {n_from})")
    return nshard, rank


def add_ray_engine(p: argparse.ArgumentParser, description: str, engine_help: str, gpu_help: str):
    """The ``--engine local|ray`` flags a verb shares with the others that can run on Ray Data
    (``tokenize``, ``eval``); returns the argument group for verb-specific additions."""
    r = p.add_argument_group("engine", description)
    r.add_argument("--engine", choices=("local", "ray"), default="local", help=engine_help)
    r.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="a running Ray cluster (auto on one of its nodes, or HEAD:6379); default: a local one")
    r.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="tokenizer actors, one model each (default 1)")
    r.add_argument("--gpus-per-worker", type=float, default=0, metavar="G", help=gpu_help)
    r.add_argument("--cpus-per-worker", type=float, default=1, metavar="C",
                   help="CPUs per actor (default 1; torch threads in it)")
    return r


def check_ray_engine(args: argparse.Namespace) -> bool:
    """For ``--engine ray``: False (after a one-line error) when Ray is not installed; raises
    ValueError for impossible resources. True when the job can go on."""
    from speechunits.distributed.ray_tokenize import RayMissing, import_ray

    try:
        import_ray()  # without the extra: a one-line error before any work
    except RayMissing as e:
        print(f"speechunits: error: {e}", file=sys.stderr)
        return False
    if not args.gpus_per_worker >= 0 or not args.cpus_per_worker > 0:
        raise ValueError(f"--gpus-per-worker must be >= 0 and --cpus-per-worker > 0, got "
                         f"{args.gpus_per_worker} and {args.cpus_per_worker}")
    return True
