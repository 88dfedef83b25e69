"""Downstream probes: layer attention, CTC decoding, scoring, training to a real result, artifacts, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from speechunits.cli import main
from speechunits.data.manifest import read_manifest
from speechunits.downstream.model import ProbeModel
from speechunits.downstream.prepare import prepare_task_data
from speechunits.downstream.run import run_probe
from speechunits.downstream.score import accuracy, ctc_beam, ctc_greedy, error_rate
from speechunits.downstream.train import ProbeSettings, evaluate, segments, train_probe
from speechunits.encoders import load_encoder
from speechunits.encoders.pretrain.loop import Trainer
from speechunits.fit import fit_tokenizer
from speechunits.tokens.embedding import FeatureLayerAttention, LayerAttention

SR = 16000


def voiced(cls: int, n: int, seed: int) -> np.ndarray:
    """A harmonic tone: class 0 dark and low (F0 90-130 Hz), class 1 bright and high (200-260 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 130) if cls == 0 else rng.uniform(200, 260)
    tilt = 2.0 if cls == 0 else 0.3
    out = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h**tilt for h in range(1, 15))
    out = out + 0.02 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """40 one-second tones in two classes: train / test JSONL manifests and an MFCC k-means tokenizer."""
    d = tmp_path_factory.mktemp("probe_data")
    rows = {"train": [], "test": []}
    waves = []
    for i in range(40):
        cls = i % 2
        w = voiced(cls, SR, seed=i)
        waves.append(w)
        sf.write(d / f"t{i}.wav", w, SR)
        split = "test" if i >= 32 else "train"
        rows[split].append({"id": f"t{i}", "path": f"t{i}.wav", "label": ["low", "high"][cls], "speaker": f"s{cls}",
                            "text": ["ab", "ba"][cls]})
    for split, r in rows.items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r))
    tok = fit_tokenizer(load_encoder("mfcc"), waves[:32], layers=[0], k=16, seed=0)
    tok.save_pretrained(d / "tok")
    return d, tok


TINY = dict(dim=32, hidden=32, batch=8, eval_every=10, patience=4, lr=3e-3)


def test_layer_attention_masks_dropped_layers_and_starts_from_centroids():
    torch.manual_seed(0)
    cents = [torch.randn(5, 3), torch.randn(7, 4)]
    att = LayerAttention([5, 7], dim=8, centroids=cents)
    assert torch.equal(att.embs[1].weight, cents[1])  # the tables start at the k-means centroids
    units = torch.stack([torch.randint(0, 5, (2, 6)), torch.randint(0, 7, (2, 6))], -1)
    keep = torch.tensor([[True, False], [True, True]])
    x, w = att(units, keep)
    assert torch.all(w[0, :, 1] == 0) and torch.allclose(w.sum(-1), torch.ones(2, 6))
    only0 = att.proj[0](att.embs[0](units[0, :, 0]))
    assert torch.allclose(x[0], only0, atol=1e-6)  # utterance 0 sees layer 0 only
    with pytest.raises(ValueError, match="do not match"):
        LayerAttention([5, 8], dim=8, centroids=cents)
    f, fw = FeatureLayerAttention([3, 3], dim=8)(torch.randn(2, 6, 2, 3))
    assert f.shape == (2, 6, 8) and fw.shape == (2, 6, 2)


def test_ctc_beam_search_finds_the_label_greedy_misses():
    # Each frame: blank 0.6, 'a' 0.4. Greedy reads two blanks (""), but P("a") = 1 - 0.6^2 = 0.64.
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc_greedy(lp) == [] and ctc_beam(lp, width=4) == [1]
    # a repeated label needs a blank between its two copies
    lp2 = np.log(np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]))
    assert ctc_greedy(lp2) == [1, 1] and ctc_beam(lp2) == [1, 1]


