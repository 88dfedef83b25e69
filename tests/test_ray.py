"""``tokenize --engine ray`` on a local Ray cluster started here (2 CPUs, 127.0.0.1): the same
units, failures and sidecars as the single-process job; a tokenizer actor killed with SIGKILL is
restarted and its block redone; a driver killed mid-run resumes from its finished shards; every
utterance is written exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import soundfile as sf

from speechunits.cli import main
from speechunits.tokens import read_jsonl, read_units
from test_tokenizer import speechlike

SR = 16000
N = 40  # utterances, plus one corrupt file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of wavs (one corrupt), a Parquet file of FLAC rows, an MFCC tokenizer, and the
    single-process output that every Ray run must reproduce."""
    import io

    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizer

    root = tmp_path_factory.mktemp("ray")
    (root / "wav").mkdir()
    waves = [speechlike(int(SR * (0.3 + 0.05 * (i % 9))), i) for i in range(N)]
    for i, w in enumerate(waves[: N - 4]):
        sf.write(root / "wav" / f"utt{i:03d}.wav", w, SR, subtype="PCM_16")
    (root / "wav" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    inputs = [str(root / "wav")]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        flac = []
        for w in waves[N - 4:]:
            buf = io.BytesIO()
            sf.write(buf, w, SR, format="FLAC", subtype="PCM_16")
            flac.append({"bytes": buf.getvalue(), "path": None})
        pq.write_table(pa.table({"id": [f"row{i}" for i in range(4)], "audio": flac}), root / "rows.parquet")
        inputs.append(str(root / "rows.parquet"))  # AudioRefs travel to the decode tasks
    except ImportError:
        pass
    tok = fit_tokenizer(load_encoder("mfcc"), waves[:8], layers=[0], k=16, seed=0)
    tok.save_pretrained(root / "tok")
    ref = root / "ref.jsonl"
    assert main(["tokenize", "--tokenizer", str(root / "tok"), "--out", str(ref), *inputs, "--no-progress"]) == 1
    return {"root": root, "tok": str(root / "tok"), "inputs": inputs, "ref": ref}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs on 127.0.0.1, its files in a temporary folder."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    tmp = tempfile.mkdtemp(prefix="su-ray-")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(num_cpus=2, address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=tmp, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _args(corpus, out, *extra):
    return ["tokenize", "--tokenizer", corpus["tok"], "--out", str(out), *corpus["inputs"], "--no-progress",
            "--engine", "ray", *extra]


def _same_as_reference(corpus, out: Path) -> None:
    ref = corpus["ref"]
    if out.suffix == ".jsonl":
        assert out.read_bytes() == ref.read_bytes()  # same ids, units and order, byte for byte
    else:
        assert read_units(out) == read_jsonl(ref)
    for side in (".config.json", ".errors.jsonl"):
        assert Path(str(out) + side).read_text() == Path(str(ref) + side).read_text(), side
    job, ref_job = (json.loads(Path(str(p) + ".job.json").read_text()) for p in (out, ref))
    assert job == {**ref_job, "format": job["format"]}


def test_ray_gives_the_single_process_output_and_resumes_failures(corpus, cluster, tmp_path, capsys):
    out = tmp_path / "units.jsonl"
    assert main(_args(corpus, out, "--shard-size", "4")) == 1  # the corrupt file: recorded, exit 1
    _same_as_reference(corpus, out)
    errors = [json.loads(x) for x in Path(str(out) + ".errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["broken"] and "broken.wav" in errors[0]["reason"]
    assert "1 failed" in capsys.readouterr().err
    work = Path(str(out) + ".ray")
    manifest = json.loads((work / "manifest.json").read_text())["shards"]
    assert len(manifest) >= 2 and sum(s["rows"] for s in manifest) == N + 1  # kept: something failed
    # a rerun retries only the failure; the output is unchanged
    assert main(_args(corpus, out, "--shard-size", "4")) == 1
    assert f"{N} already done (resumed)" in capsys.readouterr().err
    _same_as_reference(corpus, out)
    # another job into the same output is refused, naming the difference
    assert main(_args(corpus, out, "--dedup")) == 2
    assert "dedup" in capsys.readouterr().err


def test_killed_actor_is_restarted_and_every_utterance_written_once(corpus, cluster, tmp_path):
    from speechunits.cli._common import gather_inputs
    from speechunits.distributed.ray_tokenize import tokenize_ray

    out = tmp_path / "units.parquet"
    killed: list[int] = []

    def kill_first_worker(entry: dict) -> None:
        if not killed:
            pid = int(entry["worker"].rpartition(":")[2])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    report = tokenize_ray(corpus["tok"], gather_inputs(corpus["inputs"]), out, shard_size=1, progress=False,
                          on_shard=kill_first_worker)
    assert killed and len(report.failed) == 1
    manifest = json.loads((Path(str(out) + ".ray") / "manifest.json").read_text())["shards"]
    workers = [int(s["worker"].rpartition(":")[2]) for s in manifest]
    # the kill came mid-run: later blocks were done by the restarted actor (another process)
    assert workers[0] == killed[0] and any(w != killed[0] for w in workers)
    assert sum(s["rows"] for s in manifest) == N + 1
    _same_as_reference(corpus, out)


def test_killed_driver_resumes_from_its_finished_shards(corpus, cluster, tmp_path, capsys):
    out = tmp_path / "units.jsonl"
    manifest = Path(str(out) + ".ray") / "manifest.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-c", "import sys; from speechunits.cli import main; sys.exit(main())", *_args(corpus, out, "--shard-size", "1"),
                               "--ray-address", cluster], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listed = 0
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts the driver and its actors slowly
        while time.monotonic() < deadline and driver.poll() is None:
            try:
                listed = len(json.loads(manifest.read_text())["shards"])
            except (OSError, ValueError):
                listed = 0
            if listed >= 3:
                break
            time.sleep(0.01)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait()
        err = driver.stderr.read().decode()
    assert 3 <= listed < N + 1, err[-2000:]  # killed mid-run
    assert not out.exists()
    assert main(_args(corpus, out, "--shard-size", "4")) == 1
    text = capsys.readouterr().err
    done = int(text.split(" already done")[0].rsplit(", ", 1)[1])
    assert done >= listed - 1 and f"{N - done} utterances tokenized" in text  # one listed shard is the failure
    _same_as_reference(corpus, out)


def test_without_ray_the_engine_says_how_to_install_it(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main(["tokenize", "--tokenizer", corpus["tok"], "--out", str(tmp_path / "u.jsonl"), corpus["inputs"][0],
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'speechunits[ray]'" in err
    assert not (tmp_path / "u.jsonl").exists()


def test_a_clean_run_removes_its_work_folder_and_writes_any_format(corpus, cluster, tmp_path, capsys):
    wavs = sorted((corpus["root"] / "wav").glob("utt00*.wav"))[:5]
    ref, out = tmp_path / "ref.km", tmp_path / "units.km"
    base = ["tokenize", "--tokenizer", corpus["tok"], *map(str, wavs), "--no-progress", "--dedup"]
    assert main([*base, "--out", str(ref)]) == 0
    (tmp_path / "units.km.ray").mkdir()
    (tmp_path / "units.km.ray" / "notes.txt").write_text("mine\n")  # not the engine's: never removed
    assert main([*base, "--out", str(out), "--engine", "ray", "--no-resume"]) == 2
    assert "not a Ray tokenize work folder" in capsys.readouterr().err
    (tmp_path / "units.km.ray" / "notes.txt").unlink()
    assert main([*base, "--out", str(out), "--engine", "ray", "--shard-size", "2"]) == 0
    assert out.read_bytes() == ref.read_bytes() and not (tmp_path / "units.km.ray").exists()
    assert Path(str(out) + ".ids").read_text() == Path(str(ref) + ".ids").read_text()


def test_feature_dumps_on_ray_equal_separate_shard_jobs(corpus, cluster, tmp_path):
    from speechunits.encoders import dump_features, load_encoder
    from speechunits.distributed.ray_features import dump_features_ray

    wavs = sorted((corpus["root"] / "wav").glob("*.wav"))[:7]  # the corrupt one among them
    items = [(p.stem, p) for p in wavs]
    for rank in range(3):
        dump_features(load_encoder("mfcc"), items, [0], tmp_path / "ref", 3, rank, progress=False)
    rows = dump_features_ray("mfcc", items, [0], tmp_path / "ray", 3, workers=1)
    assert [r["rank"] for r in rows] == [0, 1, 2] and sum(r["utts"] for r in rows) == 6
    ref = {p.name: p.read_bytes() for p in (tmp_path / "ref").iterdir()}
    got = {p.name: p.read_bytes() for p in (tmp_path / "ray").iterdir()}
    assert got.keys() == ref.keys()
    assert all(got[k] == ref[k] for k in ref), \
        [k for k in ref if got[k] != ref[k]]


def _eval(corpus_dir: Path, out: Path, tok: str, *extra: str) -> dict:
    assert main(["eval", "--tokenizer", tok, "--data", str(corpus_dir), "--out", str(out), "--no-progress",
                 "--no-plots", "--skip", "alignment", "abx", "ngram", "speed", "--seed", "3",
                 "--distortions", "white_10dB", "babble_0dB", "pitch_+3st", "stretch_1.1", *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_eval_robustness_on_ray_equals_the_local_section(corpus, cluster, tmp_path):
    """Every (distortion, utterance) item runs in the actors; the section is the local one, ==,
    with the failures (white noise and babble on a silent utterance)."""
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    for p in sorted((corpus["root"] / "wav").glob("utt00*.wav"))[:5]:
        (data / p.name).write_bytes(p.read_bytes())
    sf.write(data / "silent.wav", np.zeros(SR // 2, np.float32), SR, subtype="PCM_16")
    ref = _eval(data, tmp_path / "local", corpus["tok"])
    got = _eval(data, tmp_path / "ray", corpus["tok"], "--engine", "ray", "--workers", "2", "--ray-address", cluster)
    sec = got["datasets"][0]["layers"]["0"]["robustness"]
    assert sec == ref["datasets"][0]["layers"]["0"]["robustness"]
    assert [f["id"] for f in sec["distortions"]["white_10dB"]["failed"]] == ["silent"]
    assert sec["distortions"]["babble_0dB"]["num_utterances"] > 0 and sec["distortions"]["pitch_+3st"]["failed"] == []
    for m in (ref, got):  # the rest of the report too, but for the times
        for d in m["datasets"]:
            d.pop("timings_s"), d["tokenize"].pop("seconds"), d["tokenize"].pop("rtf")
    assert got["datasets"] == ref["datasets"] and got["summary"] == ref["summary"]


def test_eval_without_ray_says_how_to_install_it(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["eval", "--tokenizer", corpus["tok"], "--data", str(corpus["root"] / "wav"),
                 "--out", str(tmp_path / "e"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'speechunits[ray]'" in err
    assert not (tmp_path / "e").exists()
