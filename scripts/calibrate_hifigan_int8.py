"""Measure the activation ranges of the int8 HiFi-GAN (src/speechunits/vocoder/hifigan_int8.json).

Deterministic: the first ``--files`` FLAC files of ``librispeech-mini/train-clean-100`` in sorted
order (251 speakers, one file each; none of them is in the test-other or librivox-aligned
evaluation clips), the first ``--seconds`` of each, their HiFi-GAN log-mels
(``vocoder.mel.log_mel``) run through the fp32 ONNX export, ranges by ONNX Runtime's percentile
calibrator (99.999 %, 2048 bins, symmetric). No random draw anywhere; a rerun on the same files,
torch export and onnxruntime writes the same table.

Usage: ``python scripts/calibrate_hifigan_int8.py [--data ../shared/data] [--files 8] [--seconds 3]
[--out src/speechunits/vocoder/hifigan_int8.json]`` (about a minute on one thread).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from speechunits.audio import load
from speechunits.vocoder.backend import onnx_file
from speechunits.vocoder.int8 import TABLE, calibrate, make_table
from speechunits.vocoder.mel import log_mel

REPO = Path(__file__).resolve().parents[1]


def calibration_files(data: Path, n: int) -> list[Path]:
    folder = data / "librispeech-mini" / "train-clean-100"
    files = sorted(folder.glob("*.flac"))[:n]
    if len(files) < n:
        raise SystemExit(f"{folder}: {len(files)} FLAC files, need {n}")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default=str(TABLE))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    files = calibration_files(Path(args.data), args.files)
    mels = [log_mel(load(f)[: int(args.seconds * 16000)]).numpy() for f in files]
    ranges = calibrate(onnx_file(), mels)
    import onnxruntime

    table = make_table(ranges, {
        "data": "librispeech-mini/train-clean-100 (LibriSpeech, CC BY 4.0): the first files in sorted order",
        "files": [f.name for f in files], "seconds_each": args.seconds,
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__})
    Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
    print(f"{len(ranges)} tensor ranges from {len(files)} files x {args.seconds} s -> {args.out}")


if __name__ == "__main__":
    main()
