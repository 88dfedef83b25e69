"""Audio in: loading any file to float32 mono 16 kHz with validation, and seeded perturbations."""

from speechunits.audio.errors import AudioError, AudioWarning

__all__ = ["AudioError", "AudioWarning"]
