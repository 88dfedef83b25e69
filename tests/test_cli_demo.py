"""``speechunits demo``: synthesize, tokenize with the bundled default, write the report, print headlines.

Needs espeak-ng and the MBROLA voices (the demo synthesizes its corpus); skips without them.
"""

from __future__ import annotations

import json

import pytest
import torch

from speechunits.data.corpus import missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="espeak-ng / MBROLA voices not installed")


def test_demo_tokenizes_and_reports_with_the_default(tmp_path, capsys):
    from speechunits.cli import main
    from speechunits.tokenizer import Tokenizer
    from speechunits.tokens import read_jsonl

    old = torch.get_num_threads()
    try:
        assert main(["demo", "--out", str(tmp_path), "--minutes", "0.5", "--librispeech", "none", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(old)
    out = capsys.readouterr().out
    units = read_jsonl(tmp_path / "units-synthetic.jsonl")
    test_ids = [json.loads(line)["id"] for line in (tmp_path / "corpus" / "test.jsonl").read_text().splitlines()]
    assert sorted(u.utt_id for u in units) == sorted(test_ids)
    k = Tokenizer.from_pretrained("default").vocab_sizes[0]
    assert all(int(u.ids.max()) < k for u in units)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    row = metrics["summary"][0]
    assert row["dataset"] == "corpus/test" and 0.0 < row["pnmi"] <= 1.0  # the corpus is aligned: PNMI is measured
    assert (tmp_path / "eval" / "report.html").is_file() and (tmp_path / "eval" / "report.md").is_file()
    assert "headline numbers" in out and f"PNMI {row['pnmi']:.3f}" in out
