"""The DC-Spin default-tokenizer recipe at tiny scale, end to end: build, load, encode, resume, determinism.

Needs espeak-ng and the MBROLA voices (the recipe synthesizes its corpus); skips without them.
Uses a couple of LibriSpeech-mini files when ../shared/data exists, none otherwise. One thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from speechunits.data.corpus import missing_tools
from speechunits.recipes.dcspin_artifact import STAGES, half_encoder, reproduce_command, unit_agreement
from speechunits.recipes.dcspin_default import SCALES, build_dcspin_default

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="espeak-ng / MBROLA voices not installed")
K = SCALES["tiny"].codebooks[0]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dcspin_recipe")
    tok_dir = build_dcspin_default(out, scale="tiny", seed=0, progress=False)
    assert tok_dir == out / "tokenizer"
    return out


def _recipe(out: Path) -> dict:
    return json.loads((out / "recipe.json").read_text())


def test_builds_a_loadable_tokenizer(built: Path):
    from speechunits.data.manifest import read_manifest
    from speechunits.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(built / "tokenizer")
    wav = read_manifest(built / "corpus" / "test.jsonl")[0].path  # a speaker never seen in training
    units = tok.encode(wav)
    assert units.ids.ndim == 1 and len(units.ids) > 10
    assert units.ids.min() >= 0 and units.ids.max() < K
    assert tok.quantizer.config()["type"] == "spin" and tok.vocab_sizes == [K]
    cfg = json.loads((built / "tokenizer" / "config.json").read_text())
    assert cfg["seed"] == 0 and cfg["training_data"]["utterances"] > 0
    assert cfg["recipe"]["settings"]["scale"] == "tiny"
    assert "/" not in json.dumps(cfg["training_data"]).replace("librispeech-mini/train-clean-100", "")  # no local paths
    rec = _recipe(built)
    assert list(rec["stages"]) == list(STAGES)
    assert {k: v["status"] for k, v in rec["stages"].items()} == {s: ("disabled" if s == "ctc" else "done")
                                                                   for s in STAGES}
    assert all(v["seconds"] >= 0 for v in rec["stages"].values())
    # the encoder gate: iteration-1 layers scored against MFCC k-means at the same k, same audio
    t1, t2 = rec["stages"]["targets1"]["result"], rec["stages"]["targets2"]["result"]
    assert list(t1["layer_pnmi"]) == ["0"] and 0 < t1["layer_pnmi"]["0"] <= 1
    assert 0 < t2["mfcc_pnmi"] <= 1 and t2["beats_mfcc"] == (max(t2["layer_pnmi"].values()) > t2["mfcc_pnmi"])
    t = rec["stages"]["tokenizer"]["result"]
    assert t["reload_unit_agreement"] == 1.0 and t["size_ok"] and t["encoder_dtype"] == "float32"
    card = (built / "tokenizer" / "README.md").read_text()
    assert "Not yet measured" in card and reproduce_command(rec["settings"]) in card
    assert f"k-means on MFCCs scores {t2['mfcc_pnmi']:.3f}" in card


def test_rerun_skips_every_stage(built: Path):
    before = (built / "tokenizer" / "config.json").read_bytes()
    build_dcspin_default(built, scale="tiny", seed=0, progress=False)
    run = _recipe(built)["runs"][-1]
    assert run["ran"] == [] and run["disabled"] == ["ctc"] and run["device"] == "cpu"
    assert run["skipped"] == [s for s in STAGES if s != "ctc"]
    assert (built / "tokenizer" / "config.json").read_bytes() == before


def test_other_settings_are_refused(built: Path):
    with pytest.raises(ValueError, match="other settings"):
        build_dcspin_default(built, scale="tiny", seed=1, progress=False)
    with pytest.raises(ValueError, match="stop_after"):
        build_dcspin_default(built, scale="tiny", stop_after="nope")
    with pytest.raises(ValueError, match="scale"):
        build_dcspin_default(built, scale="huge")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_before_anything_runs(tmp_path: Path):
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
        build_dcspin_default(tmp_path / "gpu", scale="tiny", device="cuda", progress=False)
    assert not (tmp_path / "gpu").exists()


def test_first_stages_are_deterministic(built: Path, tmp_path: Path):
    out = build_dcspin_default(tmp_path / "again", scale="tiny", seed=0, stop_after="targets1", progress=False)
    assert out == tmp_path / "again" and not (out / "tokenizer").exists()
    assert list(_recipe(out)["stages"]) == ["data", "targets1"]
    for rel in ("corpus/train.jsonl", "work/targets1.jsonl", "work/targets1.jsonl.kmeans.safetensors"):
        assert (out / rel).read_bytes() == (built / rel).read_bytes(), rel


def test_float16_encoder_loads_and_nearly_agrees(built: Path, tmp_path: Path):
    """The size fallback: float16 weights load into the float32 model; units barely move."""
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.tokenizer import Tokenizer

    ref = Tokenizer.from_pretrained(built / "tokenizer")
    half = half_encoder(built / "tokenizer" / "encoder", tmp_path / "enc16")
    Tokenizer(load_encoder(str(half)), ref.quantizer).save_pretrained(tmp_path / "tok16")
    tok16 = Tokenizer.from_pretrained(tmp_path / "tok16")
    assert next(tok16.encoder.model.parameters()).dtype == torch.float32
    files = [u.path for u in read_manifest(built / "corpus" / "manifest.jsonl")]
    assert unit_agreement(ref, tok16, files) > 0.9
    assert json.loads((half / "config.json").read_text())["dtype"] == "float16"
