"""The bundled default vocoder: it belongs to the default tokenizer, fits the package budget, and
`speechunits resynth a.wav` speaks intelligibly in the speaker's voice out of the box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_path
from speechunits.audio import load
from speechunits.cli import main as cli_main
from speechunits.vocoder.resynth import BUNDLED, open_vocoder
from test_tokenizer import speechlike
from test_vocoder import needs_hifigan

PRETRAINED = BUNDLED.parent


def test_bundled_vocoder_fits_the_package_budget_with_the_tokenizer():
    size = sum(p.stat().st_size for p in PRETRAINED.rglob("*") if p.is_file())
    assert size < 25 * 2**20, size / 2**20
    cfg = json.loads((BUNDLED / "config.json").read_text())
    assert cfg["tokenizer"]["source"] == "default" and cfg["unit_mel"]["speaker_dim"] == 256
    assert (BUNDLED / "README.md").is_file()


def test_bundled_vocoder_is_the_default_tokenizers():
    voc, tok = open_vocoder("default", None)  # raises if the fingerprints differ
    assert tok.layers == [3] and voc.duration is not None and voc.speaker_mean is not None


@needs_hifigan
def test_resynth_out_of_the_box_keeps_length(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, speechlike(24000, 7), 16000)
    assert cli_main(["resynth", str(wav), "--out", str(tmp_path / "out")]) == 0
    y, sr = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert sr == 16000 and len(y) == 24000 and np.isfinite(y).all() and np.abs(y).max() > 0.01


@needs_hifigan
def test_default_vocoder_is_intelligible_and_keeps_the_voice():
    whisper = pytest.importorskip("speechunits.metrics.asr")
    from speechunits.encoders.speaker import SpeakerEncoder
    from speechunits.metrics.intelligibility import intelligibility_batch

    data = shared_path("librivox-aligned")
    try:
        asr = whisper.WhisperTranscriber.from_pretrained()
    except (OSError, ValueError) as e:
        pytest.skip(f"whisper-tiny.en not available: {e}")
    ids = sorted(p.stem for p in Path(data).glob("*.wav"))[:3]
    waves = [load(data / f"{i}.wav") for i in ids]
    refs = [(data / f"{i}.txt").read_text().strip() for i in ids]
    voc, tok = open_vocoder("default", None)
    res = [voc.resynthesize(w, tok) for w in waves]
    _, corpus = intelligibility_batch(asr, refs, waves, res)
    assert corpus["wer"] < 0.35, corpus  # measured: see docs/results.md
    enc = SpeakerEncoder.from_installed()
    sims = [float(np.dot(enc.embed(a), enc.embed(b))) for a, b in zip(waves, res)]
    assert np.mean(sims) > 0.7, sims
