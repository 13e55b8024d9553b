"""Silero voice activity detection, from the onnx file livekit-plugins-silero ships (no download).

The silence that ends an answer is per opening (a coding question wants longer pauses than a
warm-up one), so callers pass it; None means the settings' ``silence_threshold_s``.
"""

from __future__ import annotations

from livekit.agents import vad
from livekit.plugins import silero

from interviewer.config import get_settings

# silero's default (60 s) drops the rest of an answer spoken without a pause that long; an
# expert explaining a design can easily talk for minutes. 10 min of 16 kHz int16 is ~19 MB.
MAX_BUFFERED_SPEECH_S = 600.0


def load_vad(min_silence_duration: float | None = None) -> vad.VAD:
    """Blocking (loads the onnx model, well under a second): call it at start-up."""
    if min_silence_duration is None:
        min_silence_duration = get_settings().silence_threshold_s
    if min_silence_duration <= 0:
        raise ValueError(f"min_silence_duration must be positive, got {min_silence_duration}")
    return silero.VAD.load(
        min_silence_duration=min_silence_duration,
        max_buffered_speech=MAX_BUFFERED_SPEECH_S,
    )
