"""MBROLA .pho files, and the common phone set that makes all voices comparable.

Each MBROLA voice has its own SAMPA dialect (us1-us3: American, with aspirated ``p_h`` and the
flap ``4``; en1: British, with ``Q``, ``3:``, ``I@``, dark ``5``). Alignments store the CMU /
ARPAbet 39-phone set in upper case plus ``sil``, the set real forced alignments
(pocketsphinx, librivox-aligned) use, so phone tiers compare across voices and with real speech.

>>> from speechunits.data.corpus.phones import to_common, parse_pho
>>> [to_common(p, "us1") for p in ("t_h", "r=", "@U", "_")]
['T', 'ER', 'OW', 'sil']
>>> parse_pho("h\\t60\\n@U\\t120\\t 0 180 100 160\\n_\\t300\\n")[1]
PhoLine(label='@U', ms=120.0, pitch='0 180 100 160')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

#: ARPAbet (CMU dictionary, no stress) plus ``sil``.
COMMON_PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH", "sil",
)

VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                    "UH", "UW"})

_CONSONANTS = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V", "T": "TH",
    "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "tS": "CH", "dZ": "JH",
    "m": "M", "n": "N", "N": "NG", "l": "L", "r": "R", "j": "Y", "w": "W", "_": "sil",
    # Syllabic consonants: CMU writes them as schwa + consonant; one phone keeps the .pho
    # timing exact, and the consonant is the closer single label.
    "l=": "L", "n=": "N", "m=": "M",
    "?": "T",  # glottal stop: an allophone of /t/ in English
}

_US = {
    **_CONSONANTS,
    "p_h": "P", "t_h": "T", "k_h": "K",  # aspirated allophones
    "4": "T",  # flap: CMU has no DX; the flap is (mostly) an allophone of /t/ in these voices
    "r=": "ER", "i": "IY", "A": "AA", "O": "AO", "O2": "AO", "u": "UW", "I": "IH", "E": "EH",
    "{": "AE", "V": "AH", "U": "UH", "@": "AH", "EI": "EY", "AI": "AY", "OI": "OY", "@U": "OW",
    "aU": "AW", "I2": "IH", "@2": "AH", "i@": "IY", "e@": "EH", "u@": "UH",
}

_EN1 = {
    **_CONSONANTS,
    "5": "L",  # dark l
    "i:": "IY", "A:": "AA", "O:": "AO", "u:": "UW", "3:": "ER", "I": "IH", "e": "EH", "{": "AE",
    "V": "AH", "Q": "AA", "U": "UH", "@": "AH", "eI": "EY", "aI": "AY", "OI": "OY", "@U": "OW",
    "aU": "AW",
    # British centring diphthongs: CMU spells peer/pair/poor IH R, EH R, UH R; the rhotic part
    # is absent in this non-rhotic voice, so the vowel alone is the label.
    "I@": "IH", "e@": "EH", "U@": "UH",
}

_TABLES = {"us1": _US, "us2": _US, "us3": _US, "en1": _EN1}


def to_common(label: str, voice: str) -> str:
    """Map one MBROLA SAMPA phone of ``voice`` to the common set (raises on an unknown label)."""
    try:
        return _TABLES[voice][label]
    except KeyError:
        if voice not in _TABLES:
            raise KeyError(f"no phone table for MBROLA voice {voice!r} ({sorted(_TABLES)})") from None
        raise KeyError(f"MBROLA voice {voice}: phone {label!r} has no common-set mapping") from None


@dataclass(frozen=True)
class PhoLine:
    """One .pho line: SAMPA label, duration in ms, and the pitch targets (``pos% Hz`` pairs)."""

    label: str
    ms: float
    pitch: str = ""


def parse_pho(text: str) -> list[PhoLine]:
    """Parse a .pho file (comments ``;`` and blank lines skipped)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split(None, 2)
        if not parts or line.lstrip().startswith(";"):
            continue
        if len(parts) < 2:
            raise ValueError(f".pho line {n}: no duration: {line!r}")
        out.append(PhoLine(parts[0], float(parts[1]), parts[2].strip() if len(parts) > 2 else ""))
    return out


def format_pho(lines: Sequence[PhoLine]) -> str:
    """Write .pho text; durations keep fractions (MBROLA accepts them) so no rounding drifts."""
    return "".join(f"{p.label}\t{p.ms:.3f}\t{p.pitch}\n".replace("\t\n", "\n") for p in lines)


def retime(lines: Sequence[PhoLine], tempo: float = 1.0, lead_ms: float = 0.0,
           tail_ms: float = 0.0) -> list[PhoLine]:
    """Scale durations by ``1 / tempo``, add a leading pause of ``lead_ms`` and make sure the
    file ends on a pause of at least ``tail_ms`` (the final pause absorbs MBROLA's few-ms length
    difference, so it must exist). Pitch targets are in percent of a phone, so they follow."""
    if tempo <= 0:
        raise ValueError("tempo must be > 0")
    out = [replace(p, ms=p.ms / tempo) for p in lines]
    if lead_ms > 0:
        out.insert(0, PhoLine("_", float(lead_ms)))
    if not out or out[-1].label != "_":
        out.append(PhoLine("_", float(tail_ms)))
    elif out[-1].ms < tail_ms:
        out[-1] = replace(out[-1], ms=float(tail_ms))
    return out
