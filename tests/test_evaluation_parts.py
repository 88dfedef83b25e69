"""Fast tests of the evaluation's parts (no speech synthesis): seeds and subsets, distortion
names, skipped-entry helpers, the document renderer, the headline row and `compare`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from speechunits.evaluation import doc
from speechunits.evaluation._result import json_safe, skipped
from speechunits.evaluation.compare import compare, comparison_rows, score_direction
from speechunits.evaluation.dataset import sample_indices, stable_seed, subset_by_seconds
from speechunits.evaluation.robustness import parse_distortion, robustness
from speechunits.evaluation.run import HEADLINE, headline


def test_seeds_and_subsets_are_stable():
    assert stable_seed(3, "noise", "u1") == stable_seed(3, "noise", "u1") != stable_seed(3, "noise", "u2")
    assert sample_indices(50, 10, 0) == sample_indices(50, 10, 0) != sample_indices(50, 10, 1)
    lengths = [16000 * s for s in (3, 5, 2, 8, 4)]
    small = subset_by_seconds(lengths, 9.0, 0, "x")
    assert sum(lengths[i] for i in small) <= 9 * 16000 and small == sorted(small)
    assert set(small) <= set(subset_by_seconds(lengths, 15.0, 0, "x"))  # a larger budget extends it
    assert subset_by_seconds(lengths, None, 0, "x") == list(range(5))
    assert len(subset_by_seconds([16000 * 30], 1.0, 0, "x")) == 1  # at least one utterance


def test_distortion_names():
    assert parse_distortion("babble_0dB").params == {"kind": "babble", "snr_db": 0.0}
    assert parse_distortion("pink_-5dB").params == {"kind": "pink", "snr_db": -5.0}
    assert parse_distortion("stretch_0.9").params == {"rate": 0.9}
    assert parse_distortion("pitch_-3st").params == {"semitones": -3.0}
    assert parse_distortion("speaker").describe()["kind"] == "speaker"
    assert parse_distortion("white_10dB").describe()["params"]["snr_db"] == 10.0
    for bad in ("noise", "white_100dB", "stretch_0", "pitch_3", "reverb_-1s"):
        with pytest.raises(ValueError):
            parse_distortion(bad)


def test_robustness_identity_is_zero_and_noise_is_not():
    waves = [(0.1 * np.sin(np.arange(16000) * f)).astype(np.float32) for f in (0.05, 0.1, 0.2)]
    ids = lambda w: np.digitize(w[: len(w) // 160 * 160].reshape(-1, 160).std(1), [0.02, 0.05, 0.08])  # noqa: E731
    res = robustness(ids, waves, ["a", "b", "c"], [parse_distortion("identity"), parse_distortion("white_-10dB")],
                     seed=0, progress=False)
    assert res["identity"]["ued"] == [0.0] and res["white_-10dB"]["ued"][0] > 0
    again = robustness(ids, waves, ["a", "b", "c"], [parse_distortion("white_-10dB")], seed=0, progress=False)
    assert again["white_-10dB"] == res["white_-10dB"]  # seeded


def test_json_safe_and_skipped():
    assert json.dumps(json_safe({"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan")})) == \
        '{"a": 0.5, "b": [1, 2], "c": null}'
    assert skipped("why") == {"skipped": True, "reason": "why"}


def test_document_renders_the_same_content_twice(tmp_path):
    blocks = [doc.h(1, "T"), doc.p("a `b` **c**"), doc.note("x <y>"),
              doc.table(["m", "v"], [["n|m", 1.23456], ["skipped", None], ["big", 123456.7]])]
    md = doc.to_markdown(blocks)
    assert "| n\\|m | 1.235 |" in md and "| big | 123456.7 |" in md and "> x <y>" in md
    html = doc.to_html(blocks, title="T", base=tmp_path)
    assert "<code>b</code>" in html and "<strong>c</strong>" in html and "x &lt;y&gt;" in html
    assert '<td class="t">skipped</td>' in html and "<td>1.235</td>" in html


def test_headline_reads_sections_and_skips():
    sec = {"codebook": {"frames": {"utilization": 0.5}, "dedup": {"entropy_bits": 3.0, "entropy_bitrate": 60.0,
                                                                  "nominal_bitrate": 70.0}},
           "pnmi": {"nmi": 0.4, "label_purity": 0.3}, "cnmi": skipped("no chars"),
           "abx": {"units": {"within": {"error": 0.1}, "across": skipped("1 speaker")}, "features": skipped("off")},
           "ngram": {"perplexity": 12.0}, "robustness": {"mean_ued": 0.5}}
    row = headline(sec, skipped("off"))
    assert set(row) == {k for k, _, _ in HEADLINE}
    assert row["abx_within_units_pct"] == pytest.approx(10.0) and row["abx_across_units_pct"] is None
    assert row["cnmi"] is None and row["rtf"] is None and row["pnmi"] == 0.4


def _write_eval(d, name, rows):
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"name": name, "summary": rows}))
    return d


def test_compare_rows_correlation_and_direction(tmp_path):
    evals = []
    for name, pnmi, abx in (("k100", 0.30, 20.0), ("k500", 0.45, 15.0), ("k1000", 0.50, 12.0), ("k2000", 0.52, 11.0)):
        evals.append(_write_eval(tmp_path / name, name, [
            {"dataset": "in", "layer": 6, "pnmi": pnmi, "abx_within_units_pct": abx, "rtf": 0.01},
            {"dataset": "out", "layer": 6, "pnmi": pnmi - 0.1, "abx_within_units_pct": abx + 5, "rtf": 0.01}]))
    with pytest.raises(ValueError, match="no dataset"):
        compare(evals, tmp_path / "x", dataset="nope")
    rows = comparison_rows([json.loads((e / "metrics.json").read_text()) for e in evals])
    assert [r["label"] for r in rows][:2] == ["k100 / in", "k100 / out"]
    scores = {"k100": {"swuggy": 0.60, "wer": 30.0}, "k500": {"swuggy": 0.65, "wer": 25.0},
              "k1000": {"swuggy": 0.70, "wer": 20.0}, "k2000": {"swuggy": 0.69, "wer": 21.0}, "other": {"swuggy": 0.1}}
    res = compare(evals, tmp_path / "cmp", scores=scores, dataset="in")
    assert [r["label"] for r in res["rows"]] == ["k100", "k500", "k1000", "k2000"]
    c = res["correlation"]
    assert "rtf" not in c["metrics"] and set(c["negated"]) == {"abx_within_units_pct", "wer"}
    m = c["metrics"]
    # more PNMI, lower ABX, higher sWUGGY and lower WER all mean "better": every r is positive
    for a in ("pnmi", "abx_within_units_pct"):
        for b in ("swuggy", "wer"):
            i, j = m.index(a), m.index(b)
            assert c["matrix"][i][j] > 0.8 and c["n"][i][j] == 4
            assert -1 <= c["ci_low"][i][j] < c["matrix"][i][j] < c["ci_high"][i][j] <= 1  # Fisher z, n = 4: wide
    assert res["unmatched_scores"] == ["other"]
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "r [95 % CI] (n)" in md and re.search(r"\| pnmi \| 0\.\d+ \[-?0\.\d+, 0\.\d+\] \(4\)", md)
    for f in ("compare.json", "compare.md", "compare.html", res["correlation_plot"]):
        assert (tmp_path / "cmp" / f).is_file()
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == len(res["plots"]) + 1


def test_score_direction():
    assert score_direction("asr_WER") and score_direction("loss") and not score_direction("sblimp_acc")
    assert score_direction("acc", lower=["acc"]) and not score_direction("error_free", higher=["error_free"])
