"""The scales of the DC-Spin default-tokenizer recipe: every size and step count, in one place.

Both the recipe (:mod:`.dcspin_default`, which runs the stages) and the artifact writer
(:mod:`.dcspin_artifact`, which assembles and describes the result) read these; keeping them
here lets imports flow one way: scales -> artifact -> default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Every size and step count of one scale of the recipe (all recorded in recipe.json)."""

    synth_minutes: float  # synthetic corpus when real speech is used too
    synth_minutes_alone: float  # ... when it is not (keeps ~1 h of training audio)
    real_max_utterances: int | None  # LibriSpeech-mini files used (None: all 251), shortest first
    preset: str  # HuBERT model size (speechunits.encoders.pretrain.PRESETS)
    batch_size: int  # pre-training and CTC
    crop_seconds: float
    k1: int  # iteration-1 (MFCC) clusters
    steps1: int
    k2: int  # iteration-2 clusters
    steps2: int
    select_seconds: float  # aligned audio used to pick the iteration-2 layer by PNMI
    ctc_steps: int
    codebooks: tuple[int, int]  # DC-Spin primary (the units) and auxiliary
    spin_steps: int
    spin_batch_size: int
    spin_lr: float
    trainable_layers: int  # top layers DC-Spin fine-tunes
    pretrain_lr: float
    frontend: str  # iteration 1's front-end: "logmel", "fbank" (filterbank-initialised CNN) or "cnn"
    n_mels: int  # bands of the "logmel" front-end
    unmasked_weight: float  # loss weight of unmasked frames in both iterations (HuBERT: 0)
    checkpoint_every: int
    check_utterances: int  # held-out utterances encoded to check the saved tokenizer


SCALES: dict[str, Scale] = {
    # ~52 min of LibriSpeech + 12 min synthetic train (15 min corpus) ~= 1 h; 75 min alone.
    # DC-Spin: batch 8 x 3 s gives ~1,190 frames per view per Sinkhorn batch, fewer than the paper's
    # 4,096 auxiliary codes, so equal-use targets would ask each code for a third of a frame. The
    # recipe doubles the batch (16 x 3 s: ~2,380 frames) and halves the auxiliary codebook to 2048,
    # so every code can get ~1.2 frames and the primary 500 ~4.8 (the reference Spin uses 256 s
    # batches, ~12,800 frames, for 256-2048 codes). Cost: ~2x the time per Spin step.
    "full": Scale(synth_minutes=15.0, synth_minutes_alone=75.0, real_max_utterances=None, preset="medium",
                  batch_size=8, crop_seconds=3.0, k1=100, steps1=1000, k2=500, steps2=800, select_seconds=600.0,
                  ctc_steps=300, codebooks=(500, 2048), spin_steps=300, spin_batch_size=16, spin_lr=1e-4,
                  trainable_layers=2, pretrain_lr=2e-4, frontend="logmel", n_mels=80, unmasked_weight=1.0,
                  checkpoint_every=100, check_utterances=20),
    # Tests: the same stages, a 0.5-minute corpus, the tiny model, a handful of steps.
    "tiny": Scale(synth_minutes=0.5, synth_minutes_alone=0.5, real_max_utterances=2, preset="tiny",
                  batch_size=2, crop_seconds=1.0, k1=20, steps1=4, k2=30, steps2=3, select_seconds=30.0,
                  ctc_steps=3, codebooks=(30, 60), spin_steps=3, spin_batch_size=2, spin_lr=1e-4,
                  trainable_layers=1, pretrain_lr=2e-3, frontend="logmel", n_mels=80, unmasked_weight=1.0,
                  checkpoint_every=0, check_utterances=2),
}
