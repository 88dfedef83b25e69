"""ABX items follow libri-light: frame centres (20 i + 10 ms by default, the encoder's window as an
option), libri-light's slicing of an item's span, ZeroSpeech ``.item`` files written from
alignments and read back, the same items and scores as fastabx (where it installs: Python >= 3.12),
and ``speechunits eval`` choosing and reporting the convention (``--abx-frames``)."""

from __future__ import annotations

import doctest
import importlib
import json
import math
from decimal import Decimal

import numpy as np
import pytest

from speechunits.data.alignment import Alignment, Segment
from speechunits.metrics import abx_error, abx_items, read_item_file, span_frames, write_item_file

PHONES = ["a", "e", "i", "o", "p", "t"]


def librilight_slice(onset: str, offset: str, step: int, size: int) -> tuple[int, int]:
    """libri-light ``eval/ABX_src/abx_iterators.py`` ``ABXFeatureLoader.loadFromFileData``:
    ``features[index_start:index_end]``, in exact decimals (fastabx's reading of the same rule)."""
    index_start = max(0, math.ceil(Decimal(onset) * step - Decimal("0.5")))
    index_end = min(size, math.floor(Decimal(offset) * step - Decimal("0.5")))
    return index_start, index_end


def aligned_corpus(n_utts=8, n_spk=3, phones_per_utt=30, seed=0, grid=0.01):
    """Random phones of 30-110 ms on a ``grid`` (10 ms: half the offsets fall on a 50 Hz frame
    centre 20 i + 10 ms, where the conventions differ most), speakers s0..s2."""
    rng = np.random.default_rng(seed)
    tiers, speakers = [], []
    for u in range(n_utts):
        t, segs = 0.0, [Segment(0.0, 0.05, "sil")]
        t = 0.05
        for _ in range(phones_per_utt):
            d = grid * int(rng.integers(round(0.03 / grid), round(0.11 / grid) + 1))
            segs.append(Segment(round(t, 6), round(t + d, 6), PHONES[rng.integers(3)]))
            t += d
        segs.append(Segment(round(t, 6), round(t + 0.1, 6), "sil"))
        tiers.append(Alignment(phones=segs, duration=t + 0.1))
        speakers.append(f"s{u % n_spk}")
    return tiers, speakers


def frame_features(tiers, frame_rate=50.0, dim=8, noise=0.8, seed=1):
    """Features labelled by libri-light's frame centres: a phone embedding plus noise."""
    rng = np.random.default_rng(seed)
    emb = {p: rng.normal(size=dim) for p in PHONES + ["sil"]}
    feats, units = [], []
    for al in tiers:
        n = int(al.duration * frame_rate)
        centres = (np.arange(n) + 0.5) / frame_rate
        lab = [next((s.label for s in al.phones if s.start <= c < s.end), "sil") for c in centres]
        x = np.stack([emb[p] for p in lab]) + noise * rng.normal(size=(n, dim))
        feats.append(x.astype(np.float32))
        units.append(np.where(rng.random(n) < 0.7, [PHONES.index(p) if p in PHONES else 3 for p in lab],
                              rng.integers(0, 4, n)).astype(np.int64))
    return feats, units


# ----------------------------------------------------------------------------- frame convention
@pytest.mark.parametrize("step", [50, 100])
def test_span_frames_is_librilight_slicing(step):
    rng = np.random.default_rng(0)
    # 0.1 ms grid (librivox alignments), 2.5 ms offsets (ZeroSpeech 2021 items: 0.2925), and
    # times exactly on frame centres and frame starts.
    times = sorted({*(k / 10000 for k in rng.integers(0, 30000, 400)), *(k / 400 for k in range(1, 400)),
                    *((i + 0.5) / step for i in range(40)), *(i / step for i in range(40))})
    checked = 0
    for _ in range(3000):
        on, off = sorted(rng.choice(times, 2, replace=False))
        s_on, s_off = repr(float(on)), repr(float(off))
        size = int(rng.integers(5, 80))
        ref = librilight_slice(s_on, s_off, step, size)
        got = span_frames(float(s_on), float(s_off), step, num_frames=size)
        if ref[1] > ref[0]:
            assert got == ref, (s_on, s_off, step)
            checked += 1
        else:
            assert got[1] == got[0]  # libri-light skips the item: no frame here either
    assert checked > 1000


