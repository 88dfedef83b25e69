"""Whisper audio encoders (any size; transformers, OpenAI or CTranslate2 checkpoints) as speechunits encoders.

``load_encoder("whisper-tiny.en")`` (or any Whisper path) returns a :class:`WhisperEncoder`.
"""

from speechunits.encoders.whisper.convert import WhisperFormatError, detect_format, read_any, save_hf_dir
from speechunits.encoders.whisper.ct2 import CT2FormatError, read_ct2
from speechunits.encoders.whisper.encoder import MODES, WhisperEncoder, is_whisper
from speechunits.encoders.whisper.melspec import log_mel, mel_filters
from speechunits.encoders.whisper.model import WhisperDims, WhisperEncoderModel
from speechunits.encoders.whisper.registry import KNOWN

__all__ = [
    "CT2FormatError",
    "KNOWN",
    "MODES",
    "WhisperDims",
    "WhisperEncoder",
    "WhisperEncoderModel",
    "WhisperFormatError",
    "detect_format",
    "is_whisper",
    "log_mel",
    "mel_filters",
    "read_any",
    "read_ct2",
    "save_hf_dir",
]
