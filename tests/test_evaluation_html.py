"""The HTML report renders in a real browser with its plots (headless Chromium; skipped without it).

Needs no espeak-ng: the data are generated harmonic sounds with made-up phone alignments as
``<stem>.alignment.json`` sidecars, which the folder reader attaches, so every plot is drawn.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.slow
PHONES = ["AA", "B", "IY", "K", "S", "sil"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from speechunits.encoders import load_encoder
    from speechunits.evaluation import EvalConfig, evaluate_and_report
    from speechunits.fit import fit_tokenizer

    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    # A repeating phone pattern, so that triphone contexts recur within an utterance (ABX cells).
    pattern = ["B", "AA", "K", "B", "IY", "K", "S", "AA", "K", "S", "IY", "K"]
    for u in range(4):
        segs, wave, start = [], np.zeros_like(t), 0.0
        for i in range(len(t)):  # one "phone" every 80-140 ms, each a distinct harmonic colour
            if start >= 2.0:
                break
            end = min(2.0, start + rng.uniform(0.08, 0.14))
            p = PHONES.index(pattern[(i + u) % len(pattern)])
            seg = (t >= start) & (t < end)
            wave[seg] = sum(np.sin(2 * np.pi * (150 + 90 * p) * h * t[seg]) / h for h in range(1, 6))
            segs.append([start, end, PHONES[p]])
            start = end
        wave = (0.2 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        sf.write(d / f"u{u}.wav", wave, 16000)
        (d / f"u{u}.alignment.json").write_text(json.dumps({"duration": 2.0, "phones": segs}))
    tok = fit_tokenizer(load_encoder("mfcc"), [str(p) for p in sorted(d.glob("*.wav"))], layers=[0], k=8,
                        seed=0, n_init=1)
    out = tmp_path_factory.mktemp("report")
    cfg = EvalConfig(distortions=["white_10dB", "pitch_+3st"], speed_seconds=4.0, stream_seconds=2.0,
                     progress=False)
    m = evaluate_and_report(tok, [d], out, cfg, name="harmonics")
    return out, m


def test_report_without_espeak_has_every_plot(report):
    out, m = report
    sec = m["datasets"][0]["layers"]["0"]
    assert [p["file"].rsplit("_", 1)[1] for p in sec["plots"]] == ["units.png", "pphone.png", "abx.png", "ued.png"]
    assert 0 < sec["pnmi"]["nmi"] <= 1
    assert sec["abx"]["speaker_source"] == "utterance" and sec["abx"]["units"]["across"]["skipped"]


def _screenshot(html, png, profile) -> np.ndarray:
    from matplotlib.image import imread

    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,4000", html.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return (imread(png)[..., :3] * 255).round().astype(np.uint8)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_report_renders_with_its_plots(report, tmp_path):
    out, _ = report
    shot = _screenshot(out / "report.html", tmp_path / "report.png", tmp_path / "profile")
    # Saturated pixels are plot lines, bars and heat maps: text is grey/black, tables pale. The
    # same page with its images removed rendered about 5,700 of them (the title rule, the links)
    # and 1,400 distinct colours; with the plots, about 180,000 and 3,000.
    colourful = int(((shot.max(axis=2).astype(int) - shot.min(axis=2)) > 80).sum())
    distinct = len(np.unique(shot.reshape(-1, 3), axis=0))
    assert shot.shape[1] == 1200 and distinct > 1000 and colourful > 50_000
