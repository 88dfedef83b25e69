"""Benchmark: LM training throughput and memory (packed vs padded), and pair-scoring speed.

Synthetic de-duplicated units (k = 500): a sparse first-order Markov chain (each unit has 16
successors with Zipf probabilities), utterances 2-20 s long at ~25 de-duplicated units a second
(50-500 tokens), the length range of LibriSpeech utterances after HuBERT-style de-duplication.

Training cases, each in a fresh process so that the peak resident memory
(``resource.getrusage``, includes loading the model) belongs to that case alone:

- ``unit-lm:small`` (10.6M parameters, from scratch) and ``smollm2`` (SmolLM2-135M GGUF +
  expanded vocabulary + LoRA r64 on q/k/v/o/gate/up/down + the new rows), micro-batches of
  4 x 512 tokens, through :func:`speechunits.lm.train` (AdamW, clipping, checkpoint at the end);
- packed (rows of 512 holding several utterances) against padded (one utterance a row,
  length-grouped, at most 2048 padded tokens a batch), and against the baseline the issue names:
  ``transformers.Trainer`` on the same model and examples, unpacked, one utterance a row, padded
  to the longest of a random batch of 4 (about the same real tokens a step).

Tokens/s counts real (non-padding) tokens; the first step (warm-up) is left out. The non-padding
share is measured on the whole epoch plan. Pair scoring: 100 pairs of short utterances
(sWUGGY-like, 10-40 units) scored by ``unit-lm:tiny`` and ``unit-lm:small`` in length-sorted padded batches against one
utterance at a time; the scores must agree and the accuracies be equal.

Run: ``python benchmarks/bench_lm.py [--steps 8] [--smollm2-steps 3] [--no-smollm2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def markov_units(n: int, k: int, lo: int, hi: int, seed: int) -> list[np.ndarray]:
    """``n`` de-duplicated unit sequences of ``lo``..``hi`` units (never a unit twice in a row)."""
    rng = np.random.default_rng(seed)
    succ = (np.arange(k)[:, None] + rng.integers(1, k, size=(k, 16))) % k
    cdf = np.cumsum(1.0 / np.arange(1, 17) ** 1.2)
    cdf /= cdf[-1]
    out = []
    for _ in range(n):
        length = int(rng.integers(lo, hi + 1))
        seq = np.empty(length, dtype=np.int64)
        cur = int(rng.integers(0, k))
        for t in range(length):
            seq[t] = cur
            cur = int(succ[cur, min(int(np.searchsorted(cdf, rng.random())), 15)])
        out.append(seq)
    return out


def _model_and_examples(model: str, seed: int):
    """The case's model (and its load time) and the training examples every case shares:
    600 Markov utterances of 50-500 units, cut to rows of at most 512 tokens."""
    from speechunits.lm import create_lm, lm_examples
    from speechunits.lm.packing import split_long
    from speechunits.tokens import Units

    t0 = time.perf_counter()
    lm = create_lm(model, k=500, seed=seed)
    load_s = time.perf_counter() - t0
    units = [Units(s, 25.0, durations=np.ones(len(s), dtype=np.int64), utt_id=str(i))
             for i, s in enumerate(markov_units(600, 500, 50, 500, seed))]
    return lm, load_s, split_long(lm_examples(lm, units), 512)


def run_train_case(model: str, pack: bool, steps: int, seed: int = 0) -> dict:
    """One training case (runs inside its own process)."""
    import torch

    from speechunits.lm import TrainConfig, plan_batches, train

    lm, load_s, examples = _model_and_examples(model, seed)
    lengths = np.array([len(e) for e in examples])
    plan = plan_batches(lengths, 512, 2048, pack, seed)
    slots = sum(len(b) * (512 if pack else max(sum(lengths[i] for i in r) for r in b)) for b in plan)
    cfg = TrainConfig(steps=steps, batch_tokens=2048, max_len=512, pack=pack, seed=seed, log_every=1,
                      save_every=0, progress=False)
    with tempfile.TemporaryDirectory() as out:
        res = train(lm, examples, out, cfg)
        log = [json.loads(x) for x in (Path(out) / "train_log.jsonl").read_text().splitlines()]
    tps = [r["tokens_per_s"] for r in log if "tokens_per_s" in r][1:]  # drop the warm-up step
    trainable = sum(p.numel() for p in lm.model.parameters() if p.requires_grad)
    return {
        "model": model, "pack": pack, "steps": steps, "load_s": round(load_s, 1),
        "trainable_params": trainable, "total_params": sum(p.numel() for p in lm.model.parameters()),
        "tokens_per_s": round(float(np.mean(tps)), 1) if tps else None,
        "s_per_step": round(float(2048 / np.mean(tps)), 3) if tps and pack else None,
        "non_padding_share": round(float(lengths.sum() / slots), 4),
        "final_loss": round(res.losses[-1], 4),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "torch_threads": torch.get_num_threads(),
    }


def run_hf_trainer_case(model: str, steps: int, seed: int = 0) -> dict:
    """The baseline: the same model and examples through ``transformers.Trainer``, one utterance
    per row, padded to the longest in a random batch of 4 (~2048 real tokens a batch at the
    units' mean length), what a user gets from the HF examples without packing."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    lm, load_s, examples = _model_and_examples(model, seed)
    rows = [{"input_ids": e.ids.tolist()} for e in examples]
    pad = lm.pad_id
    real: list[int] = []

    def collate(batch: list[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad, dtype=torch.long)
        att = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            att[i, : len(b["input_ids"])] = 1
        real.append(int(att.sum()))
        return {"input_ids": ids, "attention_mask": att, "labels": ids.masked_fill(att == 0, -100)}

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=4, max_steps=steps,
                                  learning_rate=5e-4, lr_scheduler_type="cosine", warmup_steps=1,
                                  logging_steps=1, save_strategy="no", report_to=[], seed=seed,
                                  use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
        Trainer(model=lm.model, args=targs, train_dataset=rows, data_collator=collate,
                callbacks=[Clock()]).train()
    # the collator runs once per step, before the step's clock starts; skip the warm-up step
    tps = [r / t for r, t in zip(real[1:], times[1:])]
    return {"model": model, "trainer": "transformers.Trainer (padded, unpacked)", "steps": steps,
            "load_s": round(load_s, 1), "tokens_per_s": round(float(np.mean(tps)), 1) if tps else None,
            "non_padding_share": None, "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "torch_threads": torch.get_num_threads()}


def run_scoring_case(model: str, n_pairs: int, seed: int = 0) -> dict:
    """Pair scoring, batched vs one at a time (runs inside its own process)."""
    import io

    import torch

    from speechunits.lm import create_lm, read_gold, score_pairs
    from speechunits.tokens import Units

    lm = create_lm(model, k=500, seed=seed)
    seqs = markov_units(n_pairs, 500, 10, 40, seed)
    rng = np.random.default_rng(seed)
    units, gold = {}, ["id,filename,correct"]
    for i, s in enumerate(seqs):
        bad = rng.permutation(s)
        units[f"w{i}"] = Units(s, 25.0, durations=np.ones(len(s), dtype=np.int64), utt_id=f"w{i}")
        units[f"n{i}"] = Units(bad, 25.0, durations=np.ones(len(s), dtype=np.int64), utt_id=f"n{i}")
        gold += [f"{i},w{i}.wav,1", f"{i},n{i}.wav,0"]
    pairs = read_gold(io.StringIO("\n".join(gold)))
    score_pairs(lm, pairs[:8], units)  # warm-up
    t0 = time.perf_counter()
    batched = score_pairs(lm, pairs, units, batch_tokens=4096)
    t_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = score_pairs(lm, pairs, units, batch_tokens=0)
    t_s = time.perf_counter() - t0
    key = ("logprob_correct", "logprob_incorrect")
    lp_b = np.array([[p[k] for k in key] for p in batched.pairs])
    lp_s = np.array([[p[k] for k in key] for p in single.pairs])
    diff = float(np.abs(lp_b - lp_s).max())
    return {
        "model": model, "pairs": n_pairs, "batched_pairs_per_s": round(n_pairs / t_b, 1),
        "single_pairs_per_s": round(n_pairs / t_s, 1), "speedup": round(t_s / t_b, 1),
        "max_abs_logprob_diff": diff, "torch_threads": torch.get_num_threads(), "all_scores_bitwise_equal": bool(np.array_equal(lp_b, lp_s)),
        "accuracy_equal": batched.accuracy_sum == single.accuracy_sum and batched.accuracy_mean == single.accuracy_mean,
    }


def subprocess_case(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="training steps for the unit LM cases")
    ap.add_argument("--smollm2-steps", type=int, default=3, help="training steps for the SmolLM2 cases")
    ap.add_argument("--no-smollm2", action="store_true")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per case (default: torch's)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--pack", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.case == "train":
        print(json.dumps(run_train_case(args.model, bool(args.pack), args.steps)))
        return
    if args.case == "hf":
        print(json.dumps(run_hf_trainer_case(args.model, args.steps)))
        return
    if args.case == "score":
        print(json.dumps(run_scoring_case(args.model, args.pairs)))
        return

    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
                 "load_avg_start": os.getloadavg(), "args": vars(args), "train": []}
    cases = [("unit-lm:small", args.steps)] + ([] if args.no_smollm2 else [("smollm2", args.smollm2_steps)])
    threads = ["--threads", str(args.threads)] if args.threads else []
    for model, steps in cases:
        for pack in (1, 0):
            r = subprocess_case(["--case", "train", "--model", model, "--pack", str(pack), "--steps", str(steps),
                                 *threads])
            print(json.dumps(r), file=sys.stderr)
            res["train"].append(r)
        r = subprocess_case(["--case", "hf", "--model", model, "--steps", str(steps), *threads])
        print(json.dumps(r), file=sys.stderr)
        res["train"].append(r)
    res["scoring"] = [subprocess_case(["--case", "score", "--model", m, "--pairs", str(args.pairs), *threads])
                      for m in ("unit-lm:tiny", "unit-lm:small")]
    res["load_avg_end"] = os.getloadavg()
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
