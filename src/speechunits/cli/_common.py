"""Helpers shared by the CLI verbs: gathering inputs, devices, shard defaults."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from speechunits.data.manifest import (AUDIO_SUFFIXES, ManifestError, Utterance, check_unique_ids, input_missing_reason,
                                       read_manifest)


def gather_inputs(inputs: list[str]) -> list[Utterance]:
    """Utterances from audio files, folders and manifests (.tsv/.jsonl), in the order given."""
    utts: list[Utterance] = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
            utts.append(Utterance(p.stem, p.resolve()))
        elif p.is_dir() or p.suffix in (".tsv", ".jsonl"):
            utts.extend(read_manifest(p))
        elif not p.exists():  # or a link loop, or a folder it may not enter: say which
            raise ManifestError(p, input_missing_reason(p))
        else:
            raise ManifestError(p, f"not an audio file ({', '.join(AUDIO_SUFFIXES)}), folder or manifest (.tsv, .jsonl)")
    return check_unique_ids(utts, "the inputs")  # the rule read_manifest applies to a folder


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="torch device for the models: cpu (default), cuda, cuda:1 ...")


def add_shards(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nshard", type=int, default=None,
                   help="number of shards (default: $WORLD_SIZE under torchrun, $SLURM_ARRAY_TASK_COUNT, else 1)")
    p.add_argument("--rank", type=int, default=None,
                   help="this shard, 0-based (default: $RANK, $SLURM_ARRAY_TASK_ID, else 0)")


def shard_args(args: argparse.Namespace) -> tuple[int, int]:
    """(nshard, rank) from the flags, else from torchrun or SLURM array variables."""
    env = os.environ
    nshard = args.nshard or int(env.get("WORLD_SIZE") or env.get("SLURM_ARRAY_TASK_COUNT") or 1)
    rank = args.rank if args.rank is not None else int(env.get("RANK") or env.get("SLURM_ARRAY_TASK_ID") or 0)
    if not 0 <= rank < nshard:
        raise SystemExit(f"speechunits: error: --rank {rank} must be in 0..{nshard - 1}")
    return nshard, rank
