"""Helpers shared by the CLI verbs: gathering inputs, devices, shard defaults."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from speechunits.data.manifest import AUDIO_SUFFIXES, ManifestError, Utterance, read_manifest


def gather_inputs(inputs: list[str]) -> list[Utterance]:
    """Utterances from audio files, folders and manifests (.tsv/.jsonl), in the order given."""
    utts: list[Utterance] = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES:
            utts.append(Utterance(p.stem, p.resolve()))
        elif p.is_dir() or p.suffix in (".tsv", ".jsonl"):
            utts.extend(read_manifest(p))
        elif not p.exists():
            raise ManifestError(p, "input not found")
        else:
            raise ManifestError(p, f"not an audio file ({', '.join(AUDIO_SUFFIXES)}), folder or manifest (.tsv, .jsonl)")
    seen: dict[str, Utterance] = {}
    for u in utts:
        if u.id in seen and seen[u.id].path != u.path:
            raise ManifestError(u.path, f"utterance id {u.id!r} also names {seen[u.id].path}; ids must be unique")
        seen[u.id] = u
    return list(seen.values())


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
