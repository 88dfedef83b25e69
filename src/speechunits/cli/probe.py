"""``speechunits probe train|eval`` and ``speechunits benchmark``: downstream tasks on tokens."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from speechunits.cli._common import add_device, add_tokenizer, gather_inputs, open_tokenizer, positive_int

TASK_HELP = ("asr (CTC characters, text field), pr (CTC phones, alignment), sid (speaker field), kws (label "
             "field), classify (label field), transcribe (text field), se (enhancement: noisy -> clean units)")


def _add_budget(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=positive_int, default=steps, help=f"most optimiser steps (default {steps})")
    p.add_argument("--batch", type=positive_int, default=16, help="utterances (or crops) per step (default 16)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dim", type=positive_int, default=256, help="front-end width (default 256)")
    p.add_argument("--hidden", type=positive_int, default=256, help="BiLSTM / pooling width (default 256)")
    p.add_argument("--lstm-layers", type=positive_int, default=2, help="transcription: BiLSTM layers (default 2)")
    p.add_argument("--downsample", type=positive_int, default=1,
                   help="transcription: stack this many frames before the BiLSTM (2 halves its CPU time)")
    p.add_argument("--eval-every", type=positive_int, default=100, help="steps between dev evaluations")
    p.add_argument("--patience", type=positive_int, default=6, help="dev evaluations without progress before stopping")
    p.add_argument("--beam", type=int, default=8, help="CTC beam width for the test scores (0/1: greedy only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    add_device(p)


def _settings(args: argparse.Namespace, **changes):
    from speechunits.downstream.train import ProbeSettings

    return ProbeSettings(steps=args.steps, batch=args.batch, lr=args.lr, dim=args.dim, hidden=args.hidden,
                         lstm_layers=args.lstm_layers, downsample=args.downsample, eval_every=args.eval_every, patience=args.patience, seed=args.seed, device=args.device,
                         **changes)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="train and score a downstream probe on a tokenizer's units",
                       description="Downstream probes (arXiv 2406.10735, DASB): units of every tokenizer layer -> one "
                       "embedding table per layer -> a softmax attention over layers per frame -> a task head "
                       "(BiLSTM + CTC for transcription, attentive pooling + linear for classification).")
    ps = p.add_subparsers(dest="probe_command", metavar="COMMAND")
    t = ps.add_parser("train", help="train a probe and score it on test sets",
                      description="Encode --train (and --dev, --test) once with the tokenizer (<out>/data, resumable), "
                      "train the probe with early stopping on the dev score (<out>/training: checkpoint, loss curve), "
                      "write it to <out> (config.json + model.safetensors) and its scores to <out>/results.json.",
                      epilog="exit status: 0 done; 1 some utterances failed or lacked their label and were left out "
                      "(listed; see <out>/results.json); 2 usage or user error.")
    t.add_argument("--task", required=True, help=TASK_HELP)
    add_tokenizer(t)
    t.add_argument("--train", nargs="+", required=True, help="training audio: manifests or folders")
    t.add_argument("--dev", nargs="+", default=None, help="dev data (default: 10 %% of --train held out)")
    t.add_argument("--test", nargs="+", default=[], help="test manifests or folders (each scored separately)")
    t.add_argument("--split-within", type=float, default=None, metavar="F",
                   help="train on the first F of every utterance and test on the rest (speaker id with one "
                   "utterance per speaker, e.g. 0.7)")
    t.add_argument("--input", choices=("discrete", "continuous"), default="discrete",
                   help="discrete units (default) or the continuous features of the same layers")
    t.add_argument("--layers", type=int, nargs="+", default=None, metavar="I",
                   help="positions in the tokenizer's layer list to use (default: all, with attention)")
    t.add_argument("--init-centroids", action="store_true",
                   help="start the embedding tables from the k-means centroids (k-means tokenizers)")
    t.add_argument("--crop", type=float, default=3.0, help="classification: training crop in seconds (0: whole)")
    t.add_argument("--vocoder", default=None, help="se: speak clean / noisy / enhanced units with this vocoder "
                   "and score them (dWER, speaker similarity, DNSMOS)")
    t.add_argument("--vocoder-utterances", type=positive_int, default=10, help="se: test utterances spoken (default 10)")
    t.add_argument("--out", required=True, help="probe folder")
    t.add_argument("--no-resume", action="store_true")
    _add_budget(t, 2000)
    t.set_defaults(func=run_train)

    e = ps.add_parser("eval", help="score a trained probe on data",
                      description="Encode the data with the probe's tokenizer (checked against the one it was "
                      "trained on) and print its scores as JSON.",
                      epilog="exit status: 0 done; 1 some utterances failed or lacked their label and were left out "
                      "(listed); 2 usage or user error.")
    e.add_argument("probe", help="probe folder (speechunits probe train --out)")
    add_tokenizer(e, required=True)
    e.add_argument("--data", nargs="+", required=True, help="manifests or folders")
    e.add_argument("--work", required=True, help="folder for the encoded data (reused when rerun)")
    e.add_argument("--region", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                   help="score this part of every utterance (e.g. 0.7 1.0 after --split-within 0.7)")
    e.add_argument("--beam", type=int, default=8)
    e.add_argument("--no-progress", action="store_true")
    add_device(e)
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    b = sub.add_parser("benchmark", help="every downstream task for every tokenizer: one table",
                       description="Train and score probes for each tokenizer on each task with the same budget and "
                       "seeds: all layers with attention, each single layer, and the continuous features of the "
                       "same layers. Built-in tasks use the synthetic corpora (synthesized under <out>/data) and "
                       "../shared/data when present. Writes <out>/benchmark.json, .md and .html (with the "
                       "attention weights per task). Finished probes are kept: rerunning resumes.",
                       epilog="exit status: 0 every probe ran on all its data; 1 some probes failed, or some "
                       "utterances were left out (listed); 2 usage or user error.")
    b.add_argument("--tokenizer", nargs="+", required=True, metavar="T", help="tokenizer folders ('default': the bundled)")
    b.add_argument("--tasks", default="asr,pr,sid,kws", help="built-in tasks, comma-separated: asr, pr, sid, kws, se, "
                   "tts (default asr,pr,sid,kws)")
    b.add_argument("--vocoder", action="append", default=[], metavar="TOKENIZER=DIR",
                   help="se, tts: a vocoder for the tokenizer of that name (its folder name), to speak the enhanced "
                   "or synthesized units")
    b.add_argument("--task", action="append", default=[], metavar="NAME=KIND:TRAIN[:TEST]",
                   help="a user task: KIND classify (label field), transcribe (text field) or pr (phones of the alignment field); repeatable")
    b.add_argument("--probes", default="all,single,continuous",
                   help="which probes: all (layer attention), single (each layer), continuous (default: all three)")
    b.add_argument("--shared-data", default=None, help="the shared data folder (default $SPEECHUNITS_SHARED_DATA, else ../shared/data if present)")
    b.add_argument("--synth-minutes", type=float, default=30.0, help="synthetic corpus size for asr/pr (default 30)")
    b.add_argument("--out", required=True, help="benchmark folder")
    _add_budget(b, 1000)
    b.set_defaults(func=run_benchmark)


def run_train(args: argparse.Namespace) -> int:
    from speechunits.downstream.run import run_probe

    tok = open_tokenizer(args, device=args.device)
    s = _settings(args, input=args.input, columns=args.layers, init_centroids=args.init_centroids,
                  crop_seconds=args.crop)
    tests = {Path(x).name: gather_inputs([x]) for x in args.test}
    voc = None
    if args.vocoder:
        from speechunits.vocoder.vocoder import UnitVocoder

        voc = UnitVocoder.from_pretrained(args.vocoder, tokenizer=tok, device=args.device)
    res = run_probe(args.task, tok, gather_inputs(args.train), args.out, s, data_dir=Path(args.out) / "data",
                    vocoder=voc, vocoder_utterances=args.vocoder_utterances,
                    train_source=Path(args.train[0]).name, dev_utts=gather_inputs(args.dev) if args.dev else None,
                    tests=tests, split_within=args.split_within, beam=args.beam, tokenizer_source=str(args.tokenizer),
                    progress=not args.no_progress, resume=not args.no_resume)
    if not res:  # torchrun: a rank other than 0 (rank 0 scores and reports)
        return 0
    _print_scores(res["tests"])
    print(f"probe written to {args.out} (scores: {Path(args.out) / 'results.json'})")
    return _failures(res["failed"])


def _failures(failed: list[dict]) -> int:
    from speechunits.cli._common import print_failures

    if not failed:
        return 0
    return print_failures(f"{len(failed)} utterance(s) left out (failed audio or missing label):", failed, key="dataset")


def _print_scores(tests: dict) -> None:
    from speechunits.downstream.train import headline

    for name, r in tests.items():
        metric = ("accuracy" if "accuracy" in r else "unit accuracy" if "unit_accuracy" in r
                  else "per" if "per_greedy" in r else "wer")
        weights = " ".join(f"{w:.2f}" for w in r["layer_weights"])
        print(f"{name}: {metric} {100 * headline(r):.1f} % on {r['segments']} segments; layer weights {weights}")


def run_eval(args: argparse.Namespace) -> int:
    from speechunits.downstream.model import ProbeModel
    from speechunits.downstream.prepare import prepare_task_data, tokenizer_fingerprint
    from speechunits.downstream.run import data_folder, store_errors
    from speechunits.downstream.train import evaluate, segments

    model = ProbeModel.from_pretrained(args.probe, device=args.device)
    tok = open_tokenizer(args, device=args.device)
    want = model.config.tokenizer.get("fingerprint")
    if tokenizer_fingerprint(tok) != want:
        raise ValueError(f"{args.tokenizer}: not the tokenizer this probe was trained on ({args.probe} records {want})")
    out, failed = {}, []
    for src in args.data:
        utts = gather_inputs([src])
        store = prepare_task_data(data_folder(args.work, model.config.task, utts, src), utts, tok, model.config.task,
                                  features=model.config.input == "continuous", progress=not args.no_progress)
        out[Path(src).name] = evaluate(model, store, segments(store, tuple(args.region)), beam=args.beam,
                                       device=args.device)
        failed += [{"dataset": Path(src).name, **e} for e in store_errors(store)]
    print(json.dumps(out, indent=2))
    return _failures(failed)


def run_benchmark(args: argparse.Namespace) -> int:
    from speechunits.cli._common import print_failures
    from speechunits.downstream.benchmark import builtin_tasks, run_benchmark as bench, user_task
    from speechunits.tokenizer import Tokenizer

    names = [t for t in args.tasks.split(",") if t] if args.tasks else []
    shared = args.shared_data or os.environ.get("SPEECHUNITS_SHARED_DATA") or Path.cwd().parent / "shared" / "data"
    shared = shared if Path(shared).is_dir() else None
    tasks, notes = builtin_tasks(names, Path(args.out) / "data", shared, synth_minutes=args.synth_minutes,
                                 seed=args.seed, progress=not args.no_progress)
    tasks += [user_task(spec) for spec in args.task]
    if not tasks:
        raise ValueError("no task to run: give --tasks and/or --task")
    toks = {}
    for t in args.tokenizer:
        name = "default" if t == "default" else Path(t).resolve().name
        if name == "tokenizer":  # a run folder's tokenizer/: name it by the run
            name = Path(t).resolve().parent.name
        toks[name] = (Tokenizer.from_pretrained(t, device=args.device), t)
    vocs = {}
    for spec in args.vocoder:
        name, _, path = spec.partition("=")
        if name not in toks or not path:
            raise ValueError(f"--vocoder {spec!r}: expected TOKENIZER=DIR with TOKENIZER one of {sorted(toks)}")
        from speechunits.vocoder.vocoder import UnitVocoder

        vocs[name] = UnitVocoder.from_pretrained(path, tokenizer=toks[name][0], device=args.device)
    s = _settings(args)
    settings = {td.name: s for td in tasks}
    table = bench(toks, tasks, args.out, settings, which=[x for x in args.probes.split(",") if x], beam=args.beam,
                  vocoders=vocs, progress=not args.no_progress)
    for n in notes:
        print(f"note: {n}")
    print((Path(args.out) / "benchmark.md").read_text())
    if table["failures"]:
        return print_failures(f"{len(table['failures'])} probe(s) failed:",
                              [{"id": f"{f['tokenizer']}/{f['task']}/{f['variant']}", "reason": f["reason"]}
                               for f in table["failures"]])
    return _failures(table.get("left_out", []))
