"""``speechunits stream``: play a file as a stream and print units as they become final."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from speechunits.cli._common import add_device, add_tokenizer, open_tokenizer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="tokenize a file chunk by chunk, printing units as they become final",
        description="Feeds FILE to the chunk-wise streaming tokenizer T_shift seconds at a time "
        "(the context grows from the start, optionally capped) and prints each batch of final "
        "units with its time. At the end it prints the latency per shift and the agreement with "
        "offline tokenization (unit edit distance).",
    )
    p.add_argument("file", help="audio file")
    add_tokenizer(p)
    p.add_argument("--chunk", type=float, default=1.0, help="T_chunk, seconds (1.0)")
    p.add_argument("--shift", type=float, default=0.4, help="T_shift, seconds (0.4)")
    p.add_argument("--max-context", type=float, default=None, help="cap on the context, seconds (default: grows)")
    p.add_argument("--realtime", action="store_true", help="feed the audio at real-time pace")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from speechunits.audio import load
    from speechunits.tokens import stream_agreement

    tok = open_tokenizer(args, device=args.device)
    wave = load(args.file)
    sr = tok.encoder.sample_rate
    streamer = tok.stream(chunk_s=args.chunk, shift_s=args.shift, max_context_s=args.max_context)
    step = int(round(args.shift * sr))
    emitted: list[np.ndarray] = []
    start = time.perf_counter()

    def show(t_audio: float, units: np.ndarray) -> None:
        if len(units) == 0:
            return
        emitted.append(units)
        if args.json:
            print(json.dumps({"t": round(t_audio, 3), "units": units.tolist()}), flush=True)
        else:
            print(f"{t_audio:7.2f}s  +{len(units):3d}  {' '.join(map(str, units.tolist()))}", flush=True)

    for pos in range(0, len(wave), step):
        piece = wave[pos : pos + step]
        if args.realtime:
            time.sleep(max(0.0, (pos + len(piece)) / sr - (time.perf_counter() - start)))
        show((pos + len(piece)) / sr, streamer.push(piece))
    show(len(wave) / sr, streamer.flush())
    streamed = np.concatenate(emitted) if emitted else np.zeros(0, np.int64)
    offline = tok.frame_units([wave])[0]
    summary = {"latency": streamer.latency_report(), "agreement": stream_agreement(streamed, offline)}
    print(json.dumps(summary, indent=None if args.json else 2, default=float))
    return 0
