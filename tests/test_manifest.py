"""Manifests: fairseq tsv, JSONL, folders, LibriSpeech trees; root containment; line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_path
from unprivileged import restore, run_unprivileged
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
        ('{"id": "a", "path": "a.wav"}\n{"id": "a", "path": "b.wav"}\n', 2,
         "duplicate utterance id 'a': a.wav (line 1) and b.wav (line 2)"),
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
        ("{root}\na.wav\n", 2, "column"),
        ("{root}\na.wav\tabc\n", 2, "not an integer"),
        ("{root}\na.wav\t10\n../b.wav\t10\n", 3, "outside the root"),
        ("{root}\na.wav\t10\na.wav\t12\n", 3, "duplicate utterance id 'a': a.wav (line 2) and a.wav (line 3)"),
        # The root line is validated: without it the first utterance was taken for the root.
        ("a.wav\t10\nb.wav\t12\n", 1, "the first line must be the root folder, got 'a.wav\\t10' (a TAB"),
        ("{root}/nowhere\na.wav\t10\n", 1, "the root folder on the first line, '{root}/nowhere', does not exist"),
        ("{root}/m.tsv\na.wav\t10\n", 1, "is not a folder"),
    ],
)
def test_tsv_errors_name_file_and_line(tmp_path, content, line, reason):
    m = tmp_path / "m.tsv"
    m.write_text(content.format(root=tmp_path))
    with pytest.raises(ManifestError) as e:
        read_tsv(m)
    assert f"{m}:{line}:" in str(e.value) and reason.format(root=tmp_path) in str(e.value)


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


# -- folder scans (issue 13, items 7 and 8) ---------------------------------------------------


def _wav(p, n=1600):
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(p, 0.1 * np.sin(np.arange(n) / 3).astype(np.float32), 16000)


def _reasons(utts) -> dict[str, str | None]:
    from speechunits.data.loader import iter_audio

    return {item.utt.id: item.error for item in iter_audio(utts, workers=0)}


def test_symlink_loops_are_cut_and_link_failures_get_their_reasons(tmp_path):
    root = tmp_path / "data"
    _wav(root / "a.wav")
    _wav(root / "sub" / "b.wav")
    (root / "sub" / "up").symlink_to(root)  # a loop: os.walk made ~40 utterances of each file
    (root / "loop.wav").symlink_to(root / "loop.wav")  # a file link that loops
    (root / "gone.wav").symlink_to(root / "nowhere.wav")
    outside = tmp_path / "elsewhere" / "c.wav"  # dataset folders made of links still work
    _wav(outside)
    (root / "c.wav").symlink_to(outside)
    utts = read_folder(root)
    assert [u.id for u in utts] == ["a", "c", "gone", "loop", "sub/b"]
    reasons = _reasons(utts)
    assert reasons["a"] is None and reasons["c"] is None and reasons["sub/b"] is None
    # Not "file not found": the link is there, it just never ends.
    assert reasons["loop"] == f"{root / 'loop.wav'}: symbolic link loop (the link resolves back to itself)"
    assert "broken symbolic link" in reasons["gone"]


def test_each_real_file_is_listed_once_under_its_real_path(tmp_path):
    root = tmp_path / "data"
    _wav(root / "a.wav")
    _wav(root / "sub" / "b.wav")
    (root / "again").symlink_to(root / "sub")  # a second way to the same folder
    (root / "alias.wav").symlink_to(root / "sub" / "b.wav")  # a second way to the same file
    (root / "sub" / "hard.wav").hardlink_to(root / "a.wav")
    assert [u.id for u in read_folder(root)] == ["a", "sub/b"]


def test_unreadable_sub_folder_is_counted_as_failed_with_permission_denied(tmp_path):
    root = tmp_path / "data"
    _wav(root / "a.wav")
    _wav(root / "locked" / "b.wav")
    _wav(root / "z" / "c.wav")
    (root / "locked").chmod(0)
    code = (
        "import json\n"
        "from speechunits.data.manifest import read_manifest\n"
        "from speechunits.data.loader import iter_audio\n"
        f"utts = read_manifest({str(root)!r})\n"
        "print(json.dumps({i.utt.id: i.error for i in iter_audio(utts, workers=0)}))\n"
    )
    try:
        got = json.loads(run_unprivileged(code, tmp_path))
    finally:
        restore(tmp_path)
    assert got == {"a": None, "z/c": None, "locked/": f"{root / 'locked'}: permission denied"}


def test_unreadable_folder_itself_is_a_manifest_error(tmp_path):
    root = tmp_path / "data"
    _wav(root / "a.wav")
    root.chmod(0)
    code = (
        "from speechunits.data.manifest import ManifestError, read_manifest\n"
        f"try:\n    read_manifest({str(root)!r})\nexcept ManifestError as e:\n    print(e)\n"
    )
    try:
        assert run_unprivileged(code, tmp_path).strip() == f"{root}: permission denied"
    finally:
        restore(tmp_path)


def test_one_id_for_two_files_is_one_error_everywhere(tmp_path):
    from speechunits.cli._common import gather_inputs

    root = tmp_path / "data"
    _wav(root / "a.wav")
    _wav(root / "a.flac")
    _wav(root / "b.wav")
    expected = f"duplicate utterance id 'a': {root / 'a.flac'} and {root / 'a.wav'} (ids must be unique"
    for read in (read_folder, read_manifest, lambda p: gather_inputs([str(p)])):
        with pytest.raises(ManifestError) as e:
            read(root)
        assert str(e.value).startswith(f"{root}: {expected}"), str(e.value)
    # Two files named on the command line: the same rule, the same words.
    _wav(tmp_path / "other" / "b.wav")
    with pytest.raises(ManifestError, match=r"the inputs: duplicate utterance id 'b': .*/data/b\.wav and .*/other/b\.wav"):
        gather_inputs([str(root / "b.wav"), str(tmp_path / "other" / "b.wav")])
    assert [u.id for u in gather_inputs([str(root / "b.wav"), str(root / "b.wav")])] == ["b"]  # one file twice


def test_folder_without_audio_is_a_clear_error(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no audio here")
    with pytest.raises(ManifestError, match=r"docs: no audio files \(\.wav, \.flac, \.ogg, \.opus, \.mp3\) in this folder or below"):
        read_manifest(tmp_path / "docs")


def test_manifest_paths_get_the_right_reasons(tmp_path):
    _wav(tmp_path / "a.wav")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": i, "path": f"{i}.wav"}) + "\n" for i in ("a", "missing", "loop")))
    reasons = _reasons(read_manifest(m))
    assert reasons == {"a": None, "missing": f"{tmp_path / 'missing.wav'}: file not found",
                       "loop": f"{tmp_path / 'loop.wav'}: symbolic link loop (the link resolves back to itself)"}
    (tmp_path / "m2.jsonl").symlink_to(tmp_path / "m2.jsonl")
    with pytest.raises(ManifestError, match="m2.jsonl: symbolic link loop"):
        read_manifest(tmp_path / "m2.jsonl")
    from speechunits.cli._common import gather_inputs

    with pytest.raises(ManifestError, match="loop.wav: symbolic link loop"):  # it said "input not found"
        gather_inputs([str(tmp_path / "loop.wav")])
