"""espeak-ng speech (through pyttsx3) as a livekit-agents TTS plugin, with a disk cache.

pyttsx3 over espeak-ng is not safe to use casually (checked on this machine, see
shared/MODELS.md): ``init()`` hands out one cached engine per process, two threads at once lose
a file silently, two utterances queued before one ``runAndWait`` write only the last, and now
and then ``runAndWait`` returns without writing anything. So:

- All synthesis goes through one dedicated thread that owns the engine (:class:`SpeechEngine`),
  one ``save_to_file`` + ``runAndWait`` at a time.
- Each output is checked (exists, valid WAV, > 0 frames); a failed attempt is retried with a
  fresh engine, up to 3 attempts; then the ``espeak-ng`` binary renders it with the same voice
  and rate (logged). If a render hangs, the engine thread is written off and the binary serves
  from then on.
- Results are cached on disk (``<data_dir>/tts-cache``), keyed by the sha256 of the text, voice,
  rate, output rate and engine versions, as mono int16 WAV at the output sample rate.
  ``prerender()`` fills the cache with a bank's prompts ahead of time, so asking a question
  costs a file read, not a synthesis.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import APIError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from interviewer.config import get_settings
from interviewer.errors import MissingSystemPackage, UserError

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 24_000
CHUNK_MS = 50
ATTEMPTS = 3
RENDER_TIMEOUT_S = 20.0
MIN_RATE, MAX_RATE = 80, 450
CACHE_FORMAT = 1  # bump when the cached audio would change for the same key
_ESPEAK_MISSING = "espeak-ng is not installed: run `sudo apt-get install espeak-ng`"


# --- voices and versions -----------------------------------------------------------------------


def _espeak(*args: str) -> str:
    if shutil.which("espeak-ng") is None:
        raise MissingSystemPackage(_ESPEAK_MISSING)
    return subprocess.run(
        ["espeak-ng", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


@lru_cache
def espeak_version() -> str:
    return _espeak("--version").strip().splitlines()[0]


@lru_cache
def engine_version() -> str:
    """Part of every cache key: a new pyttsx3 or espeak-ng may sound different."""
    return f"pyttsx3 {package_version('pyttsx3')}; {espeak_version()}"


def _names(listing: str, *, variants: bool) -> set[str]:
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        language, voice_name, file = cols[1], cols[3], cols[4]
        if variants:
            names.update({voice_name.lower(), file.removeprefix("!v/").lower()})
        else:
            names.update({language.lower(), voice_name.lower(), file.lower()})
            names.add(file.rsplit("/", 1)[-1].lower())
    return names


@lru_cache
def _voice_catalog() -> tuple[frozenset[str], frozenset[str]]:
    voices = _names(_espeak("--voices"), variants=False)
    variants = _names(_espeak("--voices=variant"), variants=True)
    return frozenset(voices), frozenset(variants)


def check_voice(voice: str) -> str:
    """Accept espeak-ng voice names ("en-us", "en-gb-scotland", "en-us+f3"); else a UserError.

    espeak-ng itself silently falls back to its default voice for an unknown name, so a typo
    in the settings would otherwise go unnoticed.
    """
    voices, variants = _voice_catalog()
    base, plus, variant = voice.strip().partition("+")
    if base.lower() not in voices or (plus and variant.lower() not in variants):
        raise UserError(
            f"unknown espeak-ng voice {voice!r}: see the voices with `espeak-ng --voices` "
            "and the +variants with `espeak-ng --voices=variant`"
        )
    return voice.strip()


def check_rate(rate: int) -> int:
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise UserError(f"TTS rate {rate} is out of range: use {MIN_RATE}-{MAX_RATE} words/min")
    return int(rate)


def cache_key(text: str, voice: str, rate: int, sample_rate: int) -> str:
    blob = json.dumps([CACHE_FORMAT, text, voice, rate, sample_rate, engine_version()])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --- WAV helpers -------------------------------------------------------------------------------


def _valid_wav(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() > 0 and w.getsampwidth() == 2 and w.getnchannels() >= 1
    except (OSError, EOFError, wave.Error):
        return False


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the sample rate."""
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data, rate


