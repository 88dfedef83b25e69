"""The bundled default tokenizer, rebuilt from scratch: DC-Spin on the project's own HuBERT-style encoder.

No pretrained SSL encoder can be had offline, so the default is trained here, stage by stage:

1. ``data``: the aligned synthetic corpus (espeak-ng + MBROLA), plus LibriSpeech-mini
   ``train-clean-100`` from the shared data folder when present (pinned in ``work/real_train.tsv``);
2. ``targets1``: k-means (k = 100) of MFCCs over the training manifests;
3. ``pretrain1``: HuBERT masked prediction on them (preset ``medium``; a learnable log-mel
   filterbank in place of the CNN, :mod:`speechunits.encoders.logmel_hubert`, and unmasked frames
   are predicted too, lr 2e-4: with HuBERT's own settings the front-end did not learn at this
   scale, docs/results.md);
4. ``targets2``: k-means (k = 500) of the iteration-1 layer with the best PNMI on the synthetic
   train alignments (the only aligned data), and of MFCCs on the same audio: the bar the encoder
   should clear (``beats_mfcc`` in recipe.json);
5. ``pretrain2``: iteration 2, initialised from iteration 1;
6. ``ctc``: optional CTC phone fine-tuning on the synthetic corpus (off by default: nothing
   measured here shows it helps yet; ``ctc=True`` turns it on);
7. ``dcspin``: DC-Spin, primary codebook 500 + auxiliary 2048 (:data:`.dcspin_scales.SCALES` says why not 4096);
8. ``tokenizer``: ``Tokenizer(encoder, spin quantizer)`` saved to ``<out>/tokenizer`` with the recipe
   in its config, checked to reload and reproduce the units, and size-checked (the encoder is
   stored as float16 only when float32 would exceed 25 MB; the unit agreement is then recorded);
9. ``card``: ``<out>/tokenizer/README.md``, the model card (metrics: "not yet measured").

Each stage is recorded in ``<out>/recipe.json`` (status, seconds, results) when it ends. A rerun
skips finished stages (and reruns everything after a stage that had to run again); SSL stages cut
short resume from their own checkpoints. A rerun with other settings into the same folder is refused.

Example (tiny scale: the same stages in well under a minute on one thread):
    >>> from speechunits.recipes.dcspin_default import build_dcspin_default
    >>> tok_dir = build_dcspin_default("out/dcspin-tiny", scale="tiny", progress=False)  # doctest: +SKIP
    >>> from speechunits.tokenizer import Tokenizer
    >>> Tokenizer.from_pretrained(tok_dir).encode("a.wav").ids  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from speechunits.data.atomic import atomic_write_text
from speechunits.recipes.dcspin_artifact import RECIPE, STAGES, assemble, write_card
from speechunits.recipes.dcspin_scales import SCALES, Scale

log = logging.getLogger("speechunits.recipes")

def find_shared_data() -> Path | None:
    """``$SPEECHUNITS_SHARED_DATA`` when set (as the tests), else ``<repo>/../shared/data`` or ``../shared/data``."""
    env = os.environ.get("SPEECHUNITS_SHARED_DATA")
    cands = [Path(env)] if env else [Path(__file__).resolve().parents[3].parent / "shared" / "data",
                                     Path.cwd().parent / "shared" / "data"]
    return next((c for c in cands if c.is_dir()), None)


def _real_folder(shared_data: str | os.PathLike | bool | None) -> Path | None:
    """The LibriSpeech-mini train folder to use, or None (absent, or ``shared_data=False``)."""
    if shared_data is False:
        return None
    explicit = shared_data not in (None, True)
    root = Path(shared_data) if explicit else find_shared_data()
    for cand in ([] if root is None else [root / "librispeech-mini" / "train-clean-100", root / "train-clean-100", root]):
        if cand.is_dir() and any(cand.glob("*.flac")):
            return cand
    if explicit:  # asked for by name: say why it cannot be used rather than train without it
        raise FileNotFoundError(f"{root}: no librispeech-mini/train-clean-100 FLAC files")
    return None


def _write_real_manifest(folder: Path, path: Path, limit: int | None) -> dict:
    """Pin the real training files (name, samples) in a fairseq .tsv; the shortest when capped."""
    import soundfile as sf

    files = sorted((sf.info(p).frames, p.name) for p in folder.glob("*.flac"))[:limit]
    files.sort(key=lambda x: x[1])
    atomic_write_text(path, str(folder.resolve()) + "\n" + "".join(f"{n}\t{f}\n" for f, n in files))
    return {"name": f"librispeech-mini/{folder.name}", "root": str(folder.resolve()), "manifest": str(path),
            "utterances": len(files), "seconds": round(sum(f for f, _ in files) / 16000, 3)}


class _Stages:
    """recipe.json: the settings, each stage's status, seconds and results, and every run's actions."""

    def __init__(self, out: Path, settings: dict, resume: bool) -> None:
        self.path = out / "recipe.json"
        old = json.loads(self.path.read_text()) if self.path.is_file() else None
        if old and resume and old.get("settings") != settings:
            diff = sorted(k for k in set(old["settings"]) | set(settings) if old["settings"].get(k) != settings.get(k))
            raise ValueError(f"{self.path}: made with other settings ({', '.join(diff)}); use another folder "
                             "or resume=False to start over")
        fresh = {"recipe": RECIPE, "format": 1, "settings": settings, "stages": {}, "runs": []}
        self.state = old if (old and resume) else fresh
        self.run = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "ran": [], "skipped": [], "disabled": []}
        self.state["runs"].append(self.run)

    def done(self, name: str, outputs: list[Path]) -> bool:
        rec = self.state["stages"].get(name)
        return bool(rec and rec["status"] == "done" and all(p.exists() for p in outputs))

    def record(self, name: str, status: str, seconds: float = 0.0, result: dict | None = None) -> None:
        self.state["stages"][name] = {"status": status, "seconds": round(seconds, 2), "result": result or {}}
        self.save()

    def save(self) -> None:
        self.state["total_seconds"] = round(sum(s["seconds"] for s in self.state["stages"].values()), 2)
        atomic_write_text(self.path, json.dumps(self.state, indent=2) + "\n")


def build_dcspin_default(
    out_dir: str | os.PathLike,
    *,
    scale: str = "full",
    seed: int = 0,
    threads: int | None = 1,
    shared_data: str | os.PathLike | bool | None = None,
    resume: bool = True,
    stop_after: str | None = None,
    ctc: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> Path:
    """Build the DC-Spin default tokenizer in ``out_dir``; see the module docstring.

    Args:
        scale: ``"full"`` (the bundled default, about 1 h of audio) or ``"tiny"`` (tests).
        threads: torch CPU threads while it runs (1 is fastest on a busy 2-core machine).
        shared_data: the shared data folder (``None``: :func:`find_shared_data`; ``False``: no real
            speech). Its ``librispeech-mini/train-clean-100`` joins the training data.
        resume: skip finished stages and continue cut SSL runs; False starts every stage over.
        stop_after: return after this stage (one of :data:`STAGES`), e.g. to split the run.
        ctc: run the CTC phone fine-tuning stage before DC-Spin.
        device: torch device of every training and clustering stage (``"cuda"`` when there is one;
            a run may resume on another device, so it is recorded per run, not as a setting).

    Returns:
        ``<out_dir>/tokenizer``, or ``out_dir`` when ``stop_after`` ended the run early.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"stop_after must be one of {', '.join(STAGES)}, got {stop_after!r}")
    from transformers.utils import logging as hf_logging

    from speechunits.encoders.hf import check_device

    check_device(device)
    cfg, out = SCALES[scale], Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real = _real_folder(shared_data)
    settings = {"scale": scale, "seed": int(seed), "ctc": bool(ctc), **json.loads(json.dumps(asdict(cfg))),
                "real_speech": None if real is None else f"librispeech-mini/{real.name}"}
    st = _Stages(out, settings, resume)
    st.run["threads"] = threads  # not settings: a rerun may use other threads, or a GPU
    st.run["device"] = str(device)
    old_threads, bars = torch.get_num_threads(), hf_logging.is_progress_bar_enabled()
    if threads:
        torch.set_num_threads(int(threads))
    if not progress:
        hf_logging.disable_progress_bar()  # transformers' own weight-loading bars
    try:
        upstream_ran = False
        for name, outputs, fn in _plan(out, cfg, seed, real, ctc, progress, st, device):
            if fn is None:
                st.run["disabled"].append(name)
                st.record(name, "disabled")
            elif resume and not upstream_ran and st.done(name, outputs):
                st.run["skipped"].append(name)
                st.save()
                log.info("stage %s: done before, skipped", name)
            else:
                log.info("stage %s: running", name)
                t0 = time.perf_counter()
                # After a stage ran again, what follows starts over (an SSL checkpoint made from the
                # old inputs must not be resumed); a stage cut short resumes its own checkpoint.
                result = fn(resume and not upstream_ran)
                upstream_ran = True
                st.run["ran"].append(name)
                st.record(name, "done", time.perf_counter() - t0, result)
                log.info("stage %s: %.1f s", name, time.perf_counter() - t0)
            if name == stop_after:
                return out
    finally:
        torch.set_num_threads(old_threads)
        if bars:
            hf_logging.enable_progress_bar()
    return out / "tokenizer"


