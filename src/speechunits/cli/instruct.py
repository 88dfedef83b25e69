"""``speechunits lm instruct`` and ``lm instruct-eval``: instruction-tune a text LLM on discrete or
continuous speech input, and score it (``speechunits.downstream.instruct``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from speechunits.cli._common import add_device, add_tokenizer, open_tokenizer, positive_int


def _add_data(p: argparse.ArgumentParser) -> None:
    add_tokenizer(p, required=True, help="a single-layer tokenizer: its units feed the discrete path, its "
                  "encoder layer's features the continuous path")
    p.add_argument("--tasks", default="asr,pr,kws",
                   help="built-in tasks, comma-separated: asr, pr, kws (default all three; '' for none)")
    p.add_argument("--task", action="append", default=[], metavar="NAME=KIND:TRAIN[:TEST]",
                   help="a task of your own: KIND classify (a 'label' per line), transcribe (a 'text' per line) or pr "
                   "(phones of the 'alignment' a line names); "
                   "a 'prompt' field on a line overrides the task's prompt; repeatable")
    p.add_argument("--work", required=True,
                   help="folder for the built-in data and the prepared units + features (shared by both inputs)")
    p.add_argument("--shared-data", default=None,
                   help="the shared data folder (default $SPEECHUNITS_SHARED_DATA, else ../shared/data if present)")
    p.add_argument("--synth-minutes", type=float, default=30.0, help="synthetic corpus size for asr/pr (default 30)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="keep only utterances at most this long, in every split (an LLM step costs more with longer speech)")
    p.add_argument("--kws-words", type=positive_int, default=30, help="keywords in the built-in kws corpus (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    add_device(p)


def register_verbs(verbs: argparse._SubParsersAction) -> None:
    i = verbs.add_parser(
        "instruct", help="instruction-tune a text LLM on discrete or continuous speech input",
        description="Prepare the tasks' data (one encoder pass: units and features of the tokenizer's layer), "
        "then train SmolLM2 (or any HF causal LM) on 'Task: prompt / Speech: ... / Answer: answer', loss on the "
        "answer, all tasks in one model, early stopping on the dev score. --input discrete: units -> de-dup -> "
        "BPE -> new vocabulary rows; --input continuous: features -> stacked frames -> adapter. Writes the best "
        "model, train_log.jsonl, summary.json and input_stats.json to --out (arXiv 2411.08742).",
        epilog="exit status: 0 done; 2 usage or user error.")
    i.add_argument("--input", required=True, choices=("discrete", "continuous"))
    _add_data(i)
    i.add_argument("--out", required=True)
    i.add_argument("--model", default="smollm2",
                   help="the text LLM: smollm2 (offline GGUF), a .gguf, an HF directory or hub name (default smollm2)")
    i.add_argument("--full", action="store_true", help="fine-tune every weight (default: LoRA + the new rows)")
    i.add_argument("--lora-r", type=positive_int, default=64)
    i.add_argument("--lora-alpha", type=positive_int, default=16)
    i.add_argument("--bpe-size", type=positive_int, default=6000,
                   help="discrete: BPE vocabulary including the k units (default 6000, the paper's)")
    i.add_argument("--stack", type=positive_int, default=2, help="continuous: frames per position (default 2)")
    i.add_argument("--adapter", choices=("linear", "mlp"), default="linear", help="continuous: the adapter")
    i.add_argument("--steps", type=positive_int, default=1000)
    i.add_argument("--batch", type=positive_int, default=8, help="examples per step (default 8)")
    i.add_argument("--lr", type=float, default=2e-4, help="LLM learning rate (default 2e-4)")
    i.add_argument("--adapter-lr", type=float, default=1e-3, help="learning rate of the new speech-input parameters: the continuous adapter, the discrete input's "
                   "new vocabulary rows under LoRA (default 1e-3)")
    i.add_argument("--eval-every", type=positive_int, default=100)
    i.add_argument("--patience", type=int, default=4, help="dev evaluations without progress before stopping (0: never)")
    i.add_argument("--dev-max", type=positive_int, default=40, help="dev examples per task at each evaluation")
    i.add_argument("--threads", type=positive_int, default=None)
    i.add_argument("--no-resume", action="store_true")
    i.add_argument("--allow-download", action="store_true")
    i.set_defaults(func=run_instruct_cli)

    e = verbs.add_parser("instruct-eval", help="score an instruction-tuned model on the tasks' test sets",
                         description="Greedy answers on every test set of the tasks; WER/CER, PER or accuracy with "
                         "95 %% intervals; writes <out>/scores.json and answers.jsonl.")
    e.add_argument("--model", required=True, help="a directory written by lm instruct")
    _add_data(e)
    e.add_argument("--out", default=None, help="write scores.json and answers.jsonl here")
    e.add_argument("--batch-size", type=positive_int, default=8)
    e.add_argument("--max-new-tokens", type=positive_int, default=48)
    e.add_argument("--threads", type=positive_int, default=None)
    e.set_defaults(func=run_instruct_eval_cli)


def _common(args: argparse.Namespace):
    import torch

    from speechunits.downstream.instruct import instruct_tasks

    if args.threads:
        torch.set_num_threads(args.threads)
    shared = args.shared_data or os.environ.get("SPEECHUNITS_SHARED_DATA") or Path.cwd().parent / "shared" / "data"
    shared = shared if Path(shared).is_dir() else None
    names = [t for t in args.tasks.split(",") if t]
    tasks = instruct_tasks(names, args.task, args.work, shared, args.synth_minutes, args.seed,
                           max_seconds=args.max_seconds, kws_words=args.kws_words, progress=not args.no_progress)
    return open_tokenizer(args, device=args.device), tasks


def run_instruct_cli(args: argparse.Namespace) -> int:
    from speechunits.downstream.instruct import InstructSettings, run_instruct

    tokenizer, tasks = _common(args)
    s = InstructSettings(steps=args.steps, batch=args.batch, lr=args.lr, adapter_lr=args.adapter_lr,
                         eval_every=args.eval_every, patience=args.patience, dev_max=args.dev_max, seed=args.seed,
                         device=args.device, progress=not args.no_progress)
    summary = run_instruct(tokenizer, tasks, args.input, args.work, args.out, s, base=args.model,
                           bpe_size=args.bpe_size, stack=args.stack, adapter=args.adapter, full=args.full,
                           lora_r=args.lora_r, lora_alpha=args.lora_alpha, resume=not args.no_resume,
                           allow_download=args.allow_download)
    summary.pop("settings", None)
    print(json.dumps(summary, indent=2))
    return 0


def run_instruct_eval_cli(args: argparse.Namespace) -> int:
    from speechunits.downstream.instruct import run_instruct_eval

    tokenizer, tasks = _common(args)
    report = run_instruct_eval(args.model, tokenizer, tasks, args.work, args.out, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, seed=args.seed, device=args.device,
                               progress=not args.no_progress)
    print(json.dumps(report, indent=2))
    return 0
