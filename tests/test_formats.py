"""Corpora in containers (Parquet, HF save_to_disk, WebDataset shards, Lhotse cuts) tokenize to the
same units as the plain audio files; bad members are recorded; units go back out as Lhotse cuts."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from speechunits.cli import main
from speechunits.data.formats import read_input
from speechunits.data.manifest import ManifestError
from speechunits.tokens import read_jsonl

SR = 16000
IDS = ["spk1-a", "spk1-b", "spk2-c", "spk2-d"]


def _wave(seed: int, seconds: float) -> np.ndarray:
    """Tones whose pitch changes every 100 ms, plus a little noise, quantised to 16 bits."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for start in range(0, n, 1600):
        f0 = rng.uniform(90, 250)
        for h in range(1, 8):
            x[start:start + 1600] += rng.uniform(0, 1) / h * np.sin(2 * np.pi * f0 * h * t[start:start + 1600])
    x = 0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)
    return (np.round(x * 32767) / 32767).astype(np.float32)


def _flac(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four utterances as FLAC bytes, the same files in a plain folder, a tokenizer, and the
    units of the plain files (the reference every container must reproduce)."""
    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizer

    root = tmp_path_factory.mktemp("formats")
    waves = {uid: _wave(i, 1.0 + 0.25 * i) for i, uid in enumerate(IDS)}
    plain = root / "plain"
    plain.mkdir()
    flac = {}
    for uid, w in waves.items():
        flac[uid] = _flac(w)
        (plain / f"{uid}.flac").write_bytes(flac[uid])
    tok = fit_tokenizer(load_encoder("mfcc"), list(waves.values()), layers=[0], k=16, seed=0)
    tok.save_pretrained(root / "tok")
    ref = root / "ref.jsonl"
    assert main(["tokenize", "--tokenizer", str(root / "tok"), "--out", str(ref), str(plain), "--no-progress"]) == 0
    units = {u.utt_id: u.ids.tolist() for u in read_jsonl(ref)}
    assert sorted(units) == IDS and len({len(v) for v in units.values()}) == 4
    meta = {uid: {"speaker": uid.split("-")[0], "text": f"words of {uid}"} for uid in IDS}
    return {"root": root, "flac": flac, "waves": waves, "tok": str(root / "tok"), "units": units, "meta": meta}


def _tokenize(corpus, out, *inputs, expect=0, extra=()):
    code = main(["tokenize", "--tokenizer", corpus["tok"], "--out", str(out), *map(str, inputs), "--no-progress", *extra])
    assert code == expect
    plain = str(out).endswith(".jsonl") and code != 2 and "--format" not in extra
    return {u.utt_id: u.ids.tolist() for u in read_jsonl(out)} if plain else None


def _errors(out) -> dict[str, str]:
    path = out.parent / (out.name + ".errors.jsonl")
    return {e["id"]: e["reason"] for e in map(json.loads, path.read_text().splitlines())}


def _audio_table(corpus, ids, audio=None):
    import pyarrow as pa

    audio = audio or {uid: {"bytes": corpus["flac"][uid], "path": f"renamed-{i}.flac"} for i, uid in enumerate(ids)}
    return pa.table({
        "id": ids,
        "audio": pa.array([audio[uid] for uid in ids], pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "speaker": [corpus["meta"][uid]["speaker"] for uid in ids],
        "text": [corpus["meta"][uid]["text"] for uid in ids],
    })


# ------------------------------------------------------------------------------- Parquet


def test_parquet_file_and_folder_give_the_plain_files_units(corpus, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(_audio_table(corpus, IDS), tmp_path / "all.parquet", row_group_size=3)  # two row groups
    utts = read_input(tmp_path / "all.parquet")
    # ids from the id column (the audio's own path names other files), metadata from the columns
    assert [u.id for u in utts] == IDS
    assert (utts[2].speaker, utts[2].text) == ("spk2", "words of spk2-c")
    assert isinstance(utts[0].audio.read(), bytes)  # decoded from memory, no file written
    assert _tokenize(corpus, tmp_path / "u.jsonl", tmp_path / "all.parquet") == corpus["units"]

    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    pq.write_table(_audio_table(corpus, IDS[:2]), folder / "train-00000-of-00002.parquet")
    pq.write_table(_audio_table(corpus, IDS[2:]), folder / "train-00001-of-00002.parquet")
    (tmp_path / "hub" / "README.md").write_text("a dataset card\n")
    before = sorted(p.name for p in (tmp_path / "hub").rglob("*"))
    assert _tokenize(corpus, tmp_path / "f.jsonl", tmp_path / "hub") == corpus["units"]
    assert sorted(p.name for p in (tmp_path / "hub").rglob("*")) == before


def test_parquet_rows_by_path_stay_inside_the_root(corpus, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "x.flac").write_bytes(corpus["flac"]["spk1-b"])
    (tmp_path / "secret.flac").write_bytes(corpus["flac"]["spk2-c"])
    (tmp_path / "d").mkdir()
    audio = {"spk1-a": {"bytes": corpus["flac"]["spk1-a"], "path": None},
             "spk1-b": {"bytes": None, "path": "x.flac"},  # relative to the container's folder
             "spk2-c": {"bytes": None, "path": "../secret.flac"},
             "spk2-d": {"bytes": None, "path": None}}
    pq.write_table(_audio_table(corpus, IDS, audio), tmp_path / "audio" / "rows.parquet")
    out = tmp_path / "u.jsonl"
    units = _tokenize(corpus, out, tmp_path / "audio" / "rows.parquet", expect=1)
    assert units == {k: corpus["units"][k] for k in ("spk1-a", "spk1-b")}
    errors = _errors(out)
    assert set(errors) == {"spk2-c", "spk2-d"}
    assert "outside the root" in errors["spk2-c"] and "no audio in this row" in errors["spk2-d"]
    assert all("\n" not in r and "rows.parquet: row" in r for r in errors.values())


def test_parquet_corrupt_row_is_recorded_and_duplicates_refused(corpus, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    audio = {uid: {"bytes": corpus["flac"][uid], "path": None} for uid in IDS}
    audio["spk1-b"] = {"bytes": b"fLaC" + bytes(200), "path": None}
    pq.write_table(_audio_table(corpus, IDS, audio), tmp_path / "bad.parquet")
    out = tmp_path / "u.jsonl"
    assert _tokenize(corpus, out, tmp_path / "bad.parquet", expect=1) == {
        k: v for k, v in corpus["units"].items() if k != "spk1-b"}
    assert list(_errors(out)) == ["spk1-b"] and "corrupt" in _errors(out)["spk1-b"]

    dup = _audio_table(corpus, ["spk1-a", "spk1-b", "spk1-a"], {k: audio[k] for k in IDS})
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(ManifestError, match=r"dup\.parquet.*duplicate utterance id 'spk1-a'"):
        read_input(tmp_path / "dup.parquet")
    # on the command line: one line naming the input, exit 2, nothing written
    capsys.readouterr()
    assert _tokenize(corpus, tmp_path / "d.jsonl", tmp_path / "dup.parquet", expect=2) is None
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dup.parquet" in err and "duplicate utterance id" in err
    # the same id in two containers is refused too
    pq.write_table(_audio_table(corpus, ["spk1-a"]), tmp_path / "again.parquet")
    assert _tokenize(corpus, tmp_path / "e.jsonl", tmp_path / "bad.parquet", tmp_path / "again.parquet", expect=2) is None
    assert "duplicate utterance id 'spk1-a'" in capsys.readouterr().err


# ------------------------------------------------------------------ Hugging Face datasets


def test_hf_save_to_disk_dataset_and_dataset_dict(corpus, tmp_path):
    datasets = pytest.importorskip("datasets")

    def dataset(ids):
        return datasets.Dataset.from_dict({
            "id": ids, "audio": [{"bytes": corpus["flac"][i], "path": None} for i in ids],
            "speaker": [corpus["meta"][i]["speaker"] for i in ids],
        }).cast_column("audio", datasets.Audio())

    dataset(IDS).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": dataset(IDS[:3]), "test": dataset(IDS[3:])}).save_to_disk(str(tmp_path / "dd"))
    utts = read_input(tmp_path / "dd")
    assert [u.id for u in utts] == IDS and utts[3].speaker == "spk2"
    assert isinstance(utts[0].audio.read(), bytes)
    assert _tokenize(corpus, tmp_path / "a.jsonl", tmp_path / "ds") == corpus["units"]
    assert _tokenize(corpus, tmp_path / "b.jsonl", tmp_path / "dd") == corpus["units"]


# ------------------------------------------------------------------------- WebDataset


def _write_shards(corpus, folder, groups):
    wds = pytest.importorskip("webdataset")
    paths = []
    for n, ids in enumerate(groups):
        path = folder / f"shard-{n:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for uid in ids:
                sink.write({"__key__": uid, "flac": corpus["flac"][uid], "json": corpus["meta"][uid]})
        paths.append(path)
    return paths


def test_webdataset_shards_by_brace_pattern(corpus, tmp_path):
    _write_shards(corpus, tmp_path, [IDS[:2], IDS[2:]])
    utts = read_input(tmp_path / "shard-000001.tar")
    assert [(u.id, u.speaker, u.text) for u in utts] == [(i, corpus["meta"][i]["speaker"], corpus["meta"][i]["text"])
                                                         for i in IDS[2:]]
    assert utts[0].audio.read() == corpus["flac"]["spk2-c"]
    pattern = str(tmp_path / "shard-{000000..000001}.tar")
    assert _tokenize(corpus, tmp_path / "u.jsonl", pattern) == corpus["units"]
    assert _tokenize(corpus, tmp_path / "g.jsonl", tmp_path / "shard-*.tar") == corpus["units"]
    assert _tokenize(corpus, tmp_path / "m.jsonl", tmp_path / "shard-{000000..000002}.tar", expect=2) is None


def _add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def test_webdataset_corrupt_and_truncated_members_are_recorded(corpus, tmp_path):
    path = tmp_path / "damaged.tar"
    with tarfile.open(path, "w") as tf:
        _add(tf, "spk1-a.flac", corpus["flac"]["spk1-a"])
        _add(tf, "junk.flac", b"fLaC" + bytes(300))  # undecodable bytes
        _add(tf, "spk1-b.wav", corpus["flac"]["spk1-b"])  # a FLAC under .wav: decoded by content
        _add(tf, "spk1-b.txt", b"words of spk1-b\n")
        _add(tf, "notes.txt", b"a sample without audio")
        _add(tf, "spk2-c.flac", corpus["flac"]["spk2-c"])
    raw = path.read_bytes()
    # cut the shard inside spk2-c's audio: its member is truncated, the end-of-archive lost
    cut = raw.index(corpus["flac"]["spk2-c"]) + 1000
    path.write_bytes(raw[:cut])
    out = tmp_path / "u.jsonl"
    assert _tokenize(corpus, out, path, expect=1) == {k: corpus["units"][k] for k in ("spk1-a", "spk1-b")}
    errors = _errors(out)
    # the cut member, and the shard's own entry: whatever followed it is lost
    lost = next((k for k in errors if k.startswith("damaged.tar@")), "damaged.tar@?")
    assert set(errors) == {"junk", "notes", "spk2-c", lost}
    assert "corrupt" in errors["junk"] and "BytesIO" not in errors["junk"]
    assert "expected one audio member" in errors["notes"]
    assert "truncated" in errors["spk2-c"] and "truncated or corrupt tar" in errors[lost]
    assert all("\n" not in r for r in errors.values())
    assert read_input(path)[2].text == "words of spk1-b"

    # cut inside a header, after complete members: tarfile stops quietly, the shard reports it
    path.write_bytes(raw[: raw.index(corpus["flac"]["spk2-c"]) - 200])
    utts = read_input(path)
    assert utts[-1].error is not None and "truncated or corrupt tar" in utts[-1].error
    assert utts[-1].id.startswith("damaged.tar@")


def test_webdataset_repeated_key_is_refused(corpus, tmp_path):
    path = tmp_path / "dup.tar"
    with tarfile.open(path, "w") as tf:
        _add(tf, "spk1-a.flac", corpus["flac"]["spk1-a"])
        _add(tf, "spk1-b.flac", corpus["flac"]["spk1-b"])
        _add(tf, "spk1-a.json", b"{}")
    with pytest.raises(ManifestError, match=r"dup\.tar: duplicate utterance id 'spk1-a'"):
        read_input(path)


# ------------------------------------------------------------------------------ Lhotse


def test_lhotse_cuts_in_and_units_out(corpus, tmp_path):
    lhotse = pytest.importorskip("lhotse")
    audio = tmp_path / "audio"
    audio.mkdir()
    for uid in IDS[:2]:
        (audio / f"{uid}.flac").write_bytes(corpus["flac"][uid])
    # spk2-c and spk2-d as two cuts of one long recording (lhotse's usual segments)
    a, b = corpus["waves"]["spk2-c"], corpus["waves"]["spk2-d"]
    sf.write(audio / "long.flac", np.concatenate([a, b]), SR, subtype="PCM_16")
    recs = {uid: lhotse.Recording.from_file(str(audio / f"{uid}.flac"), recording_id=uid) for uid in IDS[:2]}
    recs["long"] = lhotse.Recording.from_file(str(audio / "long.flac"), recording_id="long")
    spans = {"spk1-a": ("spk1-a", 0.0, recs["spk1-a"].duration), "spk1-b": ("spk1-b", 0.0, recs["spk1-b"].duration),
             "spk2-c": ("long", 0.0, len(a) / SR), "spk2-d": ("long", len(a) / SR, len(b) / SR)}
    cuts = []
    for uid, (rid, start, dur) in spans.items():
        sup = lhotse.SupervisionSegment(id=f"sup-{uid}", recording_id=rid, start=start, duration=dur,
                                        text=corpus["meta"][uid]["text"], speaker=corpus["meta"][uid]["speaker"])
        cuts.append(lhotse.MonoCut(id=uid, start=start, duration=dur, channel=0, recording=recs[rid],
                                   supervisions=[sup], custom={"origin": "test"}))
    lhotse.CutSet.from_cuts(cuts).to_file(tmp_path / "cuts_train.jsonl.gz")

    utts = read_input(tmp_path / "cuts_train.jsonl.gz")
    assert [(u.id, u.speaker) for u in utts] == [(i, corpus["meta"][i]["speaker"]) for i in IDS]
    assert utts[0].audio.whole and not utts[3].audio.whole
    out = tmp_path / "units_cuts.jsonl.gz"
    _tokenize(corpus, out, tmp_path / "cuts_train.jsonl.gz")
    back = lhotse.CutSet.from_file(out).to_eager()
    assert [c.id for c in back] == IDS
    rate = json.loads((out.parent / (out.name + ".config.json")).read_text())["frame_rate"]
    for c in back:
        assert c.units == corpus["units"][c.id] and c.custom["units_frame_rate"] == rate
        assert c.custom["origin"] == "test" and c.supervisions[0].text == corpus["meta"][c.id]["text"]
    assert back["spk2-d"].start == pytest.approx(len(a) / SR) and back["spk2-d"].recording.id == "long"
    assert np.allclose(back["spk1-a"].load_audio()[0], corpus["waves"]["spk1-a"], atol=1e-3)  # the recording kept

    # other inputs to a plain .jsonl with --format lhotse: file audio keeps its recording,
    # audio inside a tar has none (its duration is the units')
    _write_shards(corpus, tmp_path, [IDS[2:]])
    out2 = tmp_path / "mixed.jsonl"
    _tokenize(corpus, out2, audio / "spk1-a.flac", tmp_path / "shard-000000.tar", extra=("--format", "lhotse"))
    back = lhotse.CutSet.from_file(out2).to_eager()
    assert {c.id: c.units for c in back} == {k: corpus["units"][k] for k in ("spk1-a", "spk2-c", "spk2-d")}
    assert back["spk1-a"].has_recording and back["spk1-a"].duration == pytest.approx(1.0)
    assert not back["spk2-c"].has_recording and back["spk2-c"].supervisions[0].speaker == "spk2"


def test_lhotse_paths_stay_inside_the_manifest_folder(corpus, tmp_path):
    lhotse = pytest.importorskip("lhotse")
    (tmp_path / "x.flac").write_bytes(corpus["flac"]["spk1-a"])
    (tmp_path / "m").mkdir()
    rec = lhotse.Recording.from_file(str(tmp_path / "x.flac"), recording_id="x")
    lhotse.CutSet.from_cuts([rec.to_cut()]).to_file(tmp_path / "m" / "cuts.jsonl.gz")
    with pytest.raises(ManifestError, match="outside the root"):
        read_input(tmp_path / "m" / "cuts.jsonl.gz")
    # a recordings manifest is read as one cut per recording
    lhotse.RecordingSet.from_recordings([rec]).to_file(tmp_path / "recordings.jsonl")
    assert [u.id for u in read_input(tmp_path / "recordings.jsonl")] == ["x"]


def test_fit_reads_containers(corpus, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(_audio_table(corpus, IDS), tmp_path / "all.parquet")
    assert main(["fit", "--encoder", "mfcc", "--k", "8", "--data", str(tmp_path / "all.parquet"),
                 "--out", str(tmp_path / "tok"), "--no-progress"]) == 0
    cfg = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert cfg["k"] == 8


def test_lhotse_output_names():
    from speechunits.batch import OutputError, output_format, shard_output_path

    assert output_format("u.jsonl.gz") == "lhotse" and output_format("u.jsonl") == "jsonl"
    assert output_format("u.jsonl", "lhotse") == "lhotse"
    with pytest.raises(OutputError, match="must end in .jsonl.gz or .jsonl"):
        output_format("u.parquet", "lhotse")
    # sharded, the name keeps the suffixes Lhotse reads the format from
    assert shard_output_path("cuts.jsonl.gz", 1, 4).name == "cuts_1_4.jsonl.gz"
    assert shard_output_path("units.jsonl", 1, 4).name == "units_1_4.jsonl"
