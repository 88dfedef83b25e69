"""Audio in: loading any file to float32 mono 16 kHz with validation, and seeded perturbations."""

from speechunits.audio.errors import AudioError, AudioWarning
from speechunits.audio.load import TARGET_RATE, AudioInfo, info, load, num_samples_at

__all__ = ["AudioError", "AudioWarning", "AudioInfo", "TARGET_RATE", "info", "load", "num_samples_at"]
