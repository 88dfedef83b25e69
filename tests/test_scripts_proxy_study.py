"""scripts/proxy_study_table.py: every tokenizer's proxies next to its LM, unit-LM ASR and
resynthesis scores, and the correlations across tokenizers, read from the folders the proxy-study
scripts write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _study(out: Path, abx: list[float], pnmi: list[float], resynth: list[float | None]) -> None:
    """Four tokenizers: ASR CER = ABX / 100 and dWER = 1 - PNMI, by construction."""
    for i, (a, p, dwer) in enumerate(zip(abx, pnmi, resynth)):
        name = f"tok{i}"
        _write(out / "eval" / name / "metrics.json", json.dumps(
            {"summary": [{"abx_within_units_pct": a, "abx_across_units_pct": a + 1, "pnmi": p, "cnmi": p / 2,
                          "entropy_bitrate": 100 + 10 * i, "ngram_perplexity": 5 + i, "ued_mean": 0.3 + 0.01 * i,
                          "position_nmi_margin": 0.1}]}))
        _write(out / "lm" / name / "train_log.jsonl", "".join(json.dumps(r) + "\n" for r in [
            {"step": 10, "loss": 3.0},
            {"step": 60, "valid_nll": 9.0, "valid_tokens": 100, "pairs_lexical": 0.5, "pairs_syntactic": 0.5},
            {"step": 120, "valid_nll": 2.0 + i, "valid_tokens": 100, "pairs_lexical": 0.5 + 0.01 * i,
             "pairs_syntactic": 0.52}]))
        _write(out / "asr" / name / "train_log.jsonl", "".join(json.dumps(r) + "\n" for r in [
            {"step": 50, "valid_nll": 5.0, "valid_tokens": 40}, {"step": 100, "valid_nll": 1.0 + a / 10, "valid_tokens": 40}]))
        _write(out / "asr" / name / "test.json", json.dumps({"cer": a / 100, "wer": 0.9, "n_utterances": 3}))
        if dwer is not None:
            _write(out / "resynth" / "eval" / name / "metrics.json", json.dumps({"name": name, "datasets": [
                {"data": {"name": "librivox-aligned"}, "resynthesis": {"scores": {"dwer": dwer / 2}}},
                {"data": {"name": "test-other"}, "resynthesis": {"scores": {"dwer": dwer}}}]}))


def test_table_adds_unit_lm_asr_and_resynthesis_and_correlates_them(tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"num_samples": 16000 * 10, "sample_rate": 16000}) + "\n")
    _study(tmp_path / "study", abx=[5.0, 9.0, 20.0, 40.0], pnmi=[0.7, 0.6, 0.5, 0.2], resynth=[0.3, 0.4, 0.5, None])
    r = subprocess.run([sys.executable, "scripts/proxy_study_table.py", str(tmp_path / "study"), str(dev)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "study" / "proxy_study.json").read_text())
    row = out["table"]["tok2"]
    assert row["asr_cer"] == 0.2 and row["asr_dev_nll_per_char"] == 3.0  # the last validation, not the first
    assert row["asr_wer"] == 0.9
    assert row["dwer_test_other"] == 0.5 and row["dwer_librivox"] == 0.25
    assert row["dev_nll_per_second"] == 4.0 * 100 / 10
    assert "dwer_test_other" not in out["table"]["tok3"]
    c = out["correlation"]
    m = c["metrics"]

    def at(a: str, b: str) -> tuple[float, int]:
        return c["matrix"][m.index(a)][m.index(b)], c["n"][m.index(a)][m.index(b)]

    r_cer, n_cer = at("abx_within_units_pct", "asr_cer")
    assert abs(r_cer - 1.0) < 1e-9 and n_cer == 4  # both lower-is-better: negated together, they agree
    r_dwer, n_dwer = at("pnmi", "dwer_test_other")
    assert abs(r_dwer - 1.0) < 1e-9 and n_dwer == 3  # higher PNMI, lower dWER: agreement; tok3 has no vocoder
    assert "ASR CER" in r.stdout and "resynthesis dWER test-other" in r.stdout
    curve = r.stdout.split("| ASR dev NLL / char at step | 50 | 100 |\n|---|---|---|\n")[1].splitlines()
    assert curve[:4] == ["| tok0 | 5 | 1.5 |", "| tok1 | 5 | 1.9 |", "| tok2 | 5 | 3 |", "| tok3 | 5 | 5 |"]
