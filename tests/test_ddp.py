"""Data-parallel training under torchrun (gloo on CPU): two processes take the steps one process
takes with the same global batch, and a two-process checkpoint resumes in one process.

The jobs run as real ``torchrun --nproc-per-node 2`` launches of ``tests/ddp_job.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechunits.distributed import ddp

JOB = Path(__file__).with_name("ddp_job.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def launch(job: dict, tmp_path: Path, procs: int, expect: int = 0) -> dict:
    """Run ``job`` in ``procs`` processes (torchrun when > 1); rank 0's history."""
    Path(job["out"]).mkdir(parents=True, exist_ok=True)
    spec = tmp_path / f"job_{Path(job['out']).name}.json"
    spec.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, str(JOB), str(spec)]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
               str(JOB), str(spec)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=JOB.parent.parent)
    assert r.returncode == expect if expect == 0 else r.returncode != 0, r.stderr[-3000:]
    path = Path(job["out"]) / "history.rank0.json"
    return json.loads(path.read_text()) if expect == 0 else {}


def test_part_splits_a_batch_into_contiguous_near_equal_shares():
    items = list(range(7))
    parts = [ddp.part(items, ddp.World(r, 3)) for r in range(3)]
    assert parts == [[0, 1], [2, 3], [4, 5, 6]] and sum(parts, []) == items
    assert ddp.part(items, ddp.World()) == items


def test_a_loop_that_is_not_data_parallel_refuses_torchrun(monkeypatch, tmp_path):
    from speechunits.encoders.pretrain.loop import Trainer

    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; refused before any process group
    monkeypatch.setenv("RANK", "0")
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(RuntimeError, match="does not run under torchrun"):
        Trainer(tmp_path, {"w": w}, lambda s: ((w - 1).pow(2).sum(), {}), steps=2, lr=0.1, desc="probe")


def _state(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(d.glob("*.safetensors"))))


