"""Defaults of the evaluation that the CLI shows in its help (no heavy imports here).

>>> "speaker" in DEFAULT_DISTORTIONS, SECTIONS[0]
(True, 'alignment')
"""

from __future__ import annotations

# Noise at a mild and a hard SNR, one room, pitch both ways, tempo both ways, another voice:
# the distortion families of NAST and DC-Spin's robustness tests (see .robustness).
DEFAULT_DISTORTIONS: tuple[str, ...] = (
    "white_10dB", "white_0dB", "babble_10dB", "babble_0dB", "reverb_0.6s",
    "pitch_+3st", "pitch_-3st", "stretch_0.9", "stretch_1.1", "speaker",
)
# Sections that `--skip` can leave out (codebook statistics always run: they take milliseconds;
# resynthesis runs only with a vocoder).
SECTIONS: tuple[str, ...] = ("alignment", "abx", "ngram", "robustness", "speed", "resynthesis")
