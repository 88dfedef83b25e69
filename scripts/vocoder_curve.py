"""Intelligibility along a vocoder's training: WER/dWER of librivox-aligned resynthesized with
snapshots of the training checkpoint (``params.safetensors`` of ``training/checkpoint`` copied
at each step, e.g. by a loop while it trains).

Usage: ``python scripts/vocoder_curve.py VOCODER_DIR SNAPSHOT_DIR...`` (each SNAPSHOT_DIR named
``step_N`` holds ``params.safetensors``); prints one row per snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from speechunits.audio import load
from speechunits.metrics.asr import WhisperTranscriber
from speechunits.metrics.intelligibility import intelligibility_batch
from speechunits.recipes.dcspin_default import find_shared_data
from speechunits.vocoder.resynth import open_vocoder


def main(vocoder: str, snapshots: list[str]) -> None:
    torch.set_num_threads(1)
    voc, tok = open_vocoder(vocoder, "default" if vocoder == "default" else None)
    if tok is None:
        from speechunits.tokenizer import Tokenizer

        tok = Tokenizer.from_pretrained(voc.config["tokenizer"]["source"])
    data = find_shared_data() / "librivox-aligned"
    ids = sorted(p.stem for p in data.glob("*.wav"))
    waves = [load(data / f"{i}.wav") for i in ids]
    refs = [(data / f"{i}.txt").read_text().strip() for i in ids]
    asr = WhisperTranscriber.from_pretrained()
    print("| step | librivox WER % | dWER % |\n|---|---|---|")
    for snap in sorted(snapshots, key=lambda s: int(Path(s).name.split("_")[-1])):
        params = load_file(str(Path(snap) / "params.safetensors"))
        voc.mel_model.load_state_dict({k[4:]: v for k, v in params.items() if k.startswith("mel.")})
        voc.mel_model.eval()
        res = [voc.resynthesize(w, tok) for w in waves]
        _, corpus = intelligibility_batch(asr, refs, waves, res)
        print(f"| {Path(snap).name.split('_')[-1]} | {100 * corpus['wer']:.1f} | {100 * corpus['dwer']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