def test_unit_lm_two_processes_equal_one_with_the_same_global_batch_and_resume_in_one(tmp_path):
    base = {"kind": "unit-lm", "k": 12, "steps": 6}
    one = launch({**base, "grad_accum": 2, "out": str(tmp_path / "one")}, tmp_path, 1)
    two = launch({**base, "grad_accum": 1, "out": str(tmp_path / "two")}, tmp_path, 2)
    assert two["world_size"] == 2 and len(two["losses"]) == 6
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    assert one["losses"][-1] < 0.8 * one["losses"][0]  # it learns
    a, b = _state(tmp_path / "one"), _state(tmp_path / "two")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)

    # two processes killed after the step-3 checkpoint; one process (grad_accum 2: the same
    # global batch) resumes and ends where the uninterrupted one-process run ended
    out = str(tmp_path / "resumed")
    launch({**base, "grad_accum": 1, "out": out, "save_every": 3, "die_after": 3}, tmp_path, 2, expect=1)
    assert json.loads((Path(out) / "checkpoint" / "state.json").read_text())["step"] == 3
    with pytest.raises(AssertionError, match="global_accum"):  # another global batch is refused
        launch({**base, "grad_accum": 1, "out": out}, tmp_path, 1)
    resumed = launch({**base, "grad_accum": 2, "out": out}, tmp_path, 1)
    np.testing.assert_allclose(resumed["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    c = _state(Path(out))
    for k in a:
        torch.testing.assert_close(c[k], a[k], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def spin_inputs(tmp_path_factory):
    from test_spin import harmonic_corpus

    from speechunits.encoders.pretrain import build_model, save_encoder

    d = tmp_path_factory.mktemp("ddp_spin")
    corpus = harmonic_corpus(d / "corpus", n=8, seconds=1.5)
    # no dropout: a tensor-wide random draw is the one thing that differs per process
    model = build_model("tiny", seed=4, hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0)
    return str(corpus), str(save_encoder(model.eval(), d / "encoder"))


def test_dcspin_two_processes_equal_one_and_resume_in_one(spin_inputs, tmp_path):
    from safetensors.torch import load_file

    corpus, encoder = spin_inputs
    base = {"kind": "spin", "corpus": corpus, "encoder": encoder, "codebooks": [8, 16], "steps": 4, "batch_size": 4}
    one = launch({**base, "out": str(tmp_path / "one")}, tmp_path, 1)
    two = launch({**base, "out": str(tmp_path / "two")}, tmp_path, 2)
    # Sinkhorn over both processes' frames + gradients summed: the one-process losses
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4, atol=1e-5)
    qa, qb = (load_file(str(tmp_path / r / "quantizer" / "model.safetensors")) for r in ("one", "two"))
    for k in qa:
        torch.testing.assert_close(qb[k], qa[k], rtol=1e-3, atol=1e-4)

    out = str(tmp_path / "resumed")  # two processes to step 2, then one process to the end
    launch({**base, "out": out, "stop_at": 2}, tmp_path, 2)
    assert json.loads((Path(out) / "checkpoint" / "state.json").read_text())["world_size"] == 2
    resumed = launch({**base, "out": out}, tmp_path, 1)
    np.testing.assert_allclose(resumed["losses"], one["losses"], rtol=1e-4, atol=1e-5)


def test_hubert_pretraining_two_processes_equal_one(spin_inputs, tmp_path):
    """Masks, augmentation and the frame-count normalisation drawn over the global batch."""
    from speechunits.encoders.pretrain import fit_targets

    corpus, _ = spin_inputs
    targets = tmp_path / "it1.jsonl"
    fit_targets(corpus, targets, encoder="mfcc", k=12, seed=0, progress=False)
    base = {"kind": "hubert", "corpus": corpus, "targets": str(targets), "steps": 3, "batch_size": 4}
    one = launch({**base, "out": str(tmp_path / "one")}, tmp_path, 1)
    two = launch({**base, "out": str(tmp_path / "two")}, tmp_path, 2)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4, atol=1e-5)
    a, b = (_state(tmp_path / r / "encoder") for r in ("one", "two"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)


def test_the_cli_trains_a_unit_lm_under_torchrun_and_the_model_loads(tmp_path):
    """The README's command: `torchrun --nproc-per-node 2 -m speechunits lm train ...`."""
    from speechunits.lm import SpeechLM
    from speechunits.tokens import Units
    from speechunits.tokens.io import write_jsonl

    rng = np.random.default_rng(1)
    units = [Units(np.tile(rng.integers(0, 10, 5), 4), 50.0, utt_id=f"u{i}") for i in range(30)]
    write_jsonl(tmp_path / "units.jsonl", units, {"k": 10, "frame_rate": 50.0})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "speechunits",
           "lm", "train", "--model", "unit-lm:tiny", "--units", str(tmp_path / "units.jsonl"), "--out",
           str(tmp_path / "lm"), "--steps", "4", "--batch-tokens", "64", "--max-len", "32", "--no-progress"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('"steps": 4') == 1  # rank 0 reports, once
    log = [json.loads(x) for x in (tmp_path / "lm" / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "loss" in x] == [1, 2, 3, 4]  # one writer: no line twice
    assert SpeechLM.load(tmp_path / "lm").k == 10


def _tones(d: Path) -> None:
    """12 one-second tones (two classes) as train.jsonl and an MFCC k-means tokenizer in tok/."""
    import soundfile as sf

    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizer

    rng = np.random.default_rng(0)
    rows, waves = [], []
    for i in range(12):
        f0 = 120.0 if i % 2 else 220.0
        t = np.arange(16000) / 16000
        x = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(16000)).astype(np.float32)
        sf.write(d / f"t{i}.wav", x, 16000)
        waves.append(x)
        rows.append({"id": f"t{i}", "path": f"t{i}.wav", "label": ["low", "high"][i % 2], "text": ["ab", "ba"][i % 2]})
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=8, seed=0).save_pretrained(d / "tok")


@pytest.mark.parametrize("task", ["asr", "classify"])
def test_a_probe_trains_in_two_processes_as_in_one(tmp_path, task):
    """Rank 0 prepares the data (the other rank waits, then reads it), both train, rank 0 scores."""
    _tones(tmp_path)
    base = {"kind": "probe", "task": task, "tokenizer": str(tmp_path / "tok"), "train": str(tmp_path / "train.jsonl"),
            "steps": 6, "batch": 4}
    runs = {}
    for procs in (1, 2):
        job = {**base, "out": str(tmp_path / f"p{procs}"), "data": str(tmp_path / f"data{procs}")}
        runs[procs] = launch(job, tmp_path, procs)
    np.testing.assert_allclose(runs[2]["losses"], runs[1]["losses"], rtol=1e-4, atol=1e-5)
    a, b = (_state(tmp_path / f"p{n}") for n in (1, 2))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
    assert json.loads((tmp_path / "p2" / "results.json").read_text())["task"] == task


def test_the_vocoder_trains_in_two_processes_as_in_one(tmp_path):
    """Crops and duration batches drawn and padded as one process draws them; the mel and
    duration means taken over the global batch's frames and runs."""
    _tones(tmp_path)
    base = {"kind": "vocoder", "tokenizer": str(tmp_path / "tok"), "train": str(tmp_path / "train.jsonl"), "steps": 4}
    runs = {n: launch({**base, "out": str(tmp_path / f"v{n}")}, tmp_path, n) for n in (1, 2)}
    np.testing.assert_allclose(runs[2]["losses"], runs[1]["losses"], rtol=1e-4, atol=1e-5)
    a, b = (_state(tmp_path / f"v{n}") for n in (1, 2))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
