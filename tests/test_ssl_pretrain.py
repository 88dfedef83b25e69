"""Our own HuBERT-style encoder: frame convention, masks, crops, targets, pre-training, resume, CTC.

Audio is made here: the aligned synthetic corpus (espeak-ng + MBROLA) when the tools exist, else
vowel-like harmonic signals with exact phone alignments. Models are tiny (hidden 32, 2 layers);
torch runs on one thread, which on a shared 2-core machine is also the fastest setting.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechunits.encoders.base import conv_num_frames, receptive_field
from speechunits.encoders.pretrain import (
    LIGHT_CONV,
    PRESETS,
    build_model,
    ctc_finetune,
    fit_targets,
    lr_at,
    pretrain_hubert,
    read_targets,
    span_mask,
)
from speechunits.encoders.pretrain.data import HOP, CropSampler, load_audio_set
from speechunits.distributed.ddp import step_rng
from speechunits.encoders.pretrain.targets import aligned_targets
from speechunits.encoders.pretrain.train import load_head
from speechunits.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]

FAST = dict(preset="tiny", batch_size=4, crop_seconds=2.0, lr=2e-3, warmup=3, progress=False, checkpoint_every=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def vowel_corpus(root: Path, n: int = 10, seconds: float = 3.0, seed: int = 0) -> Path:
    """Harmonic 'vowels', a nasal, a fricative and silence from 4 voices, with exact alignments."""
    import soundfile as sf

    from speechunits.data.alignment import Alignment, Segment, chars_from_words

    formants = {"AA": (730, 1090), "IY": (270, 2290), "UW": (300, 870), "EH": (530, 1840), "M": (250, 1200)}
    letters = {"AA": "a", "IY": "i", "UW": "u", "EH": "e", "M": "m", "S": "s"}
    rng = np.random.default_rng(seed)
    sr, lines = 16000, []
    for i in range(n):
        f0 = float(rng.choice([100.0, 130.0, 190.0, 230.0]))
        x, phones, t = [], [Segment(0.0, 0.1, "sil")], 0.1
        x.append(np.zeros(int(0.1 * sr)))
        while t < seconds - 0.3:
            lab = str(rng.choice(list(letters)))
            dur = float(rng.uniform(0.08, 0.2))
            m = int(round(dur * sr))
            tt = np.arange(m) / sr
            if lab == "S":
                seg = np.diff(rng.standard_normal(m + 1)) * 0.05
            else:
                f1, f2 = formants[lab]
                seg = sum(np.sin(2 * np.pi * h * f0 * tt) / (1 + ((h * f0 - f1) / 90) ** 2 + ((h * f0 - f2) / 150) ** 2 / 4)
                          for h in range(1, int(4000 / f0)))
                seg = 0.1 * seg / (np.abs(seg).max() + 1e-9)
            x.append(seg * np.hanning(m) ** 0.1)
            phones.append(Segment(t, t + m / sr, lab))
            t += m / sr
        x.append(np.zeros(int(0.2 * sr)))
        phones.append(Segment(t, t + 0.2, "sil"))
        words = [Segment(phones[j].start, phones[min(j + 2, len(phones) - 2)].end,
                         "".join(letters[p.label] for p in phones[j : min(j + 3, len(phones) - 1)]))
                 for j in range(1, len(phones) - 1, 3)]
        wave = np.concatenate(x).astype(np.float32)
        (root / "wav").mkdir(parents=True, exist_ok=True)
        sf.write(root / "wav" / f"v{i}.wav", wave, sr)
        Alignment(phones, words, chars_from_words(words), len(wave) / sr).save(root / "wav" / f"v{i}.json")
        lines.append(json.dumps({"id": f"v{i}", "path": f"wav/v{i}.wav", "alignment": f"wav/v{i}.json"}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root / "train.jsonl"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from speechunits.data.corpus import missing_tools, synthesize_corpus

    root = tmp_path_factory.mktemp("corpus")
    if not missing_tools():
        synthesize_corpus(root, minutes=1.0, seed=0, progress=False)
        return root / "train.jsonl"
    return vowel_corpus(root)


def has_kmeans() -> bool:
    import speechunits.quantizers as q

    return hasattr(q, "KMeans")


@pytest.fixture(scope="module")
def mfcc_targets(corpus, tmp_path_factory) -> Path:
    if not has_kmeans():
        pytest.skip("speechunits.quantizers.KMeans is not available yet")
    out = tmp_path_factory.mktemp("targets") / "it1.jsonl"
    fit_targets(corpus, out, encoder="mfcc", k=20, seed=0, progress=False)
    return out


# -- frame convention, masks, crops, schedule -----------------------------------------------------


@pytest.mark.parametrize("preset", list(PRESETS))
def test_light_conv_keeps_the_50hz_frame_convention(preset):
    kernels, strides = LIGHT_CONV
    assert receptive_field(kernels, strides) == (400, 320)
    for n in range(0, 20000, 7):
        assert conv_num_frames(n, kernels, strides) == (0 if n < 400 else (n - 400) // 320 + 1)
    if preset == "tiny":
        m = build_model(preset).eval()
        for n in (400, 719, 720, 16000):
            with torch.no_grad():
                assert m(torch.randn(1, n)).last_hidden_state.shape[1] == (n - 400) // 320 + 1


def test_fbank_frontend_is_a_filterbank_on_the_50hz_grid(tmp_path):
    from speechunits.encoders import load_encoder
    from speechunits.encoders.pretrain.frontend import FBANK_CONV, mel_quadrature_filterbank

    assert receptive_field(*FBANK_CONV) == (400, 320)
    m = build_model("tiny", frontend="fbank", seed=4).eval()
    for n in (400, 719, 720, 16000):
        with torch.no_grad():
            assert m(torch.randn(1, n)).last_hidden_state.shape[1] == (n - 400) // 320 + 1
    # each band answers a tone at its centre more than a tone two octaves away, whatever the phase
    cos, sin = mel_quadrature_filterbank(16)
    t = np.arange(400) / 16000
    for b in (3, 8, 12):
        centre = float(np.abs(np.fft.rfft(cos[b], 4096)).argmax()) * 16000 / 4096
        for phase in (0.0, 1.0, 2.5):
            near, far = (np.sin(2 * np.pi * f * t + phase) for f in (centre, centre * 4 if b < 8 else centre / 4))
            mag = lambda x: abs(cos[b] @ x) + abs(sin[b] @ x)  # noqa: E731
            assert mag(near) > 5 * mag(far)
    # conv 1 reads out band magnitudes: channel 2b sums band b's four rectified phases
    w0, w1 = (layer.conv.weight.detach() for layer in m.feature_extractor.conv_layers)
    nb = w0.shape[0] // 4
    cos_nb, sin_nb = (torch.from_numpy(f).float() for f in mel_quadrature_filterbank(nb))
    assert torch.allclose(w0[:, 0], torch.cat([cos_nb, -cos_nb, sin_nb, -sin_nb]))
    assert sorted(torch.nonzero(w1[2 * 3, :, 0]).flatten().tolist()) == [3, nb + 3, 2 * nb + 3, 3 * nb + 3]
    # a plain HubertModel: saved and reloaded through the HF path, same features
    from speechunits.encoders.pretrain import save_encoder

    enc = load_encoder(str(save_encoder(m, tmp_path / "enc")))
    wave = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    ref = enc.encode([wave], [0])[0]
    assert ref.shape == ((8000 - 400) // 320 + 1, 1, 32)
    assert torch.equal(load_encoder(str(tmp_path / "enc")).encode([wave], [0])[0], ref)
    with pytest.raises(ValueError, match="front-end"):
        build_model("tiny", frontend="mel")


def test_logmel_frontend_is_a_log_filterbank_on_the_50hz_grid(tmp_path):
    from transformers import AutoModel

    from speechunits.encoders import HFEncoder, load_encoder
    from speechunits.encoders.logmel_hubert import LogMelHubertModel
    from speechunits.encoders.pretrain import save_encoder
    from speechunits.encoders.pretrain.frontend import mel_quadrature_filterbank

    m = build_model("tiny", frontend="logmel", seed=4).eval()
    assert isinstance(m, LogMelHubertModel) and m.config.model_type == "logmel-hubert"
    for n in (400, 719, 720, 16000):
        with torch.no_grad():
            assert m(torch.randn(1, n)).last_hidden_state.shape[1] == (n - 400) // 320 + 1
    # the front-end is the log power of the mel quadrature pairs, band by band
    nb = m.config.n_mels
    cos, sin = mel_quadrature_filterbank(nb)
    t = np.arange(400) / 16000
    b, far = 2 * nb // 3, nb // 6
    centre = float(np.abs(np.fft.rfft(cos[b], 4096)).argmax()) * 16000 / 4096
    tone = np.sin(2 * np.pi * centre * t + 0.7).astype(np.float32)
    with torch.no_grad():
        logp = m.feature_extractor(torch.from_numpy(tone)[None])[0, :, 0].numpy()
    expect = np.log((cos @ tone) ** 2 + (sin @ tone) ** 2 + m.config.log_floor)
    assert np.allclose(logp, expect, atol=1e-4)
    # unit-energy bands: a narrower neighbour may peak a little higher at the same tone
    assert abs(int(logp.argmax()) - b) <= 1 and logp[b] > logp[far] + 5  # log: orders above a far band
    # saved and reloaded through the HF path (AutoModel knows the type), same features
    d = save_encoder(m, tmp_path / "enc")
    assert type(AutoModel.from_pretrained(str(d))).__name__ == "LogMelHubertModel"
    enc = load_encoder(str(d))
    assert isinstance(enc, HFEncoder) and enc.pad_safe and enc.frame_rate == 50
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (8000, 11111)]
    alone = [enc.encode([w], [0, 2])[0] for w in waves]
    assert alone[0].shape == ((8000 - 400) // 320 + 1, 2, 32)
    batched = HFEncoder(m, normalize=True, batch_size=2).encode(waves, [0, 2])  # padded batch: exact
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(alone, batched))


def test_saved_encoder_loads_with_the_same_weights(tmp_path):
    from speechunits.encoders import HFEncoder, load_encoder
    from speechunits.encoders.pretrain import save_encoder

    m = build_model("tiny", seed=9).eval()
    enc = load_encoder(str(save_encoder(m, tmp_path / "enc")))
    wave = np.random.default_rng(2).standard_normal(9000).astype(np.float32) * 0.1
    a = enc.encode([wave], [0, 1, 2])[0]
    b = HFEncoder(m, normalize=True).encode([wave], [0, 1, 2])[0]
    assert torch.equal(a, b) and a.shape == (27, 3, 32)


def test_span_mask_is_seeded_and_has_the_hubert_density():
    a = span_mask([500, 300], np.random.default_rng(1))
    b = span_mask([500, 300], np.random.default_rng(1))
    assert torch.equal(a, b) and a.shape == (2, 500)
    assert not a[1, 300:].any()  # padding is never masked
    long = span_mask([100_000], np.random.default_rng(0), prob=0.08, span=10)
    assert abs(long.float().mean().item() - (1 - 0.92**10)) < 0.02
    assert span_mask([50], np.random.default_rng(0), prob=0.0).sum() == 0
    assert span_mask([8], np.random.default_rng(0), prob=0.08, span=10).all()  # shorter than a span


def test_crop_sampler_is_a_function_of_seed_and_step():
    lengths = [16000, 48000, 80000, 3000]
    s1, s2 = CropSampler(lengths, 3, 32000, seed=5), CropSampler(lengths, 3, 32000, seed=5)
    assert s1.batch(7) == s2.batch(7) and s1.batch(7) != s1.batch(8)
    for c in s1.batch(3) + s1.batch(4):
        assert c.start % HOP == 0 and c.start + c.length <= lengths[c.index] and c.length <= 32000
    flat = CropSampler(lengths, 3, 32000, seed=5, pad=False)
    for step in range(5):
        assert len({c.length for c in flat.batch(step)}) == 1
    # every utterance once per epoch
    epoch = [c.index for step in range(4) for c in CropSampler(lengths, 1, 32000, seed=0).batch(step)]
    assert sorted(epoch) == [0, 1, 2, 3]


def test_lr_schedule_warms_up_and_decays():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[99] == pytest.approx(0.1 + 0.9 / 90, rel=1e-6) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert step_rng(0, 3).integers(1 << 30) == step_rng(0, 3).integers(1 << 30) != step_rng(0, 4).integers(1 << 30)


# -- targets -------------------------------------------------------------------------------------


def test_targets_match_frame_counts(corpus, mfcc_targets):
    table, k, cfgs = read_targets(mfcc_targets)
    audio = load_audio_set(corpus, progress=False)
    assert k == 20 and cfgs[0]["layer"] == 0 and cfgs[0]["encoder"]["name"] == "mfcc"
    got = aligned_targets(audio, table, lambda n: (n - 400) // 320 + 1)
    assert all(t.min() >= 0 and t.max() < k for t in got)
    bad = dict(table)
    bad[audio.ids[0]] = bad[audio.ids[0]][:-1]
    with pytest.raises(ValueError, match="targets but the encoder makes"):
        aligned_targets(audio, bad, lambda n: (n - 400) // 320 + 1)
    with pytest.raises(ValueError, match="have no targets"):
        aligned_targets(audio, {}, lambda n: (n - 400) // 320 + 1)


# -- pre-training ----------------------------------------------------------------------------------


def test_pretraining_loss_decreases_and_the_model_loads(corpus, mfcc_targets, tmp_path):
    from speechunits.encoders import HFEncoder, load_encoder

    r = pretrain_hubert(corpus, mfcc_targets, tmp_path / "run", steps=20, seed=0, **FAST)
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1
    assert (tmp_path / "run" / "loss.json").is_file() and (tmp_path / "run" / "loss.png").is_file()
    enc = load_encoder(str(r.encoder_dir))
    assert isinstance(enc, HFEncoder) and enc.normalize and enc.num_layers == 2 and enc.pad_safe
    wave = np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.1
    assert enc.encode([wave], [1, -1])[0].shape == (enc.num_frames(12345), 2, 32) == ((12345 - 400) // 320 + 1, 2, 32)
    head = load_head(tmp_path / "run")
    assert head(torch.zeros(3, 32)).shape == (3, 20)
    assert json.loads((r.encoder_dir / "speechunits_training.json").read_text())["k"] == 20

    # scripts/head_tokenizer.py: the head as a tokenizer gives the head's arg-max on the last layer
    spec = importlib.util.spec_from_file_location("head_tokenizer", REPO / "scripts" / "head_tokenizer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tok = Tokenizer.from_pretrained(script.head_tokenizer(tmp_path / "run", tmp_path / "head_tok"))
    units = tok.frame_units([wave])[0]
    with torch.no_grad():
        want = head(torch.as_tensor(enc.encode([wave], [2])[0][:, 0])).argmax(-1)
    assert np.array_equal(np.asarray(units).reshape(-1), want.numpy())


def test_logmel_encoder_pretrains_and_warm_starts_a_second_iteration(corpus, mfcc_targets, tmp_path):
    from safetensors.torch import load_file

    from speechunits.encoders.logmel_hubert import LogMelHubertModel

    r = pretrain_hubert(corpus, mfcc_targets, tmp_path / "it1", steps=8, seed=0, frontend="logmel", **FAST)
    filters0 = build_model("tiny", frontend="logmel").feature_extractor.filters.weight.detach()
    filters1 = load_file(str(r.encoder_dir / "model.safetensors"))["feature_extractor.filters.weight"]
    assert not torch.equal(filters0, filters1)  # the filterbank is trained with the rest
    r2 = pretrain_hubert(corpus, mfcc_targets, tmp_path / "it2", steps=2, seed=0, init_from=r.encoder_dir, **FAST)
    from transformers import AutoModel

    assert isinstance(AutoModel.from_pretrained(str(r2.encoder_dir)), LogMelHubertModel)


def test_augmented_inputs_are_seeded_keep_length_and_change_training(corpus, mfcc_targets, tmp_path):
    from speechunits.encoders.pretrain.augment import augment_crop

    rng = np.random.default_rng(5)
    t = np.arange(24000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(24000))
    x = x.astype(np.float32)
    outs = [augment_crop(x, s, [x[::-1].copy()]) for s in range(12)]
    assert all(y.shape == x.shape and np.abs(y).max() <= 1.0 for y, _ in outs)
    assert {name for _, applied in outs for name in applied} == {"speaker", "noise", "reverb"}
    for (y, applied), s in zip(outs, range(12)):
        again, _ = augment_crop(x, s, [x[::-1].copy()])
        assert np.array_equal(y, again)  # a crop's distortion is a function of its seed
        assert np.array_equal(y, np.clip(x, -1, 1)) == (not applied)
    assert augment_crop(np.zeros(8000, np.float32), 1)[0].shape == (8000,)  # silence: no SNR, no crash
    kw = {**FAST, "frontend": "logmel"}
    plain = pretrain_hubert(corpus, mfcc_targets, tmp_path / "plain", steps=3, seed=0, **kw)
    aug = pretrain_hubert(corpus, mfcc_targets, tmp_path / "aug", steps=3, seed=0, augment=1.0, **kw)
    again = pretrain_hubert(corpus, mfcc_targets, tmp_path / "again", steps=3, seed=0, augment=1.0, **kw)
    losses = lambda r: [h["loss"] for h in r.history]  # noqa: E731
    assert losses(aug) == losses(again) and losses(aug) != losses(plain)
    assert aug.config["augment"] == 1.0


def test_resume_is_exact(corpus, mfcc_targets, tmp_path):
    from safetensors.torch import load_file

    full = pretrain_hubert(corpus, mfcc_targets, tmp_path / "a", steps=6, seed=3, **FAST)
    part = pretrain_hubert(corpus, mfcc_targets, tmp_path / "b", steps=6, seed=3, stop_at=3, **FAST)
    assert not part.complete and len(part.history) == 3
    done = pretrain_hubert(corpus, mfcc_targets, tmp_path / "b", steps=6, seed=3, **FAST)
    assert [h["loss"] for h in done.history] == [h["loss"] for h in full.history]
    wa, wb = load_file(str(full.encoder_dir / "model.safetensors")), load_file(str(done.encoder_dir / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match="other settings"):
        pretrain_hubert(corpus, mfcc_targets, tmp_path / "b", steps=6, seed=3, **{**FAST, "lr": 1e-3})


def test_second_iteration_targets_pick_a_layer(corpus, tmp_path):
    if not has_kmeans():
        pytest.skip("speechunits.quantizers.KMeans is not available yet")
    from speechunits.encoders.pretrain import save_encoder

    enc_dir = save_encoder(build_model("tiny", seed=1).eval(), tmp_path / "enc")
    r = fit_targets(corpus, tmp_path / "it2.jsonl", encoder=str(enc_dir), k=8, select_seconds=30, progress=False)
    assert set(r.layer_scores) == {1, 2} and r.layer == max(r.layer_scores, key=r.layer_scores.get)
    assert read_targets(r.path)[2][0]["layer_selection"] == "max PNMI"


# -- CTC -----------------------------------------------------------------------------------------


def test_ctc_finetuning_loss_decreases(corpus, tmp_path):
    from speechunits.encoders import load_encoder
    from speechunits.encoders.pretrain import save_encoder

    base = save_encoder(build_model("tiny", seed=2).eval(), tmp_path / "base")
    r = ctc_finetune(base, corpus, tmp_path / "ctc", tier="phones", steps=25, batch_size=4, crop_seconds=2.0,
                     lr=3e-3, warmup=3, progress=False, checkpoint_every=0)
    losses = [h["loss"] for h in r.history]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert "sil" not in r.vocab and len(r.vocab) >= 5
    assert load_encoder(str(r.encoder_dir)).num_layers == 2
    vocab = json.loads((tmp_path / "ctc" / "ctc_vocab.json").read_text())
    assert vocab["blank"] == 0 and vocab["labels"] == r.vocab


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_targets_pretrain_spin(corpus, tmp_path, capsys):
    if not has_kmeans():
        pytest.skip("speechunits.quantizers.KMeans is not available yet")
    from speechunits.cli import main

    t = tmp_path / "t.jsonl"
    assert main(["ssl", "targets", str(corpus), "--out", str(t), "--k", "10", "--no-progress"]) == 0
    common = ["--steps", "3", "--batch-size", "2", "--crop-seconds", "1", "--warmup", "1", "--no-progress", "--threads", "1"]
    assert main(["ssl", "pretrain", str(corpus), "--targets", str(t), "--out", str(tmp_path / "p"), "--preset", "tiny",
                 *common]) == 0
    assert main(["ssl", "pretrain", str(corpus), "--targets", str(t), "--out", str(tmp_path / "pre"), "--preset", "tiny",
                 "--pre-ln", *common]) == 0
    cfgs = [json.loads((tmp_path / d / "encoder" / "config.json").read_text()) for d in ("p", "pre")]
    assert [c["do_stable_layer_norm"] for c in cfgs] == [False, True]
    assert main(["ssl", "spin", str(corpus), "--encoder", str(tmp_path / "p" / "encoder"), "--out", str(tmp_path / "s"),
                 "--codebooks", "8", "16", "--trainable-layers", "1", *common]) == 0
    out = capsys.readouterr().out
    assert "pretrain: 3 steps" in out and "dc-spin: 3 steps" in out
    assert (tmp_path / "s" / "quantizer" / "config.json").is_file()
    from speechunits.tokenizer import Tokenizer  # the run is also an ordinary tokenizer

    tok = Tokenizer.from_pretrained(str(tmp_path / "s" / "tokenizer"))
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    ids = np.asarray(tok.encode(wave).ids)
    assert tok.config()["k"] == 8 and ids.shape[0] == 49 and ids.min() >= 0 and ids.max() < 8
    # SpinHuBERT: the Spin run's units are the next pre-training's targets
    st = tmp_path / "spin.targets.jsonl"
    assert main(["ssl", "targets", str(corpus), "--spin", str(tmp_path / "s"), "--out", str(st), "--no-progress"]) == 0
    table, k, _ = read_targets(st)
    assert k == 8 and all(t.max() < 8 for t in table.values())
    assert main(["ssl", "pretrain", str(corpus), "--targets", str(st), "--out", str(tmp_path / "sh"), "--preset", "tiny",
                 *common]) == 0
    assert json.loads((tmp_path / "sh" / "encoder" / "speechunits_training.json").read_text())["k"] == 8
    assert main(["ssl", "pretrain", str(corpus), "--targets", str(tmp_path / "missing.jsonl"), "--out",
                 str(tmp_path / "x"), "--preset", "tiny", *common]) == 2


def test_cli_records_unreadable_inputs_and_exits_1(tmp_path, capsys):
    """An unreadable file costs only itself: targets, pretrain, ctc and spin use the rest, list it
    with its reason in <out>.errors.jsonl and exit 1; a manifest of unreadable files only is
    recorded too (exit 1); a clean rerun removes the stale list."""
    if not has_kmeans():
        pytest.skip("speechunits.quantizers.KMeans is not available yet")
    import shutil

    from speechunits.cli import main

    good = vowel_corpus(tmp_path / "c", n=6, seconds=2.0)
    root = good.parent
    (root / "wav" / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    shutil.copy(root / "wav" / "v0.json", root / "wav" / "bad.json")  # ctc reads aligned ones only
    man = root / "mixed.jsonl"
    bad = {"id": "bad", "path": "wav/bad.wav", "alignment": "wav/bad.json"}
    man.write_text(good.read_text() + json.dumps(bad) + "\n")
    common = ["--steps", "2", "--batch-size", "2", "--crop-seconds", "1", "--warmup", "1", "--no-progress",
              "--threads", "1"]

    def errors(out: Path) -> list[dict]:
        return [json.loads(line) for line in Path(str(out) + ".errors.jsonl").read_text().splitlines()]

    t = tmp_path / "t.jsonl"
    assert main(["ssl", "targets", str(man), "--out", str(t), "--k", "10", "--no-progress"]) == 1
    assert len(read_targets(t)[0]) == 6  # every good file done
    (e,) = errors(t)
    assert e["id"] == "bad" and e["path"] == str(root / "wav" / "bad.wav") and "bad.wav" in e["reason"]
    assert "1 input(s) could not be read" in capsys.readouterr().err
    runs = {"pretrain": ["ssl", "pretrain", str(man), "--targets", str(t), "--preset", "tiny"]}
    runs["ctc"] = ["ssl", "ctc", str(man), "--encoder", str(tmp_path / "pretrain" / "encoder")]
    runs["spin"] = ["ssl", "spin", str(man), "--encoder", str(tmp_path / "pretrain" / "encoder"), "--codebooks", "8"]
    for name, argv in runs.items():
        out = tmp_path / name
        assert main([*argv, "--out", str(out), *common]) == 1, name
        assert (out / "encoder" / "config.json").is_file(), name  # the run finished on the good files
        assert [x["id"] for x in errors(out)] == ["bad"], name
    capsys.readouterr()

    assert main(["ssl", "targets", str(good), "--out", str(t), "--k", "10", "--no-progress"]) == 0
    assert not Path(str(t) + ".errors.jsonl").exists()  # no stale list after a clean rerun

    only_bad = root / "bad.jsonl"
    only_bad.write_text(json.dumps({"id": "bad", "path": "wav/bad.wav"}) + "\n")
    assert main(["ssl", "targets", str(only_bad), "--out", str(tmp_path / "b.jsonl"), "--no-progress"]) == 1
    assert [x["id"] for x in errors(tmp_path / "b.jsonl")] == ["bad"]
    assert "no usable audio" in capsys.readouterr().err