def _speed(run_dir: Path) -> dict:
    """Steps, median seconds a step, final loss (mean of the last 20) and the last metrics of a run."""
    s = json.loads((run_dir / "loss.json").read_text())
    h, tail = s["history"], s["history"][-20:]
    out = {"steps": s["summary"]["steps"], "median_step_s": round(s["summary"]["median_step_s"], 4),
           "final_loss": round(sum(x["loss"] for x in tail) / len(tail), 4),
           "train_seconds": round(sum(x["seconds"] for x in h), 1)}  # all sessions, when resumed
    for key in ("acc_masked", "code_perplexity_0", "code_perplexity_1"):
        if all(key in x for x in tail):
            out[key] = round(sum(x[key] for x in tail) / len(tail), 3)
    return out


def _plan(out: Path, cfg: Scale, seed: int, real: Path | None, ctc: bool, progress: bool,
          st: _Stages, device: str) -> list[tuple[str, list[Path], Callable[[bool], dict] | None]]:
    """``(stage, outputs that must exist to skip it, fn(resume) -> result)`` in order."""
    from speechunits.encoders.pretrain import ctc_finetune, fit_targets, pretrain_hubert
    from speechunits.quantizers.dcspin import train_spin

    work, corpus, tok_dir = out / "work", out / "corpus", out / "tokenizer"
    real_tsv = work / "real_train.tsv"
    train = [corpus / "train.jsonl"] + ([real_tsv] if real is not None else [])
    common = dict(batch_size=cfg.batch_size, crop_seconds=cfg.crop_seconds, seed=seed, progress=progress,
                  checkpoint_every=cfg.checkpoint_every, device=device)

    def data(resume: bool) -> dict:  # synthesis always resumes: every file is deterministic
        from speechunits.data.corpus import synthesize_corpus

        minutes = cfg.synth_minutes if real is not None else cfg.synth_minutes_alone
        s = synthesize_corpus(corpus, minutes=minutes, seed=seed, progress=progress)
        if s.failed:  # left out of the manifests; recorded so it shows
            log.warning("%d synthetic utterances failed: %s", len(s.failed), s.failed[:5])
        work.mkdir(parents=True, exist_ok=True)
        return {"synthetic": {"name": "speechunits synthetic corpus", "minutes": minutes, "seed": seed,
                              "utterances": s.utterances, "failed": len(s.failed), "versions": s.versions,
                              "splits": {k: {"utterances": v["utterances"], "seconds": v["seconds"],
                                             "speakers": len(v["speakers"])} for k, v in s.splits.items()}},
                "real": None if real is None else _write_real_manifest(real, real_tsv, cfg.real_max_utterances)}

    def targets(n: int, encoder, k: int) -> Callable[[bool], dict]:
        def go(resume: bool) -> dict:
            r = fit_targets(train, work / f"targets{n}.jsonl", encoder=encoder, k=k, seed=seed,
                            select_seconds=cfg.select_seconds, progress=progress, device=device,
                            baseline="mfcc" if encoder != "mfcc" else None)
            out = {"path": str(r.path), "k": r.k, "layer": r.layer, "frames": r.frames,
                   "layer_pnmi": {str(a): round(b, 4) for a, b in r.layer_scores.items()}}
            if r.baseline_pnmi is not None and r.layer_scores:
                # The gate the encoder has to pass: its best layer against MFCC k-means (same k,
                # same aligned audio). Recorded and warned about, not enforced: the recipe still
                # finishes so that the evaluation shows how far short it falls.
                base = r.baseline_pnmi
                out.update(mfcc_pnmi=round(base, 4), beats_mfcc=max(r.layer_scores.values()) > base)
                if not out["beats_mfcc"]:
                    log.warning("iteration-1 encoder: best layer PNMI %.3f is below MFCC k-means' %.3f (k=%d)",
                                max(r.layer_scores.values()), base, k)
            return out
        return go

    def pretrain(n: int, steps: int, init_from: Path | None) -> Callable[[bool], dict]:
        def go(resume: bool) -> dict:
            r = pretrain_hubert(train, work / f"targets{n}.jsonl", work / f"pretrain{n}", preset=cfg.preset,
                                steps=steps, lr=cfg.pretrain_lr, init_from=init_from, frontend=cfg.frontend,
                                model_overrides={"n_mels": cfg.n_mels} if cfg.frontend == "logmel" else None,
                                unmasked_weight=cfg.unmasked_weight, resume=resume, **common)
            return {"encoder": str(r.encoder_dir), "parameters": r.config["parameters"], **_speed(r.out_dir)}
        return go

    def ctc_stage(resume: bool) -> dict:  # needs alignments: synthetic speech only
        r = ctc_finetune(work / "pretrain2" / "encoder", corpus / "train.jsonl", work / "ctc", tier="phones",
                         steps=cfg.ctc_steps, resume=resume, **common)
        return {"encoder": str(r.encoder_dir), "labels": len(r.vocab), **_speed(r.out_dir)}

    def dcspin(resume: bool) -> dict:
        r = train_spin(work / ("ctc" if ctc else "pretrain2") / "encoder", train, work / "dcspin",
                       codebooks=cfg.codebooks, steps=cfg.spin_steps, trainable_layers=cfg.trainable_layers,
                       lr=cfg.spin_lr, resume=resume, **{**common, "batch_size": cfg.spin_batch_size})
        return {"encoder": str(r.encoder_dir), "codebooks": list(cfg.codebooks), **_speed(r.out_dir)}

    return [
        ("data", train, data),
        ("targets1", [work / "targets1.jsonl"], targets(1, "mfcc", cfg.k1)),
        ("pretrain1", [work / "pretrain1" / "encoder"], pretrain(1, cfg.steps1, None)),
        ("targets2", [work / "targets2.jsonl"], targets(2, work / "pretrain1" / "encoder", cfg.k2)),
        ("pretrain2", [work / "pretrain2" / "encoder"], pretrain(2, cfg.steps2, work / "pretrain1" / "encoder")),
        ("ctc", [work / "ctc" / "encoder"], ctc_stage if ctc else None),
        ("dcspin", [work / "dcspin" / "quantizer"], dcspin),
        ("tokenizer", [tok_dir / "config.json"], lambda resume: assemble(out, cfg, st.state)),
        ("card", [tok_dir / "README.md"], lambda resume: write_card(out, st.state)),
    ]
