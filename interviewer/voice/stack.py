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
from typing import Any, Literal

from livekit.agents import stt, tts, vad

from interviewer import weights
from interviewer.banks.model import Bank
from interviewer.config import VOICES, Settings, get_settings
from interviewer.errors import UserError
from interviewer.interview import InterviewFlow
from interviewer.voice.hibari import HibariTTS, load_model
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.turns import SmartTurn, load_turn_model, shared_model
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


OnLine = Callable[[str, float], None]
InterviewerTTS = HibariTTS | Pyttsx3TTS


def build_tts(
    settings: Settings | None = None,
    *,
    voice: str | None = None,
    on_line: OnLine | None = None,
) -> InterviewerTTS:
    """The interviewer's voice: ``voice`` (an opening's choice) or the settings' default.

    Blocking but quick (hibari: a stat of its weights, a clear error if they are missing;
    espeak: the voice checked against espeak-ng's list). ``on_line(text, seconds)`` hears of
    each line as it is synthesised, in the order it will be heard, so a transport can put
    captions and the question on screen in step with the speech.
    """
    settings = settings or get_settings()
    name = voice or settings.voice
    cache_dir = settings.data_dir / "tts-cache"
    if name == "hibari":
        return HibariTTS(cache_dir=cache_dir, model_dir=settings.model_dir, on_line=on_line)
    if name == "espeak":
        return Pyttsx3TTS(
            voice=settings.tts_voice,
            rate=settings.tts_rate,
            cache_dir=cache_dir,
            on_line=on_line,
        )
    raise UserError(f"unknown voice {name!r}: choose one of {', '.join(VOICES)}")


FROM_SETTINGS = "settings"
"""``VoiceModels.turn_model`` left to the process's settings (``INTERVIEWER_TURN_MODEL``)."""


@dataclass
class VoiceModels:
    """What one session listens and speaks with.

    ``turn_model``: the end-of-turn model (None: the words and the pace only); built from the
    same settings as the rest by :meth:`load` and :class:`VoiceStack`."""

    stt: stt.STT
    vad: vad.VAD
    tts: tts.TTS
    turn_model: SmartTurn | Literal["settings"] | None = FROM_SETTINGS

    @classmethod
    async def load(
        cls, settings: Settings | None = None, *, voice: str | None = None
    ) -> VoiceModels:
        """Everything from settings (``voice``: an opening's, else the settings'), loaded off
        the event loop (whisper warmed up)."""
        settings = settings or get_settings()
        vad_model = await asyncio.to_thread(build_vad)
        stt_engine = build_stt(settings)
        await stt_engine.warm_up()
        tts_engine = await asyncio.to_thread(build_tts, settings, voice=voice)
        turn = await load_turn_model(settings)
        return cls(stt=stt_engine, vad=vad_model, tts=tts_engine, turn_model=turn)

    async def end_of_turn_model(self) -> SmartTurn | None:
        """The end-of-turn model to use (loaded off the event loop when left to settings)."""
        if self.turn_model == FROM_SETTINGS:
            return await load_turn_model(get_settings())
        return self.turn_model  # type: ignore[return-value]


class VoiceStack:
    """The models shared by every interview of a process: loaded once, off the event loop.

    ``load`` is safe to call from several interviews at once; ``ready`` is set when the models
    are in, ``error`` says why they could not be loaded.
    """

    def __init__(self, settings: Settings, *, vad: Any = None, stt: Any = None) -> None:
        self.settings = settings
        self.vad: Any = vad
        self.stt: Any = stt
        self.turn_model: SmartTurn | None = None
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
        if self.settings.voice == "hibari":  # the default voice, loaded before the first line
            load_model(str(weights.voice_model(self.settings.model_dir)))
        if self.settings.turn_model != "none" and self.turn_model is None:
            self.turn_model = shared_model()
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

    def tts(self, on_line: OnLine | None = None, *, voice: str | None = None) -> InterviewerTTS:
        """A voice for one interview (``voice``: its opening's, else the default), announcing
        each line it renders to ``on_line``."""
        return build_tts(self.settings, voice=voice, on_line=on_line)

    def models(self, on_line: OnLine | None = None, *, voice: str | None = None) -> VoiceModels:
        """The loaded models and a voice for one session (after ``load``)."""
        if not self.ready.is_set():
            raise RuntimeError("VoiceStack.models() before load()")
        return VoiceModels(
            stt=self.stt,
            vad=self.vad,
            tts=self.tts(on_line, voice=voice),
            turn_model=self.turn_model,
        )

    async def prerender(self, bank: Bank, *, voice: str | None = None) -> None:
        """Render a bank's lines ahead of its first interview (best effort)."""
        engine = self.tts(voice=voice)
        try:
            await engine.prerender(InterviewFlow(bank).prompts())
        except Exception:
            log.exception("could not prerender the lines of bank %s", bank.id)
