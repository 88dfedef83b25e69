"""The DC-Spin default tokenizer's artifact: assemble and check the tokenizer, write its model card.

Split from :mod:`speechunits.recipes.dcspin_default` (the training stages): this module turns a
finished DC-Spin run into the shipped ``tokenizer/`` folder, size-checked against the 25 MB limit
(float16 encoder weights only when float32 would not fit, with the unit agreement recorded), and
writes ``README.md`` from what the stages recorded.

Example:
    >>> from speechunits.recipes.dcspin_artifact import reproduce_command
    >>> reproduce_command({"scale": "tiny", "seed": 0, "ctc": False})
    'speechunits recipe default-tokenizer --kind dcspin --scale tiny --seed 0 --out OUT'
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from pathlib import Path

import torch

from speechunits.data.atomic import atomic_write_text, replace_dir
from speechunits.recipes.dcspin_scales import Scale

log = logging.getLogger(__name__)

RECIPE = "dcspin-default"
STAGES = ("data", "targets1", "pretrain1", "targets2", "pretrain2", "ctc", "dcspin", "tokenizer", "card")
MAX_BYTES = 25_000_000  # the limit for the bundled default (decimal MB)
COMMAND = "speechunits recipe default-tokenizer --kind dcspin --scale {scale} --seed {seed} --out {out}"


def reproduce_command(settings: dict, out: str = "OUT") -> str:
    """The shell command that rebuilds a tokenizer made with ``settings`` (recipe.json's)."""
    return COMMAND.format(out=out, **settings) + (" --ctc" if settings.get("ctc") else "")


# -- the tokenizer: assemble, check, size -------------------------------------------------------------------


def _versions() -> dict:
    import numpy
    import transformers

    from speechunits import __version__

    return {"speechunits": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def unit_agreement(a, b, files: list[Path]) -> float:
    """Share of frames where tokenizers ``a`` and ``b`` give the same unit, over ``files``."""
    pairs = [(a.encode(f).ids, b.encode(f).ids) for f in files]
    return sum(int((x == y).sum()) for x, y in pairs) / max(1, sum(len(x) for x, _ in pairs))


def half_encoder(src: Path, dst: Path) -> Path:
    """A copy of an HF encoder folder with float16 weights (``HFEncoder`` casts them back to float32)."""
    from safetensors.torch import load_file, save_file

    tmp = dst.parent / f".{dst.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    for p in tmp.glob("*.safetensors"):
        t = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(p)).items()}
        save_file(t, str(p), metadata={"format": "pt"})
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["dtype"] = "float16"  # what is stored; the encoder runs in float32 whatever this says
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def assemble(out: Path, cfg: Scale, state: dict) -> dict:
    """Save ``Tokenizer(encoder, primary Spin quantizer)`` to ``<out>/tokenizer`` and check it."""
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.quantizers.dcspin import load_spin
    from speechunits.tokenizer import Tokenizer

    stages, settings = state["stages"], state["settings"]
    syn, real = stages["data"]["result"]["synthetic"], stages["data"]["result"]["real"]
    # The training part of each source, without local paths (the artifact travels).
    parts = [{"name": f"{syn['name']} (train split)", "seed": syn["seed"], "minutes_requested": syn["minutes"],
              **syn["splits"]["train"]}] + ([{k: real[k] for k in ("name", "utterances", "seconds")}] if real else [])
    keys = ("steps", "k", "layer", "layer_pnmi", "final_loss", "median_step_s", "codebooks")
    info = {"seed": settings["seed"],
            "training_data": {"name": " + ".join(p["name"] for p in parts), "parts": parts,
                              "utterances": sum(p["utterances"] for p in parts),
                              "seconds": round(sum(p["seconds"] for p in parts), 3)},
            "recipe": {"name": RECIPE, "command": reproduce_command(settings), "settings": settings,
                       "versions": _versions(),
                       "stages": {k: {"status": v["status"], "seconds": v["seconds"],
                                      **{x: v["result"][x] for x in keys if x in v["result"]}}
                                  for k, v in stages.items()}}}
    enc, q = load_spin(out / "work" / "dcspin")
    tok = Tokenizer(enc, q, info=info)
    final, tmp = out / "tokenizer", out / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    # Speakers never seen in training.
    check = [u.path for u in read_manifest(out / "corpus" / "test.jsonl")[: cfg.check_utterances]]
    result: dict = {"bytes_float32": dir_bytes(tmp), "encoder_dtype": "float32"}
    if result["bytes_float32"] > MAX_BYTES:  # only then: float16 halves the encoder; report what it costs
        half = half_encoder(out / "work" / "dcspin" / "encoder", out / "work" / "encoder-fp16")
        tok16 = Tokenizer(load_encoder(str(half)), q, info={**info, "encoder_storage": "float16"})
        shutil.rmtree(tmp)
        tok16.save_pretrained(tmp)
        result.update(encoder_dtype="float16", fp16_unit_agreement=round(unit_agreement(tok, tok16, check), 6))
    loaded = Tokenizer.from_pretrained(tmp)
    result["reload_unit_agreement"] = round(unit_agreement(tok, loaded, check), 6)  # vs the trained float32 one
    ids = loaded.encode(check[0]).ids
    if ids.min() < 0 or ids.max() >= cfg.codebooks[0]:
        raise RuntimeError(f"{tmp}: units outside [0, {cfg.codebooks[0]})")
    replace_dir(tmp, final)
    size = dir_bytes(final)
    result.update(bytes=size, max_bytes=MAX_BYTES, size_ok=size <= MAX_BYTES, k=cfg.codebooks[0],
                  layer=int(q.layer), check_files=len(check))
    if size > MAX_BYTES:
        log.warning("%s: %d bytes, above the %d-byte limit of the bundled default", final, size, MAX_BYTES)
    return result


