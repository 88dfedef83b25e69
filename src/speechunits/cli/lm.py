"""``speechunits lm``: train, evaluate and score spoken language models on units.

Verbs: ``train`` (LM pre-training on a units file), ``eval`` (NLL per token and per second,
optionally clean vs perturbed), ``score`` (zero-shot pair accuracy), ``asr-train`` (unit-LM ASR
fine-tuning), ``asr-eval`` (beam-search WER/CER), and ``instruct`` / ``instruct-eval``
(instruction tuning on discrete or continuous speech input, ``cli/instruct.py``). Results are
printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", required=True, help="training units file (.jsonl, .parquet, .km, .txt)")
    p.add_argument("--model", default="unit-lm:small",
                   help="unit-lm:tiny|small|base (from scratch), smollm2 (offline GGUF), an HF model "
                        "directory or hub name (LoRA continual pre-training), or a speechunits LM "
                        "directory to continue (default: unit-lm:small)")
    p.add_argument("--out", required=True, help="output directory (model, train_log.jsonl, checkpoint/)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="tokens per micro-batch (default 8192)")
    p.add_argument("--max-len", type=int, default=1024, help="row length for packing (default 1024)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-4 unit LM, 2e-4 LoRA)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 5%% of --steps)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--no-pack", action="store_true", help="one utterance per row (length-grouped padding)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=None, help="unit vocabulary size (default: from the units file's config)")
    p.add_argument("--no-dedup", action="store_true", help="keep frame-level units (default: de-duplicate)")
    p.add_argument("--lora-r", type=int, default=64)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--new-rows-lr", type=float, default=None,
                   help="text LLM: peak learning rate of the embedding rows added for the units, on the "
                        "same schedule (default 25 x --lr: at --lr they barely move for hundreds of steps)")
    p.add_argument("--new-rows-noise", type=float, default=1.0,
                   help="text LLM: start the unit rows at the mean text embedding plus this many of its "
                        "per-dimension standard deviations of seeded noise (default 1; 0: all at the mean)")
    p.add_argument("--allow-download", action="store_true", help="let a hub model name be downloaded")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=0, help="validate every N steps (default: at the end)")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps (and at the end)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--keep-best", action="store_true",
                   help="also keep the model of the lowest validation NLL in OUT/best (needs --valid; "
                        "validates every --eval-every steps)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu (default, float32) or cuda (bf16 autocast)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm", help="spoken language models on units: train, eval, score, ASR, instruction tuning",
                       description="Train and evaluate language models on discrete units.")
    verbs = p.add_subparsers(dest="lm_command", metavar="VERB", required=True)

    t = verbs.add_parser("train", help="train a unit LM or continue pre-training a text LLM on units")
    _add_train_args(t)
    t.add_argument("--valid", default=None, help="validation units file")
    t.add_argument("--pairs", action="append", default=[], metavar="NAME=UNITS:GOLD",
                   help="zero-shot pairs scored at every validation (--eval-every) into train_log.jsonl as "
                        "pairs_NAME: the pairs' units file and gold file as for `lm score` (repeatable)")
    t.set_defaults(func=run_train)

    a = verbs.add_parser("asr-train", help="fine-tune for ASR on 'units <|asr|> characters'")
    _add_train_args(a)
    a.add_argument("--text", required=True, help="transcripts: JSONL {id, text} or 'id text' lines")
    a.add_argument("--valid", default=None, help="validation units file (transcripts from --text)")
    a.add_argument("--ctc-weight", type=float, default=0.0, metavar="W",
                   help="hybrid CTC/attention: loss (1-W) NLL + W CTC, the CTC on the LM's own head at the "
                        "unit positions (unit LMs; ESPnet uses 0.3; default 0: off)")
    a.add_argument("--eval-cer", type=int, default=0, metavar="N",
                   help="at every validation, greedy-decode the first N --valid utterances and log "
                        "valid_cer (and valid_cer_ctc with --ctc-weight) in train_log.jsonl (default 0: off)")
    a.set_defaults(func=run_asr_train)

    for name, helptext, func in (("eval", "NLL per token / per second of a units file", run_eval),
                                 ("score", "zero-shot pair accuracy (sWUGGY/sBLIMP-style gold file)", run_score),
                                 ("asr-eval", "beam-search transcription WER/CER", run_asr_eval)):
        e = verbs.add_parser(name, help=helptext)
        e.add_argument("--model", required=True, help="a speechunits LM directory (from lm train)")
        e.add_argument("--units", required=True, help="units file")
        e.add_argument("--device", default="cpu")
        e.add_argument("--batch-tokens", type=int, default=4096, help="tokens per scoring batch")
        e.add_argument("--json", default=None, help="also write the result (with details) to this file")
        e.add_argument("--allow-download", action="store_true")
        e.set_defaults(func=func)
        if name == "eval":
            e.add_argument("--perturbed", default=None, help="units of the perturbed audio: report both + gap")
        if name == "score":
            e.add_argument("--gold", required=True, help="gold CSV: id,filename,correct[,voice,type] or correct,incorrect")
        if name == "asr-eval":
            e.add_argument("--text", required=True, help="reference transcripts")
            e.add_argument("--beams", type=int, default=5)
            e.add_argument("--decoder", choices=("attention", "ctc", "joint"), default="attention",
                           help="attention: beam search after <|asr|> (default); ctc: greedy CTC at the unit "
                                "positions (a model fine-tuned with --ctc-weight); joint: beam search on "
                                "attention and CTC prefix scores (weight --ctc-weight)")
            e.add_argument("--ctc-weight", type=float, default=0.3, metavar="W",
                           help="--decoder joint: score (1-W) attention + W CTC prefix (default 0.3)")
            e.add_argument("--batch-size", type=int, default=8)
            e.add_argument("--no-repeat-ngram-size", type=int, default=0, metavar="N",
                           help="forbid any N transcript tokens (characters for a unit LM) from repeating "
                                "(fairseq's option; 0: off)")

    from speechunits.cli.instruct import register_verbs

    register_verbs(verbs)


def _print(result: dict, path: str | None, details: dict | None = None) -> None:
    print(json.dumps(result, indent=2))
    if path:
        from speechunits.data.atomic import atomic_write_text

        atomic_write_text(path, json.dumps({**result, **(details or {})}, indent=2) + "\n")


def _train_common(args: argparse.Namespace, make_examples, evaluate=None) -> int:
    from speechunits.lm import TrainConfig, create_lm, read_units, train, units_vocab_size
    from speechunits.lm.speech_lm import is_lm_dir

    evaluate = evaluate or _pair_sets(getattr(args, "pairs", []), args.batch_tokens)  # a bad spec fails before training
    units = read_units(args.units)
    valid = read_units(args.valid) if args.valid else []
    k = args.k
    if k is None and not is_lm_dir(args.model):
        k = max(units_vocab_size(args.units, units), units_vocab_size(args.valid, valid) if valid else 1)
    lm = create_lm(args.model, k=k or 1, seed=args.seed, dedup=not args.no_dedup, lora_r=args.lora_r,
                   lora_alpha=args.lora_alpha, allow_download=args.allow_download,
                   new_rows_noise=args.new_rows_noise)
    config = TrainConfig(
        steps=args.steps, batch_tokens=args.batch_tokens, max_len=args.max_len, grad_accum=args.grad_accum,
        lr=args.lr, new_rows_lr=args.new_rows_lr, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, pack=not args.no_pack,
        seed=args.seed, log_every=args.log_every, eval_every=args.eval_every, save_every=args.save_every,
        keep_best=args.keep_best, device=args.device, progress=not args.no_progress,
        ctc_weight=getattr(args, "ctc_weight", 0.0))
    result = train(lm, make_examples(lm, units), args.out, config,
                   valid=make_examples(lm, valid) if valid else None, resume=not args.no_resume,
                   evaluate=evaluate)
    from speechunits.distributed.ddp import is_main_process

    if not is_main_process():  # torchrun: rank 0 reports
        return 0
    print(json.dumps({"out": str(Path(args.out)), "steps": len(result.losses),
                      "final_loss": result.losses[-1] if result.losses else None,
                      "valid": result.valid[-1] if result.valid else None,
                      "tokens_per_s": round(result.tokens_per_second, 1)}, indent=2))
    return 0


def _pair_sets(specs: list[str], batch_tokens: int):
    """``--pairs NAME=UNITS:GOLD`` -> an evaluator for ``train`` (None without any)."""
    from speechunits.lm import read_gold, read_units
    from speechunits.lm.train import pair_evaluator

    sets = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        units, sep2, gold = rest.rpartition(":")
        if not sep or not sep2 or not name or not units or not gold:
            raise ValueError(f"--pairs {spec!r}: expected NAME=UNITS:GOLD")
        if name in sets:
            raise ValueError(f"--pairs {spec!r}: the name {name!r} is given twice")
        sets[name] = (read_gold(gold), {u.utt_id: u for u in read_units(units)})
    return pair_evaluator(sets, batch_tokens) if sets else None


def run_train(args: argparse.Namespace) -> int:
    from speechunits.lm import lm_examples

    return _train_common(args, lm_examples)


def run_asr_train(args: argparse.Namespace) -> int:
    from speechunits.lm import asr_examples, read_transcripts, read_units

    texts = read_transcripts(args.text)
    valid = read_units(args.valid) if args.valid else []
    if valid and not any(u.utt_id in texts for u in valid):  # fail now, not at the first validation
        raise ValueError(f"--valid {args.valid}: none of its {len(valid)} utterances has a transcript "
                         f"in --text {args.text}")
    evaluate = None
    if args.eval_cer:
        from speechunits.lm.asr_eval import asr_evaluator

        if not valid:
            raise ValueError("--eval-cer needs --valid (the utterances to decode)")
        decoders = ("attention", "ctc") if args.ctc_weight else ("attention",)
        evaluate = asr_evaluator([u for u in valid if u.utt_id in texts][: args.eval_cer], texts, decoders)
    return _train_common(args, lambda lm, units: asr_examples(lm, units, texts), evaluate)


def _load(args: argparse.Namespace):
    from speechunits.lm import SpeechLM, read_units

    return SpeechLM.load(args.model, device=args.device, allow_download=args.allow_download), read_units(args.units)


def run_eval(args: argparse.Namespace) -> int:
    from speechunits.lm import compare_nll, evaluate_nll, read_units

    lm, units = _load(args)
    if args.perturbed:
        result = compare_nll(lm, units, read_units(args.perturbed), args.batch_tokens, progress=True)
    else:
        result = evaluate_nll(lm, units, args.batch_tokens, progress=True).to_dict()
    _print(result, args.json)
    return 0


def run_score(args: argparse.Namespace) -> int:
    from speechunits.lm import read_gold, score_pairs

    lm, units = _load(args)
    result = score_pairs(lm, read_gold(args.gold), {u.utt_id: u for u in units}, args.batch_tokens, progress=True)
    _print(result.to_dict(), args.json, {"pairs": result.pairs})
    return 0


def run_asr_eval(args: argparse.Namespace) -> int:
    from speechunits.lm import evaluate_asr, read_transcripts

    lm, units = _load(args)
    result = evaluate_asr(lm, units, read_transcripts(args.text), num_beams=args.beams, batch_size=args.batch_size,
                          no_repeat_ngram_size=args.no_repeat_ngram_size, decoder=args.decoder,
                          ctc_weight=args.ctc_weight)
    _print(result.to_dict(), args.json, {"utterances": result.utterances})
    if not args.json:
        for u in result.utterances[:5]:
            print(f"{u['id']}\tREF: {u['ref']}\n{' ' * len(u['id'])}\tHYP: {u['hyp']}", file=sys.stderr)
    return 0
