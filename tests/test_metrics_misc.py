"""UED, speed helpers, proxy correlation and the PNG plot helpers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from speechunits.metrics import (
    Timer,
    corpus_ued,
    measure_rtf,
    pearson,
    plot_bars,
    plot_correlation,
    plot_pphone_given_code,
    plot_unit_frequency,
    pnmi,
    proxy_correlation,
    rtf,
    ued_by_distortion,
    ued_table,
)
from speechunits.tokens import Units, dedup


# --------------------------------------------------------------------------- UED
def test_ued_identical_is_zero_and_known_edit():
    clean = [np.array([1, 1, 2, 2, 3]), np.array([4, 5, 6, 7])]
    assert corpus_ued(clean, clean).ued == 0.0
    # De-duplicated refs: [1, 2, 3] and [4, 5, 6, 7] (7 units); one substitution + one deletion.
    noisy = [np.array([1, 9, 9, 3]), np.array([4, 5, 7])]
    r = corpus_ued(clean, noisy)
    assert (r.distance, r.reference_length, r.num_utterances) == (2, 7, 2)
    assert r.ued == pytest.approx(2 / 7)
    # Without de-duplication the frame-level sequences are compared.
    assert corpus_ued(clean, noisy, dedup=False).reference_length == 9


def test_ued_by_distortion_with_ids_and_units():
    clean = {"u1": Units(np.array([1, 2, 3, 4]), 50.0), "u2": [5, 6]}
    dist = {
        "clean_copy": {"u1": [1, 2, 3, 4], "u2": [5, 6], "extra": [1]},
        "noise": {"u1": dedup(Units(np.array([1, 2, 2, 0]), 50.0)), "u2": [6]},
    }
    res = ued_by_distortion(clean, dist)
    assert res["clean_copy"].ued == 0.0
    assert res["noise"].ued == pytest.approx((2 + 1) / 6)
    table = ued_table(res)
    assert table["mean"] == pytest.approx(0.25) and res["noise"].to_dict()["distance"] == 3
    with pytest.raises(KeyError):
        corpus_ued(clean, {"u1": [1]})
    with pytest.raises(ValueError):
        corpus_ued([[1]], [[1], [2]])
    with pytest.raises(TypeError):
        corpus_ued(clean, [[1], [2]])


# --------------------------------------------------------------------------- speed
def test_measure_rtf_with_a_known_cost():
    calls = []

    def fn(w):
        calls.append(len(w))
        time.sleep(0.01 * len(w) / 16000)  # 10 ms per second of audio -> RTF 0.01

    waves = [np.zeros(16000), np.zeros(32000), np.zeros(8000)]
    r = measure_rtf(fn, waves, sample_rate=16000, warmup=2)
    assert len(calls) == 5  # 2 warm-up calls, untimed
    assert r.num_utterances == 3 and r.audio_seconds == pytest.approx(3.5)
    assert 0.009 < r.rtf < 0.05
    assert r.throughput_audio_s_per_s == pytest.approx(1 / r.rtf)
    assert r.utterances_per_s == pytest.approx(3 / r.processing_seconds)
    assert min(r.latencies_s) <= r.median_latency_s <= r.p90_latency_s <= r.max_latency_s
    assert r.median_latency_s >= 0.01  # the 1 s wave
    assert "latencies_s" not in r.to_dict() and len(r.to_dict(True)["latencies_s"]) == 3
    with pytest.raises(ValueError):
        measure_rtf(fn, [], 16000)


def test_timer_and_rtf_with_sync():
    synced = []
    with Timer(sync=lambda: synced.append(1)) as t:
        time.sleep(0.005)
    assert t.elapsed >= 0.004 and len(synced) == 2
    assert rtf(1.0, 4.0) == 0.25
    # [C, T] waves count samples along the last axis.
    r = measure_rtf(lambda w: None, [np.zeros((2, 16000))], 16000, warmup=0)
    assert r.audio_seconds == 1.0


# --------------------------------------------------------------------------- correlation
def test_proxy_correlation_negates_lower_is_better():
    table = {
        "t1": {"abx": 20.0, "pnmi": 0.30, "ued": 0.50, "wer": 30.0},
        "t2": {"abx": 15.0, "pnmi": 0.40, "ued": 0.40, "wer": 25.0},
        "t3": {"abx": 10.0, "pnmi": 0.50, "ued": 0.30, "wer": 20.0},
        "t4": {"abx": 5.0, "pnmi": 0.60, "ued": 0.20},
    }
    c = proxy_correlation(table, lower_is_better=["abx", "ued", "wer"])
    assert c.metrics == ["abx", "pnmi", "ued", "wer"] and c.negated == ["abx", "ued", "wer"]
    assert c.get("abx", "pnmi") == pytest.approx(1.0)  # both "better" move together
    assert c.get("ued", "wer") == pytest.approx(1.0)
    assert c.n[0][3] == 3 and c.n[0][1] == 4
    assert c.note is None
    raw = proxy_correlation(table)
    assert raw.get("abx", "pnmi") == pytest.approx(-1.0)
    d = c.to_dict()
    assert d["matrix"][1][1] == pytest.approx(1.0) and d["n"][3][3] == 3


def test_correlation_small_n_and_constant():
    c = proxy_correlation({"a": {"x": 1.0, "y": 2.0, "z": 5.0}, "b": {"x": 2.0, "y": 1.0, "z": 5.0}})
    assert c.note is not None and "2 tokenizer" in c.note
    assert c.get("x", "y") == pytest.approx(-1.0)
    assert math.isnan(c.get("x", "z")) and c.to_dict()["matrix"][0][2] is None  # constant z
    assert math.isnan(pearson(np.array([1.0]), np.array([2.0])))
    x = np.random.default_rng(0).normal(size=50)
    y = 2 * x + np.random.default_rng(1).normal(size=50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_correlation_interval_covers_the_true_r_at_the_stated_rate():
    """Fisher's z interval: a 95 % interval holds the population r in ~95 % of samples of n = 8."""
    from speechunits.metrics import pearson_ci

    rng = np.random.default_rng(0)
    rho, n, hits, trials = 0.6, 8, 0, 2000
    cov = [[1.0, rho], [rho, 1.0]]
    for _ in range(trials):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        lo, hi = pearson_ci(pearson(x, y), n)
        hits += lo <= rho <= hi
    assert 0.93 <= hits / trials <= 0.97
    assert all(math.isnan(v) for v in pearson_ci(0.5, 3)) and pearson_ci(1.0, 10) == (1.0, 1.0)
    lo, hi = pearson_ci(0.5, 100)
    assert lo < 0.5 < hi and hi - lo < pearson_ci(0.5, 10)[1] - pearson_ci(0.5, 10)[0]
    table = {f"t{i}": {"a": float(i), "b": float(i) + (0.5 if i % 2 else -0.5)} for i in range(6)}
    c = proxy_correlation(table)
    low, high = c.interval("a", "b")
    assert low < c.get("a", "b") < high and c.to_dict()["ci_low"][0][1] == pytest.approx(low)


