"""Audio in: loading any file to float32 mono 16 kHz with validation, and seeded perturbations."""

from speechunits.audio.errors import AudioError, AudioWarning
from speechunits.audio.load import TARGET_RATE, AudioInfo, info, load, num_samples_at

__all__ = ["AudioError", "AudioWarning", "AudioInfo", "TARGET_RATE", "info", "load", "num_samples_at"]


# Perturbations are re-exported lazily (PEP 562): importing them pulls in scipy.signal and
# parselmouth (~0.7 s), which loading audio alone should not pay for.
_PERTURB_EXPORTS = (
    "Perturbation",
    "add_noise",
    "available_perturbations",
    "build_perturbation",
    "chain",
    "pitch_shift",
    "random_speaker_perturbation",
    "reverberate",
    "speaker_perturb",
    "time_stretch",
)
__all__ += list(_PERTURB_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _PERTURB_EXPORTS:
        from speechunits.audio import perturb

        return getattr(perturb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
