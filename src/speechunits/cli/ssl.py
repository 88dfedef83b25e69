"""``speechunits ssl``: pre-train our own HuBERT-style encoder, fine-tune it with CTC, train Spin / DC-Spin.

    speechunits ssl targets data/synth/train.jsonl --encoder mfcc --k 100 --out w/it1.targets.jsonl
    speechunits ssl pretrain data/synth/train.jsonl --targets w/it1.targets.jsonl --out w/it1 --preset medium --steps 2000
    speechunits ssl targets data/synth/train.jsonl --encoder w/it1/encoder --k 500 --out w/it2.targets.jsonl
    speechunits ssl pretrain data/synth/train.jsonl --targets w/it2.targets.jsonl --out w/it2 --steps 2000
    speechunits ssl ctc data/synth/train.jsonl --encoder w/it2/encoder --tier phones --out w/ctc --steps 300
    speechunits ssl spin data/synth/train.jsonl --encoder w/ctc/encoder --codebooks 500 4096 --out w/dcspin --steps 600
    speechunits ssl targets data/synth/train.jsonl --spin w/dcspin --out w/spin.targets.jsonl   # SpinHuBERT

Training runs resume from ``<out>/checkpoint`` when re-run with the same settings (``--restart``
starts over); ``--stop-at N`` checkpoints at step N and exits, to split a run into sessions.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from speechunits.cli._common import add_device, print_failures

_EXIT = ("exit status: 0 every input used; 1 some inputs could not be read and were left out (listed with "
         "the reason in <out>.errors.jsonl beside --out); 2 usage or user error.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ssl", help="pre-train our own SSL encoder; Spin / DC-Spin; CTC fine-tuning",
                              description="HuBERT-style pre-training (MFCC / hidden-unit / Spin targets), "
                                          "CTC fine-tuning on alignments, Spin and DC-Spin codebooks.")
    sub = p.add_subparsers(dest="ssl_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("targets", help="frame targets: k-means of MFCC / a hidden layer, or Spin units",
                       description="Write per-utterance cluster targets (units JSONL + config sidecar).",
                       epilog=_EXIT)
    t.add_argument("manifests", nargs="+", help="manifests (.jsonl, .tsv, folder, LibriSpeech tree)")
    t.add_argument("--out", required=True, help="targets file to write (.jsonl)")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--encoder", default="mfcc", help="'mfcc' (iteration 1) or an encoder folder (iteration 2)")
    src.add_argument("--spin", help="a train_spin output folder: its units are the targets (SpinHuBERT)")
    t.add_argument("--layer", type=int, default=None, help="layer to cluster (default: best PNMI if aligned, else middle)")
    t.add_argument("--k", type=int, default=100, help="clusters (default 100)")
    t.add_argument("--max-frames", type=int, default=250_000, help="k-means sample size (default 250000)")
    t.add_argument("--seed", type=int, default=0)
    _common(t)
    t.set_defaults(func=_targets)

    r = sub.add_parser("pretrain", help="HuBERT masked-prediction pre-training (resumable)", epilog=_EXIT)
    r.add_argument("manifests", nargs="+", help="training manifests")
    r.add_argument("--targets", nargs="+", required=True, help="targets file(s) covering the manifests")
    r.add_argument("--out", required=True, help="run folder (encoder/, head, checkpoint/, loss curve)")
    r.add_argument("--preset", default="medium", choices=("tiny", "small", "medium", "large"),
                   help="model size (default medium: hidden 256, 6 layers)")
    r.add_argument("--init-from", default=None, help="start from this encoder folder instead of random weights")
    r.add_argument("--mask-prob", type=float, default=0.08, help="share of frames starting a masked span (0.08)")
    r.add_argument("--mask-length", type=int, default=10, help="masked span in frames (10)")
    r.add_argument("--unmasked-weight", type=float, default=0.0,
                   help="loss weight of unmasked frames (HuBERT: 0; 1.0 teaches a small model's front-end faster)")
    r.add_argument("--frontend", default="cnn", choices=("cnn", "fbank", "logmel"),
                   help="front-end: 'cnn' (light CNN, random init), 'fbank' (CNN initialised as a mel "
                        "filterbank; learns far faster at this scale) or 'logmel' (a learnable log-mel "
                        "filterbank instead of the CNN); ignored with --init-from")
    r.add_argument("--augment", type=float, default=0.0,
                   help="share of crops whose input is distorted (speaker perturbation, noise, reverb) while "
                        "the targets stay the clean audio's (default 0: off)")
    r.add_argument("--n-mels", type=int, default=None,
                   help="bands of the 'logmel' front-end (default 80)")
    r.add_argument("--pre-ln", action="store_true",
                   help="pre-LN transformer (HF do_stable_layer_norm, as wav2vec 2.0 Large): steadier at "
                        "high learning rates; ignored with --init-from")
    _training(r, steps=2000, lr=5e-4, weight_decay=0.01, warmup=0.08, crop=3.0)
    r.set_defaults(func=_pretrain)

    s = sub.add_parser("spin", help="Spin / DC-Spin: speaker-invariant codebooks (resumable)", epilog=_EXIT)
    s.add_argument("manifests", nargs="+", help="training manifests")
    s.add_argument("--encoder", required=True,
                   help="encoder folder (ours, a HF HuBERT/WavLM checkpoint) or a Whisper (whisper-tiny.en, any format)")
    s.add_argument("--out", required=True, help="run folder (encoder/, quantizer/, checkpoint/, loss curve)")
    s.add_argument("--codebooks", type=int, nargs="+", default=[500],
                   help="codebook sizes, primary first; two sizes = DC-Spin (e.g. 500 4096)")
    s.add_argument("--trainable-layers", type=int, default=2, help="top transformer layers fine-tuned (2)")
    s.add_argument("--proj-dim", type=int, default=256)
    s.add_argument("--epsilon", type=float, default=0.02, help="Sinkhorn epsilon (0.02)")
    s.add_argument("--temperature", type=float, default=0.1)
    s.add_argument("--hard-targets", action="store_true", help="arg-max instead of soft Sinkhorn targets")
    s.add_argument("--mask-prob", type=float, default=0.0, help="light masking, e.g. 0.01 (default off)")
    s.add_argument("--mask-length", type=int, default=5)
    s.add_argument("--layer", type=int, default=None,
                   help="Whisper only: the layer Spin reads (default: its last transformer layer)")
    s.add_argument("--no-position-guard", action="store_true",
                   help="Whisper only: both views at the same positions (the guard draws a random offset per view)")
    _training(s, steps=1000, lr=1e-4, weight_decay=1e-6, warmup=0.1, crop=3.0)
    s.set_defaults(func=_spin)

    c = sub.add_parser("ctc", help="CTC fine-tuning on phones or characters from alignments (resumable)",
                       epilog=_EXIT)
    c.add_argument("manifests", nargs="+", help="training manifests (with alignments)")
    c.add_argument("--encoder", required=True, help="encoder folder to fine-tune")
    c.add_argument("--out", required=True, help="run folder (encoder/, ctc head, checkpoint/, loss curve)")
    c.add_argument("--tier", choices=("phones", "chars"), default="phones")
    c.add_argument("--trainable-layers", type=int, default=None, help="top layers trained (default: all)")
    _training(c, steps=500, lr=2e-4, weight_decay=0.01, warmup=0.1, crop=4.0)
    c.set_defaults(func=_ctc)


def _common(p: argparse.ArgumentParser) -> None:
    add_device(p)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (on a busy shared machine 1 is often fastest)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _training(p: argparse.ArgumentParser, *, steps: int, lr: float, weight_decay: float, warmup: float,
              crop: float) -> None:
    p.add_argument("--steps", type=int, default=steps, help=f"optimiser steps ({steps})")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per step (8)")
    p.add_argument("--crop-seconds", type=float, default=crop, help=f"longest crop ({crop})")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate ({lr:g})")
    p.add_argument("--warmup", type=float, default=warmup, help=f"warm-up steps, or a fraction below 1 ({warmup:g})")
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--clip", type=float, default=10.0, help="gradient-norm clipping (10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (200)")
    p.add_argument("--stop-at", type=int, default=None, help="checkpoint and exit at this step (resume later)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--max-utterances", type=int, default=None, help="use only the first N utterances")
    _common(p)


def _warmup(v: float) -> int | float:
    return v if v < 1 else int(v)


def _setup(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _train_kwargs(args: argparse.Namespace) -> dict:
    return dict(steps=args.steps, batch_size=args.batch_size, crop_seconds=args.crop_seconds, lr=args.lr,
                warmup=_warmup(args.warmup), weight_decay=args.weight_decay, clip=args.clip, seed=args.seed,
                checkpoint_every=args.checkpoint_every, resume=not args.restart, progress=not args.no_progress,
                device=args.device, max_utterances=args.max_utterances, stop_at=args.stop_at)


def _run(fn, out) -> int:
    """Run ``fn`` (it returns the unreadable inputs it left out), record those in
    ``<out>.errors.jsonl`` and exit 1 if there are any, as tokenize and fit do.

    Bad manifests, targets, options (ValueError, OSError) reach cli.main, which prints the one
    line `speechunits: error: ...` and exits 2 like every other verb.
    """
    from speechunits.batch import errors_path, write_records
    from speechunits.encoders.pretrain.data import NoUsableAudioError

    from speechunits.distributed.ddp import is_main_process

    path = errors_path(out)
    if not is_main_process():  # torchrun: rank 0 reports and writes the records
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
        return 0
    try:
        failed = fn()
    except NoUsableAudioError as e:
        if not e.failed:  # nothing unreadable: every utterance too short, the user's data
            raise
        write_records(path, e.failed)
        print(f"speechunits: error: {e}; reasons in {path}", file=sys.stderr)
        return 1  # every input failed, each recorded: an input failure, not a usage error
    write_records(path, failed)  # a clean rerun removes a stale list
    if failed:
        return print_failures(f"{len(failed)} input(s) could not be read and were left out: see {path}", failed)
    return 0


def _report(kind: str, out, history: list[dict], done_dir) -> None:
    import numpy as np

    secs = [h["seconds"] for h in history]
    speed = f", {1.0 / float(np.median(secs)):.2f} steps/s" if secs else ""
    last = np.mean([h["loss"] for h in history[-20:]]) if history else float("nan")
    state = f"-> {done_dir}" if done_dir is not None else f"stopped at step {len(history)} (run again to resume)"
    print(f"{kind}: {len(history)} steps, final loss {last:.4f}{speed} {state}")
    print(f"loss curve: {out}/loss.json, {out}/loss.png")


def _targets(args: argparse.Namespace) -> int:
    def go() -> list[dict]:
        _setup(args)
        from speechunits.encoders.pretrain import fit_targets, quantize_targets

        if args.spin:
            from speechunits.quantizers.dcspin import load_spin

            enc, q = load_spin(args.spin, device=args.device)
            r = quantize_targets(args.manifests, args.out, enc, q, progress=not args.no_progress,
                                 info={"spin_run": args.spin})
        else:
            r = fit_targets(args.manifests, args.out, encoder=args.encoder, layer=args.layer, k=args.k, seed=args.seed,
                            max_frames=args.max_frames, device=args.device, progress=not args.no_progress)
        scores = ", ".join(f"{a}: {b:.3f}" for a, b in r.layer_scores.items())
        extra = f"; PNMI by layer {scores}" if scores else ""
        print(f"targets: {r.path} (k={r.k}, layer {r.layer}, {r.frames} frames){extra}")
        return r.failed

    return _run(go, Path(args.out))


def _pretrain(args: argparse.Namespace) -> int:
    def go() -> list[dict]:
        _setup(args)
        from speechunits.encoders.pretrain import pretrain_hubert

        r = pretrain_hubert(args.manifests, args.targets, args.out, preset=args.preset, init_from=args.init_from,
                            mask_prob=args.mask_prob, mask_length=args.mask_length,
                            unmasked_weight=args.unmasked_weight, frontend=args.frontend, augment=args.augment,
                            model_overrides=_model_overrides(args),
                            **_train_kwargs(args))
        _report("pretrain", args.out, r.history, r.encoder_dir)
        return r.failed

    return _run(go, Path(args.out))


def _spin(args: argparse.Namespace) -> int:
    def go() -> list[dict]:
        _setup(args)
        from speechunits.quantizers.dcspin import train_spin

        r = train_spin(args.encoder, args.manifests, args.out, codebooks=args.codebooks,
                       trainable_layers=args.trainable_layers, proj_dim=args.proj_dim, epsilon=args.epsilon,
                       temperature=args.temperature, hard_targets=args.hard_targets, mask_prob=args.mask_prob,
                       mask_length=args.mask_length, layer=args.layer, position_guard=not args.no_position_guard,
                       **_train_kwargs(args))
        _report("spin" if len(args.codebooks) == 1 else "dc-spin", args.out, r.history, r.encoder_dir)
        if r.encoder_dir is not None:
            print(f"quantizer: {args.out}/quantizer (primary codebook, k={args.codebooks[0]})")
            print(f"tokenizer: {_save_spin_tokenizer(args.out)} (speechunits tokenize / eval --tokenizer)")
        return r.failed

    return _run(go, Path(args.out))


def _model_overrides(args: argparse.Namespace) -> dict | None:
    out: dict = {}
    if args.pre_ln:
        out["do_stable_layer_norm"] = True
    if args.n_mels is not None:
        if args.frontend != "logmel":
            raise ValueError("--n-mels needs --frontend logmel")
        out["n_mels"] = args.n_mels
    return out or None


def _save_spin_tokenizer(run_dir: str) -> Path:
    """``RUN/tokenizer``: the fine-tuned encoder + primary codebook as an ordinary tokenizer."""
    import shutil

    from speechunits.data.atomic import replace_dir
    from speechunits.quantizers.dcspin import load_spin
    from speechunits.tokenizer import Tokenizer

    enc, q = load_spin(run_dir)
    tmp = Path(run_dir) / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    Tokenizer(enc, q).save_pretrained(tmp)
    return replace_dir(tmp, Path(run_dir) / "tokenizer")


def _ctc(args: argparse.Namespace) -> int:
    def go() -> list[dict]:
        _setup(args)
        from speechunits.encoders.pretrain import ctc_finetune

        r = ctc_finetune(args.encoder, args.manifests, args.out, tier=args.tier,
                         trainable_layers=args.trainable_layers, **_train_kwargs(args))
        _report(f"ctc ({args.tier}, {len(r.vocab)} labels)", args.out, r.history, r.encoder_dir)
        return r.failed

    return _run(go, Path(args.out))
