"""The ``tts`` task of ``speechunits benchmark``: train a text-to-units model, speak the test sets.

One row per test set: the WER of Whisper tiny.en on the synthesized speech against the text
(lower is better), with the full scores (CER, dWER, the real recordings' WER, speaker
similarity, DNSMOS, and the real recordings' own units through the same vocoder) in ``result``.
The budget comes from the benchmark's settings (steps, batch, learning rate, seed, device); a
finished model or evaluation in the run folder is reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from speechunits.data.atomic import safe_file_name

from .artifact import TextToSpeech
from .evaluate import evaluate_tts
from .train import TTSSettings, train_tts

BUDGET_KEYS = ("steps", "batch", "dim", "hidden", "lstm_layers", "downsample", "lr", "seed")


def tts_rows(tname: str, tokenizer, source: str, td, run_dir: Path, vocoder, settings, *,
             progress: bool = True, scorers: dict | None = None) -> tuple[list[dict], list[dict]]:
    """``(rows, failures)`` of the benchmark table for one tokenizer (``td``: the task's data)."""
    if vocoder is None:
        return [], [{"tokenizer": tname, "task": td.name, "variant": "all",
                     "reason": f"tts needs a vocoder for this tokenizer: --vocoder {tname}=DIR"}]
    s = TTSSettings(steps=settings.steps, batch=settings.batch, lr=settings.lr, seed=settings.seed,
                    device=settings.device)
    rows, failures = [], []
    try:
        tts = TextToSpeech.from_pretrained(run_dir, tokenizer=tokenizer) if (run_dir / "training.json").exists() else \
            train_tts(tokenizer, td.train, run_dir, s, dev_utts=td.dev, source=str(source), progress=progress)
        training = json.loads((run_dir / "training.json").read_text())
    except Exception as e:  # one task's failure is recorded; the others still run
        return [], [{"tokenizer": tname, "task": td.name, "variant": "all", "reason": str(e).splitlines()[0]}]
    for test, utts in td.tests.items():
        folder = run_dir / "eval" / safe_file_name(test)
        try:
            report = json.loads((folder / "scores.json").read_text()) if (folder / "scores.json").exists() else \
                evaluate_tts(tts, vocoder, utts, folder, scorers=scorers, tokenizer=tokenizer, progress=progress)
        except Exception as e:
            failures.append({"tokenizer": tname, "task": td.name, "variant": "all", "reason": str(e).splitlines()[0]})
            continue
        mean = report["tts"]["mean"]
        if mean.get("wer") is None:
            failures.append({"tokenizer": tname, "task": td.name, "variant": "all",
                             "reason": f"{test}: no WER (is Whisper tiny.en installed? {report['notes']})"})
            continue
        result = {**{k: v for k, v in mean.items()}, "resynthesis": report.get("resynthesis", {}).get("mean", {}),
                  "utterances": report["utterances"]}
        rows.append({"tokenizer": tname, "task": td.name, "variant": "all", "layers": list(tokenizer.layers),
                     "test": test, "metric": "wer", "score": mean["wer"], "result": result,
                     "steps": training["steps_run"], "best_step": training["best_step"],
                     "step_s": training["median_step_s"],
                     "budget": {k: v for k, v in asdict(settings).items() if k in BUDGET_KEYS}})
    return rows, failures
