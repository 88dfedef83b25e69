"""Probe how much phone information an encoder's front-end and layers carry: PNMI of k-means units.

    python scripts/ssl_probe.py CORPUS/train.jsonl ENCODER_DIR [ENCODER_DIR ...] [mfcc] [fbank] [fbank-log]

For each encoder (a HuBERT-style folder as written by ``speechunits ssl pretrain``) it clusters
(k-means, ``--k`` 500) the CNN output, the projected CNN output and every transformer layer over the
first ``--seconds`` (600) of aligned audio in the manifest -- the same audio the DC-Spin recipe
scores layers on -- and prints the PNMI of each against the phone alignments as one JSON line.
``mfcc`` is the 39-dim MFCC encoder (the iteration-1 targets' features); ``fbank`` and
``fbank-log`` are the magnitudes of a 64-band mel-spaced quadrature filterbank on the same 25 ms /
20 ms frames, without and with a log: the question they answer is how far a front-end without a
compressive non-linearity can get. Used for the diagnosis in docs/results.md ("Why the encoder
did not learn").
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

SR, WIN, HOP = 16000, 400, 320


def fbank_features(wave: np.ndarray, log: bool) -> np.ndarray:
    """Band magnitudes ``|cos * x| + |sin * x|`` of the ``fbank`` front-end's 64-band filterbank."""
    from speechunits.encoders.pretrain.frontend import mel_quadrature_filterbank

    c, s = mel_quadrature_filterbank(64)
    n = (len(wave) - WIN) // HOP + 1
    frames = np.lib.stride_tricks.sliding_window_view(wave, WIN)[::HOP][:n]
    mag = np.abs(frames @ c.T) + np.abs(frames @ s.T)
    return np.log(mag + 1e-3) if log else mag


def model_features(model, wave: np.ndarray) -> dict[str, np.ndarray]:
    from speechunits.encoders.layers import run_to_layers

    x = torch.from_numpy(wave)[None]
    with torch.no_grad():
        cnn = model.feature_extractor(x).transpose(1, 2)
        proj = model.feature_projection(cnn)
        proj = proj[0] if isinstance(proj, tuple) else proj
        layers = run_to_layers(model, list(range(1, model.config.num_hidden_layers + 1)), input_values=x)
    out = {"cnn": cnn[0].numpy(), "proj": proj[0].numpy()}
    out.update({f"layer{i}": h[0].numpy() for i, h in sorted(layers.items())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", help="an aligned manifest (the synthetic corpus's train.jsonl)")
    ap.add_argument("encoders", nargs="+", help="encoder folders, or mfcc / fbank / fbank-log")
    ap.add_argument("--k", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoModel

    from speechunits.data.alignment import Alignment
    from speechunits.encoders import load_encoder
    from speechunits.encoders.pretrain.data import load_audio_set
    from speechunits.encoders.logmel_hubert import register_auto_classes
    from speechunits.encoders.pretrain.targets import _assign, _kmeans, aligned_subset
    from speechunits.metrics.alignment_metrics import frame_label_pairs, pnmi

    register_auto_classes()  # our log-mel encoders
    sub = aligned_subset(load_audio_set([args.manifest], progress=False), args.seconds)
    total, n = sub.seconds(), len(sub.waves)
    alignments = [Alignment.load(u.alignment) for u in sub.utterances]
    for spec in args.encoders:
        if spec == "mfcc":
            enc = load_encoder("mfcc")
            feats = [{"mfcc": enc.encode([w], [0])[0][:, 0].numpy()} for w in sub.waves]
        elif spec in ("fbank", "fbank-log"):
            feats = [{spec: fbank_features(sub.crop(i), log=spec == "fbank-log")} for i in range(n)]
        else:
            model = AutoModel.from_pretrained(spec, local_files_only=True).eval()
            # normalised input (do_normalize), as in training and as HFEncoder applies it
            feats = [model_features(model, sub.crop(i)) for i in range(n)]
        scores = {}
        for name in feats[0]:
            x = np.concatenate([f[name] for f in feats]).astype(np.float32)
            km = _kmeans(x, args.k, args.seed)
            units = [_assign(km, f[name].astype(np.float32)) for f in feats]
            scores[name] = round(float(pnmi(frame_label_pairs(units, alignments, "phones", SR / HOP)).nmi), 4)
        print(json.dumps({"encoder": spec, "k": args.k, "seconds": round(total, 1), "pnmi": scores}), flush=True)


if __name__ == "__main__":
    main()