# --------------------------------------------------------------------------- plots
def _check_png(path, min_kb=8):
    import matplotlib.image as mpimg
    from PIL import Image

    assert path.exists() and path.stat().st_size > min_kb * 1024
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.std() > 0.01  # not a blank canvas


def test_plots_write_readable_pngs(tmp_path):
    table = {f"t{i}": {"abx": 10 - i + 0.3 * (i % 2), "pnmi": 0.1 * i, "bitrate": 50 + 3 * i * i}
             for i in range(5)}
    c = proxy_correlation(table, lower_is_better=["abx"])
    p = plot_correlation(c, tmp_path / "sub" / "corr.png")
    assert p == tmp_path / "sub" / "corr.png"
    _check_png(p)
    _check_png(plot_correlation(c.as_array(), tmp_path / "corr2.png", labels=c.metrics))

    rng = np.random.default_rng(0)
    phones = [f"p{i}" for i in range(10)]
    labels = list(rng.choice(phones, 3000))
    codes = np.array([phones.index(x) * 4 for x in labels]) + rng.integers(0, 4, 3000)
    r = pnmi([(codes, labels)])
    _check_png(plot_pphone_given_code(r.p_label_given_code, r.labels, tmp_path / "pp.png"))

    counts = np.sort(rng.zipf(1.5, 500))[::-1]
    _check_png(plot_unit_frequency(counts, tmp_path / "zipf.png"))
    _check_png(plot_unit_frequency({"k=100": counts[:100], "k=500": counts}, tmp_path / "zipf2.png"))
    _check_png(plot_bars({"hubert": 0.61, "wavlm": 0.65, "spin": float("nan")}, tmp_path / "bars.png",
                         "PNMI", ylabel="PNMI"), min_kb=5)
    with pytest.raises(ValueError):
        plot_correlation(np.zeros((2, 3)), tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_unit_frequency(np.zeros(5), tmp_path / "bad.png")
