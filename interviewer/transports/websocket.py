"""The browser's microphone and speaker over one WebSocket, as livekit-agents audio I/O.

:class:`WebSocketAudioInput` and :class:`WebSocketAudioOutput` are ``io.AudioInput`` /
``io.AudioOutput`` subclasses, so the very ``AgentSession`` that a LiveKit room drives in
production runs unchanged behind a plain FastAPI WebSocket. :class:`WebSocketTransport` owns the
socket: one reader that checks every message, one writer that serialises every send.

Wire protocol (one socket per interview tab):

- browser -> server, binary: little-endian Int16 PCM, mono, 16 kHz, about 100 ms per message.
- server -> browser, binary: the agent's Int16 PCM, at the rate announced by the ``segment``
  message before it.
- JSON both ways, always an object with a ``type``. Browser: ``hello`` (first message: a tab id),
  ``started`` / ``played`` (a segment began / finished playing: only then is the agent done
  speaking), ``repeat``, ``more_time``, ``continue``, ``ping``, ``integrity``. Server: ``segment`` /
  ``segment_end`` / ``clear`` around the audio, and whatever the application adds (state,
  captions, question i of n, timer, done, error) through :meth:`WebSocketTransport.send_json`
  or in step with the audio through :meth:`WebSocketAudioOutput.expect_line`.

A socket is an untrusted input: every message is size-, rate- and type-checked, and the first
violation closes that socket with a specific close code and one log line. Nothing is shared
between sockets, so a misbehaving one cannot affect another interview.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from livekit import rtc
from livekit.agents.voice import io
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketState

log = logging.getLogger(__name__)

INPUT_SAMPLE_RATE = 16_000
INPUT_FRAME_MS = 20


class CloseCode:
    """WebSocket close codes the page understands (4000-4999 are the application's own)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down
    UNSUPPORTED = 1003  # binary/text where the other was expected
    INVALID = 1007  # malformed payload (bad JSON, odd PCM length)
    POLICY = 1008  # rate limits, unknown message types
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012
    REPLACED = 4000  # the same tab reconnected; this older socket is dropped
    INVALID_LINK = 4001
    CONSENT_NEEDED = 4003
    OTHER_TAB = 4009
    FINISHED = 4010  # interview over, or link used/expired
    TIMEOUT = 4008  # no hello in time


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Per-socket budgets. The page sends ten 3,200-byte audio messages a second; a network
    stall followed by a burst of the backlog must fit in the bursts."""

    max_binary_bytes: int = 16_000  # 0.5 s of audio in one message
    max_text_bytes: int = 2_048
    binary_per_s: float = 25.0
    binary_burst: float = 150.0
    audio_bytes_per_s: float = 2.0 * INPUT_SAMPLE_RATE * 2  # twice real time, sustained
    audio_bytes_burst: float = 15.0 * INPUT_SAMPLE_RATE * 2  # 15 s of backlog at once
    text_per_s: float = 10.0
    text_burst: float = 40.0
    max_send_queue: int = 4_000
    hello_timeout_s: float = 10.0


class _Bucket:
    """Token bucket: ``rate`` per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, amount: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class ProtocolViolation(Exception):
    """The browser broke the protocol; the socket is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Disconnected(Exception):
    def __init__(self, code: int | None = None) -> None:
        super().__init__(f"client disconnected ({code})")
        self.code = code


# --- browser -> server messages ---------------------------------------------------------------


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Hello(_Msg):
    type: Literal["hello"]
    tab: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    sample_rate: Literal[16000] = 16000


class Started(_Msg):
    type: Literal["started"]
    segment: Annotated[int, Field(ge=0, le=1_000_000)]


class Played(_Msg):
    type: Literal["played"]
    segment: Annotated[int, Field(ge=0, le=1_000_000)]
    position: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 0.0


class Repeat(_Msg):
    type: Literal["repeat"]


class Request(_Msg):  # the page's "I need more time" and "I wasn't finished" buttons
    type: Literal["more_time", "continue"]


class Ping(_Msg):
    type: Literal["ping"]


class Integrity(_Msg):
    """What the page noticed (tab hidden, paste, ...): ``batch`` is checked by the application
    (``proctoring.browser``), which answers ``integrity_ack`` or ``integrity_error``; a bad
    batch is refused without closing the socket (an interview is never lost over a report)."""

    type: Literal["integrity"]
    batch: dict[str, Any]


ClientMessage = Annotated[
    Hello | Started | Played | Repeat | Request | Ping | Integrity, Field(discriminator="type")
]
Message = Hello | Started | Played | Repeat | Request | Ping | Integrity
_client_message: TypeAdapter[Message] = TypeAdapter(ClientMessage)


def parse_client_message(text: str) -> Message:
    """A validated browser message, or ProtocolViolation (never a bare exception)."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolViolation(CloseCode.INVALID, "not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ProtocolViolation(CloseCode.INVALID, "not a JSON object with a type")
    try:
        # python mode with strict=True: JSON numbers are int/float already; 1.0 is no segment.
        return _client_message.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        kind = str(raw["type"])[:32]
        raise ProtocolViolation(
            CloseCode.POLICY, f"bad {kind!r} message: {where} {first.get('msg', '')}"[:120]
        ) from None


# --- audio in ---------------------------------------------------------------------------------


class WebSocketAudioInput(io.AudioInput):
    """The browser microphone: PCM from the socket, cut into 20 ms frames for the session.

    Nothing is buffered before the session starts reading (audio from before the interview
    is not the interview). While it reads, a session that falls behind (an overloaded
    machine) gets the backlog late rather than never: an answer must not be lost to a slow
    moment. Only past ``max_backlog_s`` (about 2 MB a minute) does the oldest audio go.
    """

    def __init__(self, *, max_backlog_s: float = 60.0) -> None:
        super().__init__(label="WebSocketAudioInput")
        self.sample_rate = INPUT_SAMPLE_RATE
        self._frame_bytes = INPUT_SAMPLE_RATE * INPUT_FRAME_MS // 1000 * 2
        self._max_frames = int(max_backlog_s * 1000 / INPUT_FRAME_MS)
        self._frames: deque[bytes] = deque()
        self._partial = bytearray()
        self._wake = asyncio.Event()
        self._closed = False
        self._reading = False
        self.received_bytes = 0
        self.dropped_frames = 0
        self.last_push = time.monotonic()

    def push(self, pcm: bytes) -> None:
        self.last_push = time.monotonic()
        self.received_bytes += len(pcm)
        if self._closed or not self._reading:
            return
        self._partial += pcm
        n = len(self._partial) // self._frame_bytes
        for i in range(n):
            self._frames.append(
                bytes(self._partial[i * self._frame_bytes : (i + 1) * self._frame_bytes])
            )
        del self._partial[: n * self._frame_bytes]
        overflow = len(self._frames) - self._max_frames
        if overflow > 0:
            for _ in range(overflow):
                self._frames.popleft()
            if self.dropped_frames == 0:
                log.warning(
                    "audio input backlog over %d frames: dropping the oldest", self._max_frames
                )
            self.dropped_frames += overflow
        if n:
            self._wake.set()

    async def __anext__(self) -> rtc.AudioFrame:
        self._reading = True
        while not self._frames:
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        data = self._frames.popleft()
        return rtc.AudioFrame(data, INPUT_SAMPLE_RATE, 1, len(data) // 2)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def aclose(self) -> None:
        self.close()


# --- audio out --------------------------------------------------------------------------------


@dataclass
class _Segment:
    id: int
    sample_rate: int = 0
    duration: float = 0.0
    flushed_at: float | None = None
    started_at: float | None = None  # time.time() reported by the page
    cleared: bool = False
    finished: bool = False


@dataclass
class _Line:
    duration: float
    messages: list[dict[str, Any]] = field(default_factory=list)


class WebSocketAudioOutput(io.AudioOutput):
    """The browser speaker: the agent's PCM goes out at once, the page plays it and reports.

    The session believes the agent is speaking until ``on_playback_finished``; that is called
    when the page says a segment has ``played`` (or, for barge-in, at ``clear_buffer``). A page
    that never reports (suspended audio, a bug) would leave the agent "speaking" for ever, so a
    watchdog finishes a segment ``grace_s`` after it should have played, with a warning.
    """

    def __init__(
        self,
        send_json: Callable[[dict[str, Any]], None],
        send_bytes: Callable[[bytes], None],
        *,
        sample_rate: int | None = None,
        grace_s: float = 6.0,
    ) -> None:
        super().__init__(
            label="WebSocketAudioOutput",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=sample_rate,
        )
        self._send_json = send_json
        self._send_bytes = send_bytes
        self.grace_s = grace_s
        self._next_id = 0
        self._current: _Segment | None = None
        self._pending: dict[int, _Segment] = {}
        self._lines: deque[_Line] = deque()
        self._line_left = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self._last_finished = time.time()
        self.first_frame_times: list[float] = []
        self.segments_played = 0
        self.interruptions = 0
        self.watchdog_finishes = 0

    # -- lines: messages that must reach the page just before a line's first audio --

    def expect_line(self, duration_s: float, messages: list[dict[str, Any]]) -> None:
        """The next ``duration_s`` of captured audio is one line; ``messages`` (captions, the
        question on screen) go out right before its first frame, in step with the sound."""
        self._lines.append(_Line(max(0.0, duration_s), list(messages)))

    # -- io.AudioOutput --

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        seg = self._current
        if seg is None:
            self._next_id += 1
            seg = self._current = _Segment(self._next_id, frame.sample_rate)
            self._pending[seg.id] = seg
            self._send_json({"type": "segment", "segment": seg.id, "sample_rate": seg.sample_rate})
            self._ensure_watchdog()
        if seg.cleared:
            return
        if self._line_left <= 0.005 and self._lines:
            line = self._lines.popleft()
            self._line_left = line.duration
            for message in line.messages:
                self._send_json(message)
        self._line_left -= frame.duration
        seg.duration += frame.duration
        self._send_bytes(bytes(frame.data))

    def flush(self) -> None:
        super().flush()
        seg, self._current = self._current, None
        if seg is None or seg.cleared:
            return
        seg.flushed_at = time.time()
        self._send_json(
            {"type": "segment_end", "segment": seg.id, "duration": round(seg.duration, 3)}
        )

    def clear_buffer(self) -> None:
        """Barge-in: the page stops playing at once; every unfinished segment ends interrupted."""
        self._lines.clear()
        self._line_left = 0.0
        if not self._pending:
            return
        self._send_json({"type": "clear"})
        now = time.time()
        for seg in list(self._pending.values()):
            seg.cleared = True
            played = 0.0
            if seg.started_at is not None:
                played = min(seg.duration, max(0.0, now - seg.started_at))
            self._finish(seg, played, interrupted=True)

    # -- reports from the page --

    def started(self, segment: int) -> None:
        seg = self._pending.get(segment)
        if seg is None or seg.started_at is not None:
            return
        seg.started_at = time.time()
        self.first_frame_times.append(seg.started_at)
        self.on_playback_started(created_at=seg.started_at)

    def played(self, segment: int, position: float) -> None:
        seg = self._pending.get(segment)
        if seg is None or seg.flushed_at is None:
            return  # unknown, already finished (cleared, watchdog), or still being captured
        if seg.started_at is None:
            self.started(segment)
        self._finish(
            seg, min(position, seg.duration) if position else seg.duration, interrupted=False
        )

    def _finish(self, seg: _Segment, position: float, *, interrupted: bool) -> None:
        if seg.finished:
            return
        seg.finished = True
        self._pending.pop(seg.id, None)
        self._last_finished = time.time()
        if interrupted:
            self.interruptions += 1
        else:
            self.segments_played += 1
        self.on_playback_finished(playback_position=position, interrupted=interrupted)

    def close(self) -> None:
        """The page is gone: nothing more will play."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        for seg in list(self._pending.values()):
            seg.cleared = True
            self._finish(seg, 0.0, interrupted=True)

    # -- watchdog --

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while self._pending:
            await asyncio.sleep(1.0)
            if not self._pending:
                return
            oldest = min(self._pending.values(), key=lambda s: s.id)
            if oldest.flushed_at is None:
                continue
            if oldest.started_at is not None:
                due = oldest.started_at + oldest.duration + self.grace_s
            else:
                due = max(oldest.flushed_at, self._last_finished) + self.grace_s
            if time.time() > due:
                log.warning("the page did not report segment %d as played: finishing it", oldest.id)
                self.watchdog_finishes += 1
                self._finish(oldest, oldest.duration, interrupted=False)


# --- the socket -------------------------------------------------------------------------------


_CLOSE = object()


class WebSocketTransport:
    """One accepted socket: checked reads, serialised writes, and the audio objects.

    ``on_message`` receives every valid JSON message that the transport does not handle
    itself (``started``/``played`` go to the output, ``ping`` is answered).
    """

    def __init__(
        self, websocket: WebSocket, *, limits: Limits | None = None, label: str = ""
    ) -> None:
        self.ws = websocket
        self.limits = limits or Limits()
        self.label = label
        self.audio_input = WebSocketAudioInput()
        self.audio_output = WebSocketAudioOutput(self.send_json, self.send_bytes)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._binary = _Bucket(self.limits.binary_per_s, self.limits.binary_burst)
        self._audio = _Bucket(self.limits.audio_bytes_per_s, self.limits.audio_bytes_burst)
        self._text = _Bucket(self.limits.text_per_s, self.limits.text_burst)
        self.closed = False
        self.close_code: int | None = None
        self.last_message = time.monotonic()

    # -- sending --

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def send_json(self, message: dict[str, Any]) -> None:
        self._enqueue(json.dumps(message, separators=(",", ":")))

    def send_bytes(self, data: bytes) -> None:
        self._enqueue(data)

    def _enqueue(self, item: Any) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self.limits.max_send_queue:
            log.warning("%s: the page is not reading; closing", self.label)
            self.close(CloseCode.POLICY, "not reading")
            return
        self._queue.put_nowait(item)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    return
                if isinstance(item, tuple):  # (code, reason): close after what was queued
                    code, reason = item
                    if self.ws.application_state == WebSocketState.CONNECTED:
                        await self.ws.close(code, reason)
                    return
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_text(item)
        except Exception as err:  # the peer went away mid-send: nothing to tell it
            log.debug("%s: send failed: %s", self.label, err)
        finally:
            self.closed = True

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send what is queued, then close with ``code`` (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.audio_input.close()
        self.audio_output.close()
        self._queue.put_nowait((code, reason[:120]))
        if self._writer is None:
            self.start()

    async def wait_closed(self, timeout: float = 5.0) -> None:
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)

    # -- receiving --

    async def receive(self) -> Message | bytes:
        """The next checked message: PCM bytes or a parsed JSON message.

        Raises Disconnected when the page goes, ProtocolViolation when it misbehaves.
        """
        try:
            message = await self.ws.receive()
        except RuntimeError:
            raise Disconnected() from None
        if message["type"] == "websocket.disconnect":
            raise Disconnected(message.get("code"))
        self.last_message = time.monotonic()
        data, text = message.get("bytes"), message.get("text")
        limits = self.limits
        if data is not None:
            if len(data) > limits.max_binary_bytes:
                raise ProtocolViolation(CloseCode.TOO_BIG, f"audio message of {len(data)} bytes")
            if not data or len(data) % 2:
                raise ProtocolViolation(CloseCode.INVALID, "audio must be whole Int16 samples")
            if not self._binary.take() or not self._audio.take(len(data)):
                raise ProtocolViolation(CloseCode.POLICY, "audio faster than real time")
            return data
        if text is not None:
            if len(text) > limits.max_text_bytes:
                raise ProtocolViolation(CloseCode.TOO_BIG, f"text message of {len(text)} chars")
            if not self._text.take():
                raise ProtocolViolation(CloseCode.POLICY, "too many messages")
            return parse_client_message(text)
        raise ProtocolViolation(CloseCode.UNSUPPORTED, "empty message")

    async def expect_hello(self) -> Hello:
        try:
            first = await asyncio.wait_for(self.receive(), self.limits.hello_timeout_s)
        except TimeoutError:
            raise ProtocolViolation(CloseCode.TIMEOUT, "no hello") from None
        if not isinstance(first, Hello):
            raise ProtocolViolation(CloseCode.POLICY, "the first message must be hello")
        return first

    async def run(
        self,
        on_message: Callable[[Message], Awaitable[None] | None],
    ) -> None:
        """Read until the page goes or misbehaves; a violation closes the socket and is logged,
        a disconnect just returns."""
        try:
            while not self.closed:
                item = await self.receive()
                if isinstance(item, bytes):
                    self.audio_input.push(item)
                elif isinstance(item, Started):
                    self.audio_output.started(item.segment)
                elif isinstance(item, Played):
                    self.audio_output.played(item.segment, item.position)
                elif isinstance(item, Ping):
                    self.send_json({"type": "pong"})
                else:
                    result = on_message(item)
                    if result is not None:
                        await result
        except Disconnected as gone:
            self.closed = True
            self.close_code = gone.code
            self.audio_input.close()
            self.audio_output.close()
            self._queue.put_nowait(_CLOSE)
        except ProtocolViolation as bad:
            self.violation(bad)

    def violation(self, bad: ProtocolViolation) -> None:
        client = self.ws.client
        who = f"{client.host}:{client.port}" if client else "?"
        log.warning(
            "%s from %s: closing (%d): %s", self.label or "websocket", who, bad.code, bad.reason
        )
        self.close(bad.code, bad.reason)
