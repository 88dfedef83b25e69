"""Text to speech through tokens: phones -> a FastSpeech-style text-to-units model -> a unit vocoder.

The TTS task of the multi-layer-tokens paper (arXiv 2406.10735) and DASB: a non-autoregressive
model predicts the units of every frame of every tokenizer layer from phones (durations from the
synthetic corpus' exact alignments), and the unit vocoder speaks them. ``text`` (phones and
durations), ``model``, ``data`` (encoding a corpus once), ``train``, ``artifact`` (the folder and
:class:`~.artifact.TextToSpeech`), ``evaluate`` (WER/CER, DNSMOS, speaker similarity).
See docs/tts.md.
"""
