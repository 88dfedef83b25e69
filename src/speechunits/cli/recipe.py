"""``speechunits recipe``: rebuild the project's artifacts from scratch, reproducibly."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipe", help="rebuild an artifact of the project from scratch")
    verbs = p.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    d = verbs.add_parser(
        "default-tokenizer",
        help="the bundled default tokenizer",
        description="--kind mfcc: the interim default (k-means k=500 on MFCC, fitted on a 30-minute "
        "synthetic corpus, seed 0; minutes). Writes OUT/tokenizer (with a model card) and OUT/recipe.json.",
    )
    d.add_argument("--out", required=True, help="working folder")
    d.add_argument("--kind", choices=["mfcc"], default="mfcc")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_default)


def run_default(args: argparse.Namespace) -> int:
    from speechunits.recipes.interim_default import build_mfcc_default

    path = build_mfcc_default(args.out, seed=args.seed)
    print(f"default tokenizer written to {path}")
    return 0
