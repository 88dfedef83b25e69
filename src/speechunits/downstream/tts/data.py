"""Encode phone-aligned speech once for text-to-units training: units, phones, durations, voice.

Each utterance becomes, in safetensors shards (``data.shards``, resumable, failures recorded in
``errors.jsonl``): ``units [T, L]`` (int32, every layer of the tokenizer), ``phones [N]`` (ids
of :data:`~.text.PHONES`, consecutive pauses merged), ``durations [N]`` (unit frames per phone,
summing to ``T``; see :func:`~.text.frame_durations`) and, for speaker-conditioned models,
``speaker [256]`` (the d-vector). An utterance without an alignment, or whose alignment holds
a phone outside the set, is recorded with the reason and left out.

:class:`TTSData` holds a prepared folder in memory (units are small: 90 minutes of three layers
at 50 Hz are 3 MB) and makes padded batches.

Example (MFCC features, a 4-unit k-means, one aligned tone):
    >>> import numpy as np, soundfile as sf, tempfile, pathlib, json
    >>> from speechunits.data.alignment import Alignment, Segment
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.fit import fit_tokenizer
    >>> from speechunits.data.manifest import read_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> w = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    >>> sf.write(d / "a.wav", w, 16000)
    >>> Alignment([Segment(0, 0.3, "sil"), Segment(0.3, 1.0, "AA")], duration=1.0).save(d / "a.json")
    >>> _ = (d / "m.jsonl").write_text(json.dumps({"id": "a", "path": "a.wav", "alignment": "a.json"}) + "\\n")
    >>> tok = fit_tokenizer(load_encoder("mfcc"), [w], layers=[0], k=4, seed=0)
    >>> data = TTSData(prepare_tts_data(d / "prep", read_manifest(d / "m.jsonl"), tok, None, progress=False))
    >>> data.phones[0].tolist(), int(data.durations[0].sum()) == len(data.units[0])
    ([40, 1], True)
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch

from speechunits.data.alignment import Alignment, Segment
from speechunits.data.manifest import Utterance
from speechunits.data.shards import ShardStore, write_shards

from ..prepare import tokenizer_fingerprint
from .text import PHONES, frame_durations, phone_ids

FORMAT_VERSION = 1


def merged_phones(al: Alignment) -> list[Segment]:
    """The phone tier with consecutive pauses merged into one ``sil`` segment."""
    out: list[Segment] = []
    for s in al.phones:
        lab = "sil" if s.label.lower() in ("sil", "sp", "spn", "pau", "_", "") else s.label
        if lab == "sil" and out and out[-1].label == "sil":
            out[-1] = Segment(out[-1].start, s.end, "sil")
        else:
            out.append(Segment(s.start, s.end, lab))
    return out


def unit_framing(tokenizer) -> tuple[float, float]:
    """(frame rate, centre of frame 0 in seconds): the framing the unit vocoder uses."""
    from speechunits.vocoder.artifact import unit_framing as framing

    return framing(tokenizer)


def prepare_tts_data(folder: str | os.PathLike, utts: Sequence[Utterance], tokenizer,
                     speaker_embed: Callable[[np.ndarray], np.ndarray] | None, *, progress: bool = True) -> ShardStore:
    """Write (or complete) ``folder`` for ``utts`` (each needs an ``alignment``); returns the store."""
    layers = list(tokenizer.layers)
    rate, offset = unit_framing(tokenizer)

    def extract(item) -> tuple[dict, dict]:
        if item.utt.alignment is None:
            raise ValueError("no alignment (text-to-units trains on phone-aligned speech, e.g. `speechunits corpus synth`)")
        segs = merged_phones(Alignment.load(item.utt.alignment))  # before the encoder: a bad one costs nothing
        ids = phone_ids([s.label for s in segs])
        units = tokenizer.frame_units([item.wave])[0]
        units = units.reshape(len(units), -1)
        if len(units) < 2:
            raise ValueError("shorter than two frames")
        durs = frame_durations(segs, len(units), rate, offset)
        out = {"units": units.astype(np.int32), "phones": ids.astype(np.int32), "durations": durs.astype(np.int32)}
        if speaker_embed is not None:
            out["speaker"] = np.asarray(speaker_embed(item.wave), dtype=np.float32)
        return out, {"frames": int(len(units)), "n_phones": int(len(ids)), "text": item.utt.text,
                     "speaker": item.utt.speaker}

    plan = {"format_version": FORMAT_VERSION, "kind": "tts", "tokenizer": tokenizer_fingerprint(tokenizer),
            "layers": layers, "phones": list(PHONES), "frame_rate": rate, "unit_offset_s": offset,
            "speaker": speaker_embed is not None}
    return write_shards(folder, utts, extract, plan, progress=progress, desc="tts data")


class TTSData:
    """A prepared folder in memory: per utterance units ``[T, L]``, phones, durations, d-vector."""

    def __init__(self, store: ShardStore) -> None:
        self.store, self.items = store, store.items
        self.units, self.phones, self.durations, self.speakers = [], [], [], []
        for i in range(len(store)):
            a = store.get(i)
            self.units.append(a["units"].astype(np.int64))
            self.phones.append(a["phones"].astype(np.int64))
            self.durations.append(a["durations"].astype(np.int64))
            self.speakers.append(a["speaker"].astype(np.float32) if "speaker" in a else None)

    def __len__(self) -> int:
        return len(self.units)

    @property
    def has_speaker(self) -> bool:
        return self.speakers[0] is not None

    def span(self, i: int, max_frames: int, r: np.random.Generator | None) -> tuple[int, int]:
        """Phones ``[a, b)`` of utterance ``i``: all of them, or (``max_frames`` > 0 and the
        utterance longer) a random run of whole phones of at most ``max_frames`` frames."""
        d = self.durations[i]
        if max_frames <= 0 or int(d.sum()) <= max_frames or r is None:
            return 0, len(d)
        ends = np.cumsum(d)
        a = int(r.integers(0, len(d)))
        start = ends[a] - d[a]
        b = int(np.searchsorted(ends, start + max_frames, side="right"))
        return a, max(b, a + 1)

    def batch(self, which: Sequence[int], device: torch.device, max_frames: int = 0,
              r: np.random.Generator | None = None) -> dict:
        """Padded tensors for utterances ``which`` (cropped to whole-phone spans, see :meth:`span`)."""
        parts = []
        for i in which:
            a, b = self.span(int(i), max_frames, r)
            d = self.durations[i]
            f0 = int(d[:a].sum())
            parts.append((self.phones[i][a:b], d[a:b], self.units[i][f0 : f0 + int(d[a:b].sum())], self.speakers[i]))
        B, N = len(parts), max(len(p[0]) for p in parts)
        T, L = max(len(p[2]) for p in parts), parts[0][2].shape[1]
        P, D = torch.zeros(B, N, dtype=torch.long), torch.zeros(B, N, dtype=torch.long)
        U = torch.zeros(B, max(T, 1), L, dtype=torch.long)
        for j, (p, d, u, _) in enumerate(parts):
            P[j, : len(p)], D[j, : len(d)], U[j, : len(u)] = torch.from_numpy(p), torch.from_numpy(d), torch.from_numpy(u)
        spk = torch.from_numpy(np.stack([p[3] for p in parts])) if parts[0][3] is not None else None
        return {"phones": P.to(device), "durations": D.to(device), "units": U.to(device),
                "n_phones": torch.tensor([len(p[0]) for p in parts], device=device),
                "speaker": None if spk is None else spk.to(device)}
