"""Manifests: fairseq tsv, JSONL, folders, LibriSpeech trees; root containment; line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_path
from speechunits.data.manifest import (
    ManifestError,
    Utterance,
    fill_num_samples,
    read_folder,
    read_jsonl,
    read_manifest,
    read_tsv,
    write_jsonl,
    write_tsv,
)


@pytest.fixture
def audio_dir(tmp_path):
    root = tmp_path / "audio"
    for rel, n in [("a.wav", 16000), ("sub/b.flac", 8000), ("sub/deeper/c.wav", 4000)]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, 0.1 * np.ones(n, np.float32), 16000)
    (root / "notes.txt").write_text("not audio")
    return root


def test_folder_scan_is_recursive_sorted_and_audio_only(audio_dir):
    utts = read_folder(audio_dir)
    assert [u.id for u in utts] == ["a", "sub/b", "sub/deeper/c"]
    assert all(u.path.is_file() for u in utts)


def test_tsv_round_trip(audio_dir, tmp_path):
    utts = fill_num_samples(read_folder(audio_dir))
    assert [u.num_samples for u in utts] == [16000, 8000, 4000]
    m = tmp_path / "train.tsv"
    write_tsv(utts, m, audio_dir)
    lines = m.read_text().splitlines()
    assert lines[0] == str(audio_dir) and lines[2] == "sub/b.flac\t8000"
    back = read_tsv(m)
    assert [(u.id, u.path, u.num_samples) for u in back] == [(u.id, u.path, u.num_samples) for u in utts]


def test_jsonl_round_trip_keeps_fields(audio_dir, tmp_path):
    utts = read_folder(audio_dir)
    utts[0].speaker, utts[0].text, utts[0].extra = "spk1", "hello", {"split": "train"}
    m = audio_dir / "m.jsonl"
    write_jsonl(utts, m)
    first = json.loads(m.read_text().splitlines()[0])
    assert first == {"id": "a", "path": "a.wav", "speaker": "spk1", "text": "hello", "split": "train"}
    back = read_manifest(m)
    assert back[0].speaker == "spk1" and back[0].extra == {"split": "train"} and back[0].path == utts[0].path


@pytest.mark.parametrize(
    "content,line,reason",
    [
        ('{"id": "a", "path": "a.wav"}\n{"id": "b", "path": \n', 2, "invalid JSON"),
        ('{"id": "a", "path": "a.wav"}\n\n["x"]\n', 3, "JSON object"),
        ('{"id": "a"}\n', 1, "'path'"),
        ('{"id": "a", "path": "a.wav"}\n{"id": "a", "path": "b.wav"}\n', 2, "duplicate id 'a'"),
        ('{"id": "a", "path": "a.wav", "num_samples": -3}\n', 1, "non-negative"),
        ('{"id": "a", "path": "../../etc/passwd"}\n', 1, "outside the root"),
        ('{"id": "a", "path": "/etc/passwd"}\n', 1, "outside the root"),
        ('{"id": "a", "path": "a.wav", "alignment": "../x.json"}\n', 1, "outside the root"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, line, reason):
    m = tmp_path / "m.jsonl"
    m.write_text(content)
    with pytest.raises(ManifestError) as e:
        read_jsonl(m)
    assert f"{m}:{line}:" in str(e.value) and reason in str(e.value)


@pytest.mark.parametrize(
    "content,line,reason",
    [
        ("", 1, "empty manifest"),
        ("/data\na.wav\n", 2, "column"),
        ("/data\na.wav\tabc\n", 2, "not an integer"),
        ("/data\na.wav\t10\n../b.wav\t10\n", 3, "outside the root"),
        ("/data\na.wav\t10\na.wav\t12\n", 3, "duplicate id"),
    ],
)
def test_tsv_errors_name_file_and_line(tmp_path, content, line, reason):
    m = tmp_path / "m.tsv"
    m.write_text(content)
    with pytest.raises(ManifestError) as e:
        read_tsv(m)
    assert f"{m}:{line}:" in str(e.value) and reason in str(e.value)


def test_writers_refuse_paths_outside_root(tmp_path):
    u = Utterance("x", tmp_path / "elsewhere" / "x.wav", num_samples=3)
    with pytest.raises(ManifestError, match="outside the root"):
        write_tsv([u], tmp_path / "root" / "m.tsv", tmp_path / "root")
    assert not (tmp_path / "root" / "m.tsv").exists()  # nothing half-written


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.tsv")
    (tmp_path / "m.csv").write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest type"):
        read_manifest(tmp_path / "m.csv")


def test_librispeech_tree_with_transcripts(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    chap = root / "84" / "121123"
    chap.mkdir(parents=True)
    for n in range(2):
        sf.write(chap / f"84-121123-000{n}.flac", 0.1 * np.ones(1600, np.float32), 16000)
    (chap / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n")
    (tmp_path / "LibriSpeech" / "SPEAKERS.TXT").write_text("; ID | SEX | SUBSET | MINUTES | NAME\n84 | F | dev-clean | 8.02 | Christie\n")
    utts = read_manifest(root)
    assert [u.id for u in utts] == ["84-121123-0000", "84-121123-0001"]
    assert utts[0].speaker == "84" and utts[0].text == "GO DO YOU HEAR" and utts[0].extra["sex"] == "F"
    # a file whose name disagrees with its folders is refused
    wrong = root / "84" / "999"
    wrong.mkdir()
    sf.write(wrong / "84-121123-0005.flac", 0.1 * np.ones(1600, np.float32), 16000)
    with pytest.raises(ManifestError, match="disagrees with its folders"):
        read_manifest(root)


@pytest.mark.needs_shared_data
def test_shared_librispeech_mini_loads():
    root = shared_path("librispeech-mini")
    utts = read_manifest(root)
    assert len(utts) == 351
    assert len({u.speaker for u in utts}) == 261
    assert {u.extra["subset"] for u in utts} == {"train-clean-100", "test-other"}
    from speechunits.audio import load

    wav = load(utts[0].path)
    assert wav.dtype == np.float32 and len(wav) > 16000


@pytest.mark.needs_shared_data
def test_shared_librivox_aligned_loads_with_alignments():
    from speechunits.audio import info
    from speechunits.data.alignment import Alignment

    utts = read_manifest(shared_path("librivox-aligned"))
    assert len(utts) == 5
    for u in utts:
        assert u.text and u.alignment is not None
        ali = Alignment.load(u.alignment)
        assert len(ali.words) == len(u.text.split())
        assert ali.phones[0].start == 0.0
        # forced alignments end at the audio's end, within a frame or two
        assert abs(ali.duration - info(u.path).duration) < 0.05
