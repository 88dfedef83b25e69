"""The external synthesizers: espeak-ng (text -> phones, durations, pitch) and MBROLA (-> audio).

Every call goes through this module, so a missing tool or voice is reported once, clearly, with
the exact Debian packages to install.

>>> from speechunits.data.corpus.tools import check_tools, espeak_pho
>>> check_tools(["us1"])                      # raises ToolMissingError naming what to install
>>> espeak_pho("Hello there.", "us1").splitlines()[0].split()[0]
'h'
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

#: The English MBROLA voices this corpus uses (Debian packages mbrola-us1 ... mbrola-en1).
MBROLA_VOICES: tuple[str, ...] = ("us1", "us2", "us3", "en1")

INSTALL_HINT = (
    "enable Debian's contrib and non-free sections (e.g. add 'Components: contrib non-free' to a "
    "file in /etc/apt/sources.list.d/ and run 'apt-get update'), then run: "
    "apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1"
)

# Where Debian (and MBROLA's own installer) put voice databases; MBROLA_VOICES_DIR overrides.
_VOICE_DIRS = ("/usr/share/mbrola", "/usr/local/share/mbrola", "/usr/share/mbrola/voices")


class ToolMissingError(RuntimeError):
    """espeak-ng, mbrola or an MBROLA voice is not installed; the message says what to install."""


def voice_database(voice: str) -> Path | None:
    """Path of the MBROLA database file of ``voice`` (e.g. ``/usr/share/mbrola/us1/us1``), or None."""
    dirs = [os.environ["MBROLA_VOICES_DIR"]] if os.environ.get("MBROLA_VOICES_DIR") else []
    for d in [*dirs, *_VOICE_DIRS]:
        for p in (Path(d) / voice / voice, Path(d) / voice):
            if p.is_file():
                return p
    return None


def missing_tools(voices: Iterable[str] = MBROLA_VOICES) -> list[str]:
    """Names of the missing pieces (``espeak-ng``, ``mbrola``, ``mbrola-us1`` ...); empty if none."""
    missing = [t for t in ("espeak-ng", "mbrola") if shutil.which(t) is None]
    missing += [f"mbrola-{v}" for v in voices if voice_database(v) is None]
    return missing


def check_tools(voices: Iterable[str] = MBROLA_VOICES) -> None:
    """Raise :class:`ToolMissingError` unless espeak-ng, mbrola and every voice are installed."""
    missing = missing_tools(voices)
    if missing:
        raise ToolMissingError(f"missing {', '.join(missing)}: {INSTALL_HINT}")


@functools.lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    """Versions of espeak-ng and mbrola, as they report them (recorded in corpus.json)."""
    out = {}
    r = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True)
    m = re.search(r"text-to-speech:\s*(\S+)", r.stdout)
    out["espeak-ng"] = m.group(1) if m else r.stdout.strip()
    # mbrola prints its banner (with the version) when run without arguments.
    r = subprocess.run(["mbrola"], capture_output=True, text=True)
    m = re.search(r"MBROLA\s+(\S+)", r.stdout + r.stderr)
    out["mbrola"] = m.group(1) if m else "unknown"
    return out


def _run(cmd: Sequence[str], data: bytes, what: str) -> bytes:
    try:
        r = subprocess.run(list(cmd), input=data, capture_output=True, check=False)
    except FileNotFoundError:
        raise ToolMissingError(f"{cmd[0]} not found: {INSTALL_HINT}") from None
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{what}: {cmd[0]} exited {r.returncode}: {' | '.join(err[-3:])}")
    return r.stdout


def espeak_pho(text: str, voice: str) -> str:
    """espeak-ng's MBROLA phone file (.pho) for ``text`` read by the espeak voice ``mb-<voice>``."""
    # Text on stdin, so a sentence starting with '-' is never taken for an option.
    out = _run(["espeak-ng", "-q", "-v", f"mb-{voice}", "--pho", "--stdin"], text.encode(), text[:40])
    return out.decode()


