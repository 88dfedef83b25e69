"""The helper scripts of the GPU language-model rounds: corpora merged with prefixed ids, and step
counts sized from a probe's measured rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechunits.tokens import Units, read_jsonl, write_jsonl
from speechunits.tokens.io import provenance_for

ROOT = Path(__file__).resolve().parents[1]


def _corpus(d: Path, cfg: dict, texts: dict[str, str]) -> tuple[Path, Path]:
    """A units file (ids as the synthetic corpus makes them, reused across seeds) and its manifest."""
    d.mkdir(parents=True)
    units = [Units(np.arange(i, i + 5) % cfg["k"], 50.0, provenance=provenance_for(cfg), utt_id=u)
             for i, u in enumerate(texts)]
    write_jsonl(d / "train.jsonl", units, cfg)
    (d / "manifest.jsonl").write_text("".join(json.dumps({"id": u, "text": t, "path": f"wav/{u}.wav"}) + "\n"
                                              for u, t in texts.items()))
    return d / "train.jsonl", d / "manifest.jsonl"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)


def test_merge_corpora_prefixes_ids_and_keeps_transcripts_paired(tmp_path):
    cfg = {"frame_rate": 50.0, "k": 50}
    a = _corpus(tmp_path / "a", cfg, {"spk1_000000": "one two", "spk2_000001": "three"})
    b = _corpus(tmp_path / "b", cfg, {"spk1_000000": "four five six"})  # the same id, another seed
    out, text = tmp_path / "m" / "train.jsonl", tmp_path / "m" / "text.jsonl"
    r = _run("scripts/merge_corpora.py", "--units", str(out), "--text", str(text),
             f"s0={a[0]}:{a[1]}", f"s1={b[0]}:{b[1]}")
    assert r.returncode == 0, r.stderr
    merged = read_jsonl(out)
    assert [u.utt_id for u in merged] == ["s0_spk1_000000", "s0_spk2_000001", "s1_spk1_000000"]
    assert np.array_equal(merged[2].ids, read_jsonl(b[0])[0].ids)
    rows = [json.loads(x) for x in text.read_text().splitlines()]
    assert {r["id"]: r["text"] for r in rows} == {"s0_spk1_000000": "one two", "s0_spk2_000001": "three",
                                                 "s1_spk1_000000": "four five six"}
    assert json.loads(Path(f"{out}.config.json").read_text())["k"] == 50
    assert not list(out.parent.glob("*.tmp"))


def test_merge_corpora_refuses_units_of_another_tokenizer(tmp_path):
    a = _corpus(tmp_path / "a", {"frame_rate": 50.0, "k": 50}, {"x_0": "a"})
    b = _corpus(tmp_path / "b", {"frame_rate": 50.0, "k": 500}, {"x_0": "b"})
    out = tmp_path / "m" / "train.jsonl"
    r = _run("scripts/merge_corpora.py", "--units", str(out), f"s0={a[0]}", f"s1={b[0]}")
    assert r.returncode != 0 and "made by another tokenizer" in r.stderr
    assert not out.exists()


def test_steps_for_budget_uses_the_last_measured_rate(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"step": 1, "loss": 5.0}, {"step": 20, "loss": 4.0, "tokens_per_s": 1000.0},  # warm-up window
        {"step": 40, "loss": 3.0, "tokens_per_s": 8192.0}]) + "\n")
    r = _run("scripts/steps_for_budget.py", str(log), "100", "4096")
    assert r.returncode == 0 and int(r.stdout) == 198  # 100 s x 8192 / 4096 = 200, down to a multiple of 6
    r = _run("scripts/steps_for_budget.py", str(log), "1", "4096")
    assert int(r.stdout) == 100  # never fewer than 100
    log.write_text(json.dumps({"step": 1, "loss": 5.0}) + "\n")
    r = _run("scripts/steps_for_budget.py", str(log), "100", "4096")
    assert r.returncode != 0 and "no tokens_per_s" in r.stderr


@pytest.mark.parametrize("script", ["gpu_lm_round.sh", "gpu_llm_granularity.sh", "big_corpus_units.sh",
                                    "granularity_units.sh", "proxy_downstream.sh"])
def test_round_scripts_parse_and_ask_for_their_arguments(script):
    assert subprocess.run(["bash", "-n", f"scripts/{script}"], cwd=ROOT).returncode == 0
    r = subprocess.run(["bash", f"scripts/{script}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "usage:" in r.stderr
