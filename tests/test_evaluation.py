"""The evaluation runner end to end on a tiny aligned synthetic corpus (MFCC k-means, k = 16).

Known answers of the metrics themselves live in test_metrics_*; here: the wiring (every section
present, skipped metrics carry reasons, identity distortion has UED 0, units equal the tokenizer's,
evaluating twice gives the same numbers), the three report files, and the CLI.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from speechunits.data.corpus import tools

pytestmark = [
    pytest.mark.skipif(bool(tools.missing_tools()), reason=f"needs espeak-ng + MBROLA voices: {tools.INSTALL_HINT}"),
    pytest.mark.slow,
]

FAST = dict(robustness_seconds=None, speed_seconds=20.0, stream_seconds=8.0, plots=False, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from speechunits.data.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, minutes=0.5, seed=0, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory):
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizer

    paths = [str(u.path) for u in read_manifest(corpus / "manifest.jsonl")]
    tok = fit_tokenizer(load_encoder("mfcc"), paths, layers=[0], k=16, seed=0, n_init=1)
    d = tmp_path_factory.mktemp("tok") / "mfcc-k16"
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tok(tok_dir):
    from speechunits.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(tok_dir)


def test_full_eval_writes_three_files_with_every_section(corpus, tok, tok_dir, tmp_path):
    """Every section, the default distortions plus identity, on all 5 utterances (the one
    expensive run: a single test, so parallel workers do not repeat it)."""
    from speechunits.evaluation import DEFAULT_DISTORTIONS, EvalConfig, evaluate_and_report

    out = tmp_path / "eval"
    cfg = EvalConfig(distortions=["identity", *DEFAULT_DISTORTIONS], **{**FAST, "plots": True})
    m = evaluate_and_report(tok, [corpus / "manifest.jsonl"], out, cfg, tokenizer_path=str(tok_dir))
    for name in ("metrics.json", "report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m)) and on_disk["schema"] == "speechunits-eval/1"
    assert on_disk["name"] == "mfcc-k16"
    (ds,) = m["datasets"]
    assert ds["data"]["utterances"] == 5 and ds["data"]["aligned_utterances"] == 5
    sec = ds["layers"]["0"]
    assert 0 < sec["pnmi"]["nmi"] <= 1 and 0 < sec["cnmi"]["nmi"] <= 1
    cb = sec["codebook"]
    assert cb["frames"]["num_tokens"] > cb["dedup"]["num_tokens"] and cb["bpe"]["skipped"]
    assert cb["frames"]["nominal_bitrate"] == pytest.approx(4 * 50)  # log2(16) bits at 50 Hz
    assert 0 <= sec["abx"]["units"]["within"]["error"] <= 1 and sec["abx"]["units"]["distance"] == "centroid-cosine"
    assert sec["abx"]["features"]["distance"] == "cosine"
    assert sec["ngram"]["perplexity"] > 1 and sec["ngram"]["test_utterances"] == 1
    dist = sec["robustness"]["distortions"]
    assert set(dist) == {"identity", *DEFAULT_DISTORTIONS}
    assert all(not d.get("skipped") and d["ued"] >= 0 for d in dist.values())
    assert dist["identity"]["ued"] == 0.0  # the tokenizer is deterministic
    assert all(dist[n]["ued"] > 0 for n in ("white_0dB", "babble_0dB", "speaker"))
    sp = ds["speed"]
    assert sp["offline"]["rtf"] > 0 and sp["streaming"]["unit_edit_distance"] == 0.0  # MFCC: exact streaming
    assert set(ds["timings_s"]) >= {"tokenize", "codebook", "alignment", "abx", "ngram", "robustness", "speed"}
    (row,) = m["summary"]
    assert row["pnmi"] == sec["pnmi"]["nmi"] and row["ued_mean"] == sec["robustness"]["mean_ued"]
    plots = sec["plots"]
    assert len(plots) == 4 and all((out / p["file"]).is_file() for p in plots)
    # HTML: self-contained (every plot embedded, nothing fetched); Markdown links the PNGs
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(plots)
    assert "http://" not in html and "https://" not in html and 'src="plots/' not in html
    md = (out / "report.md").read_text()
    assert all(f"({p['file']})" in md for p in plots)
    assert "PNMI" in md and "babble_0dB" in md


def test_units_equal_the_tokenizers(corpus, tok):
    from speechunits.evaluation.dataset import load_dataset
    from speechunits.evaluation.run import tokenize_with_features

    ds = load_dataset(corpus / "test.jsonl")
    units, feats = tokenize_with_features(tok, ds.waves, [True] * ds.num_utterances)
    for w, u, f in zip(ds.waves, units, feats):
        assert np.array_equal(u, tok.frame_units([w])[0])
        assert f.shape == (len(u), 1, 39) and f.dtype == np.float16


def test_same_inputs_same_metrics(corpus, tok, tmp_path):
    from speechunits.evaluation import EvalConfig, evaluate

    cfg = EvalConfig(distortions=["speaker", "babble_0dB"], skip=["speed"], **FAST)
    a, b = (evaluate(tok, [corpus / "manifest.jsonl"], cfg, out=tmp_path / name)["datasets"][0]["layers"]["0"]
            for name in ("a", "b"))
    for key in ("codebook", "pnmi", "cnmi", "abx", "ngram"):
        assert a[key] == b[key], key
    assert a["pnmi"]["nmi"] > 0
    for name in ("speaker", "babble_0dB"):  # seeded per utterance: the same distorted audio
        assert a["robustness"]["distortions"][name] == b["robustness"]["distortions"][name]


def test_missing_inputs_are_skipped_with_reasons(corpus, tok, tmp_path):
    """A folder of wavs: no alignments, no speakers; one utterance: no LM split, no babble."""
    from speechunits.evaluation import EvalConfig, evaluate_and_report

    folder = tmp_path / "wavs"
    folder.mkdir()
    wav = sorted((corpus / "wav").rglob("*.wav"))[0]
    shutil.copy(wav, folder / "a.wav")
    m = evaluate_and_report(tok, [folder], tmp_path / "out",
                            EvalConfig(distortions=["identity", "babble_10dB"], **FAST))
    sec = m["datasets"][0]["layers"]["0"]
    for entry in (sec["pnmi"], sec["cnmi"], sec["abx"]["units"], sec["abx"]["features"], sec["ngram"],
                  sec["robustness"]["distortions"]["babble_10dB"], sec["codebook"]["bpe"]):
        assert entry["skipped"] is True and len(entry["reason"]) > 10
    assert "alignment" in sec["pnmi"]["reason"] and "utterance" in sec["ngram"]["reason"]
    assert sec["robustness"]["distortions"]["identity"]["ued"] == 0.0
    row = m["summary"][0]
    assert row["pnmi"] is None and row["abx_within_units_pct"] is None and row["utilization"] > 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Skipped metrics" in md and sec["pnmi"]["reason"] in md and "plots disabled" in md


def test_alignments_none_and_across_speaker_reason(corpus, tok, tmp_path):
    from speechunits.evaluation import EvalConfig, evaluate

    cfg = EvalConfig(alignments="none", skip=["robustness", "speed"], **FAST)
    m = evaluate(tok, [corpus / "manifest.jsonl"], cfg, out=tmp_path)
    sec = m["datasets"][0]["layers"]["0"]
    assert sec["pnmi"]["reason"] == sec["abx"]["reason"] == "alignments disabled (--alignments none)"
    assert m["datasets"][0]["speed"]["reason"] == "disabled (--skip speed)"
    # one speaker: within runs, across is skipped with the reason
    m = evaluate(tok, [corpus / "dev.jsonl"], EvalConfig(skip=["robustness", "speed"], **FAST), out=tmp_path)
    abx = m["datasets"][0]["layers"]["0"]["abx"]
    assert "at least 2" in abx["units"]["across"]["reason"]


def test_cli_eval_then_compare_with_scores(corpus, tok_dir, tmp_path):
    from speechunits.cli import main

    out = tmp_path / "cli_eval"
    rc = main(["eval", "--tokenizer", str(tok_dir), "--data", str(corpus / "train.jsonl"), "--data",
               str(corpus / "test.jsonl"), "--out", str(out), "--name", "cli", "--distortions", "white_0dB",
               "--skip", "speed", "--no-plots", "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [d["data"]["name"] for d in m["datasets"]] == [f"{corpus.name}/train", f"{corpus.name}/test"]
    assert "| metric |" in (out / "report.md").read_text()
    other = tmp_path / "cli_eval2"  # a second, cheaper evaluation: the default name is the directory's
    assert main(["eval", "--tokenizer", str(tok_dir), "--data", str(corpus / "dev.jsonl"), "--out", str(other),
                 "--skip", "abx", "robustness", "speed", "--no-plots", "--no-progress"]) == 0

    cmp = tmp_path / "cmp"
    assert main(["compare", str(out), str(other), "--out", str(cmp)]) == 0
    table = (cmp / "compare.md").read_text()
    assert "mfcc-k16" in table and f"cli / {corpus.name}/test" in table and "PNMI" in table
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"mfcc-k16": {"sWUGGY": 0.6, "asr_wer": 30.0},
                                  f"cli / {corpus.name}/train": {"sWUGGY": 0.5, "asr_wer": 35.0},
                                  f"cli / {corpus.name}/test": {"sWUGGY": 0.55, "asr_wer": 40.0}}))
    assert main(["compare", str(out), str(other), "--out", str(cmp), "--scores", str(scores)]) == 0
    res = json.loads((cmp / "compare.json").read_text())
    corr = res["correlation"]
    assert "asr_wer" in corr["negated"] and "abx_within_units_pct" in corr["negated"]
    assert "sWUGGY" not in corr["negated"] and "pnmi" in corr["metrics"]
    i, j = corr["metrics"].index("sWUGGY"), corr["metrics"].index("asr_wer")
    assert corr["n"][i][j] == 3 and -1 <= corr["matrix"][i][j] <= 1
    assert (cmp / res["correlation_plot"]).is_file() and "Correlation" in (cmp / "compare.html").read_text()


def test_multi_layer_tokenizer_is_evaluated_per_layer(corpus, tmp_path):
    """A tiny random HuBERT, layers 1 and 3: one section per layer, streaming skipped with a reason."""
    pytest.importorskip("transformers")
    from transformers import Wav2Vec2FeatureExtractor

    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.evaluation import EvalConfig, evaluate
    from speechunits.fit import fit_tokenizers
    from test_encoders_hf import build

    model_dir = tmp_path / "model"
    build("hubert", "layer").save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(model_dir)
    paths = [str(u.path) for u in read_manifest(corpus / "train.jsonl")]
    tok = fit_tokenizers(load_encoder(str(model_dir)), paths, layers=[1, -1], ks=[8], seed=0, n_init=1)[0]
    m = evaluate(tok, [corpus / "test.jsonl"], EvalConfig(distortions=["white_10dB"], **FAST), out=tmp_path / "o")
    ds = m["datasets"][0]
    assert list(ds["layers"]) == ["1", "3"] and [r["layer"] for r in m["summary"]] == [1, 3]
    for sec in ds["layers"].values():
        assert sec["k"] == 8 and 0 < sec["pnmi"]["nmi"] <= 1
        assert sec["robustness"]["distortions"]["white_10dB"]["ued"] >= 0
    assert "single-layer" in ds["speed"]["streaming"]["reason"] and ds["speed"]["offline"]["rtf"] > 0