def test_error_rate_pools_edits_and_intervals_cover_the_value():
    r = error_rate([1, 0, 3], [10, 10, 10])
    assert r["value"] == pytest.approx(4 / 30) and r["ci95"][0] <= r["value"] <= r["ci95"][1]
    a = accuracy([True] * 9 + [False])
    assert a["value"] == 0.9 and a["ci95"][0] == pytest.approx(0.5958, abs=1e-3)
    with pytest.raises(ValueError):
        accuracy([])


def test_a_probe_learns_to_classify_and_reloads(labelled, tmp_path):
    d, tok = labelled
    res = run_probe("classify", tok, read_manifest(d / "train.jsonl"), tmp_path / "p", ProbeSettings(steps=60, **TINY),
                    data_dir=tmp_path / "data", tests={"test": read_manifest(d / "test.jsonl")}, progress=False)
    acc = res["tests"]["test"]["accuracy"]
    assert acc["value"] >= 0.875 and acc["examples"] == 8  # two classes: chance is 0.5
    hist = json.loads((tmp_path / "p" / "training" / "loss.json").read_text())["history"]
    assert np.mean([h["loss"] for h in hist[-5:]]) < 0.5 * np.mean([h["loss"] for h in hist[:5]])
    again = ProbeModel.from_pretrained(tmp_path / "p")
    store = prepare_task_data(tmp_path / "data2", read_manifest(d / "test.jsonl"), tok, "classify", progress=False)
    assert evaluate(again, store, segments(store))["accuracy"]["value"] == acc["value"]
    assert again.config.symbols == ["high", "low"] and res["tests"]["test"]["layer_weights"] == [1.0]


def test_the_continuous_probe_reads_the_same_frames(labelled, tmp_path):
    d, tok = labelled
    res = run_probe("sid", tok, read_manifest(d / "train.jsonl"), tmp_path / "c",
                    ProbeSettings(steps=40, input="continuous", **TINY), data_dir=tmp_path / "data",
                    split_within=0.7, progress=False)
    (name, r), = res["tests"].items()
    assert "last 30 %" in name and r["accuracy"]["value"] >= 0.9 and r["input"] == "continuous"
    store = prepare_task_data(tmp_path / "x", read_manifest(d / "train.jsonl")[:2], tok, "sid", features=True,
                              progress=False)
    ex = store.get(0)
    assert ex["feats"].shape[:2] == ex["units"].shape and ex["feats"].dtype == np.float16
    # the standardisation is the training frames' statistics, saved with the weights and reloaded
    again = ProbeModel.from_pretrained(tmp_path / "c")
    assert torch.all(again.frontend.std > 0) and again.frontend.mean.abs().sum() > 0
    assert torch.equal(again.frontend.mean, ProbeModel.from_pretrained(tmp_path / "c" / "best").frontend.mean)


def test_feature_standardisation_keeps_an_outlier_dimension_from_drowning_the_rest():
    # Whisper's hidden states have a few dimensions ~50x the rest; a per-frame LayerNorm would
    # scale the small dimensions down by that outlier, the per-dimension statistics do not.
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 50, 1, 6, generator=g)
    feats[..., 0] = feats[..., 0] * 50 + 100
    att = FeatureLayerAttention([6], dim=6)
    flat = feats.reshape(-1, 1, 6)
    att.set_stats(flat.mean(0), flat.std(0, unbiased=False))
    with torch.no_grad():
        att.proj[0].weight.copy_(torch.eye(6))
        att.proj[0].bias.zero_()
    z, _ = att(feats)
    assert torch.allclose(z.reshape(-1, 6).std(0, unbiased=False), torch.ones(6), atol=1e-3)
    with pytest.raises(ValueError, match="statistics of shape"):
        att.set_stats(torch.zeros(2, 6), torch.ones(2, 6))


