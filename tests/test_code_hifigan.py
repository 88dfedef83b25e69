"""Unit HiFi-GAN (code-hifigan): generator and discriminator shapes, losses, its mel, training on
generated speech-like audio (mel L1 falls), the vocoder folder through the real load path, exact
resume, multi-layer units with layer dropout and speaker conditioning, the CLI."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from speechunits.cli import main as cli_main
from speechunits.data.manifest import Utterance
from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer
from speechunits.vocoder import artifact
from speechunits.vocoder.code_hifigan import (CodeGenerator, CodeHiFiGANConfig, LogMel, MultiPeriodDiscriminator,
                                              MultiScaleDiscriminator, add_weight_norm, discriminator_loss,
                                              feature_loss, generator_loss, normed_discriminators,
                                              strip_weight_norm, upsampling_for)
from speechunits.vocoder.code_hifigan_train import CodeHiFiGANSettings, train_code_hifigan
from speechunits.vocoder.vocoder import CodeHiFiGANVocoder
from speechunits.vocoder.duration import runs
from speechunits.vocoder.hifigan import HiFiGANConfig
from speechunits.vocoder.mel import log_mel
from speechunits.vocoder.vocoder import UnitVocoder
from test_tokenizer import speechlike

TINY = dict(batch=2, segment_s=0.2, embed_dim=16, channels=32, disc_scale=1 / 16, speaker=False, dev_utterances=1,
            eval_every=10, checkpoint_every=10, lr=3e-3)


def _gen(layers: int = 1, speaker_dim: int = 0, **kw) -> CodeGenerator:
    torch.manual_seed(0)
    return CodeGenerator(CodeHiFiGANConfig(codebook_sizes=[20] * layers, embed_dim=8, speaker_dim=speaker_dim,
                                           upsample_initial_channel=32, **kw))


# -- model --------------------------------------------------------------------------------------
def test_upsampling_factors_multiply_to_the_hop_and_keep_lengths_exact():
    assert upsampling_for(320) == ([5, 4, 4, 2, 2], [11, 8, 8, 4, 4])  # speech-resynthesis' 16 kHz config
    for hop in (160, 320, 480, 640):
        rates, kernels = upsampling_for(hop)
        assert int(np.prod(rates)) == hop and len(rates) <= 5
        up = torch.nn.ConvTranspose1d(1, 1, kernels[0], rates[0], padding=(kernels[0] - rates[0]) // 2)
        assert up(torch.zeros(1, 1, 7)).shape[-1] == 7 * rates[0]
    with pytest.raises(ValueError, match="need 320"):
        CodeHiFiGANConfig(upsample_rates=[4, 4, 4, 2, 2], upsample_kernel_sizes=[8, 8, 8, 4, 4])


def test_generator_gives_hop_samples_per_unit_frame_and_needs_its_speaker():
    g = _gen(speaker_dim=6)
    y = g(torch.randint(0, 20, (3, 11, 1)), torch.randn(3, 6))
    assert y.shape == (3, 1, 11 * 320) and float(y.detach().abs().max()) <= 1.0
    with pytest.raises(ValueError, match="speaker"):
        g(torch.randint(0, 20, (1, 4, 1)))
    with pytest.raises(ValueError, match="layers"):
        g(torch.randint(0, 20, (1, 4, 2)), torch.randn(1, 6))
    # another hop: 100 Hz units
    rates, kernels = upsampling_for(160)
    g2 = _gen(upsample_rates=rates, upsample_kernel_sizes=kernels, unit_rate=100.0)
    assert g2(torch.randint(0, 20, (1, 9))).shape == (1, 1, 9 * 160)


def test_weight_norm_changes_the_parameters_not_the_function():
    g = _gen()
    u = torch.randint(0, 20, (1, 6, 1))
    before = g(u)
    add_weight_norm(g.body)
    names = [n for n, _ in g.named_parameters()]
    assert any("parametrizations.weight.original0" in n for n in names)
    assert torch.allclose(g(u), before, atol=1e-6)
    strip_weight_norm(g)
    assert not any("parametrizations" in n for n, _ in g.named_parameters())
    assert torch.allclose(g(u), before, atol=1e-6)
    assert set(g.state_dict()) == set(_gen().state_dict())  # loads into a plain generator


def test_discriminators_score_and_map_every_period_and_scale():
    mpd, msd = MultiPeriodDiscriminator(scale=1 / 16), MultiScaleDiscriminator(scale=1 / 16)
    y, y_hat = torch.randn(2, 1, 3203), torch.randn(2, 1, 3203)  # not a multiple of any period
    d_r, d_g, f_r, f_g = mpd(y, y_hat)
    assert len(d_r) == len(d_g) == len(f_r) == 5 and all(len(f) == 6 for f in f_r)
    for p, fmap in zip((2, 3, 5, 7, 11), f_r):
        assert fmap[0].shape[0] == 2 and fmap[0].shape[-1] == p  # folded by its period
    d_r, d_g, f_r, f_g = msd(y, y_hat)
    assert len(d_r) == 3 and all(len(f) == 8 for f in f_r)
    assert [f[0].shape[-1] for f in f_r] == [3203, 1602, 802]  # raw, x2 and x4 pooled
    # real and fake are scored separately even though they share one batch
    alone, _ = msd.discriminators[0](y_hat)
    assert torch.allclose(alone, d_g[0], atol=1e-5)
    # HiFi-GAN's norms: weight norm everywhere but spectral norm on the first scale discriminator
    mpd_n, msd_n = normed_discriminators(scale=1 / 16)
    keys = list(msd_n.state_dict())
    assert any(k.startswith("discriminators.0.") and k.endswith("_u") for k in keys)
    assert not any(k.startswith("discriminators.1.") and k.endswith("_u") for k in keys)
    assert any("original0" in k for k in mpd_n.state_dict())


def test_gan_losses():
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert float(discriminator_loss(ones, zeros)) == 0.0  # a perfect discriminator
    assert float(discriminator_loss(zeros, ones)) == 2.0
    assert float(generator_loss(ones)) == 0.0 and float(generator_loss(zeros)) == 1.0
    f = [[torch.full((2, 3), 1.0), torch.zeros(4)]]
    g = [[torch.full((2, 3), 1.5), torch.zeros(4)]]
    assert float(feature_loss(f, f)) == 0.0 and float(feature_loss(f, g)) == pytest.approx(1.0)  # 2 x 0.5


def test_loss_mel_is_hifigans_mel_at_16k():
    wave = speechlike(12000, 4)
    ours = LogMel(16000)(torch.from_numpy(wave)[None, None])[0]
    ref = log_mel(wave, HiFiGANConfig(sampling_rate=16000), sample_rate=16000)  # no resampling at 16 kHz
    assert ours.shape == ref.shape == (80, 12000 // 256)
    assert torch.allclose(ours, ref, atol=1e-4)
    y = torch.from_numpy(wave)[None, None].requires_grad_(True)
    LogMel()(y).mean().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


# -- training, artifact, resume -------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from test_vocoder import write_corpus

    return write_corpus(tmp_path_factory.mktemp("chg_audio"), [16000, 14000, 18000, 12000, 15000])  # 5: one held out


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    _, utts, tok, _, _ = corpus
    out = tmp_path_factory.mktemp("chg") / "v"
    torch.set_num_threads(1)
    voc = train_code_hifigan(tok, utts, out, CodeHiFiGANSettings(steps=30, **TINY), progress=False)
    return out, voc


def test_training_lowers_the_mel_loss(trained):
    out, voc = trained
    hist = json.loads((out / "training" / "loss.json").read_text())["history"]
    assert len(hist) == 30
    first, last = np.mean([h["mel_l1"] for h in hist[:5]]), np.mean([h["mel_l1"] for h in hist[-5:]])
    assert last < 0.5 * first, (first, last)  # measured: 6.66 -> 1.89
    assert hist[-1]["dev_mel_l1"] < hist[0]["dev_mel_l1"]  # whole held-out utterance, as synthesized
    assert all(np.isfinite(h["d_loss"]) and np.isfinite(h["fm"]) for h in hist)
    assert hist[-1]["lr"] < hist[0]["lr"]  # exponential decay per epoch
    assert (out / "training" / "loss.png").is_file() and (out / "training" / "mel_l1.png").is_file()
    assert {p.name for p in (out / "training" / "checkpoint").iterdir()} == {
        "models.safetensors", "optimizer_g.safetensors", "optimizer_d.safetensors", "state.json"}


def test_the_folder_reloads_the_trained_generator_exactly(trained, corpus):
    out, _ = trained
    _, _, tok, _, waves = corpus
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch"] == "code-hifigan" and cfg["backend"] is None and cfg["tokenizer"]["k"] == 16
    voc = UnitVocoder.from_pretrained(out, tokenizer=tok)
    assert isinstance(voc, CodeHiFiGANVocoder) and voc.duration is not None
    # the training checkpoint's generator (weight norm on), folded by hand, gives the same waveform
    ckpt = load_file(str(out / "training" / "checkpoint" / "models.safetensors"))
    g = CodeGenerator(CodeHiFiGANConfig.from_dict(cfg["code_hifigan"]))
    add_weight_norm(g.body)
    g.load_state_dict({k[10:]: v for k, v in ckpt.items() if k.startswith("generator.")})
    strip_weight_norm(g.eval())
    units = tok.frame_units([waves[0]])[0]
    with torch.no_grad():
        want = g(torch.from_numpy(units).long()[None])[0, 0].numpy()
    got = voc.synthesize(units)
    assert got.shape == (len(units) * 320,) and np.array_equal(got, np.clip(want, -1, 1))


def test_synthesis_lengths_dedup_and_bad_units(trained, corpus):
    out, voc = trained
    _, _, tok, _, waves = corpus
    wave = voc.resynthesize(waves[1], tok)
    assert len(wave) == len(waves[1]) and np.isfinite(wave).all() and np.abs(wave).max() > 0
    u, _ = runs(tok.frame_units([waves[1]])[0])
    spoken = voc.synthesize(u, dedup=True)  # durations predicted
    assert len(spoken) % 320 == 0 and 0.3 * len(waves[1]) < len(spoken) < 3 * len(waves[1])
    with pytest.raises(ValueError, match="must be in 0..15"):
        voc.synthesize(np.array([3, 16]))
    with pytest.raises(artifact.VocoderError, match="no mel"):
        voc.units_to_mel(u)


def test_tampered_or_unknown_arch_is_refused(trained, corpus, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad, ignore=shutil.ignore_patterns("features", "training"))
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "arch": "wavenet"}))
    with pytest.raises(artifact.VocoderError, match="unknown vocoder arch 'wavenet'"):
        UnitVocoder.from_pretrained(bad)
    (bad / "config.json").write_text(json.dumps(cfg))
    blob = bytearray((bad / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (bad / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(artifact.VocoderError, match="sha256"):
        UnitVocoder.from_pretrained(bad)
    _, _, _, _, waves = corpus
    other = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=16, seed=5)
    with pytest.raises(artifact.VocoderError, match="trained for the tokenizer"):
        UnitVocoder.from_pretrained(out, tokenizer=other)


def test_resume_continues_exactly(corpus, tmp_path):
    _, utts, tok, _, _ = corpus
    s = CodeHiFiGANSettings(steps=8, **{**TINY, "checkpoint_every": 4, "eval_every": 3})
    train_code_hifigan(tok, utts, tmp_path / "a", s, progress=False)
    assert train_code_hifigan(tok, utts, tmp_path / "b", s, progress=False, stop_at=4) is None
    assert json.loads((tmp_path / "b" / "training" / "checkpoint" / "state.json").read_text())["step"] == 4
    train_code_hifigan(tok, utts, tmp_path / "b", s, progress=False)
    for name in ("models", "optimizer_g", "optimizer_d"):
        a = load_file(str(tmp_path / "a" / "training" / "checkpoint" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "b" / "training" / "checkpoint" / f"{name}.safetensors"))
        assert set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in a), name  # spectral-norm buffers included
    ha = json.loads((tmp_path / "a" / "training" / "loss.json").read_text())["history"]
    hb = json.loads((tmp_path / "b" / "training" / "loss.json").read_text())["history"]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="other settings"):
        train_code_hifigan(tok, utts, tmp_path / "b", CodeHiFiGANSettings(steps=8, **{**TINY, "lr": 1e-3}),
                           progress=False)


needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="resemblyzer weights not installed")


@needs_resemblyzer
def test_multi_layer_units_with_layer_dropout_and_a_speaker(tmp_path):
    from test_encoders_hf import build

    build("hubert", "group").save_pretrained(tmp_path / "model")
    waves = [speechlike(n, s) for s, n in enumerate([16000, 13000])]
    utts = []
    for i, w in enumerate(waves):
        sf.write(tmp_path / f"u{i}.wav", w, 16000)
        utts.append(Utterance(f"u{i}", tmp_path / f"u{i}.wav"))
    tok = fit_tokenizer(load_encoder(str(tmp_path / "model")), waves, layers=[1, 2], k=8, seed=0, n_init=1)
    s = CodeHiFiGANSettings(steps=3, **{**TINY, "speaker": True, "dev_utterances": 0, "layer_dropout": 0.5})
    voc = train_code_hifigan(tok, utts, tmp_path / "v", s, progress=False)
    g = voc.generator
    assert g.num_layers == 2 and g.config.speaker_dim == 256 and voc.duration is None  # durations: one layer only
    g.train()
    keeps = torch.cat([g.layer_keep(50, generator=torch.Generator().manual_seed(i)) for i in range(4)])
    assert keeps.any(1).all() and not keeps.all()  # a random non-empty subset of layers per utterance
    g.eval()
    units = tok.frame_units([waves[0]])[0]
    both, first, second = (voc.synthesize(units, layers=ly) for ly in (None, [0], [1]))
    assert both.shape == first.shape == (len(units) * 320,)
    assert not np.array_equal(first, second)
    # the same units in another voice: the speaker d-vector changes the waveform
    other = voc.resynthesize(waves[0], tok, speaker_wave=waves[1])
    same = voc.resynthesize(waves[0], tok)
    assert len(other) == len(same) == len(waves[0]) and not np.array_equal(other, same)


def test_cli_trains_a_code_hifigan_and_resynthesizes(corpus, tmp_path, capsys):
    d, _, _, tok_dir, _ = corpus
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(2):
        shutil.copy(d / f"u{i}.wav", audio / f"u{i}.wav")
    v = tmp_path / "v"
    assert cli_main(["vocoder", "train", str(audio), "--tokenizer", str(tok_dir), "--out", str(v), "--arch",
                     "code-hifigan", "--steps", "3", "--batch", "2", "--crop", "0.2", "--dim", "8", "--channels",
                     "32", "--disc-scale", "0.0625", "--no-speaker", "--no-progress"]) == 0
    cfg = json.loads((v / "config.json").read_text())
    assert cfg["arch"] == "code-hifigan" and cfg["training"]["settings"]["lr"] == 2e-4
    assert cfg["code_hifigan"]["upsample_initial_channel"] == 32 and cfg["code_hifigan"]["embed_dim"] == 8
    out = tmp_path / "out"
    assert cli_main(["resynth", str(audio), "--vocoder", str(v), "--tokenizer", str(tok_dir), "--out", str(out)]) == 0
    for i in range(2):
        info = sf.info(str(out / f"u{i}.wav"))
        assert info.samplerate == 16000 and info.frames == sf.info(str(audio / f"u{i}.wav")).frames


def test_the_module_docstring_example_runs():
    import doctest

    import speechunits.vocoder.code_hifigan as mod

    res = doctest.testmod(mod)
    assert res.attempted >= 4 and res.failed == 0