def ensure_final_punctuation(text: str) -> str:
    """espeak-ng ends every clause at , . ? ! with a ``_ 1`` pause line; a text without final
    punctuation gets a period so its last clause is closed the same way."""
    text = text.strip()
    return text if text[-1:] in ".?!" else text + "."


def clause_ends(pho: str) -> int:
    """Number of clause ends (``_`` lines of 1 ms) in espeak-ng's .pho output."""
    return sum(1 for line in pho.splitlines() if line.split()[:2] == ["_", "1"])


def espeak_pho_batch(texts: Sequence[str], voice: str) -> list[str]:
    """The .pho of each text, from ONE espeak-ng call (its start-up dominates the cost).

    espeak-ng reads consecutive sentences independently: the .pho of "A. B." is the .pho of "A."
    followed by that of "B." (checked line by line on hundreds of corpus texts). Each clause ends
    with a ``_ 1`` line, one per ``, . ? !``, so the output splits back after as many clause
    ends as each text has punctuation marks. If the counts disagree, each text gets its own call.
    """
    texts = [ensure_final_punctuation(t) for t in texts]
    if len(texts) == 1:
        return [espeak_pho(texts[0], voice)]
    want = [len(re.findall(r"[,.?!]", t)) for t in texts]
    lines = espeak_pho("\n".join(texts), voice).splitlines(keepends=True)
    out, cur, k = [], [], 0
    for line in lines:
        cur.append(line)
        if line.split()[:2] == ["_", "1"]:
            k += 1
            if len(out) < len(texts) and k == want[len(out)]:
                out.append("".join(cur))
                cur, k = [], 0
    if len(out) != len(texts) or any(line.split() for line in cur):
        return [espeak_pho(t, voice) for t in texts]
    return out


def espeak_word_phones(words: Sequence[str], voice: str) -> dict[str, list[tuple[str, float]]]:
    """Phones ``(label, duration ms)`` of each word said alone, from ONE espeak-ng call.

    Each word is written as its own sentence ("word.") so espeak-ng ends it with pauses: the pho
    output then splits on pause runs into exactly one group per word. If the count ever disagrees
    (a word that produced an inner pause), the words are redone one call each.
    """
    words = list(dict.fromkeys(words))
    if not words:
        return {}
    groups = _split_on_pauses(espeak_pho("".join(f"{w}.\n" for w in words), voice))
    if len(groups) != len(words):
        return {w: [p for g in _split_on_pauses(espeak_pho(f"{w}.", voice)) for p in g] for w in words}
    return dict(zip(words, groups))


def _split_on_pauses(pho: str) -> list[list[tuple[str, float]]]:
    groups: list[list[tuple[str, float]]] = [[]]
    for line in pho.splitlines():
        parts = line.split()
        if len(parts) < 2 or line.startswith(";"):
            continue
        if parts[0] == "_":
            if groups[-1]:
                groups.append([])
            continue
        groups[-1].append((parts[0], float(parts[1])))
    return [g for g in groups if g]


def mbrola_synth(pho: str, voice: str, pitch: float = 1.0, voice_freq: int = 16000,
                 volume: float = 1.0) -> np.ndarray:
    """Render a .pho with MBROLA; returns int16 samples at ``voice_freq`` Hz.

    ``pitch`` scales every pitch target (``-f``); ``voice_freq`` (``-l``) re-renders the diphones
    at that output rate, which scales the formants (timbre) by ``voice_freq / 16000`` once the audio
    is resampled back to 16 kHz, while durations in seconds and F0 stay put.
    """
    db = voice_database(voice)
    if db is None:
        raise ToolMissingError(f"missing mbrola-{voice}: {INSTALL_HINT}")
    cmd = ["mbrola", "-e", "-f", f"{pitch:g}", "-l", str(int(voice_freq)), "-v", f"{volume:g}",
           str(db), "-", "-"]  # '-' '-': .pho from stdin, raw 16-bit little-endian PCM to stdout
    raw = _run(cmd, pho.encode(), f"mbrola {voice}")
    return np.frombuffer(raw, dtype="<i2").copy()
