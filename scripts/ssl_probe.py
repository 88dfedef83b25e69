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


def mel_quadrature_filterbank(n_bands: int = 64, lo: float = 60.0, hi: float = 7600.0) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)`` filters ``[n_bands, 400]``: Hann-windowed band-limited envelopes (one mel band
    wide) on the band centre's carrier, unit energy per pair; ``|cos * x| + |sin * x|`` is the band's
    envelope magnitude."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = imel(np.linspace(mel(lo), mel(hi), n_bands + 2))
    t = np.arange(WIN) - (WIN - 1) / 2
    cos, sin = [], []
    for b in range(n_bands):
        fc, half = (edges[b] + edges[b + 2]) / 2, (edges[b + 2] - edges[b]) / 2
        env = np.sinc(2 * half / SR * t) * np.hanning(WIN)
        c, s = env * np.cos(2 * np.pi * fc / SR * t), env * np.sin(2 * np.pi * fc / SR * t)
        norm = np.sqrt((c**2).sum() + (s**2).sum())
        cos.append(c / norm)
        sin.append(s / norm)
    return np.array(cos), np.array(sin)


def fbank_features(wave: np.ndarray, log: bool) -> np.ndarray:
    c, s = mel_quadrature_filterbank()
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
    from transformers import HubertModel

    from speechunits.data.alignment import Alignment
    from speechunits.encoders import load_encoder
    from speechunits.encoders.pretrain.data import load_audio_set
    from speechunits.encoders.pretrain.targets import _assign, _kmeans
    from speechunits.metrics.alignment_metrics import frame_label_pairs, pnmi

    audio = load_audio_set([args.manifest], progress=False)
    idx, total = [], 0.0
    for i, u in enumerate(audio.utterances):
        if u.alignment is not None and total < args.seconds:
            idx.append(i)
            total += len(audio.waves[i]) / SR
    if not idx:
        raise SystemExit(f"{args.manifest}: no utterance has an alignment")
    alignments = [Alignment.load(audio.utterances[i].alignment) for i in idx]
    for spec in args.encoders:
        if spec == "mfcc":
            enc = load_encoder("mfcc")
            feats = [{"mfcc": enc.encode([audio.waves[i]], [0])[0][:, 0].numpy()} for i in idx]
        elif spec in ("fbank", "fbank-log"):
            feats = [{spec: fbank_features(audio.crop(i), log=spec == "fbank-log")} for i in idx]
        else:
            model = HubertModel.from_pretrained(spec, local_files_only=True).eval()
            # the encoder's own input normalisation (do_normalize), as HFEncoder applies it
            feats = [model_features(model, audio.crop(i)) for i in idx]
        scores = {}
        for name in feats[0]:
            x = np.concatenate([f[name] for f in feats]).astype(np.float32)
            km = _kmeans(x, args.k, args.seed)
            units = [_assign(km, f[name].astype(np.float32)) for f in feats]
            scores[name] = round(float(pnmi(frame_label_pairs(units, alignments, "phones", SR / HOP)).nmi), 4)
        print(json.dumps({"encoder": spec, "k": args.k, "seconds": round(total, 1), "pnmi": scores}), flush=True)


if __name__ == "__main__":
    main()
