"""The interim bundled default tokenizer: k-means (k = 500) on MFCC, fitted on the synthetic corpus.

No pretrained SSL encoder can be had offline, so until the project's own encoder and DC-Spin
tokenizer are trained (``recipes.dcspin_default``), the default is the spectral baseline: a
30-minute synthetic corpus (seed 0), its train split (13 speakers), MFCC + deltas at 50 Hz,
k-means k = 500 with 3 k-means++ restarts. It needs no weights beyond its 500 x 39 centroids.

Example:
    >>> from speechunits.recipes.interim_default import RECIPE
    >>> RECIPE["k"], RECIPE["encoder"]
    (500, 'mfcc')
"""

from __future__ import annotations

import json
from pathlib import Path

RECIPE = {"encoder": "mfcc", "k": 500, "corpus_minutes": 30.0, "seed": 0, "n_init": 3, "max_iter": 60}

CARD = """# speechunits default tokenizer (interim): k-means on MFCC

Bundled so that every command has a tokenizer when none is named. It is the spectral baseline,
not the final default: the project's own SSL encoder + DC-Spin tokenizer replaces it once trained.

- Encoder: MFCC, 13 cepstra + deltas + delta-deltas (39 dims), Kaldi-compatible, 25 ms window,
  20 ms hop (50 Hz); no weights.
- Quantizer: k-means, k = {k}, {n_init} k-means++ restarts + Lloyd (at most {max_iter} iterations), seed {seed}.
- Training data: the synthetic aligned corpus (`speechunits corpus synth --minutes {corpus_minutes:g}
  --seed {seed}`), train split: {utterances} utterances, {seconds:.0f} s, 13 MBROLA speakers.
- Fit statistics: inertia per frame {inertia:.2f}, codebook utilization {utilization:.3f} on the
  training sample ({frames} frames).
- Reproduce: `speechunits recipe default-tokenizer --kind mfcc --out DIR` (a few minutes on 2 cores).

Quality metrics of a tokenizer this recipe builds: `speechunits eval --tokenizer DIR --data ...`.
"""


def build_mfcc_default(out_dir: str | Path, *, seed: int = RECIPE["seed"], progress: bool = True) -> Path:
    """Synthesize the corpus, fit the MFCC k-means tokenizer, write it with its model card."""
    from speechunits.data.corpus import synthesize_corpus
    from speechunits.data.manifest import read_manifest
    from speechunits.encoders import load_encoder
    from speechunits.fit import fit_tokenizers

    out = Path(out_dir)
    corpus = out / "corpus"
    synthesize_corpus(corpus, minutes=RECIPE["corpus_minutes"], seed=seed, progress=progress)
    train = read_manifest(corpus / "train.jsonl")
    tok = fit_tokenizers(
        load_encoder(RECIPE["encoder"]), train, layers=[0], ks=[RECIPE["k"]], seed=seed,
        n_init=RECIPE["n_init"], max_iter=RECIPE["max_iter"], progress=progress,
        data_name=f"speechunits synthetic corpus, {RECIPE['corpus_minutes']:g} min, seed {seed}, train split",
    )[0]
    tok.info["recipe"] = {"name": "interim-mfcc-default", **RECIPE, "seed": seed}
    target = out / "tokenizer"
    tok.save_pretrained(target)
    stats = tok.quantizer.quantizers[0].fit_stats
    td = tok.info["training_data"]
    (target / "README.md").write_text(CARD.format(
        **{**RECIPE, "seed": seed}, utterances=td["utterances"], seconds=td["seconds"],
        inertia=stats["inertia_per_frame"], utilization=stats["utilization"], frames=stats["frames_sampled"],
    ))
    (out / "recipe.json").write_text(json.dumps(tok.info["recipe"], indent=2) + "\n")
    return target