def test_span_frames_window_convention():
    # Frame i centred at 20 i + w/2 ms: kept when its centre >= onset and the next centre <= offset.
    rng = np.random.default_rng(1)
    for window_s in (0.025, 0.0):  # 25 ms: wav2vec2-style encoders; 0: Whisper (centred on 20 i ms)
        for _ in range(500):
            on, off = sorted(rng.integers(0, 2000, 2) / 1000)  # ms grid
            c = np.arange(120) * 0.02 + window_s / 2
            keep = np.flatnonzero((c >= on - 1e-12) & (c + 0.02 <= off + 1e-12))
            ref = (int(keep[0]), int(keep[-1]) + 1) if len(keep) else None
            got = span_frames(on, off, 50.0, window_s=window_s)
            assert (got if got[1] > got[0] else None) == ref, (on, off, window_s)
    # The conventions place frame 5 (start 100 ms) at 110, 112.5 and 100 ms:
    assert span_frames(0.111, 0.3, 50.0)[0] == 6
    assert span_frames(0.111, 0.3, 50.0, window_s=0.025)[0] == 5
    assert span_frames(0.1, 0.3, 50.0, window_s=0.0)[0] == 5 and span_frames(0.101, 0.3, 50.0, window_s=0.0)[0] == 6


# ----------------------------------------------------------------------------- .item files
def librilight_items(path, file_ids, sizes, step=50):
    """libri-light's ``load_item_file`` + ``loadFromFileData``: files in the order given, each
    file's lines in order, empty spans skipped."""
    out = {f: [] for f in file_ids}
    for line in path.read_text().splitlines()[1:]:
        fid, on, off, phone, prev, nxt, spk = line.split()
        out[fid].append((on, off, phone, prev, nxt, spk))
    items = []
    for u, fid in enumerate(file_ids):
        for on, off, phone, prev, nxt, spk in out[fid]:
            start, end = librilight_slice(on, off, step, sizes[u])
            if start < sizes[u] and end > start:
                items.append((u, start, end, phone, prev, nxt, spk))
    return items


def test_item_file_from_alignments_gives_librilights_items(tmp_path):
    tiers, speakers = aligned_corpus()
    feats, _ = frame_features(tiers)
    sizes = [len(f) for f in feats]
    ids = [f"u{u:03d}" for u in range(len(tiers))]
    path = tmp_path / "abx.item"
    n = write_item_file(path, tiers, speakers, ids)
    lines = path.read_text().splitlines()
    assert lines[0] == "#file onset offset #phone prev-phone next-phone speaker" and len(lines) == n + 1
    assert all(len(line.split()) == 7 for line in lines[1:])

    ours = abx_items(tiers, speakers, num_frames=sizes)
    ref = librilight_items(path, ids, sizes)
    assert [(it.utt, it.start, it.end, it.phone, it.prev, it.next, it.speaker) for it in ours] == ref
    assert read_item_file(path, ids, num_frames=sizes) == ours
    # The file's offsets fall on frame centres often enough for the rules to matter: centre in
    # [onset, offset) (the rule before libri-light's) would frame many items differently.
    half_open = [(it.utt, it.start, math.ceil(50 * float(off) - 0.5 - 1e-9))
                 for it, off in zip(ours, (ln.split()[2] for ln in lines[1:]))]
    assert sum(end != it.end for (_, _, end), it in zip(half_open, ours)) > len(ours) // 4
    # Scoring the items read back is scoring the alignments' items.
    assert abx_error(read_item_file(path, ids, num_frames=sizes), feats, "across").error == \
        abx_error(ours, feats, "across").error


def test_item_file_window_convention_and_bad_files(tmp_path):
    tiers, speakers = aligned_corpus(n_utts=2)
    ids = ["a", "b"]
    path = tmp_path / "x.item"
    write_item_file(path, tiers, speakers, ids, span="phone")
    assert read_item_file(path, ids, window_s=0.025) == abx_items(tiers, speakers, span="phone", window_s=0.025)
    assert [it.utt for it in read_item_file(path, ["b", "zz"])] == [0] * len(abx_items(tiers[1:], ["s1"], span="phone"))
    with pytest.raises(ValueError, match="none of its"):
        read_item_file(path, ["zz"])
    bad = tmp_path / "bad.item"
    bad.write_text("#header\na 0.1 0.3 x y z s1\na 0.1 zero x y z s1\n")
    with pytest.raises(ValueError, match=r"bad.item:3: onset '0.1' and offset 'zero'"):
        read_item_file(bad, ["a"])
    bad.write_text("#header\na 0.1 0.3 x y z\n")
    with pytest.raises(ValueError, match=r"bad.item:2: expected 7 fields"):
        read_item_file(bad, ["a"])
    bad.write_text("#header\na 0.3 0.1 x y z s\n")
    with pytest.raises(ValueError, match=r"bad.item:2: bad span"):
        read_item_file(bad, ["a"])
    with pytest.raises(ValueError, match="without spaces"):
        write_item_file(tmp_path / "y.item", tiers[:1], ["spk 1"], ["a"])
    assert not (tmp_path / "y.item").exists()  # nothing half-written
    with pytest.raises(ValueError, match="distinct"):
        write_item_file(tmp_path / "y.item", tiers, speakers[:2], ["a", "a"])


