"""Alignments and frame labels: the centre rule, boundaries, gaps, both file formats."""

from __future__ import annotations

import json

import pytest

from speechunits.data.alignment import Alignment, Segment, chars_from_words, frame_label_ids, frame_labels


def test_frame_centre_rule_and_boundaries():
    segs = [Segment(0.0, 0.03, "a"), Segment(0.03, 0.05, "b"), Segment(0.07, 0.1, "c")]
    # 20 ms frames: centres 10, 30, 50, 70, 90, 110 ms
    labels = frame_labels(segs, 6, frame_rate=50)
    # 30 ms is the boundary a|b: it belongs to b (the segment starting there); 50 ms ends b
    # and starts a gap, so it is unknown; 110 ms is past the end.
    assert labels == ["a", "b", "<unk>", "c", "c", "<unk>"]


def test_window_moves_the_centre():
    # 25 ms windows every 20 ms: centres at 12.5, 32.5, 52.5 ms
    segs = [Segment(0.0, 0.031, "a"), Segment(0.031, 0.06, "b")]
    assert frame_labels(segs, 3, frame_rate=50) == ["a", "a", "b"]
    assert frame_labels(segs, 3, frame_rate=50, window_s=0.025) == ["a", "b", "b"]


def test_frame_labels_at_other_rates_and_ids():
    segs = [Segment(0.0, 0.5, "x"), Segment(0.5, 1.0, "y")]
    assert frame_labels(segs, 4, frame_rate=4) == ["x", "x", "y", "y"]
    ids = frame_label_ids(segs, 100, {"x": 0, "y": 1}, frame_rate=100)
    assert ids.tolist() == [0] * 50 + [1] * 50
    assert frame_labels(segs, 0) == []
    with pytest.raises(ValueError):
        frame_labels(segs, -1)


def test_chars_spread_evenly_inside_words():
    chars = chars_from_words([Segment(1.0, 1.3, "cat"), Segment(1.5, 1.7, "at")])
    assert [c.label for c in chars] == ["c", "a", "t", "a", "t"]
    assert chars[0].start == 1.0 and chars[2].end == 1.3 and chars[1].start == pytest.approx(1.1)
    assert chars[3].start == 1.5 and chars[4].end == 1.7


def test_round_trip_and_bad_files(tmp_path):
    ali = Alignment([Segment(0, 0.1, "sil"), Segment(0.1, 0.2, "AH")], [Segment(0.1, 0.2, "a")], duration=0.2)
    ali.chars = chars_from_words(ali.words)
    p = tmp_path / "a.json"
    ali.save(p)
    back = Alignment.load(p)
    assert back == ali
    (tmp_path / "bad.json").write_text('{"phones": [[0, 0.1]]}')
    with pytest.raises(ValueError, match=r"phones\[0\]"):
        Alignment.load(tmp_path / "bad.json")
    (tmp_path / "nojson.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        Alignment.load(tmp_path / "nojson.json")
    with pytest.raises(ValueError, match="bad segment"):
        Segment(0.2, 0.1, "x")


def test_pocketsphinx_phone_json(tmp_path):
    d = {"b": 0, "d": 0.6, "t": "hi there", "w": [
        {"b": 0.0, "d": 0.1, "t": "<sil>", "w": [{"b": 0.0, "d": 0.1, "t": "SIL"}]},
        {"b": 0.1, "d": 0.2, "t": "hi", "w": [{"b": 0.1, "d": 0.1, "t": "HH"}, {"b": 0.2, "d": 0.1, "t": "AY"}]},
        {"b": 0.3, "d": 0.3, "t": "there(2)", "w": [{"b": 0.3, "d": 0.15, "t": "DH"}, {"b": 0.45, "d": 0.15, "t": "EH"}]},
    ]}
    p = tmp_path / "x.phone.json"
    p.write_text(json.dumps(d))
    ali = Alignment.load(p)
    assert [s.label for s in ali.phones] == ["sil", "HH", "AY", "DH", "EH"]
    assert [s.label for s in ali.words] == ["hi", "there"]
    assert "".join(c.label for c in ali.chars) == "hithere"
    labels = frame_labels(ali.phones, 30)
    assert labels[:5] == ["sil"] * 5 and labels[5:10] == ["HH"] * 5 and labels[-1] == "EH"