# -- the model card -----------------------------------------------------------------------------------------


def _stage_note(name: str, r: dict, s: dict) -> str:
    if not r:
        return "off (`ctc=True` turns it on)" if name == "ctc" else ""
    if name.startswith("targets"):
        return f"k-means k={r['k']} of " + ("MFCC" if name == "targets1" else f"layer {r['layer']}")
    if "steps" in r:
        bs = s["spin_batch_size"] if name == "dcspin" else s["batch_size"]
        return f"{r['steps']} steps of {bs} x {s['crop_seconds']} s, {r['median_step_s']:.2f} s/step, loss {r['final_loss']}"
    if name == "tokenizer":
        return f"{r['bytes'] / 1e6:.2f} MB, reload agreement {r['reload_unit_agreement']}"
    return "synthetic corpus" + (" + LibriSpeech-mini" if r.get("real") else "") if name == "data" else ""


def write_card(out: Path, state: dict) -> dict:
    """``<out>/tokenizer/README.md``: data, recipe, hyper-parameters, how to reproduce, metrics to come."""
    s, stages = state["settings"], state["stages"]
    tok, p1, t2 = (stages[k]["result"] for k in ("tokenizer", "pretrain1", "targets2"))
    syn, real = stages["data"]["result"]["synthetic"], stages["data"]["result"]["real"]
    tr, v = syn["splits"]["train"], syn["versions"]
    fp16 = (f" (units agree with the float32 encoder on {100 * tok['fp16_unit_agreement']:.2f}% of held-out frames)"
            if "fp16_unit_agreement" in tok else "")
    lines = [
        "# speechunits default tokenizer (DC-Spin)", "",
        f"{tok['k']} discrete units at 50 Hz from layer {tok['layer']} of a small HuBERT-style encoder "
        f"({p1['parameters'] / 1e6:.2f}M parameters, preset `{s['preset']}`) trained from scratch by the `{RECIPE}` "
        f"recipe, then fine-tuned with DC-Spin (primary codebook {s['codebooks'][0]}, auxiliary {s['codebooks'][1]}), "
        "whose swapped prediction against F0/formant-perturbed copies of each utterance trains the units toward "
        "speaker invariance. English only.", "",
        "```python", "from speechunits.tokenizer import Tokenizer", 'tok = Tokenizer.from_pretrained("default")',
        f'units = tok.encode("speech.wav")  # ids in [0, {tok["k"]})', "```", "",
        "## Training data", "",
        f"- Synthetic: {tr['utterances']} train utterances ({tr['seconds'] / 60:.1f} min, {tr['speakers']} speakers) "
        f"of the speechunits aligned corpus (espeak-ng {v.get('espeak-ng')} + MBROLA {v.get('mbrola')} voices, seed "
        f"{syn['seed']}, {syn['minutes']} min requested; dev/test splits held out, test speakers unseen).",
        (f"- Real: {real['utterances']} LibriSpeech train-clean-100 utterances ({real['seconds'] / 60:.1f} min, "
         "`librispeech-mini`, one per speaker; no transcripts used)." if real else
         "- Real speech: none (the shared data folder was absent when this was built)."),
        "- Licences: LibriSpeech CC BY 4.0; the MBROLA voices have their own terms "
        "(`/usr/share/doc/mbrola-*/copyright`).", "",
        "## Recipe", "", "| stage | status | seconds | what |", "|---|---|---|---|",
        *(f"| {n} | {r['status']} | {r['seconds']:.0f} | {_stage_note(n, r['result'], s)} |"
          for n, r in stages.items() if n != "card"), "",
        f"Iteration-2 layer chosen by PNMI on the synthetic train alignments: {t2['layer']} (PNMI by layer: "
        + (", ".join(f"{a}: {b:.3f}" for a, b in t2["layer_pnmi"].items()) or "n/a") + ")"
        + (f"; k-means on MFCCs scores {t2['mfcc_pnmi']:.3f} on the same audio." if "mfcc_pnmi" in t2 else "."), "",
        "## Hyper-parameters", "", "```json", json.dumps(s, indent=2), "```", "",
        "## Reproduce", "", "```bash", reproduce_command(s), "```", "",
        f"or in Python: `build_dcspin_default(\"OUT\", scale=\"{s['scale']}\", seed={s['seed']}"
        f"{', ctc=True' if s['ctc'] else ''})` (`speechunits.recipes.dcspin_default`). Every stage resumes; "
        "per-stage times and results are in `recipe.json` beside the tokenizer folder. Built with "
        + ", ".join(f"{k} {x}" for k, x in _versions().items()) + ".", "",
        "## Files", "",
        f"{tok['bytes'] / 1e6:.2f} MB in all (limit {MAX_BYTES / 1e6:.0f} MB); encoder weights stored as "
        f"{tok['encoder_dtype']}{fp16}.", "",
        "## Evaluation", "",
        "<!-- METRICS: filled in by `speechunits eval`; nothing below is measured yet. -->",
        "**Not yet measured.** Codebook use and bitrate, PNMI/CNMI/purity against phone alignments, ABX, "
        "4-gram predictability, unit edit distance under distortions and real-time factor will be reported "
        "here by `speechunits eval`.", "",
        "## Limitations", "",
        "A small encoder trained on about an hour of speech, much of it synthetic. How well the units carry "
        "phones, resist noise or transfer to other speech has not been measured (see Evaluation); they have "
        "not been compared with units of large pretrained encoders such as HuBERT Base.", "",
    ]
    atomic_write_text(out / "tokenizer" / "README.md", "\n".join(lines))
    return {"path": str(out / "tokenizer" / "README.md")}
