"""Audio in and out of an AgentSession without a room: WAV files.

:class:`WavAudioInput` plays a WAV as the applicant's microphone (20 ms frames, real time or
faster) and :class:`WavAudioOutput` "plays" the agent's speech into a WAV, reporting playback
to the session the way a speaker would. Together they drive the very session a LiveKit room or
a browser WebSocket drives in production, which is what the CLI, the demo and the tests use.

:class:`StreamingWavWriter` writes a WAV as audio arrives and rewrites the header about once a
second, so a process killed mid-answer leaves a playable file of everything up to the last
second, not a file whose header says it is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from interviewer.errors import UserError
from interviewer.voice.tts import render_with_espeak_binary, resample

FRAME_MS = 20


class StreamingWavWriter:
    """Mono 16-bit PCM WAV written frame by frame; valid on disk at every header refresh."""

    def __init__(
        self, path: str | os.PathLike[str], sample_rate: int, *, refresh_s: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._bytes = 0
        self._since_refresh = 0
        self._refresh_bytes = int(refresh_s * sample_rate) * 2
        self._file.write(self._header())
        self._file.flush()

    @property
    def location(self) -> Path:
        return self.path

    @property
    def duration_s(self) -> float:
        return self._bytes / 2 / self.sample_rate

    def _header(self) -> bytes:
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            36 + self._bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,  # PCM
            1,  # mono
            self.sample_rate,
            self.sample_rate * 2,
            2,
            16,
            b"data",
            self._bytes,
        )

    def write(self, frame: rtc.AudioFrame | bytes) -> None:
        if self._file.closed:
            return
        data = frame if isinstance(frame, bytes) else bytes(frame.data)
        if not isinstance(frame, bytes) and frame.sample_rate != self.sample_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz in a {self.sample_rate} Hz WAV")
        self._file.write(data)
        self._bytes += len(data)
        self._since_refresh += len(data)
        if self._since_refresh >= self._refresh_bytes:
            self._refresh()

    def _refresh(self) -> None:
        self._since_refresh = 0
        self._file.seek(0)
        self._file.write(self._header())
        self._file.seek(0, os.SEEK_END)
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self._refresh()
        self._file.close()


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the rate of a 16-bit PCM WAV; a UserError for anything else."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
                raise UserError(
                    f"{p}: not 16-bit PCM; convert it with "
                    f"`ffmpeg -i {p.name} -ac 1 -ar 16000 -c:a pcm_s16le out.wav`"
                )
            channels, rate = w.getnchannels(), w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except (wave.Error, EOFError) as err:
        raise UserError(
            f"{p}: not a readable WAV ({err}); convert it with "
            f"`ffmpeg -i {p.name} -ac 1 -ar 16000 -c:a pcm_s16le out.wav`"
        ) from None
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data, rate


class WavAudioInput(io.AudioInput):
    """A WAV file as the applicant's microphone: 20 ms frames, then silence forever.

    ``fast``: speech plays ``speed`` times faster than real time while pauses of 300 ms and
    more play in real time, because the session's end-of-turn delay and the interview's
    timers are measured in time and a compressed pause would merge two answers. The VAD and the
    audio clock see every sample either way.

    ``hold``: while it returns True (the agent is thinking or speaking), the file waits in a
    pause that has lasted ``hold_after_s`` (set it just above the silence that ends an answer)
    instead of running on, like an applicant who has finished and waits for the next question.
    Shorter pauses, inside an answer, never wait: waiting there would split the answer. The
    silence the file starts with waits too (for the greeting). Without ``hold`` the file plays
    on regardless (to test barge-in).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fast: bool = False,
        speed: float = 6.0,
        hold: Callable[[], bool] | None = None,
        hold_after_s: float = 1.5,
        silence_rms: float = 200.0,
        pause_frames: int = 15,
    ) -> None:
        super().__init__(label="WavAudioInput")
        samples, self.sample_rate = read_wav(path)
        self.path = Path(path)
        self.fast = fast
        self.speed = speed if fast else 1.0
        self.hold = hold
        self._frame_samples = self.sample_rate * FRAME_MS // 1000
        n = len(samples) // self._frame_samples
        frames = samples[: n * self._frame_samples].reshape(n, self._frame_samples)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) if n else np.zeros(0)
        run = np.zeros(n, dtype=np.int64)
        for i, quiet in enumerate(rms < silence_rms):
            run[i] = (run[i - 1] + 1 if i else 1) if quiet else 0
        self._frames = frames
        self._run = run
        self._pause = run >= pause_frames  # frame i sits inside a pause of >= 300 ms
        self.hold_after_s = hold_after_s
        self._silence = np.zeros(self._frame_samples, dtype=np.int16).tobytes()
        self._pos = 0
        self._due: float | None = None
        self._closed = False
        self.exhausted = asyncio.Event()
        self.frames_sent = 0
        self.held_frames = 0

    @property
    def duration_s(self) -> float:
        return len(self._frames) * FRAME_MS / 1000

    @property
    def position_s(self) -> float:
        return self._pos * FRAME_MS / 1000

    def follow(self, busy: Callable[[], bool], hold_after_s: float) -> None:
        """Wait in pauses while ``busy()`` (the session is thinking or speaking), like an
        applicant who has finished and waits for the next question; kept off when the file was
        given a ``hold`` of its own."""
        if self.hold is None:
            self.hold = busy
            self.hold_after_s = hold_after_s

    def _holdable(self, pos: int) -> bool:
        if self._run[pos] == pos + 1:  # still in the silence the file starts with
            return True
        return self._run[pos] * FRAME_MS >= self.hold_after_s * 1000

    async def aclose(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._due is None:
            self._due = now
        pace = 1.0
        if self._pos >= len(self._frames):
            self.exhausted.set()
            data = self._silence
        elif self._holdable(self._pos) and self.hold is not None and self.hold():
            self.held_frames += 1
            data = self._silence
        else:
            data = self._frames[self._pos].tobytes()
            if not self._pause[self._pos]:
                pace = 1.0 / self.speed
            self._pos += 1
        self._due = max(self._due, now - 0.2) + FRAME_MS / 1000 * pace
        if self._due > now:
            await asyncio.sleep(self._due - now)
        self.frames_sent += 1
        return rtc.AudioFrame(data, self.sample_rate, 1, self._frame_samples)


@dataclass
class _Segment:
    frames: deque[rtc.AudioFrame] = field(default_factory=deque)
    flushed: bool = False
    cleared: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class WavAudioOutput(io.AudioOutput):
    """Plays the agent's speech in real time (or ``speed`` times faster) into an optional WAV.

    The WAV is a timeline: silence while the agent is quiet, so it lines up with the input.
    ``playback_started`` fires as each segment's first frame plays and ``playback_finished``
    when its last has (``interrupted`` after ``clear_buffer``, i.e. barge-in).
    ``first_frame_times`` keeps the ``time.time()`` of every segment's first frame.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        sample_rate: int = 24_000,
        speed: float = 1.0,
    ) -> None:
        super().__init__(
            label="WavAudioOutput",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=sample_rate,
        )
        self.speed = speed
        self._writer = StreamingWavWriter(path, sample_rate) if path else None
        self._current: _Segment | None = None
        self._queue: asyncio.Queue[_Segment] = asyncio.Queue()
        self._pending: list[_Segment] = []
        self._task: asyncio.Task[None] | None = None
        self._t0: float | None = None
        self.first_frame_times: list[float] = []
        self.played_s = 0.0
        self.interruptions = 0

    def _ensure_task(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._playout())

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._ensure_task()
        seg = self._current
        if seg is None:
            seg = self._current = _Segment()
            self._pending.append(seg)
            self._queue.put_nowait(seg)
        if not seg.cleared:
            seg.frames.append(frame)
            seg.wake.set()

    def flush(self) -> None:
        super().flush()
        seg, self._current = self._current, None
        if seg is not None:
            seg.flushed = True
            seg.wake.set()

    def clear_buffer(self) -> None:
        for seg in self._pending:
            seg.cleared = True
            seg.frames.clear()
            seg.wake.set()

    def _pad_timeline(self) -> None:
        """Silence in the WAV for the time nothing played."""
        if self._writer is None:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        behind = (now - self._t0) * self.speed - self._writer.duration_s
        if behind > FRAME_MS / 1000:
            self._writer.write(b"\0\0" * int(behind * self._writer.sample_rate))

    async def _playout(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            seg = await self._queue.get()
            played = 0.0
            started = False
            due = loop.time()
            while not seg.cleared:
                if seg.frames:
                    frame = seg.frames.popleft()
                elif seg.flushed:
                    break
                else:
                    seg.wake.clear()
                    await seg.wake.wait()
                    due = max(due, loop.time())
                    continue
                if not started:
                    started = True
                    created = time.time()
                    self.first_frame_times.append(created)
                    self._pad_timeline()
                    self.on_playback_started(created_at=created)
                if self._writer is not None:
                    self._writer.write(frame)
                played += frame.duration
                self.played_s += frame.duration
                due += frame.duration / self.speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if seg in self._pending:
                self._pending.remove(seg)
            if seg.cleared:
                self.interruptions += 1
            self.on_playback_finished(playback_position=played, interrupted=seg.cleared)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._pad_timeline()
            self._writer.close()


def answers_wav(
    answers: list[str | None],
    out: str | os.PathLike[str],
    *,
    voice: str = "en-us",
    rate: int = 170,
    lead_s: float = 1.0,
    gap_s: float = 4.0,
    silent_answer_s: float = 30.0,
    sample_rate: int = 16_000,
) -> list[tuple[float, float]]:
    """Speak ``answers`` with espeak-ng into one WAV: lead silence, answer, gap, answer...

    ``None`` stands for an applicant who says nothing (``silent_answer_s`` of silence).
    Blocking. Returns each answer's (start, end) in seconds within the file.
    """
    import tempfile

    def silence(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * sample_rate), dtype=np.int16)

    parts = [silence(lead_s)]
    spans: list[tuple[float, float]] = []
    at = lead_s
    with tempfile.TemporaryDirectory(prefix="answers-") as tmp:
        for i, text in enumerate(answers):
            if text is None:
                clip = silence(silent_answer_s)
            else:
                raw = Path(tmp) / f"{i}.wav"
                render_with_espeak_binary(text, voice, rate, raw)
                data, src = read_wav(raw)
                clip = resample(data, src, sample_rate)
            spans.append((at, at + len(clip) / sample_rate))
            parts += [clip, silence(gap_s)]
            at += len(clip) / sample_rate + gap_s
    writer = StreamingWavWriter(out, sample_rate)
    writer.write(np.concatenate(parts).tobytes())
    writer.close()
    return spans
