"""``speechunits fit``: fit a k-means tokenizer (or a sweep of them) on a folder or manifest."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from speechunits.cli._common import INPUT_KINDS, add_device, gather_inputs, print_failures


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1000000"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a k-means tokenizer on speech (any encoder, layer(s) and k)",
        description="One encoder pass over DATA; a uniform sample of frames within the budget; "
        "k-means++ restarts + Lloyd in torch per (layer, k). With one --k the layers form one "
        "tokenizer (a codebook per layer, units [frames, layers]) written to --out; with several "
        "--k, or --sweep, each (layer, k) becomes its own tokenizer in --out/layer{L}_k{K}. "
        "A file that fails (undecodable, too large, any error of its own) is left out and listed with "
        "its reason in <out>.errors.jsonl beside --out; silent or clipped audio is used and listed in "
        "<out>.warnings.jsonl.",
        epilog="exit status: 0 every input used; 1 some inputs failed (see <out>.errors.jsonl; the "
        "tokenizer is fitted on the others, if any); 2 usage or user error.",
    )
    p.add_argument("--encoder", default="mfcc", help="mfcc, logmel, or a Hugging Face model name or directory")
    p.add_argument("--layer", type=int, nargs="+", default=[-1], help="layer(s); 0 = CNN output, -1 = final (default)")
    p.add_argument("--k", type=int, nargs="+", default=[500], help="codebook size(s) (default 500)")
    p.add_argument("--data", nargs="+", required=True, help=INPUT_KINDS)
    p.add_argument("--out", required=True, help="tokenizer directory (or parent of a sweep's directories)")
    p.add_argument("--sweep", action="store_true", help="one tokenizer per (layer, k) instead of one multi-layer tokenizer")
    budget = p.add_argument_group("sampling budget (the tightest wins; default: every frame)")
    budget.add_argument("--max-frames", type=int, default=None, help="at most this many frames in the k-means sample")
    budget.add_argument("--percent", type=float, default=None, help="keep each frame with this probability (%%)")
    budget.add_argument("--max-memory", type=parse_bytes, default=None, help="memory for the sample + k-means, e.g. 4G")
    p.add_argument("--n-init", type=int, default=3, help="k-means++ restarts (default 3); the best inertia wins")
    p.add_argument("--max-iter", type=int, default=60, help="Lloyd iterations per restart (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dedup", action="store_true", help="tokenizer de-duplicates units by default")
    p.add_argument("--allow-download", action="store_true", help="let a Hugging Face name be downloaded")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from speechunits.batch import check_output_file, errors_path, warnings_path, write_records
    from speechunits.encoders import load_encoder
    from speechunits.fit import NoUtterancesError, fit_tokenizers

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: --out is a file; fit writes a tokenizer folder")
    check_output_file(errors_path(out), (), args.data)  # the folder beside --out can be written
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kwargs = {"allow_download": True} if args.allow_download else {}
    encoder = load_encoder(args.encoder, device=args.device, **kwargs)
    utts = gather_inputs(args.data)
    joint = not args.sweep
    failures: list[dict] = []
    warnings: list[dict] = []
    try:
        toks = fit_tokenizers(
            encoder, utts, layers=args.layer, ks=args.k, seed=args.seed, joint=joint, dedup=args.dedup,
            max_frames=args.max_frames, percent=args.percent, max_bytes=args.max_memory,
            progress=not args.no_progress, data_name=" ".join(args.data),
            n_init=args.n_init, max_iter=args.max_iter, device=args.device,
            failures=failures, warnings=warnings,
        )
    except NoUtterancesError as e:
        write_records(errors_path(out), failures)
        print(f"speechunits: error: {e}; reasons in {errors_path(out)}", file=sys.stderr)
        return 1  # every input failed, and each is recorded: an input failure, not a usage error
    write_records(errors_path(out), failures)
    write_records(warnings_path(out), warnings)
    single = len(toks) == 1 and not args.sweep
    for tok in toks:
        d = out if single else out / f"layer{'-'.join(map(str, tok.layers))}_k{tok.vocab_sizes[0]}"
        tok.save_pretrained(d)
        stats = [q.fit_stats for q in tok.quantizer.quantizers.values()]
        desc = ", ".join(
            f"layer {s.get('layer')}: inertia/frame {s['inertia_per_frame']:.4f}, utilization {s['utilization']:.3f}"
            for s in stats
        )
        print(f"{d}: k={tok.vocab_sizes}, {desc}")
    if warnings:
        print(f"{len(warnings)} audio warning(s) (silent or clipped audio, still used): see {warnings_path(out)}")
    if failures:
        return print_failures(f"{len(failures)} of {len(utts)} inputs failed and were left out: see "
                              f"{errors_path(out)}", failures)
    return 0