def test_ctc_probe_learns_and_resumes_exactly(labelled, tmp_path):
    d, tok = labelled
    train = read_manifest(d / "train.jsonl")
    s = ProbeSettings(steps=30, **{**TINY, "eval_every": 100}, downsample=2)
    store = prepare_task_data(tmp_path / "data", train, tok, "transcribe", progress=False)
    kw = dict(codebook_sizes=tok.vocab_sizes, tokenizer_info={"frame_rate": 100.0}, progress=False)
    assert train_probe("transcribe", store, tmp_path / "a", s, **kw) is not None
    assert train_probe("transcribe", store, tmp_path / "b", s, stop_at=13, **kw) is None
    train_probe("transcribe", store, tmp_path / "b", s, **kw)
    ha = json.loads((tmp_path / "a" / "training" / "loss.json").read_text())["history"]
    hb = json.loads((tmp_path / "b" / "training" / "loss.json").read_text())["history"]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert np.mean([h["loss"] for h in ha[-5:]]) < 0.6 * np.mean([h["loss"] for h in ha[:5]])
    res = evaluate(ProbeModel.from_pretrained(tmp_path / "a"), store, segments(store), beam=4)
    assert {"wer_greedy", "cer_greedy", "wer_beam", "cer_beam"} <= set(res)


def test_early_stopping_stops_and_stays_stopped_after_a_resume(tmp_path):
    w = torch.nn.Parameter(torch.zeros(2))

    def loss_fn(step):
        return ((w - 1) ** 2).sum(), {"dev_score": 1.0 if step == 2 else 0.0}  # best at step 2, then never

    def stop(history):
        scores = [h["dev_score"] for h in history]
        return int(np.argmax(scores)) < len(scores) - 3

    t = Trainer(tmp_path, {"w": w}, loss_fn, steps=50, lr=0.1, progress=False, should_stop=stop)
    t.run()
    assert t.stopped_early and t.finished and t.step == 6
    t2 = Trainer(tmp_path, {"w": w}, loss_fn, steps=50, lr=0.1, progress=False, should_stop=stop)
    t2.run()
    assert t2.step == 6 and t2.stopped_early


def test_an_utterance_without_its_label_is_recorded_and_skipped(labelled, tmp_path):
    d, tok = labelled
    rows = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()][:4]
    del rows[1]["label"]
    (d / "partial.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    store = prepare_task_data(tmp_path / "p", read_manifest(d / "partial.jsonl"), tok, "kws", progress=False)
    assert len(store) == 3
    err = [json.loads(x) for x in (tmp_path / "p" / "errors.jsonl").read_text().splitlines()]
    assert err[0]["id"] == "t1" and "label" in err[0]["reason"]
    with pytest.raises(ValueError, match="another tokenizer, task"):
        prepare_task_data(tmp_path / "p", read_manifest(d / "partial.jsonl"), tok, "sid", progress=False)


def test_tampered_or_malformed_probe_is_refused(labelled, tmp_path):
    d, tok = labelled
    run_probe("classify", tok, read_manifest(d / "train.jsonl")[:8], tmp_path / "p", ProbeSettings(steps=3, **TINY),
              data_dir=tmp_path / "data", progress=False)
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    (tmp_path / "p" / "config.json").write_text(json.dumps({**cfg, "hidden": 64}))
    with pytest.raises(ValueError, match="do not match"):
        ProbeModel.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "config.json").write_text(json.dumps({**cfg, "exec": "rm -rf /"}))
    with pytest.raises(ValueError, match="unknown probe settings"):
        ProbeModel.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "p" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not readable safetensors"):
        ProbeModel.from_pretrained(tmp_path / "p")


