"""Unit files: round trips, config sidecar, atomic writes, validation errors, resumable writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from speechunits.tokens import (
    Units,
    UnitsFileError,
    UnitsWriter,
    config_path,
    dedup,
    expand,
    parse_unit_text,
    provenance_for,
    read_jsonl,
    read_km,
    read_parquet,
    read_unit_text,
    to_unit_text,
    write_jsonl,
    write_km,
    write_parquet,
    write_unit_text,
)
from speechunits.tokens import io as io_mod

CFG = {"frame_rate": 50.0, "encoder": "hubert-base", "layer": 6, "k": 500, "seed": 0}
PROV = provenance_for(CFG)


def _utts(n=6, layers=None, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = 0 if i == 0 else int(rng.integers(1, 60))
        shape = (t,) if layers is None else (t, layers)
        ids = np.repeat(rng.integers(0, 500, shape), 2, axis=0)  # runs, so dedup does something
        if layers is not None and t == 0:
            ids = np.zeros((0, layers), dtype=np.int64)
        out.append(Units(ids, 50.0, provenance=dict(PROV), utt_id=f"spk1-utt{i:03d}"))
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("kind", ["frames", "dedup", "multilayer"])
def test_round_trip(tmp_path, fmt, kind):
    # num_layers in the config lets an empty multi-layer utterance keep its [0, L] shape.
    cfg = {**CFG, "num_layers": 3} if kind == "multilayer" else CFG
    prov = provenance_for(cfg)
    utts = [Units(u.ids, 50.0, provenance=prov, utt_id=u.utt_id)
            for u in _utts(layers=3 if kind == "multilayer" else None)]
    assert len(utts[0]) == 0  # the empty utterance is part of every round trip
    if kind == "dedup":
        utts = [dedup(u) for u in utts]
    path = tmp_path / f"units.{fmt}"
    write, read = (write_jsonl, read_jsonl) if fmt == "jsonl" else (write_parquet, read_parquet)
    write(path, utts, cfg)
    assert json.loads(config_path(path).read_text()) == cfg
    back = read(path)
    assert back == utts
    assert [b.utt_id for b in back] == [u.utt_id for u in utts]
    if kind == "dedup":
        assert [expand(b) for b in back] == [expand(u) for u in utts]


def test_jsonl_line_format(tmp_path):
    u = dedup(Units(np.array([4, 4, 2]), 50.0, utt_id="a"))
    m = Units(np.array([[1, 2], [3, 4]]), 50.0, utt_id="b")
    write_jsonl(tmp_path / "x.jsonl", [u, m], CFG)
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"id": "a", "units": [4, 2], "durations": [2, 1]}
    assert json.loads(lines[1]) == {"id": "b", "units": [[1, 2], [3, 4]]}


def test_km_round_trip_expands_runs(tmp_path):
    utts = _utts()
    path = tmp_path / "train.km"
    write_km(path, [dedup(u) for u in utts], CFG)
    assert (tmp_path / "train.km.ids").read_text().splitlines() == [u.utt_id for u in utts]
    assert path.read_text().splitlines()[1] == " ".join(map(str, utts[1].ids))
    assert read_km(path) == utts  # frame-level again
    with pytest.raises(ValueError, match="one codebook"):
        write_km(path, _utts(layers=2)[1:2], CFG)


def test_unit_text_form(tmp_path):
    assert to_unit_text(np.array([12, 7, 0])) == "<|u12|><|u7|><|u0|>"
    assert parse_unit_text("<|u12|><|u7|>").tolist() == [12, 7]
    assert parse_unit_text("").tolist() == []
    for bad, pos in [("<|u12|> <|u7|>", 7), ("<|u12|><|x7|>", 7), ("<|u1|", 0), ("abc", 0)]:
        with pytest.raises(ValueError, match=f"character {pos}"):
            parse_unit_text(bad)
    utts = [dedup(u) for u in _utts()]
    path = tmp_path / "train.txt"
    write_unit_text(path, utts, CFG)
    first = path.read_text().splitlines()[1]
    assert first.split("\t")[1] == to_unit_text(utts[1].ids)
    back = read_unit_text(path)
    assert [b.ids.tolist() for b in back] == [u.ids.tolist() for u in utts]
    assert all(b.durations is None for b in back)


def test_missing_config_beside_file_is_a_clear_error(tmp_path):
    for write, read, name in [
        (write_jsonl, read_jsonl, "a.jsonl"),
        (write_parquet, read_parquet, "a.parquet"),
        (write_km, read_km, "a.km"),
        (write_unit_text, read_unit_text, "a.txt"),
    ]:
        path = tmp_path / name
        write(path, _utts(3), CFG)
        config_path(path).unlink()
        with pytest.raises(UnitsFileError, match=rf"{name}: missing tokenizer config .*{name}.config.json"):
            read(path)


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"id": "c", "units": [1, 2,', "invalid JSON"),
        ('["c", [1, 2]]', "expected a JSON object"),
        ('{"id": "c"}', "missing key 'units'"),
        ('{"id": 5, "units": [1]}', "'id' must be a non-empty string"),
        ('{"id": "c", "units": [1, 2.5]}', "integers"),
        ('{"id": "c", "units": [[1, 2], [3]]}', "utterance 'c'"),
        ('{"id": "c", "units": [1, 2], "durations": [1]}', "durations"),
        ('{"id": "c", "units": "1 2"}', "must be a list"),
        ('{"id": "a", "units": [1]}', "duplicate utterance id 'a'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [Units([1], 50.0, utt_id="a"), Units([2], 50.0, utt_id="b")], CFG)
    with open(path, "a") as f:
        f.write(line + "\n")
    with pytest.raises(UnitsFileError, match=rf"bad\.jsonl:3: .*{reason}") as e:
        read_jsonl(path)
    assert e.value.line == 3 and e.value.path == str(path)


def test_truncated_last_line_hints_at_resume(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, _utts(3), CFG)
    with open(path, "a") as f:
        f.write('{"id": "x", "units": [1, 2')
    with pytest.raises(UnitsFileError, match=r"t\.jsonl:4: truncated last line.*resume=True"):
        read_jsonl(path)


def test_parquet_and_km_errors_name_the_place(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "bad.parquet"
    io_mod.write_config(p, CFG)
    pq.write_table(pa.table({"id": ["a", "a"], "units": [[1], [2]]}), p)
    with pytest.raises(UnitsFileError, match=r"bad\.parquet: row 1: duplicate utterance id 'a'"):
        read_parquet(p)
    pq.write_table(pa.table({"id": ["a"]}), p)
    with pytest.raises(UnitsFileError, match=r"missing column\(s\) \['units'\]"):
        read_parquet(p)
    k = tmp_path / "bad.km"
    write_km(k, _utts(3), CFG)
    k.write_text("1 2\n3 x 4\n5\n")
    with pytest.raises(UnitsFileError, match=r"bad\.km:2: not a non-negative integer unit: 'x'"):
        read_km(k)
    k.write_text("1 2\n")
    with pytest.raises(UnitsFileError, match="1 lines but bad.km.ids has 3 ids"):
        read_km(k)


def test_writers_check_units_against_config(tmp_path):
    p = tmp_path / "x.jsonl"
    with pytest.raises(ValueError, match="frame_rate"):
        write_jsonl(p, [Units([1], 25.0, utt_id="a")], CFG)
    with pytest.raises(ValueError, match="another tokenizer config"):
        write_jsonl(p, [Units([1], 50.0, provenance={"config_hash": "0" * 16}, utt_id="a")], CFG)
    with pytest.raises(ValueError, match="duplicate utterance id"):
        write_jsonl(p, [Units([1], 50.0, utt_id="a"), Units([2], 50.0, utt_id="a")], CFG)
    with pytest.raises(ValueError, match="utt_id"):
        write_jsonl(p, [Units([1], 50.0)], CFG)
    with pytest.raises(ValueError, match="frame_rate"):
        write_jsonl(p, [Units([1], 50.0, utt_id="a")], {"k": 500})
    with pytest.raises(ValueError, match="config says 2"):
        write_jsonl(p, [Units([[1, 2, 3]], 50.0, utt_id="a")], {**CFG, "num_layers": 2})
    assert not p.exists()


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, _utts(3), CFG)
    before = p.read_bytes()
    calls = {"n": 0}
    real = io_mod.units_to_json_line

    def dies_on_second(u):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-write")
        return real(u)

    monkeypatch.setattr(io_mod, "units_to_json_line", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        write_jsonl(p, _utts(5, seed=1), CFG)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.jsonl", "x.jsonl.config.json"]


def test_writer_resume_after_partial_line(tmp_path):
    utts = _utts(8)
    p = tmp_path / "stream.jsonl"
    with UnitsWriter(p, CFG) as w:
        for u in utts[:5]:
            w.write(u)
    # Simulate a kill in the middle of writing utterance 5.
    with open(p, "ab") as f:
        f.write(io_mod.units_to_json_line(utts[5]).encode()[:17])
    with UnitsWriter(p, CFG, resume=True) as w:
        assert w.done == {u.utt_id for u in utts[:5]} and w.truncated_bytes == 17
        for u in utts:
            if u.utt_id not in w:
                w.write(u)
        with pytest.raises(ValueError, match="already written"):
            w.write(utts[0])
    assert read_jsonl(p) == utts


def test_writer_config_checks(tmp_path):
    p = tmp_path / "w.jsonl"
    with UnitsWriter(p, CFG) as w:
        w.write(_utts(2)[1])
    with pytest.raises(UnitsFileError, match=r"written differently: tokenizer config\.k: 500 before, 1000 now"):
        UnitsWriter(p, {**CFG, "k": 1000}, resume=True)
    with UnitsWriter(p, {**CFG, "k": 1000}, resume=False) as w:  # start over
        assert len(w) == 0
    assert p.read_text() == ""
    with UnitsWriter(p, CFG, resume=True) as w:  # an empty file holds nothing to mix: a fresh start
        w.write(_utts(2)[1])
    config_path(p).unlink()
    with pytest.raises(UnitsFileError, match="cannot resume: missing tokenizer config"):
        UnitsWriter(p, CFG, resume=True)
    # A corrupt complete line in the middle is not silently dropped.
    q = tmp_path / "c.jsonl"
    with UnitsWriter(q, CFG) as w:
        w.write(_utts(2)[1])
    with open(q, "a") as f:
        f.write("garbage\n")
    with pytest.raises(UnitsFileError, match=r"c\.jsonl:2: invalid JSON"):
        UnitsWriter(q, CFG, resume=True)


_CHILD = textwrap.dedent(
    """
    import sys, time, numpy as np
    from speechunits.tokens import Units, UnitsWriter
    cfg = {"frame_rate": 50.0, "k": 500}
    rng = np.random.default_rng(0)
    with UnitsWriter(sys.argv[1], cfg, resume=True) as w:
        for i in range(int(sys.argv[2])):
            uid = f"utt{i:06d}"
            ids = rng.integers(0, 500, 400)  # drawn for every i: same units on every run
            if uid in w:
                continue
            w.write(Units(ids, 50.0, utt_id=uid))
            if i == 0:
                print("started", flush=True)
            time.sleep(float(sys.argv[3]))  # the first run is slow so the kill lands mid-job
    """
)


def test_killed_job_resumes_without_loss_or_duplicates(tmp_path):
    p = tmp_path / "job.jsonl"
    n = 1000
    env = {**os.environ, "PYTHONPATH": str(Path(io_mod.__file__).parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(p), str(n), "0.001"], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sum(1 for line in open(p, "rb") if line.endswith(b"\n"))
    assert 0 < done_before < n, "the child finished before the kill; raise n"
    subprocess.run([sys.executable, "-c", _CHILD, str(p), str(n), "0"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    back = read_jsonl(p)
    assert [u.utt_id for u in back] == [f"utt{i:06d}" for i in range(n)]
    rng = np.random.default_rng(0)
    for u in back:
        assert np.array_equal(u.ids, rng.integers(0, 500, 400))


# ---------------------------------------------------------------------- issue 13, item 15
@pytest.mark.parametrize("line,reason", [
    ('{"id": "c", "units": [1, 500, 3]}', r"unit id 500 out of range: the config allows ids 0\.\.499"),
    ('{"id": "c", "units": [1, -1]}', "negative unit id -1"),
])
def test_unit_ids_outside_the_codebook_are_refused_on_read_and_resume(tmp_path, line, reason):
    path = tmp_path / "u.jsonl"
    write_jsonl(path, _utts(2), CFG)  # k = 500
    with open(path, "a") as f:
        f.write(line + "\n")
    with pytest.raises(UnitsFileError, match=rf"u\.jsonl:3: utterance 'c': {reason}"):
        read_jsonl(path)
    with pytest.raises(UnitsFileError, match=rf"u\.jsonl:3: utterance 'c': {reason}"):
        UnitsWriter(path, CFG, resume=True)  # not taken as done and resumed after


def test_unit_ids_outside_the_codebook_in_km_parquet_and_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    k = tmp_path / "u.km"
    write_km(k, _utts(3), CFG)
    k.write_text("1 2\n3 4\n5 777\n")
    with pytest.raises(UnitsFileError, match=r"u\.km:3: .*unit id 777 out of range"):
        read_km(k)
    p = tmp_path / "u.parquet"
    io_mod.write_config(p, CFG)
    pq.write_table(pa.table({"id": ["a", "b"], "units": [[1], [2, 9000]]}), p)
    with pytest.raises(UnitsFileError, match=r"u\.parquet \(row 1\): utterance 'b': unit id 9000 out of range"):
        read_parquet(p)
    t = tmp_path / "u.txt"
    write_unit_text(t, _utts(2), CFG)
    t.write_text("a\t<|u1|><|u500|>\n")
    with pytest.raises(UnitsFileError, match=r"u\.txt:1: .*unit id 500"):
        read_unit_text(t)


def test_out_of_range_ids_are_not_written_and_bpe_or_layers_set_the_bound(tmp_path):
    p = tmp_path / "x.jsonl"
    with pytest.raises(ValueError, match="a: unit id 500 out of range"):
        write_jsonl(p, [Units([1, 500], 50.0, utt_id="a")], CFG)
    with UnitsWriter(tmp_path / "w.jsonl", CFG) as w, pytest.raises(ValueError, match="out of range"):
        w.write(Units([500], 50.0, utt_id="a"))
    assert not p.exists()
    bpe_cfg = {**CFG, "bpe": {"vocab_size": 600, "actual_vocab_size": 600}}  # BPE tokens go past k
    write_jsonl(p, [Units([1, 599], 50.0, utt_id="a")], bpe_cfg)
    assert read_jsonl(p)[0].ids.tolist() == [1, 599]
    two = {**CFG, "k": [500, 8], "num_layers": 2}  # one bound per codebook
    write_jsonl(p, [Units([[499, 7]], 50.0, utt_id="a")], two)
    with pytest.raises(ValueError, match="unit id 8 in layer column 1 out of range"):
        write_jsonl(p, [Units([[1, 8]], 50.0, utt_id="a")], two)
