"""Silero voice activity detection, from the onnx file livekit-plugins-silero ships (no download).

The silence that ends an answer is per opening (a coding question wants longer pauses than a
warm-up one), so callers pass it; None means the settings' ``silence_threshold_s``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from livekit.agents import vad
from livekit.plugins import silero

from interviewer.config import get_settings

# silero's default (60 s) drops the rest of an answer spoken without a pause that long; an
# expert explaining a design can easily talk for minutes. 10 min of 16 kHz int16 is ~19 MB.
MAX_BUFFERED_SPEECH_S = 600.0

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
        return _EXECUTOR


class _OwnExecutor:
    """The event loop as silero's stream sees it, with its inference sent to the VAD's own
    thread: silero calls ``loop.run_in_executor(None, ...)``, the loop's default executor,
    which the live path's blocking I/O shares (database steps waiting on SQLite's lock, camera
    chunks, the voice's WAV files; min(32, CPUs + 4) threads). A window that queues there
    falls behind the audio, a few milliseconds of work late by seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run_in_executor(
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        return self._loop.run_in_executor(executor or _executor(), func, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


class LiveVAD(silero.VAD):
    """Silero with its inference on one thread of its own (see :class:`_OwnExecutor`)."""

    def stream(self) -> vad.VADStream:
        stream = super().stream()
        stream._loop = _OwnExecutor(stream._loop)  # type: ignore[attr-defined]
        return stream


def load_vad(min_silence_duration: float | None = None) -> vad.VAD:
    """Blocking (loads the onnx model, well under a second): call it at start-up."""
    if min_silence_duration is None:
        min_silence_duration = get_settings().silence_threshold_s
    if min_silence_duration <= 0:
        raise ValueError(f"min_silence_duration must be positive, got {min_silence_duration}")
    return LiveVAD.load(
        min_silence_duration=min_silence_duration,
        max_buffered_speech=MAX_BUFFERED_SPEECH_S,
    )