def test_multi_layer_units_single_layer_and_all_layer_probes(tmp_path):
    from test_encoders_hf import build
    from test_tokenizer import speechlike

    build("hubert", "group").save_pretrained(tmp_path / "model")
    waves = [voiced(i % 2, 12000, i) for i in range(12)]
    rows = []
    for i, w in enumerate(waves):
        sf.write(tmp_path / f"u{i}.wav", w, SR)
        rows.append({"id": f"u{i}", "path": f"u{i}.wav", "label": str(i % 2)})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    tok = fit_tokenizer(load_encoder(str(tmp_path / "model")), waves + [speechlike(16000, 0)], layers=[1, 2], k=8,
                        seed=0, n_init=1)
    utts = read_manifest(tmp_path / "m.jsonl")
    all_layers = run_probe("classify", tok, utts, tmp_path / "all", ProbeSettings(steps=5, init_centroids=True, **TINY),
                           data_dir=tmp_path / "d", tests={"m": utts}, progress=False)
    w = all_layers["tests"]["m"]["layer_weights"]
    assert len(w) == 2 and math.isclose(sum(w), 1.0, abs_tol=1e-3) and all_layers["layers"] == [1, 2]
    one = run_probe("classify", tok, utts, tmp_path / "one", ProbeSettings(steps=5, columns=[1], **TINY),
                    data_dir=tmp_path / "d", tests={"m": utts}, progress=False)
    assert one["layers"] == [2] and one["tests"]["m"]["layer_weights"] == [1.0]


