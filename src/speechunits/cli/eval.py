"""``speechunits eval`` (every token-quality proxy of one tokenizer, one report) and
``speechunits compare`` (several evaluations in one table, with proxy/score correlations)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechunits.cli._common import (add_device, add_ray_engine, add_tokenizer, check_ray_engine, open_tokenizer,
                                     print_failures)


def register(sub: argparse._SubParsersAction) -> None:
    from speechunits.evaluation.defaults import DEFAULT_DISTORTIONS, SECTIONS  # light: keeps --help fast

    p = sub.add_parser(
        "eval",
        help="evaluate a tokenizer: codebook, PNMI/CNMI, ABX, n-gram, robustness, speed -> one report",
        description="Tokenizes each --data once and writes OUT/metrics.json, OUT/report.md and a "
        "self-contained OUT/report.html: codebook use, entropy and bitrates (frames, de-duplicated, BPE), "
        "PNMI/CNMI/purity and P(phone|code) (with alignments), ABX within/across speakers on units and "
        "features, 4-gram perplexity, unit edit distance under seeded distortions, latency and RTF offline "
        "and streaming. Several --data are evaluated side by side (domain transfer). Metrics whose inputs "
        "are missing are skipped with the reason. Utterances that fail (undecodable audio, a broken "
        "alignment, an encoder error), in --data or --train-data, are left out and listed with their reason "
        "in OUT/errors.jsonl (and metrics.json); silent or clipped audio is kept and listed in OUT/warnings.jsonl. "
        "Definitions: docs/evaluation.md.",
        epilog="exit status: 0 every utterance evaluated; 1 some failed and were left out (see "
        "OUT/errors.jsonl); 2 usage or user error.",
    )
    add_tokenizer(p)
    p.add_argument("--data", action="append", required=True,
                   help="manifest (.jsonl/.tsv) or folder; repeat for several datasets")
    p.add_argument("--out", default="eval", help="output directory (default: ./eval)")
    p.add_argument("--name", default=None, help="name of this tokenizer in reports (default: its directory name)")
    p.add_argument("--alignments", choices=("auto", "none"), default="auto",
                   help="use the alignments the manifest names (auto) or ignore them")
    p.add_argument("--max-utterances", type=int, default=None, help="seeded random subset per dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of every subset, split, sample and distortion")
    p.add_argument("--train-units", default=None,
                   help="unit file of this tokenizer (.jsonl/.parquet/.km) to train the n-gram LM on")
    p.add_argument("--train-data", default=None, help="audio manifest/folder to tokenize and train the n-gram LM on "
                   "(default: 80/20 split of each dataset by utterance)")
    p.add_argument("--distortions", nargs="*", default=list(DEFAULT_DISTORTIONS),
                   help=f"robustness distortions (default: {' '.join(DEFAULT_DISTORTIONS)}); also identity, "
                   "pink_XdB, white_XdB, babble_XdB, reverb_Xs, pitch_[+-]Xst, stretch_X, speaker")
    p.add_argument("--robustness-seconds", type=float, default=600.0,
                   help="audio per dataset the distortions run on (seeded subset; default 600, 0 = all)")
    p.add_argument("--speed-seconds", type=float, default=300.0, help="audio timed offline (default 300, 0 = all)")
    p.add_argument("--stream-seconds", type=float, default=60.0, help="audio streamed (default 60, 0 = all)")
    p.add_argument("--chunk", type=float, default=1.0, help="streaming T_chunk in seconds (1.0)")
    p.add_argument("--shift", type=float, default=0.4, help="streaming T_shift in seconds (0.4)")
    p.add_argument("--max-cells-per-pair", type=int, default=50,
                   help="ABX cells per ordered phone pair (default 50, 0 = all)")
    p.add_argument("--no-abx-features", action="store_true", help="ABX on units only (no continuous features)")
    p.add_argument("--abx-frames", choices=("librilight", "window"), default="librilight",
                   help="where ABX places frame i when it cuts items: librilight (default: at 20 i + 10 ms, half "
                   "the hop, as libri-light, ABXpy and fastabx) or window (the middle of the encoder's window: "
                   "20 i + 12.5 ms for 25 ms windows, 20 i for Whisper)")
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    p.add_argument("--vocoder", default=None, metavar="DIR",
                   help="a vocoder for this tokenizer (or 'default'): adds the resynthesis section (WER, dWER, "
                   "speaker similarity, DNSMOS, MCD, F0, copy-synthesis topline, voice conversion, audio players)")
    p.add_argument("--resynthesis-seconds", type=float, default=120.0,
                   help="audio per dataset resynthesized and scored (default 120, 0 = all)")
    p.add_argument("--resynthesis-examples", type=int, default=3, help="WAV triples kept for the report (default 3)")
    p.add_argument("--vocoder-layers", type=int, nargs="+", default=None, metavar="I",
                   help="a multi-layer vocoder: speak only these of its unit layers (0-based; layer dropout "
                   "trained it for any subset)")
    p.add_argument("--no-plots", action="store_true", help="no plots (faster; the reports then have tables only)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    add_device(p)
    add_ray_engine(p, "run the robustness section (distortions + tokenization) on Ray Data (the ray extra: "
                   "pip install 'speechunits[ray]'); the same numbers, the other sections stay in this process",
                   "local: this process (default); ray: the robustness work items in a pool of actors",
                   "GPUs per actor (default 0); >0 puts the actors' model on cuda unless --device names one")
    p.set_defaults(func=run_eval)

    c = sub.add_parser(
        "compare",
        help="put several `speechunits eval` outputs in one table, with proxy/score correlations",
        description="Reads DIR/metrics.json of each evaluation and writes OUT/compare.{json,md,html} with "
        "the headline proxies side by side and a bar plot per proxy. With --scores (JSON "
        "{tokenizer_name: {score_name: value}}) it adds the Pearson correlation matrix of proxies and "
        "scores across tokenizers (lower-is-better metrics negated, as in DC-Spin) as a table and heat map.",
    )
    c.add_argument("evals", nargs="+", metavar="DIR", help="evaluation directories")
    c.add_argument("--out", required=True, help="output directory")
    c.add_argument("--scores", default=None, help="downstream scores JSON {tokenizer: {score: value}}, or the "
                   "benchmark.json of `speechunits benchmark` (its all-layer probes' scores)")
    c.add_argument("--dataset", default=None, help="compare on this dataset only (its name in the reports)")
    c.add_argument("--lower-is-better", nargs="*", default=[], help="score names where lower is better")
    c.add_argument("--higher-is-better", nargs="*", default=[],
                   help="score names where higher is better despite a name like 'wer' or 'error'")
    c.set_defaults(func=run_compare)


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from speechunits.batch import write_records
    from speechunits.evaluation import AbxSettings, EvalConfig, evaluate_and_report

    engine = None
    if args.engine == "ray":
        if not check_ray_engine(args):
            return 2
        from speechunits.distributed.ray_eval import RayRobustness

        # The actors rebuild the tokenizer from the same flags; --device cpu (the default) with GPUs
        # means cuda there (this process keeps --device for the other sections).
        engine = RayRobustness(args.tokenizer, address=args.ray_address, workers=args.workers,
                               gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                               device=None if args.device == "cpu" and args.gpus_per_worker > 0 else args.device,
                               encoder=args.encoder, allow_unhashed=args.allow_unhashed)
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = open_tokenizer(args, device=args.device)
    cfg = EvalConfig(
        seed=args.seed, max_utterances=args.max_utterances, alignments=args.alignments,
        distortions=args.distortions, robustness_seconds=args.robustness_seconds or None,
        speed_seconds=args.speed_seconds or None, stream_seconds=args.stream_seconds or None,
        chunk_s=args.chunk, shift_s=args.shift, train_units=args.train_units, train_data=args.train_data,
        abx=AbxSettings(max_cells_per_pair=args.max_cells_per_pair or None, frames=args.abx_frames),
        abx_features=not args.no_abx_features, skip=args.skip, plots=not args.no_plots,
        vocoder=args.vocoder, resynthesis_seconds=args.resynthesis_seconds or None,
        resynthesis_examples=args.resynthesis_examples, vocoder_layers=args.vocoder_layers,
        progress=not args.no_progress,
    )
    name = args.name or (Path(args.tokenizer).name if args.tokenizer != "default" else "default")
    if engine is None:
        m = evaluate_and_report(tok, args.data, args.out, cfg, name=name, tokenizer_path=str(args.tokenizer))
    else:  # evaluate_and_report, with the engine
        from speechunits.evaluation.report import write_report
        from speechunits.evaluation.run import evaluate

        m = evaluate(tok, args.data, cfg, out=args.out, name=name, tokenizer_path=str(args.tokenizer),
                     robustness_engine=engine)
        write_report(m, args.out)
    for row in m["summary"]:
        shown = {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
        print(f"{row['dataset']} layer {row['layer']}: {json.dumps(shown)}")
    print(f"wrote {Path(args.out) / 'metrics.json'}, report.md, report.html")
    data = [(d["data"]["name"], d["data"]) for d in m["datasets"]]
    if m.get("lm_train_data"):  # --train-data: its failures count as the evaluated data's do
        data.append((f"{m['lm_train_data']['name']} (--train-data)", m["lm_train_data"]))
    failed = [{"dataset": n, **f} for n, d in data for f in d.get("failed", [])]
    warned = [{"dataset": n, **w} for n, d in data for w in d.get("warnings", [])]
    out = Path(args.out)
    write_records(out / "errors.jsonl", failed)
    write_records(out / "warnings.jsonl", warned)
    if warned:
        print(f"{len(warned)} audio warning(s) (silent or clipped audio, still evaluated): see {out / 'warnings.jsonl'}")
    if failed:
        return print_failures(f"{len(failed)} utterance(s) failed and were left out: see {out / 'errors.jsonl'}",
                              failed, key="dataset")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from speechunits.evaluation.compare import compare

    scores = None
    if args.scores:
        try:
            scores = json.loads(Path(args.scores).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{args.scores}: not valid JSON ({e})") from None
        if isinstance(scores, dict) and isinstance(scores.get("rows"), list) and "tokenizers" in scores:
            from speechunits.downstream.benchmark import compare_scores  # a `speechunits benchmark` table

            scores, lower, higher = compare_scores(scores)
            args.lower_is_better, args.higher_is_better = args.lower_is_better + lower, args.higher_is_better + higher
        if not isinstance(scores, dict) or not all(isinstance(v, dict) for v in scores.values()):
            raise ValueError(f"{args.scores}: expected {{tokenizer: {{score: value}}}} or a benchmark.json")
    res = compare(args.evals, args.out, scores=scores, dataset=args.dataset,
                  lower_is_better=args.lower_is_better, higher_is_better=args.higher_is_better)
    print(f"{len(res['rows'])} rows: {', '.join(r['label'] for r in res['rows'])}")
    if res.get("unmatched_scores"):
        print(f"scores for unknown tokenizers (ignored): {', '.join(res['unmatched_scores'])}")
    print(f"wrote {Path(args.out) / 'compare.md'}, compare.html, compare.json")
    return 0
