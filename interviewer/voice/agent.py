"""The livekit Agent that runs the interview core (:mod:`interviewer.interview`) in an AgentSession.

Turns are scripted, not generated: the session is given a placeholder LLM (:class:`ScriptedLLM`)
only so that it runs :meth:`InterviewAgent.llm_node` at the end of each user turn; the node hands
the answer to the core and yields the lines the core wants said. Lines that are not replies
(greeting, re-prompts, time warnings, the cut-off) go out with ``session.say``.

Audio mode adds :class:`AnswerCapture`, which sits in the STT node and therefore sees every
input frame in order. It keeps one recording per question (written to disk as frames arrive,
through a writer the caller supplies), cuts the applicant's speech into segments with the VAD and
transcribes each segment while the applicant goes on speaking, so the transcript is ready
moments after the answer ends. Because segments are cut from the current question's own audio,
a transcript can only ever land on the question whose recording holds its audio.

Time limits and the no-answer timeout run on the applicant's audio clock (samples received
since the question was spoken), not on the wall clock: in a room or a browser the two are the
same, and a WAV fed faster than real time keeps the interview's timing intact.

Nothing here knows about rooms, WebSockets or files: the caller wires inputs, outputs, the
recording writer and persistence (see :mod:`interviewer.voice.session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import NOT_GIVEN, Agent, llm, stt, utils, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, NotGivenOr
from livekit.agents.voice import ModelSettings, SpeechHandle

from interviewer.interview import Action, Ask, End, InterviewFlow, Record, Say

log = logging.getLogger(__name__)

INSTRUCTIONS = "Scripted interviewer: every line comes from the interview core, never a model."


# --- the placeholder LLM ---------------------------------------------------------------------


class ScriptedLLM(llm.LLM):
    """Stands in for a model so that the session runs ``llm_node``; it is never asked to chat."""

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "interviewer"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        raise RuntimeError("ScriptedLLM has no model: InterviewAgent.llm_node answers instead")


# --- what the agent hands to persistence -----------------------------------------------------


@dataclass
class AnswerAudio:
    """What the capture knows about one answer; times in seconds from the recording's start."""

    path: Any = None  # whatever the writer factory returned as the file's location
    words: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    speech_duration_s: float = 0.0
    onset_latency_s: float | None = None


@dataclass
class Step:
    """One transition of the interview, to persist atomically before the next line is spoken."""

    records: list[tuple[Record, AnswerAudio | None]]
    state: dict[str, Any]
    next_question_index: int
    finished: bool
    event: str


class Persist(Protocol):
    def __call__(self, step: Step) -> Awaitable[None]: ...


class AudioWriter(Protocol):
    """Receives one recording's frames as they arrive (see ``voice.io.StreamingWavWriter``)."""

    @property
    def location(self) -> Any: ...

    def write(self, frame: rtc.AudioFrame) -> None: ...

    def close(self) -> None: ...


OpenWriter = Callable[[Ask], AudioWriter | None]


# --- the audio side: recordings, segments, transcripts ---------------------------------------


MERGE_GAP_S = 2.0
"""Segments at most this far apart may share one transcription when whisper is behind."""
MAX_MERGED_S = 25.0
"""...as long as together they stay inside whisper's 30 s window."""


@dataclass
class Segment:
    """A stretch of speech in one recording, transcribed on its own."""

    start_s: float
    end_s: float | None = None
    text: str = ""
    words: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    taken: bool = False
    speech_end_wall: float | None = None  # time.time() when the speech ended (last segment)
    transcribed_wall: float | None = None
    audio: bytes = b""  # its PCM, read when its transcription starts
    started: bool = False  # its transcription has started: nothing more can join it
    merged: int = 1  # how many VAD segments it holds
    sealed: bool = False  # a time limit cut the answer after it: nothing more may join it
    claimed: bool = False
    """A turn being taken waits for its words: when they come, they are that turn's, not the
    news of a new one (which would make the session cut off the reply it is about to say)."""


