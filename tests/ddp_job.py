"""A training job for tests/test_ddp.py, run as one process or under ``torchrun``.

    python tests/ddp_job.py JOB.json              # one process
    torchrun --nproc-per-node 2 tests/ddp_job.py JOB.json

JOB.json: {"kind": "unit-lm" | "spin" | "hubert" | "probe" | "vocoder", "out": ..., ...}; the job writes its loss history to
``<out>/history.rank<RANK>.json``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch


def unit_lm(job: dict) -> list[float]:
    from speechunits.lm import TrainConfig, create_lm, train
    from speechunits.lm.packing import Example

    lm = create_lm("unit-lm:tiny", k=job["k"], seed=0)
    rng = np.random.default_rng(0)
    # a learnable stream: repeated motifs with noise
    motifs = [rng.integers(0, job["k"], 6) for _ in range(4)]
    seqs = [np.concatenate([motifs[int(i)] for i in rng.integers(0, 4, int(rng.integers(3, 8)))]) for _ in range(40)]
    examples = [Example(lm.encode_units(s)) for s in seqs]
    cfg = TrainConfig(steps=job["steps"], batch_tokens=64, max_len=32, grad_accum=job["grad_accum"], lr=3e-3,
                      warmup_steps=1, save_every=job.get("save_every", 0), progress=False, log_every=1)
    r = train(lm, examples, job["out"], cfg, resume=job.get("resume", True), callback=_stopper(job))
    return r.losses


def _stopper(job: dict):
    def cb(step: int, loss: float) -> None:
        if job.get("die_after") and step >= job["die_after"]:
            os._exit(3)  # a killed job: no clean-up at all
    return cb


def spin(job: dict) -> list[float]:
    from speechunits.quantizers.dcspin import train_spin

    r = train_spin(job["encoder"], job["corpus"], job["out"], codebooks=tuple(job["codebooks"]), steps=job["steps"],
                   trainable_layers=2, batch_size=job["batch_size"], crop_seconds=1.0, lr=1e-3, warmup=1, seed=7,
                   mask_prob=0.0, progress=False, checkpoint_every=0, stop_at=job.get("stop_at"))
    return [h["loss"] for h in r.history]


def hubert(job: dict) -> list[float]:
    from speechunits.encoders.pretrain import pretrain_hubert

    # no dropout: a tensor-wide random draw is the one thing that differs per process
    r = pretrain_hubert(job["corpus"], job["targets"], job["out"], preset="tiny", steps=job["steps"],
                        batch_size=job["batch_size"], crop_seconds=1.0, lr=2e-3, warmup=1, seed=3, augment=0.5,
                        unmasked_weight=0.5, progress=False, checkpoint_every=0, stop_at=job.get("stop_at"),
                        model_overrides={"hidden_dropout": 0.0, "attention_dropout": 0.0, "feat_proj_dropout": 0.0})
    return [h["loss"] for h in r.history]


def probe(job: dict) -> list[float]:
    from speechunits.data.manifest import read_manifest
    from speechunits.downstream.run import run_probe
    from speechunits.downstream.train import ProbeSettings
    from speechunits.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(job["tokenizer"])
    s = ProbeSettings(steps=job["steps"], dim=16, hidden=16, batch=job["batch"], eval_every=3, patience=0, lr=3e-3,
                      dropout=0.0, seed=5)
    run_probe(job["task"], tok, read_manifest(job["train"]), job["out"], s, data_dir=job["data"],
              dev_utts=read_manifest(job["train"])[:4], progress=False)
    hist = json.loads(open(os.path.join(job["out"], "training", "loss.json")).read())["history"]
    return [h["loss"] for h in hist]


def vocoder(job: dict) -> list[float]:
    from speechunits.data.manifest import read_manifest
    from speechunits.tokenizer import Tokenizer
    from speechunits.vocoder.train import VocoderSettings, train_vocoder

    tok = Tokenizer.from_pretrained(job["tokenizer"])
    s = VocoderSettings(steps=job["steps"], batch=4, crop_s=0.5, dim=16, unit_blocks=1, mel_blocks=1, speaker=False,
                        duration=True, dropout=0.0, layer_dropout=0.0, eval_every=2, dev_utterances=2,
                        checkpoint_every=0)
    train_vocoder(tok, read_manifest(job["train"]), job["out"], s, progress=False)
    hist = json.loads(open(os.path.join(job["out"], "training", "loss.json")).read())["history"]
    return [h["loss"] for h in hist]


if __name__ == "__main__":
    torch.set_num_threads(1)
    job = json.loads(open(sys.argv[1]).read())
    losses = {"unit-lm": unit_lm, "spin": spin, "hubert": hubert, "probe": probe, "vocoder": vocoder}[job["kind"]](job)
    rank = os.environ.get("RANK", "0")
    with open(os.path.join(job["out"], f"history.rank{rank}.json"), "w") as f:
        json.dump({"losses": losses, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}, f)