def resample(data: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Mono int16 from ``src`` to ``dst`` Hz: espeak-ng renders at its own rate, whatever the
    caller wants (also used by ``voice.io.answers_wav``)."""
    if src == dst or not len(data):
        return data
    resampler = rtc.AudioResampler(src, dst, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH)
    frames = resampler.push(rtc.AudioFrame(data.tobytes(), src, 1, len(data)))
    frames += resampler.flush()
    parts = [np.frombuffer(f.data, dtype=np.int16) for f in frames]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def _write_wav_atomic(path: Path, data: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(data.astype(np.int16).tobytes())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def render_with_espeak_binary(text: str, voice: str, rate: int, wav_path: Path) -> None:
    """The last resort: the espeak-ng program, same voice and rate."""
    if shutil.which("espeak-ng") is None:
        raise MissingSystemPackage(_ESPEAK_MISSING)
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(wav_path), "--stdin"],
        input=text.encode("utf-8"),
        check=True,
        capture_output=True,
        timeout=120,
    )
    if not _valid_wav(wav_path):
        raise RuntimeError(f"espeak-ng wrote no audio for {text[:40]!r}")


# --- the engine thread -------------------------------------------------------------------------


def _quiet_print(*args: Any, **_kwargs: Any) -> None:
    log.debug(" ".join(str(a) for a in args))


class SpeechEngine:
    """Owns pyttsx3 on one dedicated thread; every render in the process goes through it.

    Counters: ``renders`` texts synthesized (by either engine), ``attempts`` pyttsx3
    save_to_file + runAndWait calls, ``fallbacks`` texts the espeak-ng binary rendered.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyttsx3")
        self._engine: Any = None  # only touched on the engine thread
        self._busy_since: float | None = None
        self.wedged = False
        self.renders = 0
        self.attempts = 0
        self.fallbacks = 0
        # at exit the engine's __del__ would call into half-torn-down modules (a traceback
        # printed after every run): disarm it first
        atexit.register(self._drop_engine)

    def _fresh_engine(self) -> Any:
        import pyttsx3
        import pyttsx3.drivers.espeak as espeak_driver

        # The driver print()s "Audio saved to ..." on stdout, which would corrupt CLI output
        # such as `--json`; route it to the debug log instead.
        espeak_driver.print = _quiet_print  # type: ignore[attr-defined]
        pyttsx3._activeEngines.pop(None, None)  # init() would hand back the cached engine
        self._drop_engine()
        self._engine = pyttsx3.init()
        return self._engine

    def _drop_engine(self) -> None:
        """Forget the engine without letting it un-register the new one's callback.

        libespeak has one synthesis callback per process. A dropped pyttsx3 engine clears it
        when it is garbage-collected (``DriverProxy.__del__`` -> ``SetSynthCallback(None)``),
        which can happen much later and on any thread (a cyclic GC run during an import on
        the main thread): after a retry that would leave the new engine with no callback, or
        clear it in the middle of its initialisation, a segfault seen in the test suite. So
        the old engine is disarmed here, on the engine thread, before it is let go.
        """
        old, self._engine = self._engine, None
        proxy = getattr(old, "proxy", None)
        if proxy is not None:
            proxy._driver = None  # its __del__ then does nothing (AttributeError, suppressed)

    def _try_pyttsx3(self, text: str, voice: str, rate: int, wav_path: Path) -> bool:
        for attempt in range(1, ATTEMPTS + 1):
            with contextlib.suppress(FileNotFoundError):
                wav_path.unlink()
            self.attempts += 1
            try:
                engine = self._engine if self._engine and attempt == 1 else self._fresh_engine()
                engine.setProperty("voice", voice)
                engine.setProperty("rate", rate)
                engine.save_to_file(text, str(wav_path))
                engine.runAndWait()
            except Exception as err:
                log.warning("pyttsx3 attempt %d failed: %s", attempt, err)
                self._drop_engine()
                continue
            if _valid_wav(wav_path):
                return True
            log.warning("pyttsx3 attempt %d wrote no valid WAV for %r", attempt, text[:40])
            self._drop_engine()
        return False

    def _render(self, text: str, voice: str, rate: int, out: Path, sample_rate: int) -> str:
        """On the engine thread: make ``out`` (cache entry) unless it exists; which engine."""
        if _valid_wav(out):  # an earlier job in the queue rendered the same text
            return "cache"
        self._busy_since = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
                raw = Path(tmp) / "raw.wav"
                engine = "pyttsx3"
                if not self._try_pyttsx3(text, voice, rate, raw):
                    log.warning(
                        "pyttsx3 failed %d times; rendering with the espeak-ng binary instead",
                        ATTEMPTS,
                    )
                    render_with_espeak_binary(text, voice, rate, raw)
                    engine = "espeak-ng"
                    self.fallbacks += 1
                data, src_rate = _read_wav(raw)
                _write_wav_atomic(out, resample(data, src_rate, sample_rate), sample_rate)
                self.renders += 1
                return engine
        finally:
            self._busy_since = None

    async def render(self, text: str, voice: str, rate: int, out: Path, sample_rate: int) -> str:
        """Render ``text`` into the cache file ``out``; serialized, off the event loop."""
        if not self.wedged:
            fut: Future[str] = self._executor.submit(
                self._render, text, voice, rate, out, sample_rate
            )
            wrapped = asyncio.wrap_future(fut)
            while True:
                done, _ = await asyncio.wait({wrapped}, timeout=1.0)
                if done:
                    return wrapped.result()
                started = self._busy_since
                if started is not None and time.monotonic() - started > RENDER_TIMEOUT_S:
                    self.wedged = True
                    log.error(
                        "pyttsx3 hung for over %.0f s; using the espeak-ng binary from now on",
                        RENDER_TIMEOUT_S,
                    )
                    break
                if self.wedged:
                    break
        return await asyncio.to_thread(self._render_binary, text, voice, rate, out, sample_rate)

    def _render_binary(self, text: str, voice: str, rate: int, out: Path, sample_rate: int) -> str:
        if _valid_wav(out):
            return "cache"
        with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
            raw = Path(tmp) / "raw.wav"
            render_with_espeak_binary(text, voice, rate, raw)
            data, src_rate = _read_wav(raw)
            _write_wav_atomic(out, resample(data, src_rate, sample_rate), sample_rate)
        self.fallbacks += 1
        self.renders += 1
        return "espeak-ng"


_ENGINE: SpeechEngine | None = None
_ENGINE_LOCK = threading.Lock()


def speech_engine() -> SpeechEngine:
    """The process-wide engine (espeak-ng keeps global state, so there can only be one)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = SpeechEngine()
        return _ENGINE


# --- the livekit-agents plugin -----------------------------------------------------------------


class Prerendering:
    """Both voices' ``prerender``: each distinct line through ``_ensure`` (which renders it
    into the cache unless it is there, counting ``cache_misses``)."""

    cache_misses: int

    async def _ensure(self, text: str) -> Any:
        raise NotImplementedError

    async def prerender(self, texts: Iterable[str]) -> int:
        """Render every text not yet cached; returns how many were rendered now."""
        rendered = 0
        for text in dict.fromkeys(t.strip() for t in texts if t.strip()):
            before = self.cache_misses
            await self._ensure(text)
            rendered += self.cache_misses - before
        return rendered


class Pyttsx3TTS(Prerendering, tts.TTS):
    """Non-streaming TTS: mono int16 PCM at ``sample_rate``, pushed in 50 ms chunks.

    ``voice``/``rate`` default to the settings' ``tts_voice``/``tts_rate``; ``cache_dir`` to
    ``<data_dir>/tts-cache``. ``cache_hits``/``cache_misses`` count lookups by this instance.
    ``on_line(text, seconds)`` hears of each line as it is synthesised (captions).
    """

    def __init__(
        self,
        *,
        voice: str | None = None,
        rate: int | None = None,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        cache_dir: str | os.PathLike[str] | None = None,
        on_line: Callable[[str, float], None] | None = None,
    ) -> None:
        settings = get_settings()
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.voice = check_voice(voice or settings.tts_voice)
        self.rate = check_rate(rate or settings.tts_rate)
        self.cache_dir = Path(cache_dir) if cache_dir else settings.data_dir / "tts-cache"
        self.on_line = on_line
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def model(self) -> str:
        return "espeak-ng"

    @property
    def provider(self) -> str:
        return "pyttsx3"

    def cache_path(self, text: str) -> Path:
        key = cache_key(text.strip(), self.voice, self.rate, self.sample_rate)
        return self.cache_dir / key[:2] / f"{key}.wav"

    async def _ensure(self, text: str) -> Path:
        path = self.cache_path(text)
        if await asyncio.to_thread(_valid_wav, path):
            self.cache_hits += 1
            return path
        self.cache_misses += 1
        await speech_engine().render(text.strip(), self.voice, self.rate, path, self.sample_rate)
        return path

    async def pcm(self, text: str) -> bytes:
        """The whole utterance as int16 PCM at ``sample_rate`` (from the cache when there)."""
        if not text.strip():
            return b""
        path = await self._ensure(text)
        data, _rate = await asyncio.to_thread(_read_wav, path)
        return data.tobytes()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _ChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class _ChunkedStream(tts.ChunkedStream):
    _tts: Pyttsx3TTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        try:
            pcm = await self._tts.pcm(self.input_text)
        except (UserError, OSError, RuntimeError, subprocess.SubprocessError) as err:
            raise APIError(f"speech synthesis failed: {err}", retryable=False) from err
        rate = self._tts.sample_rate
        if self._tts.on_line is not None:
            self._tts.on_line(self.input_text, len(pcm) / 2 / rate)
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=rate,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=CHUNK_MS,
        )
        step = rate * CHUNK_MS // 1000 * 2  # bytes of int16 mono
        for i in range(0, len(pcm), step):
            output_emitter.push(pcm[i : i + step])
        output_emitter.flush()
