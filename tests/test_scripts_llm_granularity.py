"""scripts/llm_granularity_table.py: the table of the CPU granularity runs, read from what a real
(tiny) `train` / `evaluate_nll` / `PairResult` wrote."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from speechunits.lm import TrainConfig, create_lm, evaluate_nll, lm_examples, train
from speechunits.lm.pairs import PairResult
from speechunits.tokens import Units

ROOT = Path(__file__).resolve().parents[1]


def test_table_reads_margins_curve_and_binomial_p_values(tmp_path):
    torch.set_num_threads(1)
    k = 8
    rng = np.random.default_rng(0)
    data = [Units(np.tile(np.arange(k), 3)[: rng.integers(6, 20)], 50.0, utt_id=str(i)) for i in range(30)]
    lm = create_lm("unit-lm:tiny", k=k, seed=0)
    ex = lm_examples(lm, data)
    train(lm, ex, tmp_path / "km", TrainConfig(steps=20, batch_tokens=64, max_len=32, lr=3e-3, eval_every=10,
                                                  log_every=1, progress=False), valid=ex[:8])
    (tmp_path / "eval_km.json").write_text(json.dumps(evaluate_nll(lm, data[:8]).to_dict()))
    (tmp_path / "score_km.lexical.json").write_text(json.dumps(PairResult(1000, 0.55, 0.56, {}, []).to_dict()))
    r = subprocess.run([sys.executable, "scripts/llm_granularity_table.py", str(tmp_path), "km=8"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [line.split(" | ") for line in r.stdout.splitlines() if line.startswith("| km | 8 |")]
    assert [row[3] for row in rows] == ["10 (1 k)", "20 (1 k)"]  # two validations, 64 tokens a step
    log = [json.loads(x) for x in (tmp_path / "km" / "train_log.jsonl").read_text().splitlines()]
    last = [x for x in log if "valid_nll" in x][-1]["valid_nll"]
    assert float(rows[1][5]) == round(math.log(k) - last, 2) > 0  # learned a cyclic sequence: below ln k
    # 560 of 1,000 right: one-sided exact binomial p = sum(C(1000, i), i >= 560) / 2^1000 = 8.3e-5
    assert rows[1][8] == "56.0 / 55.0 (p = 8e-05)" and rows[1][9] == " |"  # no syntactic file: empty
    curve = next(line for line in r.stdout.splitlines() if line.startswith("| km | ") and "|" not in line[8:10])
    assert len(curve.split(" | ")) == 4  # steps 1, 10, 20
