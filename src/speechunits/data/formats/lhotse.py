"""Lhotse manifests: cuts (or recordings) in, and units written back as a cuts manifest.

Reading (``lhotse`` parses the file, ``.jsonl`` or ``.jsonl.gz``): each ``MonoCut`` (or
``MultiCut``) is one utterance, its id the cut's id, its speaker and text from its supervisions.
A recordings manifest is read as one cut per recording. The audio is the cut's span of its
recording's ``file`` source, the cut's channel(s) (several are averaged, as for any multi-channel
file); a cut that covers a whole recording is loaded exactly as the file itself would be. Relative
source paths are resolved against the manifest's folder (Lhotse itself uses the working
directory; pass ``root``), and every path must stay inside that root. Cuts this cannot load
(mixed or padding cuts, no recording, ``url``/``command`` sources, audio transforms such as speed
perturbation) are failed utterances with the reason.

Writing (:func:`write_cuts`): one ``MonoCut`` per utterance whose units are in ``custom``:
``units`` (ids, a list of lists for several layers), ``units_frame_rate`` and, when
de-duplicated, ``units_durations``; ``lhotse.CutSet.from_file`` reads it back and ``cut.units``
gives the ids. A cut read from a Lhotse manifest is written back whole (recording, supervisions,
custom fields) with the units added; an audio file of its own becomes a cut over its whole
recording; audio read through a Parquet or ``datasets`` row or a tar member gives a cut without a
recording whose duration is the units'.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable

from speechunits.audio.errors import AudioError
from speechunits.data.atomic import atomic_open
from speechunits.data.formats.common import require
from speechunits.data.manifest import ManifestError, Utterance, _duplicate_message, inside_root


class CutAudio:
    """A cut's audio: the whole file, or ``num`` samples from ``start`` of some channels (an
    ``AudioRef``). ``cut`` is the cut as Lhotse serialises it (compact JSON: a few hundred bytes
    where the dict would take kilobytes), for writing units back."""

    __slots__ = ("manifest", "path", "rate", "start", "num", "columns", "whole", "cut")

    def __init__(self, manifest: Path, path: Path, rate: int, start: int, num: int, columns: list[int],
                 whole: bool, cut: str) -> None:
        self.manifest, self.path, self.rate, self.start, self.num = manifest, path, rate, start, num
        self.columns, self.whole, self.cut = columns, whole, cut

    def __str__(self) -> str:
        return f"{self.manifest}: cut {json.loads(self.cut)['id']} ({self.path})"

    def read(self) -> Path | tuple[Any, int]:
        if self.whole:
            return self.path
        import soundfile as sf

        from speechunits.audio import info

        i = info(self.path)  # AudioError with the reason for a missing or unreadable file
        if i.sample_rate != self.rate:
            raise AudioError(self, f"the file is {i.sample_rate} Hz but the manifest says {self.rate} Hz")
        try:
            with sf.SoundFile(str(self.path)) as f:
                f.seek(self.start)
                block = f.read(self.num, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(self, f"corrupt or unreadable audio ({str(e).splitlines()[0] if str(e) else e!r})") from None
        if len(block) < self.num:
            raise AudioError(self, f"truncated: the cut needs samples {self.start}..{self.start + self.num} "
                                   f"but the file ends at {self.start + len(block)}")
        x = block[:, self.columns]
        return (x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype="float32")), self.rate


def read_lhotse(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Utterance]:
    """Utterances of a Lhotse cuts or recordings manifest (see the module docstring)."""
    path = Path(path)
    lhotse = require("lhotse", str(path))
    base = Path(root) if root is not None else path.parent
    out: list[Utterance] = []
    seen: dict[str, str] = {}
    try:
        manifest = lhotse.load_manifest_lazy(path)
        if isinstance(manifest, lhotse.RecordingSet):
            manifest = (r.to_cut() for r in manifest)  # one cut per recording, with its id
        elif manifest is not None and not isinstance(manifest, lhotse.CutSet):
            raise ManifestError(path, f"a Lhotse {type(manifest).__name__}; give cuts or recordings")
        for cut in manifest or ():
            if cut.id in seen:
                raise ManifestError(path, _duplicate_message(cut.id, seen[cut.id], "a later cut"))
            seen[cut.id] = "a cut"
            out.append(_utterance(cut, path, base))
    except ManifestError:
        raise
    except Exception as e:  # what lhotse raises for a malformed line varies (KeyError, ValueError...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ManifestError(path, f"not a Lhotse manifest lhotse can read ({type(e).__name__}"
                                  + (f": {first}" if first else "") + ")") from None
    if not out:
        raise ManifestError(path, "no cuts")
    return out


def _utterance(cut, manifest: Path, base: Path) -> Utterance:
    from lhotse.utils import compute_num_samples

    kind = type(cut).__name__
    sups = list(getattr(cut, "supervisions", None) or [])
    speakers = {s.speaker for s in sups if s.speaker is not None}
    texts = [s.text for s in sorted(sups, key=lambda s: s.start) if s.text]
    u = Utterance(cut.id, manifest, speaker=speakers.pop() if len(speakers) == 1 else None,
                  text=" ".join(texts) if texts else None)
    rec = getattr(cut, "recording", None) if kind in ("MonoCut", "MultiCut") else None
    if kind not in ("MonoCut", "MultiCut"):
        u.error = f"a Lhotse {kind}: only MonoCut and MultiCut are read"
    elif rec is None:
        u.error = "the cut has no recording"
    elif getattr(rec, "transforms", None):
        u.error = "its recording has audio transforms (speed or volume perturbation...), which are not applied here"
    if u.error is not None:
        return u
    channels = sorted(cut.channel) if isinstance(cut.channel, (list, tuple)) else [cut.channel]
    sources = {id(s): s for c in channels for s in rec.sources if c in s.channels}
    if len(sources) != 1:
        u.error = f"channels {channels} are {'in several files' if sources else 'in no source'} of recording {rec.id!r}"
        return u
    src = next(iter(sources.values()))
    if src.type != "file":
        u.error = f"a Lhotse {src.type!r} audio source; only local files are read"
        return u
    try:
        file = inside_root(base, src.source, manifest)
    except ManifestError as e:
        raise ManifestError(manifest, f"cut {cut.id!r}: {e.reason}") from None
    rate = int(rec.sampling_rate)
    start, num = compute_num_samples(cut.start, rate), compute_num_samples(cut.duration, rate)
    whole = start == 0 and num == rec.num_samples and len(rec.sources) == 1 and set(channels) == set(src.channels)
    u.audio = CutAudio(manifest, file, rate, start, num, [src.channels.index(c) for c in channels], whole,
                       json.dumps(cut.to_dict(), ensure_ascii=False, separators=(",", ":")))
    return u


def write_cuts(path: str | os.PathLike, units: Iterable, utts: dict[str, Utterance]) -> int:
    """Write ``units`` (``Units`` records) as a Lhotse cuts manifest, atomically; ``utts`` (by id)
    say where each came from (see the module docstring). Gzipped when ``path`` ends in ``.gz``.
    Returns the number of cuts."""
    path = Path(path)
    require("lhotse", str(path))
    from lhotse.serialization import deserialize_item

    n = 0
    with atomic_open(path, "wb") as raw:
        f = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if path.name.endswith(".gz") else raw
        for u in units:
            cut = _cut_dict(u, utts.get(u.utt_id))
            # through lhotse, so that what is written is what CutSet.from_file reads back
            f.write((json.dumps(deserialize_item(cut).to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
        if f is not raw:
            f.close()
    return n


def _cut_dict(u, utt: Utterance | None) -> dict:
    units = {"units": u.ids.tolist(), "units_frame_rate": u.frame_rate}
    if u.durations is not None:
        units["units_durations"] = u.durations.tolist()
    base = getattr(utt.audio, "cut", None) if utt is not None else None
    if base is not None:
        cut = json.loads(base)
        cut["custom"] = {**(cut.get("custom") or {}), **units}
        return cut
    rec = _recording(utt) if utt is not None and utt.audio is None and utt.error is None else None
    duration = rec["duration"] if rec is not None else u.duration_s
    cut: dict[str, Any] = {"id": u.utt_id, "start": 0, "duration": duration, "channel": 0, "supervisions": []}
    if rec is not None:
        cut["recording"] = rec
        if len(rec["channel_ids"]) > 1:  # our units are of the channels' average
            cut["channel"], cut["type"] = rec["channel_ids"], "MultiCut"
    if utt is not None and (utt.text is not None or utt.speaker is not None):
        sup = {"id": u.utt_id, "recording_id": rec["id"] if rec else u.utt_id, "start": 0, "duration": duration,
               "channel": cut["channel"]}
        sup.update({k: v for k, v in (("text", utt.text), ("speaker", utt.speaker)) if v is not None})
        cut["supervisions"] = [sup]
    cut["custom"] = units
    cut.setdefault("type", "MonoCut")
    return cut


def _recording(utt: Utterance) -> dict | None:
    """A Lhotse recording of the whole audio file ``utt.path`` (None when its header is unreadable)."""
    from speechunits.audio import info

    try:
        i = info(utt.path)
    except AudioError:
        return None
    ch = list(range(i.channels))
    return {"id": utt.id, "sources": [{"type": "file", "channels": ch, "source": str(Path(utt.path).absolute())}],
            "sampling_rate": i.sample_rate, "num_samples": i.frames, "duration": i.frames / i.sample_rate,
            "channel_ids": ch}
