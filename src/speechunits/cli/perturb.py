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
import hashlib
import io
import json
import os
import sys
import urllib.parse
from functools import lru_cache
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "perturb",
        help="write seeded distorted copies of a dataset (same ids) and their manifests",
        description="For each --distortion NAME writes OUT/NAME/<id>.wav (16 kHz mono float32 -> "
        "PCM 16; an id spk1/x gives OUT/NAME/spk1/x.wav) and the manifest OUT/NAME.jsonl (paths "
        "relative to it), keeping ids, speakers and texts (alignments too, "
        "except under time stretch). Outputs whose peak would exceed full scale are scaled down, not "
        "clipped. Names as in `speechunits eval --distortions`: white_XdB, "
        "pink_XdB, babble_XdB, reverb_Xs, pitch_[+-]Xst, stretch_X, speaker. Inputs that fail "
        "(unreadable, or any error of their own) are listed with the reason in OUT/NAME.errors.jsonl "
        "and skipped; existing outputs are kept (resume).",
        epilog="exit status: 0 every input done; 1 some inputs failed (see OUT/NAME.errors.jsonl); "
        "2 usage or user error.",
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
    from speechunits.data.loader import describe_failure
    from speechunits.data.manifest import Utterance, read_manifest, write_jsonl
    from speechunits.evaluation.dataset import SAMPLE_RATE, stable_seed
    from speechunits.evaluation.robustness import BABBLE_TALKERS, parse_distortion

    distortions = [parse_distortion(n) for n in args.distortion]  # bad names fail before any work
    utts = read_manifest(args.data)
    # Absolute, so that the manifests' paths, written relative to the manifests, resolve.
    out = Path(os.path.abspath(args.out))
    if out.exists() and not out.is_dir():
        raise ValueError(f"{args.out}: --out is a file; perturb writes a folder")
    out.mkdir(parents=True, exist_ok=True)

    @lru_cache(maxsize=8)  # the utterance and its babble talkers; never the whole dataset in RAM
    def wave(i: int) -> np.ndarray:
        if utts[i].error is not None:  # a folder the scan could not list: its own reason, not "a directory"
            raise AudioError(utts[i].path, utts[i].error)
        return load(utts[i].path)

    failed = 0
    for d in distortions:
        folder = out / d.name
        folder.mkdir(exist_ok=True)
        done, errors = [], []
        for i, u in enumerate(utts):
            rel = id_path(u.id)
            target = folder / rel.with_name(rel.name + ".wav")
            seed = stable_seed(args.seed, d.name, u.id)
            try:
                if not target.exists():
                    sources = []
                    if d.kind == "noise" and d.params["kind"] == "babble":
                        others = [j for j in range(len(utts)) if j != i and utts[j].error is None]
                        pick = np.random.default_rng(seed).permutation(others)[:BABBLE_TALKERS]
                        sources = [wave(int(j)) for j in pick]
                    y = d.apply(wave(i), seed, sources)
                    peak = float(np.abs(y).max()) if y.size else 0.0
                    if peak > 0.999:  # noise can push peaks past full scale: scale, never clip
                        y = y * (0.999 / peak)
                    buf = io.BytesIO()
                    sf.write(buf, y, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                    atomic.atomic_write_bytes(target, buf.getvalue())
            except Exception as err:  # whatever one input does costs that input only
                # An AudioError may be a babble talker's, so its message (which names the file) is kept whole.
                reason = str(err) if isinstance(err, ValueError) else describe_failure(err, "perturbing")
                errors.append({"id": u.id, "path": str(u.path), "reason": reason})
                print(f"skipped {u.path}: {reason}", file=sys.stderr)
                continue
            alignment = None
            if u.alignment is not None and d.kind != "time_stretch":  # stretch moves every boundary
                alignment = folder / rel.with_name(f"{rel.name}.alignment{u.alignment.suffix}")
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
    return 1 if failed else 0


def id_path(uid: str) -> Path:
    """Where utterance ``uid`` goes under a distortion folder (without suffix): the id's own
    relative path (``spk1/x`` -> ``spk1/x``), so ids sharing a base name stay apart. An id that is
    not a plain relative path (``..``, ``.``, empty parts, backslashes, over-long parts) gets one
    flat name from its quoted form plus a hash of it, which cannot leave the folder.

    >>> id_path("spk1/x").as_posix(), id_path("../x").as_posix()[:7]
    ('spk1/x', '..%2Fx-')
    """
    parts = uid.split("/")
    if uid and "\\" not in uid and "\0" not in uid and all(
            p not in ("", ".", "..") and len(p.encode("utf-8")) <= 200 for p in parts):
        return Path(*parts)
    digest = hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Path(f"{urllib.parse.quote(uid, safe='')[:150]}-{digest}")
