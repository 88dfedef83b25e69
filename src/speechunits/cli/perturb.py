"""``speechunits perturb``: write distorted copies of a dataset (noise, reverb, pitch, stretch,
speaker), with the same ids, so their units can be compared with the clean ones (``lm eval
--perturbed``, UED) outside the evaluation report.

The distortions, their names and their seeds are those of ``speechunits eval``'s robustness
section (:mod:`speechunits.evaluation.robustness`): utterance ``u`` under distortion ``d`` gets
``stable_seed(seed, d, u.id)``, so a file does not depend on which others are processed. Babble
mixes ``BABBLE_TALKERS`` other utterances of the same dataset, chosen with that seed.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from functools import lru_cache
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "perturb",
        help="write seeded distorted copies of a dataset (same ids) and their manifests",
        description="For each --distortion NAME writes OUT/NAME/<id>.wav (16 kHz mono float32 -> "
        "PCM 16) and the manifest OUT/NAME.jsonl, keeping ids, speakers and texts (alignments too, "
        "except under time stretch). Outputs whose peak would exceed full scale are scaled down, not "
        "clipped. Names as in `speechunits eval --distortions`: white_XdB, "
        "pink_XdB, babble_XdB, reverb_Xs, pitch_[+-]Xst, stretch_X, speaker. Unreadable inputs "
        "are listed in OUT/NAME.errors.jsonl and skipped; existing outputs are kept (resume).",
    )
    p.add_argument("--data", required=True, help="manifest (.jsonl/.tsv) or folder")
    p.add_argument("--distortion", required=True, nargs="+", help="distortion names")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from speechunits.audio import AudioError, load
    from speechunits.data import atomic
    from speechunits.data.manifest import Utterance, read_manifest, write_jsonl
    from speechunits.evaluation.dataset import SAMPLE_RATE, stable_seed
    from speechunits.evaluation.robustness import BABBLE_TALKERS, parse_distortion

    distortions = [parse_distortion(n) for n in args.distortion]  # bad names fail before any work
    utts = read_manifest(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    @lru_cache(maxsize=8)  # the utterance and its babble talkers; never the whole dataset in RAM
    def wave(i: int) -> np.ndarray:
        return load(utts[i].path)

    failed = 0
    for d in distortions:
        folder = out / d.name
        folder.mkdir(exist_ok=True)
        done, errors = [], []
        for i, u in enumerate(utts):
            target = folder / f"{Path(u.id).name}.wav"
            seed = stable_seed(args.seed, d.name, u.id)
            try:
                if not target.exists():
                    sources = []
                    if d.kind == "noise" and d.params["kind"] == "babble":
                        others = [j for j in range(len(utts)) if j != i]
                        pick = np.random.default_rng(seed).permutation(others)[:BABBLE_TALKERS]
                        sources = [wave(int(j)) for j in pick]
                    y = d.apply(wave(i), seed, sources)
                    peak = float(np.abs(y).max()) if y.size else 0.0
                    if peak > 0.999:  # noise can push peaks past full scale: scale, never clip
                        y = y * (0.999 / peak)
                    buf = io.BytesIO()
                    sf.write(buf, y, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                    atomic.atomic_write_bytes(target, buf.getvalue())
            except (AudioError, ValueError) as err:
                errors.append({"id": u.id, "path": str(u.path), "error": str(err)})
                print(f"skipped {u.path}: {err}", file=sys.stderr)
                continue
            alignment = None
            if u.alignment is not None and d.kind != "time_stretch":  # stretch moves every boundary
                alignment = folder / f"{Path(u.id).name}.alignment{u.alignment.suffix}"
                if not alignment.exists():
                    atomic.atomic_write_bytes(alignment, u.alignment.read_bytes())
            done.append(Utterance(u.id, target, None, u.speaker, u.text, alignment, dict(u.extra)))
        write_jsonl(done, out / f"{d.name}.jsonl")
        with atomic.atomic_open(out / f"{d.name}.errors.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in errors)
        atomic.atomic_write_text(out / f"{d.name}.json", json.dumps(
            {"distortion": d.describe(), "seed": args.seed, "source": str(args.data),
             "utterances": len(done), "failed": len(errors)}, indent=2) + "\n")
        failed += len(errors)
        print(f"{d.name}: {len(done)} utterances -> {out / (d.name + '.jsonl')}"
              + (f", {len(errors)} failed (see {d.name}.errors.jsonl)" if errors else ""))
    return 1 if failed and failed == len(utts) * len(distortions) else 0
