"""scripts/swap_units.py: the length-matched control for unit-LM ASR."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from speechunits.tokens import Units, read_config, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def test_neighbours_in_length_swap_their_units_and_the_odd_one_out_is_dropped(tmp_path):
    cfg = {"frame_rate": 50.0, "k": 20}
    lengths = {"a": 3, "b": 5, "c": 4, "d": 9, "e": 10}
    units = [Units(np.arange(n) + i, 50.0, utt_id=u) for i, (u, n) in enumerate(lengths.items())]
    write_jsonl(tmp_path / "in.jsonl", units, cfg)
    r = subprocess.run([sys.executable, "scripts/swap_units.py", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    got = {u.utt_id: u.ids.tolist() for u in read_jsonl(tmp_path / "out.jsonl")}
    by_id = {u.utt_id: u.ids.tolist() for u in units}
    # length order a(3) c(4) b(5) d(9) e(10): a<->c, b<->d, e left without a partner
    assert got == {"a": by_id["c"], "c": by_id["a"], "b": by_id["d"], "d": by_id["b"]}
    assert read_config(tmp_path / "out.jsonl") == cfg


def test_asr_compare_pairs_the_shared_utterances_and_bounds_the_difference(tmp_path):
    import json

    def decode(hyps: dict) -> dict:
        return {"utterances": [{"id": i, "ref": "abcd efgh", "hyp": h} for i, h in hyps.items()]}

    a = decode({"u1": "abcd efgh", "u2": "abcd efgh", "u3": "abcd efgh"})
    b = decode({"u1": "abcd efgx", "u2": "abcd efgh", "only_b": "zzz"})  # u3 missing, only_b extra
    for name, d in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(d))
    r = subprocess.run([sys.executable, "scripts/asr_compare.py", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["utterances"] == 2
    assert out["cer"]["a"] == 0 and out["cer"]["b"] == 1 / 18 and out["wer"]["b"] == 1 / 4
    lo, hi = out["cer"]["ci95"]
    assert lo == 0 and hi == 1 / 9  # resamples of {u1, u2}: none, one or both with the error
