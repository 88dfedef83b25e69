"""scripts/asr_ctc_table.py: dev curves and test decodes of a real (tiny) CTC fine-tuning, with the
swapped-units control."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("jiwer")

from speechunits.cli import main  # noqa: E402
from speechunits.tokens import Units, write_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K, CHARS = 6, "abcdef"


def test_table_of_a_tiny_run(tmp_path):
    rng = np.random.default_rng(0)
    units, texts = [], {}
    for i in range(40):
        ids = rng.integers(0, K, rng.integers(2, 6))
        ids = ids[np.r_[True, ids[1:] != ids[:-1]]]
        units.append(Units(np.repeat(ids, 2), 50.0, utt_id=f"u{i}"))
        texts[f"u{i}"] = "".join(CHARS[j] for j in ids)
    write_jsonl(tmp_path / "units.jsonl", units, {"frame_rate": 50.0, "k": K})
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    swapped = [Units(units[i].ids, 50.0, utt_id=units[i ^ 1].utt_id) for i in range(40)]
    write_jsonl(tmp_path / "swap.jsonl", swapped, {"frame_rate": 50.0, "k": K})
    out = tmp_path / "asr"
    data = ["--units", str(tmp_path / "units.jsonl"), "--text", str(tmp_path / "text.jsonl")]
    assert main(["lm", "asr-train", *data, "--valid", str(tmp_path / "units.jsonl"), "--model", "unit-lm:tiny",
                 "--out", str(out / "r"), "--steps", "40", "--batch-tokens", "256", "--max-len", "128", "--lr", "3e-3",
                 "--ctc-weight", "0.5", "--eval-every", "20", "--eval-cer", "10", "--no-progress"]) == 0
    for units_file, tag in ((tmp_path / "units.jsonl", "test"), (tmp_path / "swap.jsonl", "swap")):
        assert main(["lm", "asr-eval", "--model", str(out / "r"), "--units", str(units_file), "--text",
                     str(tmp_path / "text.jsonl"), "--decoder", "ctc", "--json", str(out / f"r_{tag}_ctc.json")]) == 0
    r = subprocess.run([sys.executable, "scripts/asr_ctc_table.py", str(out), "r"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [line.split(" | ") for line in r.stdout.splitlines() if line.startswith("| r |")]
    assert [row[1] for row in rows[:2]] == ["20", "40"]  # the two validations
    (test_row,) = [row for row in rows if row[1] == "greedy CTC"]
    cer = json.loads((out / "r_test_ctc.json").read_text())["cer"]
    assert test_row[2].startswith(f"{100 * cer:.1f} (")
    swap_cer = json.loads((out / "r_swap_ctc.json").read_text())["cer"]
    assert test_row[5] == f"{100 * swap_cer:.1f}" and swap_cer > cer  # the units matter to a model that reads them
    assert test_row[6].startswith(f"{100 * (swap_cer - cer):.1f} (")