def test_cli_probe_train_eval_and_a_user_task_benchmark(labelled, tmp_path, capsys):
    d, tok = labelled
    common = ["--steps", "60", "--lr", "3e-3", "--dim", "32", "--hidden", "32", "--batch", "8", "--eval-every", "10", "--no-progress"]
    assert main(["probe", "train", "--task", "classify", "--tokenizer", str(d / "tok"), "--train", str(d / "train.jsonl"),
                 "--test", str(d / "test.jsonl"), "--out", str(tmp_path / "p"), "--beam", "0", *common]) == 0
    assert "test.jsonl: accuracy" in capsys.readouterr().out
    assert main(["probe", "eval", str(tmp_path / "p"), "--tokenizer", str(d / "tok"), "--data", str(d / "test.jsonl"),
                 "--work", str(tmp_path / "w"), "--no-progress"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["test.jsonl"]["accuracy"]["value"] >= 0.875
    other = fit_tokenizer(load_encoder("mfcc"), [voiced(0, SR, 99)], layers=[0], k=4, seed=0)
    other.save_pretrained(tmp_path / "other")
    assert main(["probe", "eval", str(tmp_path / "p"), "--tokenizer", str(tmp_path / "other"), "--data",
                 str(d / "test.jsonl"), "--work", str(tmp_path / "w")]) == 2
    assert "not the tokenizer this probe was trained on" in capsys.readouterr().err
    assert main(["benchmark", "--tokenizer", str(d / "tok"), "--tasks", "", "--task",
                 f"tones=classify:{d / 'train.jsonl'}:{d / 'test.jsonl'}", "--probes", "all,continuous",
                 "--out", str(tmp_path / "b"), *common]) == 0
    table = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert {r["variant"] for r in table["rows"]} == {"all", "continuous"}
    assert all(r["score"] >= 0.75 for r in table["rows"])
    assert "<table>" in (tmp_path / "b" / "benchmark.html").read_text()


def test_distortion_is_seeded_by_the_utterance_and_keeps_length():
    from speechunits.audio.perturb.noise import measure_snr
    from speechunits.downstream.enhance import distort, distortion_params

    w = voiced(0, SR, 3)
    a, how = distort(w, "utt-a")
    b, _ = distort(w, "utt-a")
    assert np.array_equal(a, b) and a.shape == w.shape and not np.array_equal(a, distort(w, "utt-b")[0])
    assert 0 <= how["snr_db"] <= 10 and how["noise"] in ("white", "pink")
    quiet = next(f"u{i}" for i in range(50) if distortion_params(f"u{i}")["reverb_rt60"] is None)
    noisy, how = distort(w, quiet)
    assert measure_snr(w, noisy) == pytest.approx(how["snr_db"], abs=0.2)  # no reverb: the SNR as drawn


def test_enhancement_probe_predicts_clean_units_and_speaks_them(labelled, tmp_path):
    from speechunits.vocoder.train import VocoderSettings, train_vocoder

    d, tok = labelled
    train, test = read_manifest(d / "train.jsonl"), read_manifest(d / "test.jsonl")[:2]
    store = prepare_task_data(tmp_path / "data" / "x", train[:3], tok, "se", progress=False)
    ex = store.get(0)
    assert ex["units"].shape == ex["clean"].shape and (ex["units"] != ex["clean"]).mean() > 0.2  # noise moves units
    voc = train_vocoder(tok, train[:4], tmp_path / "voc", VocoderSettings(steps=3, batch=2, crop_s=0.5, dim=16,
                        unit_blocks=1, mel_blocks=1, speaker=False, duration=False), progress=False)
    res = run_probe("se", tok, train, tmp_path / "se", ProbeSettings(steps=40, crop_seconds=0.5, **TINY),
                    data_dir=tmp_path / "data", tests={"test": test}, vocoder=voc, vocoder_utterances=2, progress=False)
    r = res["tests"]["test"]
    hist = json.loads((tmp_path / "se" / "training" / "loss.json").read_text())["history"]
    assert np.mean([h["loss"] for h in hist[-5:]]) < 0.8 * np.mean([h["loss"] for h in hist[:5]])
    ua = r["unit_accuracy"]
    assert 0 <= ua["noisy_value"] <= 1 and ua["value"] > 1 / 16  # above chance over 16 units
    assert set(r["speech"]) >= {"clean_units", "noisy_units", "enhanced_units"} and r["speech"]["utterances"] == 2
    assert all("spk_sim" in v for k, v in r["speech"].items() if k.endswith("_units"))


def test_compare_correlates_proxies_with_a_benchmark_table(tmp_path, capsys):
    # three tokenizers: the better the PNMI, the better the keyword accuracy and the lower the WER
    rows = []
    for name, pnmi, acc, wer in (("a", 0.3, 0.5, 0.6), ("b", 0.5, 0.7, 0.4), ("c", 0.6, 0.9, 0.3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"name": name, "summary": [{"dataset": "x", "layer": 0, "pnmi": pnmi}]}))
        rows += [{"tokenizer": name, "task": "kws", "variant": "all", "test": "t", "metric": "accuracy", "score": acc},
                 {"tokenizer": name, "task": "asr", "variant": "all", "test": "t", "metric": "wer", "score": wer},
                 {"tokenizer": name, "task": "asr", "variant": "L0", "test": "t", "metric": "wer", "score": 0.0}]
    (tmp_path / "benchmark.json").write_text(json.dumps({"rows": rows, "tokenizers": {}, "failures": []}))
    assert main(["compare", *(str(tmp_path / n) for n in "abc"), "--scores", str(tmp_path / "benchmark.json"),
                 "--out", str(tmp_path / "cmp")]) == 0
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    corr = res["correlation"]
    names = corr["metrics"]
    m = corr["matrix"]
    assert corr["negated"] == ["asr wer (t)"]  # WER negated, accuracy not: both correlate positively
    assert m[names.index("pnmi")][names.index("kws accuracy (t)")] > 0.9
    assert m[names.index("pnmi")][names.index("asr wer (t)")] > 0.9


def test_cli_probe_train_exits_1_and_lists_utterances_left_out(labelled, tmp_path, capsys):
    d, _ = labelled
    rows = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()][:10]
    del rows[2]["label"]
    rows[3]["path"] = "missing.wav"
    (d / "left_out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # paths stay inside its folder
    rc = main(["probe", "train", "--task", "kws", "--tokenizer", str(d / "tok"), "--train", str(d / "left_out.jsonl"),
               "--out", str(tmp_path / "p"), "--steps", "3", "--dim", "16", "--hidden", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 utterance(s) left out" in err and "t2: no 'label' field" in err and "missing.wav" in err
    assert (tmp_path / "p" / "model.safetensors").is_file()  # the probe was still trained on the rest
