"""Whisper speech to text: a livekit-agents STT plugin and plain file/array transcription.

Why it is shaped this way:

- One model per ``(backend, model)`` per process, loaded lazily under a lock: the weights are
  tens to hundreds of MB and one process may host many interviews at once.
- Every decode runs on one worker thread (the machine has 2 cores; parallel decodes only thrash
  the caches and make every answer late), fronted by a bounded admission gate
  (:class:`TranscriptionQueue`): when it is full, callers wait on the event loop instead of
  piling audio into an unbounded executor queue. ``depth`` and ``waiting`` feed metrics.
- Non-streaming (``streaming=False``): the AgentSession wraps it with its VAD, so each
  ``recognize()`` call is one utterance. No timeout is applied: a local decode that waits its
  turn in the queue is backpressure, not a failed connection.
- Decoding is deterministic: greedy, temperature 0 with no fallback,
  ``condition_on_previous_text=False`` (stops one misheard sentence from poisoning the next),
  language "en", fp32 on CPU for openai-whisper, int8 for faster-whisper.

How word timings come out (the session stores them per answer):

- Every FINAL_TRANSCRIPT's ``alternatives[0].words`` holds livekit ``TimedString`` words:
  ``start_time``/``end_time`` in seconds from the start of the recognized buffer and
  ``confidence`` = whisper's word probability. The field survives livekit's StreamAdapter.
  :func:`words_from_event` turns them back into :class:`Word` objects.
- The same :class:`Transcript` is emitted as a ``"transcript"`` event
  (``stt.on("transcript", callback)``, called with the Transcript) and kept in
  ``stt.last_transcript``, for code that only sees the session's text events.

Context (``prompt``): the question and its field's words (``voice/context.py``) go to whisper as
its ``initial_prompt`` (both backends), so "Breslow" and "EBITDA" come out spelled as the field
spells them. Whisper is known to copy its prompt when it hears too little to go on, so a prompt is
never given for near-silent audio, and a transcript that repeats a run of the prompt's words is
checked by a decode without it (kept only if that one hears the run too), and so is a transcript
gone round in a loop (the checks: ``voice/guards.py``). Capture sets the context of the answer it
transcribes with :func:`prompting`; the livekit plugin reads it.

Word timings are sanitized: clamped to the clip, ``start <= end``, and starts never go back in
time, so downstream code can rely on monotonic times. A piece whisper split off a word ("-fatten"
of "flour-fatten", a lone ",") is joined back to it (:func:`join_pieces`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
    TimedString,
)

from interviewer import weights
from interviewer.config import get_settings
from interviewer.errors import MissingSystemPackage, UserError
from interviewer.voice import guards
from interviewer.voice.transcription_queue import TranscriptionQueue, shared_queue

Backend = Literal["whisper", "faster-whisper"]
ModelName = Literal["tiny.en", "base"]
BACKENDS: tuple[str, ...] = get_args(Backend)
MODELS: tuple[str, ...] = get_args(ModelName)
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_choice(backend: str, model: str) -> None:
    if backend not in BACKENDS:
        raise UserError(f"unknown STT backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if model not in MODELS:
        raise UserError(f"unknown STT model {model!r}: use one of {', '.join(MODELS)}")


# --- models: one per (backend, model) per process ---------------------------------------------


@dataclass
class _Loaded:
    model: Any
    # openai-whisper installs forward hooks for word alignment during a decode: two decodes on
    # one model at once would corrupt each other's timings, so each model has its own lock.
    lock: threading.Lock = field(default_factory=threading.Lock)


_MODELS: dict[tuple[str, str], _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def _cpu_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _load(backend: str, model: str) -> Any:

    if backend == "whisper":
        import whisper

        path = weights.whisper_checkpoint(model)
        loaded = whisper.load_model(str(path), device="cpu")
        loaded.set_alignment_heads(whisper._ALIGNMENT_HEADS[model])
        return loaded
    from faster_whisper import WhisperModel

    folder = weights.faster_whisper_dir(model)
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=_cpu_threads())


def load_model(backend: str, model: str) -> _Loaded:
    """The shared model for this process, loading it on first use (thread-safe)."""
    check_choice(backend, model)
    key = (backend, model)
    loaded = _MODELS.get(key)
    if loaded is None:
        with _LOAD_LOCK:
            loaded = _MODELS.get(key)
            if loaded is None:
                loaded = _Loaded(_load(backend, model))
                _MODELS[key] = loaded
    return loaded


# --- plain transcription (blocking; call it off the event loop) -------------------------------


_HYPHENS = "-\u2010\u2011"
_CLOSING = frozenset(".,!?:;)]}%\u2026\u201d\u2019")


def belongs_to_previous(text: str) -> bool:
    """Whisper's word timings split at tokens, not at spaces: "flour-fatten" comes out as the
    words "flour" and "-fatten", and a lone "," or "?" can come out as a word of its own. Such a
    piece is part of the word before it. A dash between spaces ("-", "- I") is not."""
    text = text.strip()
    if not text:
        return False
    if text[0] in _HYPHENS:
        return len(text) > 1 and text[1].isalnum()
    return all(c in _CLOSING for c in text)


def join_pieces(words: list[Word]) -> list[Word]:
    """Glue each piece that belongs to the previous word onto it, so a transcript shown word by
    word reads "flour-fatten", not "flour -fatten". The merged word spans both pieces and is as
    sure as its less sure piece."""
    out: list[Word] = []
    for w in words:
        if out and belongs_to_previous(w.word):
            prev = out[-1]
            out[-1] = Word(
                prev.word + w.word.strip(),
                prev.start,
                max(prev.end, w.end),
                min(prev.probability, w.probability),
            )
        else:
            out.append(w)
    return out


def join_text(parts: Iterable[str]) -> str:
    """Texts joined by spaces, except before a piece that belongs to the previous word."""
    out = ""
    for part in (p.strip() for p in parts):
        if part:
            out += part if out and belongs_to_previous(part.split()[0]) else f" {part}"
    return out.strip()


def _clean_words(raw: list[tuple[str, float, float, float]], duration: float) -> list[Word]:
    words: list[Word] = []
    last_start = 0.0
    for text, start, end, prob in raw:
        text = text.strip()
        if not text:
            continue
        start = min(max(float(start), last_start, 0.0), duration)
        end = min(max(float(end), start), duration)
        words.append(Word(text, round(start, 3), round(end, 3), round(float(prob), 4)))
        last_start = start
    return join_pieces(words)


def _decode(
    loaded: _Loaded, backend: str, audio: np.ndarray, language: str, prompt: str | None
) -> tuple[str, list[tuple[str, float, float, float]]]:
    raw: list[tuple[str, float, float, float]] = []
    with loaded.lock:
        if backend == "whisper":
            import whisper

            result = whisper.transcribe(
                loaded.model,
                audio,
                verbose=None,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
                language=language,
                fp16=False,
                beam_size=None,
                best_of=None,
                initial_prompt=prompt,
            )
            text = str(result["text"]).strip()
            for seg in result["segments"]:
                for w in seg.get("words", []):
                    raw.append((w["word"], w["start"], w["end"], w["probability"]))
        else:
            segments, _info = loaded.model.transcribe(
                audio,
                language=language,
                beam_size=1,
                best_of=1,
                temperature=0.0,
                condition_on_previous_text=False,
                word_timestamps=True,
                vad_filter=False,
                initial_prompt=prompt,
            )
            parts = []
            for seg in segments:  # a generator: the decode happens while iterating
                parts.append(seg.text)
                for w in seg.words or []:
                    raw.append((w.word, w.start, w.end, w.probability))
            text = "".join(parts).strip()
    return text, raw


def transcribe_array(
    audio16k: np.ndarray,
    *,
    backend: Backend | str = "whisper",
    model: ModelName | str = "tiny.en",
    language: str = "en",
    prompt: str | None = None,
) -> Transcript:
    """Transcribe mono 16 kHz audio (float32 in [-1, 1], or int16). Blocking.

    ``prompt``: the answer's context (the question and its key terms, see the module
    docstring); left out for near-silent audio, and an echo of it is checked without it."""
    check_choice(backend, model)
    audio = np.asarray(audio16k)
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / 32768.0
    audio = np.ascontiguousarray(audio.reshape(-1), dtype=np.float32)
    duration = round(len(audio) / SAMPLE_RATE, 3)
    if len(audio) == 0:
        return Transcript("", [], 0.0)

    loaded = load_model(backend, model)
    prompt = (prompt or "").strip() or None
    if prompt is not None and guards.voiced_seconds(audio) < guards.PROMPT_MIN_VOICED_S:
        prompt = None
    text, raw = _decode(loaded, backend, audio, language, prompt)
    if prompt is not None and guards.suspect(text, prompt):
        plain_text, plain_raw = _decode(loaded, backend, audio, language, None)
        if not guards.suspect(plain_text, prompt):  # the applicant did not say it: whisper read it
            text, raw = plain_text, plain_raw
            prompt = None
    if prompt is not None:
        heard = guards.heard(raw, guards.voiced(audio), prompt)
        if len(heard) < len(raw):
            raw, text = heard, "".join(w[0] for w in heard).strip()
    return Transcript(text=text, words=_clean_words(raw, duration), duration=duration)


def decode_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Any file ffmpeg reads, as mono 16 kHz float32; errors are one-line UserErrors."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    if shutil.which("ffmpeg") is None:
        raise MissingSystemPackage("ffmpeg is not installed: run `sudo apt-get install ffmpeg`")
    from whisper.audio import load_audio

    try:
        return load_audio(str(p), sr=SAMPLE_RATE)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        reason = lines[-1].removeprefix(f"{p}: ") if lines else "unknown error"
        raise UserError(f"{p}: ffmpeg could not decode it ({reason})") from None


def transcribe_file(
    path: str | os.PathLike[str],
    *,
    backend: Backend | str = "whisper",
    model: ModelName | str = "tiny.en",
    language: str = "en",
    prompt: str | None = None,
) -> Transcript:
    """Transcribe a whole file (decoded by ffmpeg). Blocking."""
    check_choice(backend, model)
    return transcribe_array(
        decode_file(path), backend=backend, model=model, language=language, prompt=prompt
    )


def frame_to_16k(frame: rtc.AudioFrame) -> np.ndarray:
    """One livekit frame (int16, any rate, any channel count) as mono 16 kHz float32."""
    data = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        data = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    if frame.sample_rate != SAMPLE_RATE and len(data):
        resampler = rtc.AudioResampler(
            frame.sample_rate,
            SAMPLE_RATE,
            num_channels=1,
            quality=rtc.AudioResamplerQuality.HIGH,
        )
        mono = rtc.AudioFrame(data.tobytes(), frame.sample_rate, 1, len(data))
        out = resampler.push(mono) + resampler.flush()
        chunks = [np.frombuffer(f.data, dtype=np.int16) for f in out]
        data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return data.astype(np.float32) / 32768.0


# --- the livekit-agents plugin -----------------------------------------------------------------


def words_from_event(event: stt.SpeechEvent) -> list[Word]:
    """The word timings a WhisperSTT put in a SpeechEvent, as Word objects."""
    if not event.alternatives:
        return []
    out = []
    for w in event.alternatives[0].words or []:
        start = w.start_time if utils.is_given(w.start_time) else 0.0
        end = w.end_time if utils.is_given(w.end_time) else start
        prob = w.confidence if utils.is_given(w.confidence) else 0.0
        out.append(Word(str(w), float(start), float(end), float(prob)))
    return out


_PROMPT: ContextVar[str | None] = ContextVar("transcription_prompt", default=None)


@contextlib.contextmanager
def prompting(prompt: str | None) -> Iterator[None]:
    """Transcriptions started inside this block (in this task) get ``prompt`` as context.

    A context variable rather than an argument because livekit's ``STT.recognize`` takes no
    extra arguments; a task copies it at creation, so concurrent answers never mix contexts."""
    token = _PROMPT.set(prompt)
    try:
        yield
    finally:
        _PROMPT.reset(token)


def _recognize_frames(
    frames: list[rtc.AudioFrame], backend: str, model: str, language: str, prompt: str | None
) -> Transcript:
    """On the worker: join the frames, make them mono 16 kHz, transcribe."""
    if frames:
        audio = frame_to_16k(rtc.combine_audio_frames(frames))
    else:
        audio = np.zeros(0, dtype=np.float32)
    return transcribe_array(audio, backend=backend, model=model, language=language, prompt=prompt)


class WhisperSTT(stt.STT):
    """Non-streaming whisper STT for an AgentSession (give the session a VAD).

    ``backend``/``model`` default to the settings' ``stt_backend``/``stt_model``. Word timings
    are in each FINAL_TRANSCRIPT's ``alternatives[0].words`` and in the ``"transcript"`` event
    (see the module docstring).
    """

    def __init__(
        self,
        *,
        backend: Backend | str | None = None,
        model: ModelName | str | None = None,
        language: str = "en",
        queue: TranscriptionQueue | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        if backend is None or model is None:
            settings = get_settings()
            backend = backend or settings.stt_backend
            model = model or settings.stt_model
        check_choice(backend, model)
        self._backend = str(backend)
        self._model = str(model)
        self._language = language
        self._queue = queue or shared_queue()
        self.last_transcript: Transcript | None = None

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return self._backend

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def queue(self) -> TranscriptionQueue:
        return self._queue

    @property
    def queue_depth(self) -> int:
        """Utterances admitted and not yet transcribed (for metrics)."""
        return self._queue.depth

    def prewarm(self) -> None:
        """Start loading the model on the worker thread; returns at once."""
        self._queue.submit_nowait(load_model, self._backend, self._model)

    async def warm_up(self) -> None:
        """Load the model now (off the event loop); a ModelError surfaces here."""
        await self._queue.run(load_model, self._backend, self._model)

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frames = list(buffer) if isinstance(buffer, list) else [buffer]
        lang = str(language).split("-")[0].lower() if utils.is_given(language) else ""
        lang = lang or self._language
        transcript = await self._queue.run(
            _recognize_frames, frames, self._backend, self._model, lang, _PROMPT.get()
        )
        self.last_transcript = transcript
        words = [
            TimedString(w.word, start_time=w.start, end_time=w.end, confidence=w.probability)
            for w in transcript.words
        ]
        data = stt.SpeechData(
            language=lang,
            text=transcript.text,
            start_time=transcript.words[0].start if transcript.words else 0.0,
            end_time=transcript.words[-1].end if transcript.words else 0.0,
            confidence=(
                float(np.mean([w.probability for w in transcript.words]))
                if transcript.words
                else 0.0
            ),
            words=words,
        )
        self.emit("transcript", transcript)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid(),
            alternatives=[data],
        )
