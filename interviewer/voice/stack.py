"""The voice models, built from settings in one place.

Every process that listens or speaks (the web server, a LiveKit job process, the bank editor's
Listen button, the command line, a benchmark) gets its VAD, whisper and voice here, so that a
setting means the same thing everywhere and a model is loaded once per process, off the event
loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import stt, tts, vad

from interviewer.banks.model import Bank
from interviewer.config import Settings, get_settings
from interviewer.interview import InterviewFlow
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.vad import load_vad

log = logging.getLogger(__name__)

SEGMENT_SILENCE_S = 0.3
"""The VAD's silence: where speech is cut into segments for transcription (the rest of the
silence that ends an answer is the session's end-of-turn delay, see voice/session.py)."""


def build_vad() -> vad.VAD:
    """Blocking: Silero, cutting speech into segments at short pauses."""
    return load_vad(SEGMENT_SILENCE_S)


def build_stt(settings: Settings | None = None) -> WhisperSTT:
    """Whisper as the settings choose it (backend and model); loaded on ``warm_up``."""
    settings = settings or get_settings()
    return WhisperSTT(backend=settings.stt_backend, model=settings.stt_model)


def build_tts(settings: Settings | None = None) -> Pyttsx3TTS:
    """Blocking (checks the voice against espeak-ng's list): the interviewer's voice."""
    return CaptionedTTS(None, settings)


@dataclass
class VoiceModels:
    """What one session listens and speaks with."""

    stt: stt.STT
    vad: vad.VAD
    tts: tts.TTS

    @classmethod
    async def load(cls, settings: Settings | None = None) -> VoiceModels:
        """Everything from settings, loaded off the event loop (whisper warmed up)."""
        vad_model = await asyncio.to_thread(build_vad)
        stt_engine = build_stt(settings)
        await stt_engine.warm_up()
        tts_engine = await asyncio.to_thread(build_tts, settings)
        return cls(stt=stt_engine, vad=vad_model, tts=tts_engine)


class CaptionedTTS(Pyttsx3TTS):
    """The interviewer's voice, telling ``on_line(text, seconds)`` about each line it renders
    (the agent renders one line at a time, in the order it will be heard), so a transport can
    put captions and the question on screen in step with the speech."""

    def __init__(
        self, on_line: Callable[[str, float], None] | None, settings: Settings | None = None
    ) -> None:
        settings = settings or get_settings()
        super().__init__(
            voice=settings.tts_voice,
            rate=settings.tts_rate,
            cache_dir=settings.data_dir / "tts-cache",
        )
        self._on_line = on_line

    async def pcm(self, text: str) -> bytes:
        data = await super().pcm(text)
        if self._on_line is not None:
            self._on_line(text, len(data) / 2 / self.sample_rate)
        return data


class VoiceStack:
    """The models shared by every interview of a process: loaded once, off the event loop.

    ``load`` is safe to call from several interviews at once; ``ready`` is set when the models
    are in, ``error`` says why they could not be loaded.
    """

    def __init__(self, settings: Settings, *, vad: Any = None, stt: Any = None) -> None:
        self.settings = settings
        self.vad: Any = vad
        self.stt: Any = stt
        self.ready = asyncio.Event()
        self.error: str | None = None
        self._lock = asyncio.Lock()

    def build(self) -> VoiceStack:
        """Blocking: build what is missing (a LiveKit job process does this before its first
        job; whisper's weights load on ``load``)."""
        if self.vad is None:
            self.vad = build_vad()
        if self.stt is None:
            self.stt = build_stt(self.settings)
        return self

    async def load(self) -> None:
        async with self._lock:
            if self.ready.is_set():
                return
            try:
                await asyncio.to_thread(self.build)
                await self.stt.warm_up()
            except Exception as err:
                self.error = str(err)
                log.exception("could not load the voice models")
                raise
            self.ready.set()

    def tts(self, on_line: Callable[[str, float], None] | None = None) -> CaptionedTTS:
        """A voice for one interview, announcing each line it renders to ``on_line``."""
        return CaptionedTTS(on_line, self.settings)

    def models(self, on_line: Callable[[str, float], None] | None = None) -> VoiceModels:
        """The loaded models and a voice for one session (after ``load``)."""
        if not self.ready.is_set():
            raise RuntimeError("VoiceStack.models() before load()")
        return VoiceModels(stt=self.stt, vad=self.vad, tts=self.tts(on_line))

    async def prerender(self, bank: Bank) -> None:
        """Render a bank's lines ahead of its first interview (best effort)."""
        engine = self.tts()
        try:
            await engine.prerender(InterviewFlow(bank).prompts())
        except Exception:
            log.exception("could not prerender the lines of bank %s", bank.id)
