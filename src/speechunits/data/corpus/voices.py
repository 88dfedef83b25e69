"""The speaker table: four MBROLA voices crossed with pitch and voice-quality settings.

A speaker is a voice database plus MBROLA's pitch ratio (``-f``, scales F0) and voice frequency
(``-l``, renders at another rate; resampled back to 16 kHz the formants move by
``voice_freq / 16000``: a longer or shorter vocal tract). Neither moves a phone boundary, so the
.pho timings stay exact. Ids are stable strings such as ``us1-f1.00-l16000``.

>>> from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS, speaker
>>> len(SPEAKERS), len(TEST_SPEAKERS), speaker("us2-f0.88-l15000").voice
(16, 3, 'us2')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker. ``sex`` is the base voice's (us1 is female, the others male)."""

    voice: str
    pitch: float = 1.0
    voice_freq: int = 16000
    volume: float = 1.0
    sex: str = "m"

    @property
    def id(self) -> str:
        return f"{self.voice}-f{self.pitch:.2f}-l{self.voice_freq}"

    def to_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


# Per voice: the native setting, a higher/brighter, a lower/darker and a mildly shifted one.
# Ranges stay where MBROLA sounds natural (pitch 0.85-1.2, voice_freq 14.5-17.5 kHz).
_SETTINGS = ((1.00, 16000), (1.18, 17400), (0.88, 15000), (1.08, 14600))
_SEX = {"us1": "f", "us2": "m", "us3": "m", "en1": "m"}

SPEAKERS: tuple[Speaker, ...] = tuple(
    Speaker(voice=v, pitch=f, voice_freq=lf, volume=0.9, sex=_SEX[v])
    for v in ("us1", "us2", "us3", "en1")
    for f, lf in _SETTINGS
)

#: Held out of train and dev: one perturbed speaker of three different base voices, so the test
#: set measures generalisation to unseen speaker settings (the base voices are seen in train).
TEST_SPEAKERS: tuple[str, ...] = ("us1-f1.18-l17400", "us3-f0.88-l15000", "en1-f1.08-l14600")

_BY_ID = {s.id: s for s in SPEAKERS}


def speaker(speaker_id: str) -> Speaker:
    """The speaker with this id (raises KeyError naming the known ids)."""
    try:
        return _BY_ID[speaker_id]
    except KeyError:
        raise KeyError(f"unknown speaker {speaker_id!r}; known: {', '.join(_BY_ID)}") from None


def split_speakers(test: tuple[str, ...] = TEST_SPEAKERS) -> dict[str, list[str]]:
    """Speaker ids per split: train and dev share speakers; test has only held-out ones."""
    for t in test:
        speaker(t)
    train = [s.id for s in SPEAKERS if s.id not in test]
    return {"train": train, "dev": list(train), "test": list(test)}