@dataclass
class Recording:
    """The applicant's audio while one question is out (from when it is put to the answer)."""

    ask: Ask
    epoch: int
    writer: AudioWriter | None
    started_wall: float = field(default_factory=time.time)
    sample_rate: int = 0
    samples: int = 0
    stream_start: int = 0  # index in the capture's sample stream of this recording's first sample
    pcm: bytearray = field(default_factory=bytearray)
    segments: list[Segment] = field(default_factory=list)
    open_segment: Segment | None = None
    prompt_end_s: float | None = None
    listening_since_s: float | None = None
    last_speech_end_s: float | None = None
    finished: bool = False

    vad_samples: float = 0.0  # how far into this recording the VAD has looked

    @property
    def time_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def vad_time_s(self) -> float:
        """The audio clock the timers use: the VAD may lag the input (a loaded machine, a
        fast WAV) and a timer must not decide on speech it has not looked at yet."""
        return self.vad_samples / self.sample_rate if self.sample_rate else 0.0


@dataclass
class Turn:
    """The words of one user turn (segments not yet taken), for the core and for storage."""

    text: str
    words: list[dict[str, Any]]
    segments: list[Segment]


class AnswerCapture:
    """Records, segments and transcribes the applicant's audio, one recording per question.

    ``soft_segment_s``: past this length a segment is cut at the next dip in the VAD's speech
    probability (a breath between words), so a long answer is transcribed while it is spoken;
    ``hard_segment_s`` cuts regardless.
    """

    def __init__(
        self,
        *,
        vad: vad.VAD,
        stt: stt.STT,
        open_writer: OpenWriter | None = None,
        prefix_padding_s: float = 0.3,
        tail_s: float = 0.2,
        soft_segment_s: float = 8.0,
        hard_segment_s: float = 20.0,
    ) -> None:
        self._vad = vad
        self._stt = stt
        self._open_writer = open_writer
        self.prefix_padding_s = prefix_padding_s
        self.tail_s = tail_s
        self.soft_segment_s = soft_segment_s
        self.hard_segment_s = hard_segment_s
        self.current: Recording | None = None
        self.history: list[Recording] = []
        self.stream_samples = 0
        self.sample_rate = 0
        self.speaking = False
        self._events: asyncio.Queue[tuple[Segment, stt.SpeechEvent]] | None = None
        self._on_tick: Callable[[], None] | None = None
        self._on_speech: Callable[[bool], None] | None = None

    # -- wiring --

    def set_listeners(
        self, *, on_tick: Callable[[], None], on_speech: Callable[[bool], None]
    ) -> None:
        self._on_tick, self._on_speech = on_tick, on_speech

    # -- recordings --

    def begin(self, ask: Ask, epoch: int) -> Recording:
        """Route the audio from now on to ``ask``'s recording (the same one on a repeat)."""
        cur = self.current
        if cur is not None and not cur.finished and cur.ask.key == ask.key:
            cur.ask, cur.epoch = ask, epoch
            cur.prompt_end_s = None
            cur.listening_since_s = None
            return cur
        if cur is not None and not cur.finished:
            self._close(cur)
        writer = self._open_writer(ask) if self._open_writer else None
        rec = Recording(ask=ask, epoch=epoch, writer=writer, stream_start=self.stream_samples)
        rec.sample_rate = self.sample_rate
        if self.speaking:  # speech running across the switch starts a segment here
            rec.open_segment = Segment(start_s=0.0)
        self.current = rec
        self.history.append(rec)
        return rec

    def _close(self, rec: Recording) -> None:
        if rec.finished:
            return
        rec.finished = True
        if rec.open_segment is not None:
            rec.open_segment = None  # speech past the switch belongs to the next question
        if rec.writer is not None:
            try:
                rec.writer.close()
            except OSError:
                log.exception("could not close the recording of %s", rec.ask.key)
        rec.pcm = bytearray()

    def stop(self) -> None:
        """No more recordings (the interview ended)."""
        if self.current is not None:
            self._close(self.current)
        self.current = None

    async def take_turn(self, *, cut: bool = False) -> Turn:
        """The transcribed words of the current recording not taken yet, once all are ready.

        ``cut`` also closes the segment in progress at this instant (time limit reached): only
        what was said before it counts, however long the transcription takes.
        """
        rec = self.current
        if rec is None:
            return Turn("", [], [])
        sealed: list[Segment] | None = None
        if cut:
            if rec.open_segment is not None:
                self._end_segment(rec, rec.vad_time_s, speech_end_wall=time.time())
            sealed = [s for s in rec.segments if not s.taken]
            for s in sealed:
                s.sealed = True  # words after the cut-off never join them
        while True:  # a segment may end while we wait for the others: wait for it too
            for s in sealed if sealed is not None else rec.segments:
                if not s.taken and s.end_s is not None:
                    s.claimed = True
            pending = [
                s.task
                for s in (sealed if sealed is not None else rec.segments)
                if not s.taken and s.task and not s.task.done()
            ]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
        segments = [
            s
            for s in (sealed if sealed is not None else rec.segments)
            if not s.taken and s.end_s is not None
        ]
        for s in segments:
            s.taken = True
        text = " ".join(s.text for s in segments if s.text).strip()
        words = [w for s in segments for w in s.words]
        return Turn(text, words, segments)

    async def wait_for_silence(
        self, seconds: float, *, poll_s: float = 0.05, give_up_s: float = 20.0
    ) -> None:
        """Until the VAD has heard ``seconds`` of silence after the last speech.

        The session decides the end of a turn on the wall clock; when its VAD lags the input
        (a loaded machine, a WAV played fast) it can decide on stale news while the applicant
        is still talking. The capture's own VAD clock settles it. A VAD that stops answering
        (input gone) is not waited for beyond ``give_up_s``.
        """
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            rec = self.current
            if rec is None or rec.finished:
                return
            if not self.speaking and rec.open_segment is None:
                last = rec.last_speech_end_s
                if last is None or rec.vad_time_s - last >= seconds:
                    return
            await asyncio.sleep(poll_s)

    def transcribing(self) -> bool:
        """Speech of the current recording is still being transcribed."""
        rec = self.current
        return rec is not None and any(
            s.task is not None and not s.task.done() for s in rec.segments if not s.taken
        )

    def has_untaken_words(self) -> bool:
        rec = self.current
        return rec is not None and any(s.text and not s.taken for s in rec.segments)

    def finish(self, turn: Turn) -> AnswerAudio:
        """Close the current recording and describe the answer ``turn`` holds."""
        rec = self.current
        if rec is None:
            return AnswerAudio()
        self._close(rec)
        onset = None
        if turn.segments and rec.prompt_end_s is not None:
            onset = round(max(0.0, turn.segments[0].start_s - rec.prompt_end_s), 3)
        speech = sum((s.end_s or s.start_s) - s.start_s for s in turn.segments)
        return AnswerAudio(
            path=rec.writer.location if rec.writer is not None else None,
            words=turn.words,
            started_at=datetime.fromtimestamp(rec.started_wall, UTC),
            ended_at=datetime.now(UTC),
            speech_duration_s=round(speech, 3),
            onset_latency_s=onset,
        )

    # -- the STT node --

    async def run(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[stt.SpeechEvent]:
        """Consume input frames; yield FINAL_TRANSCRIPTs of the current question's speech."""
        events: asyncio.Queue[tuple[Segment, stt.SpeechEvent]] = asyncio.Queue()
        self._events = events
        vad_stream = self._vad.stream()
        base = self.stream_samples  # the VAD stream counts from zero

        async def forward() -> None:
            async for frame in audio:
                self._push(frame)
                vad_stream.push_frame(frame)
            vad_stream.end_input()

        async def segment() -> None:
            async for ev in vad_stream:
                self._on_vad(ev, base)

        tasks = [asyncio.create_task(forward()), asyncio.create_task(segment())]
        try:
            while True:
                get = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({get, tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    seg, event = get.result()
                    if not seg.claimed:  # a turn may have claimed it while it waited here
                        yield event
                    continue
                get.cancel()
                break
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()
            self.speaking = False
            if self.current is not None:
                self.current.open_segment = None
            if self._events is events:
                self._events = None

    def _push(self, frame: rtc.AudioFrame) -> None:
        if not self.sample_rate:
            self.sample_rate = frame.sample_rate
        data = bytes(frame.data)
        n = frame.samples_per_channel
        if frame.num_channels > 1:  # keep the recordings mono
            import numpy as np

            mono = np.frombuffer(data, dtype="int16").reshape(-1, frame.num_channels).mean(axis=1)
            data = mono.astype("int16").tobytes()
            frame = rtc.AudioFrame(data, frame.sample_rate, 1, n)
        self.stream_samples += n
        rec = self.current
        if rec is not None and not rec.finished:
            if not rec.sample_rate:
                rec.sample_rate = frame.sample_rate
            rec.samples += n
            rec.pcm += data
            if rec.writer is not None:
                try:
                    rec.writer.write(frame)
                except OSError:
                    log.exception("could not write the recording of %s", rec.ask.key)
                    rec.writer = None

    def _to_rec_s(self, rec: Recording, stream_sample: float) -> float:
        return max(0.0, (stream_sample - rec.stream_start) / rec.sample_rate)

    def _on_vad(self, ev: vad.VADEvent, base: int) -> None:
        rec = self.current
        if not self.sample_rate:
            return
        ratio = self.sample_rate / 16_000  # silero counts samples at its inference rate
        at = base + ev.samples_index * ratio  # stream position of this event
        if rec is not None and not rec.finished:
            rec.vad_samples = max(rec.vad_samples, at - rec.stream_start)
        if ev.type == vad.VADEventType.START_OF_SPEECH:
            self.speaking = True
            if rec is not None and not rec.finished and rec.sample_rate:
                start = at - (ev.speech_duration + self.prefix_padding_s) * self.sample_rate
                if rec.open_segment is None:
                    rec.open_segment = Segment(start_s=self._to_rec_s(rec, start))
            if self._on_speech is not None:
                self._on_speech(True)
        elif ev.type == vad.VADEventType.END_OF_SPEECH:
            self.speaking = False
            if rec is not None and not rec.finished and rec.open_segment is not None:
                end = at - (ev.silence_duration - self.tail_s) * self.sample_rate
                wall = time.time() - ev.silence_duration
                self._end_segment(rec, self._to_rec_s(rec, end), speech_end_wall=wall)
                rec.last_speech_end_s = self._to_rec_s(rec, at) - ev.silence_duration
            if self._on_speech is not None:
                self._on_speech(False)
        elif ev.type == vad.VADEventType.INFERENCE_DONE:
            if self._on_tick is not None:
                self._on_tick()  # the timers' clock moved
            seg = rec.open_segment if rec is not None and not rec.finished else None
            if seg is None or rec is None:
                return
            pos = self._to_rec_s(rec, at)
            length = pos - seg.start_s
            if length >= self.hard_segment_s or (
                length >= self.soft_segment_s and ev.probability < 0.5
            ):
                self._end_segment(rec, pos, speech_end_wall=None)
                rec.open_segment = Segment(start_s=pos)

    def _pcm(self, rec: Recording, start_s: float, end_s: float) -> bytes:
        lo = int(start_s * rec.sample_rate) * 2
        hi = int(end_s * rec.sample_rate) * 2
        return bytes(rec.pcm[lo:hi])

    def _end_segment(self, rec: Recording, end_s: float, *, speech_end_wall: float | None) -> None:
        """Queue a finished segment's transcription, one at a time per recording.

        Whisper's cost per call hardly depends on the length of the audio (openai-whisper
        always encodes a 30 s window), so when it falls behind (a busy machine, several
        interviews on one model) a segment that ends while the previous one is still waiting
        joins it: one call for both, instead of a queue that grows with every pause and delays
        the transcript, and so the next question, by one call per pause. On a machine that
        keeps up nothing is waiting and every segment is transcribed as soon as it ends.
        """
        seg = rec.open_segment
        rec.open_segment = None
        if seg is None:
            return
        seg.end_s = min(max(end_s, seg.start_s), rec.time_s)
        seg.speech_end_wall = speech_end_wall
        pcm = self._pcm(rec, seg.start_s, seg.end_s)
        if len(pcm) < rec.sample_rate * 2 * 0.1:  # under 100 ms: a click, not words
            seg.task = None
            rec.segments.append(seg)
            return
        last = next((s for s in reversed(rec.segments) if s.task is not None), None)
        if (
            last is not None
            and not last.started
            and not last.taken
            and not last.sealed
            and not last.task.done()  # type: ignore[union-attr]
            and last.end_s is not None
            and seg.start_s - last.end_s <= MERGE_GAP_S
            and seg.end_s - last.start_s <= MAX_MERGED_S
        ):
            last.end_s = seg.end_s
            last.speech_end_wall = speech_end_wall or last.speech_end_wall
            last.audio = self._pcm(rec, last.start_s, seg.end_s)
            last.merged += 1
            return
        seg.audio = pcm
        before = last.task if last is not None and not last.task.done() else None  # type: ignore[union-attr]
        rec.segments.append(seg)
        seg.task = asyncio.create_task(self._transcribe(rec, seg, before))

    async def _transcribe(
        self, rec: Recording, seg: Segment, before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await asyncio.wait({before})  # its outcome is its own business
        seg.started = True  # from here on its audio is fixed
        frame = rtc.AudioFrame(seg.audio, rec.sample_rate, 1, len(seg.audio) // 2)
        seg.audio = b""
        try:
            ev = await self._stt.recognize(buffer=frame)
        except Exception:
            log.exception("transcription failed for a segment of %s", rec.ask.key)
            return
        seg.transcribed_wall = time.time()
        if not ev.alternatives:
            return
        alt = ev.alternatives[0]
        seg.text = " ".join(alt.text.split())
        for w in alt.words or []:
            start = float(w.start_time) if utils.is_given(w.start_time) else 0.0
            end = float(w.end_time) if utils.is_given(w.end_time) else start
            prob = float(w.confidence) if utils.is_given(w.confidence) else 0.0
            seg.words.append(
                {
                    "word": str(w).strip(),
                    "start": round(seg.start_s + start, 3),
                    "end": round(seg.start_s + end, 3),
                    "probability": round(prob, 4),
                }
            )
        # only the question still listening hears about it: a late transcript of a finished
        # question must not become a turn of the next one, nor words a turn already waits for
        if seg.text and not rec.finished and not seg.claimed and self._events is not None:
            self._events.put_nowait(
                (
                    seg,
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                        alternatives=[stt.SpeechData(language=alt.language, text=seg.text)],
                    ),
                )
            )


# --- the agent -------------------------------------------------------------------------------


class InterviewAgent(Agent):
    """Carries out the core's actions in a session; one instance per interview.

    ``persist`` is awaited with every :class:`Step` before the next line is spoken, so what the
    applicant hears never runs ahead of what is stored. ``capture`` is None in text mode.
    ``no_answer_timeout_s`` is the silence after a question (or its re-prompt) that counts as
    no answer; ``silence_threshold_s`` the silence that ends an answer (the session's turn
    detection uses it too; the capture re-checks it on its own VAD clock).
    """

    def __init__(
        self,
        flow: InterviewFlow,
        *,
        persist: Persist | None = None,
        capture: AnswerCapture | None = None,
        no_answer_timeout_s: float = 8.0,
        silence_threshold_s: float = 1.2,
        log_name: str = "interview",
    ) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.log_name = log_name  # names this interview in the log
        self.flow = flow
        self.capture = capture
        self.no_answer_timeout_s = no_answer_timeout_s
        self.silence_threshold_s = silence_threshold_s
        self._persist = persist
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._ask: Ask | None = None
        self._fired: set[tuple[int, str]] = set()
        self._prompt_spoken = False
        self.ended = asyncio.Event()
        self._ending = False
        self.steps: list[Step] = []
        self.said: list[str] = []
        if capture is not None:
            capture.set_listeners(on_tick=self._tick, on_speech=self._on_user_speech)

    # -- session hooks --

    async def on_enter(self) -> None:
        self.session.on("agent_state_changed", self._on_agent_state)
        async with self._lock:
            actions = self.flow.start()
            texts = await self._apply(actions, event="start")
        self._end_after(self._say(texts))

    async def on_exit(self) -> None:
        self.session.off("agent_state_changed", self._on_agent_state)

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterator[str]:
        """The end of a user turn: hand the answer to the core, yield what it wants said."""
        if self.capture is not None:
            # cancellable: if the applicant speaks again, the session interrupts this reply
            # and nothing has been decided yet
            await self.capture.wait_for_silence(self.silence_threshold_s * 0.9)
        decided = asyncio.ensure_future(self._answer_turn(chat_ctx))
        try:
            texts = await asyncio.shield(decided)
        except asyncio.CancelledError:
            # the answer is (being) stored and the core has moved on: its lines must still be
            # said, or the applicant would never hear the next question
            decided.add_done_callback(self._say_late)
            raise
        if self.flow.finished:
            self._end_after(self.session.current_speech)
        for text in texts:
            yield text + " "

    async def _answer_turn(self, chat_ctx: llm.ChatContext) -> list[str]:
        async with self._lock:
            if self.capture is not None:
                turn = await self.capture.take_turn()
                log.debug("%s: end of turn, %d words", self.log_name, len(turn.text.split()))
                if not turn.text:
                    return []  # words from a question already closed, or only noise
                actions = self.flow.answer(turn.text)
            else:
                turn = None
                actions = self.flow.answer(_last_user_text(chat_ctx))
            return await self._apply(actions, event="answer", turn=turn)

    def _say_late(self, decided: asyncio.Future[list[str]]) -> None:
        if decided.cancelled() or decided.exception() is not None:
            return
        with contextlib.suppress(RuntimeError):  # the session may be closing
            self._end_after(self._say(decided.result()))

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterator[rtc.AudioFrame]:
        """One synthesis per line, so every prerendered line is a cache hit."""
        engine = self.session.tts
        if engine is None:
            return
        async for line in text:
            if not line.strip():
                continue
            async with engine.synthesize(line.strip()) as stream:
                async for ev in stream:
                    yield ev.frame

    def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent]:
        if self.capture is None:
            return Agent.default.stt_node(self, audio, model_settings)
        return self.capture.run(audio)

    # -- requests from the transport --

    async def repeat_question(self) -> str:
        """Say the pending question again (the page's "repeat the question" button).

        The same as asking aloud, without a turn: nothing is recorded, the answer's recording
        goes on, the line in progress is cut short. Returns "ok", "none" (no question is
        waiting for an answer) or "limit" (repeated ``MAX_REPEATS`` times already: the
        transport tells the applicant to answer as best they can).
        """
        async with self._lock:
            if self.flow.finished or self.flow.current is None:
                return "none"
            actions = self.flow.repeat()
            if not actions:
                return "limit"
            texts = await self._apply(actions, event="repeat")
        with contextlib.suppress(RuntimeError):  # nothing to interrupt, or the session closing
            self.session.interrupt()
        self._say(texts)
        return "ok"

    # -- timer events (also callable directly, e.g. from text-mode tests) --

    async def silence_timeout(self) -> SpeechHandle | None:
        return await self._timer_event("silence", self._epoch, ("direct", "silence"))

    async def time_warning(self) -> SpeechHandle | None:
        return await self._timer_event("warning", self._epoch, ("direct", "warning"))

    async def time_up(self) -> SpeechHandle | None:
        return await self._timer_event("time_up", self._epoch, ("direct", "time_up"))

    async def _timer_event(
        self, kind: str, epoch: int, key: tuple[Any, str]
    ) -> SpeechHandle | None:
        """Returns the speech it started, if any."""
        log.debug("%s: timer %s (epoch %s, now %s)", self.log_name, kind, epoch, self._epoch)
        async with self._lock:
            if epoch != self._epoch or self.flow.finished:
                return None  # the question it was for is gone
            turn: Turn | None = None
            if kind == "silence":
                if self.capture is not None and self.capture.transcribing():
                    self._fired.discard(key)  # look again once the words are in
                    return None
                if self.capture is not None and self.capture.has_untaken_words():
                    # words the session never turned into a turn (it was speaking over them):
                    # the long silence after them ends the answer
                    turn = await self.capture.take_turn()
                    actions = self.flow.answer(turn.text)
                else:
                    actions = self.flow.silence_timeout()
            elif kind == "warning":
                actions = self.flow.time_warning()
            else:
                if self.capture is not None:
                    turn = await self.capture.take_turn(cut=True)
                    text = turn.text
                else:
                    text = ""
                actions = self.flow.time_up(text)
            texts = await self._apply(actions, event=kind, turn=turn)
            if kind == "time_up" and self.capture is not None:
                with contextlib.suppress(RuntimeError):
                    self.session.clear_user_turn()  # its words are recorded already
        # the cut-off must be heard: the applicant is probably still talking
        handle = self._say(texts, allow_interruptions=kind != "time_up")
        self._end_after(handle)
        return handle

    # -- carrying out actions --

    async def _apply(
        self, actions: list[Action], *, event: str, turn: Turn | None = None
    ) -> list[str]:
        """Record, persist and route audio for ``actions``; return the lines to speak."""
        records: list[tuple[Record, AnswerAudio | None]] = []
        texts: list[str] = []
        for action in actions:
            if isinstance(action, Record):
                audio = None
                if self.capture is not None:
                    audio = self.capture.finish(turn or Turn("", [], []))
                records.append((action, audio))
            elif isinstance(action, Ask):
                self._epoch += 1
                self._ask = action
                self._prompt_spoken = False
                if self.capture is not None:
                    self.capture.begin(action, self._epoch)
                texts.append(action.text)
            elif isinstance(action, Say):
                rec = self.capture.current if self.capture is not None else None
                if action.kind == "reprompt" and rec is not None:
                    rec.listening_since_s = None
                texts.append(action.text)
            elif isinstance(action, End):
                if self.capture is not None:
                    self.capture.stop()
                self._ask = None
        if not actions:
            return texts
        step = Step(
            records=records,
            state=self.flow.state,
            next_question_index=self.flow.next_question_index,
            finished=self.flow.finished,
            event=event,
        )
        self.steps.append(step)
        if self._persist is not None:
            await self._persist(step)
        self.said.extend(texts)
        return texts

    def _say(self, texts: list[str], *, allow_interruptions: bool = True) -> SpeechHandle | None:
        if not texts:
            return None

        async def lines() -> AsyncIterator[str]:
            for text in texts:
                yield text + " "

        return self.session.say(lines(), allow_interruptions=allow_interruptions)

    def _end_after(self, speech: SpeechHandle | None) -> None:
        """Once the interview is over, set ``ended`` when its last line has played."""
        if not self.flow.finished or self._ending:
            return
        self._ending = True

        async def wait() -> None:
            if speech is not None:
                await speech.wait_for_playout()

        task = asyncio.create_task(wait())
        task.add_done_callback(lambda _t: self.ended.set())

    # -- audio clock: prompt end, time limit, no answer --

    def _on_agent_state(self, ev: Any) -> None:
        rec = self.capture.current if self.capture is not None else None
        log.debug(
            "%s: agent %s -> %s; question %s, epoch %s, prompt spoken %s",
            self.log_name,
            ev.old_state,
            ev.new_state,
            rec.ask.question_id if rec is not None else None,
            self._epoch,
            self._prompt_spoken,
        )
        if ev.new_state == "speaking":
            self._prompt_spoken = True
            if rec is not None:
                rec.listening_since_s = None
        elif ev.old_state == "speaking" and rec is not None and not rec.finished:
            rec.listening_since_s = rec.time_s
            if rec.prompt_end_s is None and self._prompt_spoken:
                rec.prompt_end_s = rec.time_s
            self._tick()

    def _on_user_speech(self, speaking: bool) -> None:
        """The applicant started or stopped speaking (VAD); the timers read it on each frame."""
        if speaking:
            self._tick()

    def _tick(self) -> None:
        """Called as the VAD advances: fire the timers that are due on the audio clock."""
        capture, ask = self.capture, self._ask
        if capture is None or ask is None or self.flow.finished:
            return
        rec = capture.current
        if rec is None or rec.finished or rec.epoch != self._epoch or rec.prompt_end_s is None:
            return
        now = rec.vad_time_s
        elapsed = now - rec.prompt_end_s
        # an applicant who has stopped talking and whose words are still being transcribed has
        # finished in time: the limit is on their speaking, not on our transcription
        finished = not capture.speaking and (capture.transcribing() or capture.has_untaken_words())
        if elapsed >= ask.time_limit_s and not finished:
            self._fire("time_up")
        elif elapsed >= ask.warning_at_s and not finished:
            self._fire("warning")
        if rec.listening_since_s is None or capture.speaking or capture.transcribing():
            return
        quiet_from = max(rec.listening_since_s, rec.last_speech_end_s or 0.0)
        if now - quiet_from >= self.no_answer_timeout_s:
            self._fire("silence", repeatable=True, at=quiet_from)

    def _fire(self, kind: str, *, repeatable: bool = False, at: float = 0.0) -> None:
        """Start the timer event ``kind`` once per question (per quiet spell for silence)."""
        key = (self._epoch, f"{kind}@{at:.2f}" if repeatable else kind)
        if key in self._fired:
            return
        self._fired.add(key)
        task = asyncio.create_task(self._timer_event(kind, self._epoch, key))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("interview timer event failed", exc_info=task.exception())


def _last_user_text(chat_ctx: llm.ChatContext) -> str:
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            return item.text_content or ""
    return ""