def test_fastabx_scores_the_same_items(tmp_path, monkeypatch):
    """The same .item file and frames through fastabx (libri-light's slicing, no subsampling)."""
    fastabx = pytest.importorskip(
        "fastabx", reason="fastabx is not installed: it needs Python >= 3.12 (pip install fastabx)")
    import torch

    tiers, speakers = aligned_corpus(n_utts=9)
    feats, units = frame_features(tiers)
    ids = [f"u{u:03d}" for u in range(len(tiers))]  # sorted = utterance order: fastabx's item order
    write_item_file(tmp_path / "abx.item", tiers, speakers, ids)
    items = abx_items(tiers, speakers, num_frames=[len(f) for f in feats])
    for kind, data, dist in (("features", feats, "angular"), ("units", units, "identical")):
        root = tmp_path / kind
        root.mkdir()
        for fid, x in zip(ids, data):
            t = torch.from_numpy(x.astype(np.float32))
            torch.save(t if t.ndim == 2 else t[:, None], root / f"{fid}.pt")
        monkeypatch.setenv("FASTABX_WITH_LIBRILIGHT_BUG", "1")  # libri-light's end index (see abx.py)
        for mode in ("within", "across"):
            ref = fastabx.zerospeech_abx(tmp_path / "abx.item", root, max_size_group=None, max_x_across=None,
                                         speaker=mode, distance=dist, frequency=50)
            ours = abx_error(items, data, mode, max_size_group=10_000, max_x_across=10_000).error
            # Features: identical to rounding. Units: the DTW orientation is libri-light's, so ties
            # are decided alike, up to the order of items inside a group (within speaker).
            assert ours == pytest.approx(ref, abs=1e-6 if kind == "features" else 2e-3), (kind, mode)


# ----------------------------------------------------------------------------- evaluation
def test_abx_section_uses_and_reports_the_convention(monkeypatch):
    from speechunits.evaluation import abx as ev

    tiers, speakers = aligned_corpus(n_utts=6)
    feats, units = frame_features(tiers)
    seen = []
    real = ev.abx_items

    def spy(*args, **kwargs):
        seen.append(kwargs["window_s"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "abx_items", spy)
    res = {}
    for frames, window_s in (("librilight", 0.025), ("window", 0.025), ("window", 0.0)):
        r = ev.abx_section(units, feats, tiers, speakers, 50.0, window_s, centroids=None,
                           settings=ev.AbxSettings(frames=frames, max_cells_per_pair=None))
        res[(frames, window_s)] = r
        assert r["settings"]["frames"] == frames
    assert seen == [None, 0.025, 0.0]
    assert res[("librilight", 0.025)]["frames"] == "librilight: frame i centred at 20 i + 10 ms (half the 20 ms hop)"
    assert res[("window", 0.025)]["frames"].startswith("window: frame i centred at 20 i + 12.5 ms")
    assert res[("window", 0.0)]["frames"].startswith("window: frame i centred at 20 i ms")  # Whisper
    # On features labelled at libri-light's centres the conventions give different scores.
    lib, win = (res[(f, 0.025)]["features"]["across"]["error"] for f in ("librilight", "window"))
    assert lib != win
    with pytest.raises(ValueError, match="librilight, window"):
        ev.AbxSettings(frames="centre")


def test_eval_cli_abx_frames_option(monkeypatch, tmp_path):
    """``--abx-frames`` reaches the evaluation (librilight by default); the report prints it."""
    import speechunits.evaluation as evaluation
    import speechunits.tokenizer as tokenizer
    from speechunits.cli import main
    from speechunits.evaluation import report

    got = []

    def fake_eval(tok, data, out, cfg, **kw):
        got.append(cfg.abx)
        return {"summary": [], "datasets": []}

    monkeypatch.setattr(tokenizer.Tokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(evaluation, "evaluate_and_report", fake_eval)
    assert main(["eval", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert main(["eval", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--abx-frames", "window",
                 "--max-cells-per-pair", "7", "--no-progress"]) == 0
    assert [(s.frames, s.max_cells_per_pair) for s in got] == [("librilight", 50), ("window", 7)]
    with pytest.raises(SystemExit):
        main(["eval", "--data", str(tmp_path), "--abx-frames", "centre"])

    # The report states the convention of the section it renders.
    abx = {"settings": got[1].to_dict(), "frames": "window: frame i centred at 20 i + 12.5 ms (x)",
           "num_items": 3, "speaker_source": "manifest",
           "units": {"within": {"skipped": True, "reason": "r"}, "across": {"skipped": True, "reason": "r"}},
           "features": {"skipped": True, "reason": "r"}}
    text = json.dumps(report._abx(abx))
    assert "frames: window: frame i centred at 20 i + 12.5 ms" in text


def test_docstring_examples():
    for name in ("speechunits.metrics.abx", "speechunits.metrics._abx_dtw", "speechunits.metrics.abx_item_file",
                 "speechunits.evaluation.abx"):
        res = doctest.testmod(importlib.import_module(name))
        assert res.failed == 0 and res.attempted > 0, name
