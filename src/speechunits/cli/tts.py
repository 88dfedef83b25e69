"""``speechunits tts train|say|eval``: text to speech through a tokenizer's units and a unit vocoder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechunits.cli._common import add_device, add_tokenizer, gather_inputs, open_tokenizer, positive_int

VOICES_HELP = "MBROLA voice whose phonemization to use: us1 (default), us2, us3 (American) or en1 (British)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tts", help="text to speech through tokens: train a text-to-units model, speak text",
                       description="A non-autoregressive (FastSpeech-style) model predicts the units of every frame "
                       "of every tokenizer layer from phones (espeak-ng phonemization; durations learnt from the "
                       "synthetic corpus' exact alignments); a unit vocoder speaks them.")
    ts = p.add_subparsers(dest="tts_command", metavar="COMMAND")
    t = ts.add_parser("train", help="train a text-to-units model for a tokenizer",
                      description="Encode --data (phone-aligned speech: `speechunits corpus synth`) once with the "
                      "tokenizer (<out>/data, resumable), train with early stopping on the dev loss (<out>/training: "
                      "checkpoint, loss.json, loss.png; rerun the same command to resume) and write the model to "
                      "<out> (config.json + model.safetensors, the best dev step) with <out>/training.json.",
                      epilog="exit status: 0 trained; 1 some utterances were left out, the rest trained on (listed; "
                      "<out>/data/*/errors.jsonl); 2 usage or user error.")
    add_tokenizer(t)
    t.add_argument("--data", nargs="+", required=True, help="training manifests (JSONL with alignment fields)")
    t.add_argument("--dev", nargs="+", default=None, help="dev manifests (default: a seeded 10 %% of --data)")
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument("--steps", type=positive_int, default=3000, help="most optimiser steps (default 3000)")
    t.add_argument("--batch", type=positive_int, default=16, help="utterance crops per step (default 16)")
    t.add_argument("--max-frames", type=int, default=250, help="crop length in unit frames (0: whole utterances)")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--dim", type=positive_int, default=192, help="model width (default 192)")
    t.add_argument("--layers", type=positive_int, nargs=2, default=(3, 3), metavar=("ENC", "DEC"),
                   help="transformer blocks in the phone encoder and the frame decoder (default 3 3)")
    t.add_argument("--ffn-dim", type=positive_int, default=384)
    t.add_argument("--kernel", type=positive_int, default=3, help="conv feed-forward kernel (default 3)")
    t.add_argument("--no-speaker", action="store_true", help="no speaker conditioning (one average voice)")
    t.add_argument("--eval-every", type=positive_int, default=100)
    t.add_argument("--patience", type=positive_int, default=5, help="dev evaluations without progress before stopping")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=positive_int, default=200)
    t.add_argument("--no-resume", action="store_true", help="start the training afresh")
    t.add_argument("--no-progress", action="store_true")
    add_device(t)
    t.set_defaults(func=run_train)

    s = ts.add_parser("say", help="speak text with a trained model and a unit vocoder",
                      description="Text -> phones (espeak-ng) -> units -> the vocoder -> a 16 kHz wav. The vocoder "
                      "must be trained for the model's tokenizer (checked).")
    s.add_argument("text", help="what to say")
    s.add_argument("--model", required=True, help="TTS model folder (speechunits tts train --out)")
    s.add_argument("--vocoder", default="default", help="vocoder folder ('default': the bundled one)")
    s.add_argument("--speaker", default=None, metavar="REF.wav", help="speak in this recording's voice")
    s.add_argument("--voice", default="us1", choices=("us1", "us2", "us3", "en1"), help=VOICES_HELP)
    s.add_argument("--speed", type=float, default=1.0, help="predicted durations divided by this")
    s.add_argument("--vocoder-layers", type=int, nargs="+", default=None, metavar="I",
                   help="multi-layer vocoders: the subset of unit layers to speak from (0-based)")
    s.add_argument("--units-out", default=None, metavar="FILE.json", help="also write the predicted units")
    s.add_argument("--out", required=True, help="output wav")
    add_device(s)
    s.set_defaults(func=run_say)

    e = ts.add_parser("eval", help="speak held-out sentences and score them (WER, DNSMOS, speaker similarity)",
                      description="Speak the text of every utterance of --data in the voice of another utterance of "
                      "its speaker, transcribe with Whisper tiny.en (WER/CER against the text; the real recordings' "
                      "WER is the topline), DNSMOS, speaker similarity to the reference. Writes <out>/scores.json "
                      "and <out>/wav/.",
                      epilog="exit status: 0 all spoken; 1 some utterances failed (listed in scores.json); "
                      "2 usage or user error.")
    e.add_argument("--model", required=True)
    e.add_argument("--vocoder", default="default")
    e.add_argument("--data", nargs="+", required=True, help="test manifests (text and speaker fields)")
    e.add_argument("--tokenizer", default=None,
                   help="the model's tokenizer: also score the real recordings' own units through the vocoder "
                   "(the ceiling of a perfect text-to-units model)")
    e.add_argument("--max-utterances", type=positive_int, default=None)
    e.add_argument("--vocoder-layers", type=int, nargs="+", default=None, metavar="I")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--no-progress", action="store_true")
    add_device(e)
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_train(args: argparse.Namespace) -> int:
    from speechunits.cli._common import print_failures
    from speechunits.downstream.tts.train import TTSSettings, train_tts

    utts = gather_inputs(args.data)
    dev = gather_inputs(args.dev) if args.dev else None
    tok = open_tokenizer(args, device=args.device)
    s = TTSSettings(steps=args.steps, batch=args.batch, max_frames=args.max_frames, lr=args.lr, dim=args.dim,
                    encoder_layers=args.layers[0], decoder_layers=args.layers[1], ffn_dim=args.ffn_dim,
                    kernel=args.kernel, speaker=not args.no_speaker, eval_every=args.eval_every,
                    patience=args.patience, seed=args.seed, checkpoint_every=args.checkpoint_every, device=args.device)
    train_tts(tok, utts, args.out, s, dev_utts=dev, source=str(args.tokenizer), progress=not args.no_progress,
              resume=not args.no_resume)
    summary = json.loads((Path(args.out) / "training.json").read_text())
    last = summary["dev_curve"][-1] if summary["dev_curve"] else None
    dev = (f", dev unit accuracy {100 * last['dev_acc']:.1f} %, dev duration error "
           f"{last['dev_duration_abs_frames']:.2f} frames/phone" if last else " (no dev set)")
    print(f"TTS model written to {args.out}: {summary['steps_run']} steps, best dev step {summary['best_step']}, "
          f"loss {summary['first_loss']:.2f} -> {summary['final_loss']:.2f}{dev} "
          f"(curve: {Path(args.out) / 'training' / 'loss.png'})")
    failed = []
    for split in ("train", "dev"):
        f = Path(args.out) / "data" / split / "errors.jsonl"
        if f.exists():
            failed += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return print_failures(f"{len(failed)} utterance(s) left out:", failed) if failed else 0


def _open(args: argparse.Namespace):
    from speechunits.downstream.tts.artifact import TextToSpeech
    from speechunits.vocoder.resynth import resolve
    from speechunits.vocoder.vocoder import UnitVocoder

    tts = TextToSpeech.from_pretrained(args.model, device=args.device)
    voc = UnitVocoder.from_pretrained(resolve(args.vocoder), device=args.device)
    tts.check_vocoder(voc)  # before any text is phonemized or any audio loaded
    return tts, voc


def run_say(args: argparse.Namespace) -> int:
    from speechunits.audio import load
    from speechunits.vocoder.resynth import write_wav

    if args.speed <= 0:
        raise ValueError(f"--speed must be > 0, got {args.speed}")
    tts, voc = _open(args)
    ref = load(args.speaker) if args.speaker else None
    units = tts.units(args.text, speaker_wave=ref, voice=args.voice, speed=args.speed)
    wave = voc.synthesize(units, speaker_wave=ref, layers=args.vocoder_layers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out, wave)
    if args.units_out:
        from speechunits.data.atomic import atomic_write_text

        atomic_write_text(args.units_out, json.dumps({"text": args.text, "units": units.tolist(),
                                                      "layers": tts.tokenizer_info.get("layers")}) + "\n")
    print(f"{out}: {len(wave) / 16000:.2f} s of speech ({len(units)} unit frames)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from speechunits.cli._common import print_failures
    from speechunits.downstream.tts.evaluate import evaluate_tts, headline

    tts, voc = _open(args)
    tok = None
    if args.tokenizer:
        from speechunits.tokenizer import Tokenizer

        tok = Tokenizer.from_pretrained(args.tokenizer, device=args.device)
        tts.check_tokenizer(tok)
    report = evaluate_tts(tts, voc, gather_inputs(args.data), args.out, tokenizer=tok,
                          max_utterances=args.max_utterances, layers=args.vocoder_layers, progress=not args.no_progress)
    for n in report["notes"]:
        print(f"note: {n}")
    print(headline(report))
    print(f"scores: {Path(args.out) / 'scores.json'}")
    if report["failed"]:
        return print_failures(f"{len(report['failed'])} utterance(s) failed:", report["failed"])
    return 0
