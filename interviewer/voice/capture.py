"""The applicant's side of the audio: one recording per question, cut into segments, transcribed.

:class:`AnswerCapture` sits in the agent's STT node (:meth:`InterviewAgent.stt_node`) and
therefore sees every input frame in order. It keeps one recording per question (written to disk
as frames arrive, through a writer the caller supplies), cuts the applicant's speech into
segments with the VAD and transcribes each segment while the applicant goes on speaking, so the
transcript is ready moments after the answer ends. Because segments are cut from the current
question's own audio, a transcript can only ever land on the question whose recording holds its
audio. livekit-agents keeps this bookkeeping (``audio_recognition.py``) apart from its agent too.

The stored file of an answer starts :data:`PRE_SPEECH_S` before the applicant's first speech,
not when the question went out (the whole recording is kept in memory for the segments anyway),
and an answer the applicant takes up again ("I wasn't finished") is written as the earlier
file's audio followed by the new speech, its words shifted to match.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import stt, utils, vad

from interviewer.interview import Ask
from interviewer.voice.stt import Word, join_pieces, join_text, prompting
from interviewer.voice.transcription_queue import AWAITED

log = logging.getLogger(__name__)


@dataclass
class AnswerAudio:
    """What the capture knows about one answer; word times in seconds from its file's start."""

    path: Any = None  # whatever the writer factory returned as the file's location
    words: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    speech_duration_s: float = 0.0
    onset_latency_s: float | None = None


class AudioWriter(Protocol):
    """Receives one recording's frames as they arrive (see ``voice.io.StreamingWavWriter``)."""

    @property
    def location(self) -> Any: ...

    def write(self, frame: rtc.AudioFrame) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None:
        """Close and delete what was written: the recording held no answer after all."""
        ...


OpenWriter = Callable[[Ask], AudioWriter | None]
AnswerContext = Callable[[Ask], str | None]
"""The words whisper reads before an answer to this question (``voice/context.py``)."""


# --- the audio side: recordings, segments, transcripts ---------------------------------------


MERGE_GAP_S = 2.0
"""Segments at most this far apart may share one transcription when whisper is behind."""
MAX_MERGED_S = 25.0
"""...as long as together they stay inside whisper's 30 s window."""
PRE_SPEECH_S = 0.5
"""How much of the audio before the first speech an answer's file keeps."""


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
    pauses: list[float] = field(default_factory=list)
    """Silences the applicant spoke again after: their pace, for the end-of-turn decision."""
    finished: bool = False
    file_start_s: float | None = None  # where in this recording its file starts (None: not yet)
    earlier: AnswerAudio | None = None  # the answer this recording continues, if any
    earlier_pcm: bytes = b""  # that answer's file audio, written ahead of this one's

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


def turn_of(segments: list[Segment]) -> Turn:
    """One turn from its segments: a word whisper split across two segments ("flour" then
    "-fatten") is joined back, in the text and in the words."""
    words = [w for s in segments for w in s.words]
    words = [asdict(w) for w in join_pieces([Word(**w) for w in words])]
    return Turn(join_text(s.text for s in segments), words, segments)


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
        on_write_error: Callable[[OSError], None] | None = None,
        prefix_padding_s: float = 0.3,
        tail_s: float = 0.2,
        soft_segment_s: float = 8.0,
        hard_segment_s: float = 20.0,
        context: AnswerContext | None = None,
    ) -> None:
        self._vad = vad
        self._stt = stt
        self._open_writer = open_writer
        self._context = context
        # a recording that cannot be written (the disk is full) is not an answer to keep:
        # the runner pauses the interview rather than store a truncated WAV
        self._on_write_error = on_write_error
        self.prefix_padding_s = prefix_padding_s
        self.tail_s = tail_s
        self.soft_segment_s = soft_segment_s
        self.hard_segment_s = hard_segment_s
        self.current: Recording | None = None
        self.history: list[Recording] = []
        self.stream_samples = 0
        self.sample_rate = 0
        self.speaking = False
        # where the applicant's speech last started and ended, on the stream clock (seconds)
        self.speech_started_s: float | None = None
        self.speech_ended_s: float | None = None
        self._events: asyncio.Queue[tuple[Segment, stt.SpeechEvent]] | None = None
        self._on_tick: Callable[[], None] | None = None
        self._on_speech: Callable[[bool], None] | None = None
        # the answer finished last, kept so that it can be continued: key, file PCM, audio
        self._kept: tuple[tuple[str, int], bytes, AnswerAudio] | None = None

    # -- wiring --

    def set_listeners(
        self, *, on_tick: Callable[[], None], on_speech: Callable[[bool], None]
    ) -> None:
        self._on_tick, self._on_speech = on_tick, on_speech

    # -- recordings --

    def holds(self, key: tuple[str, int]) -> bool:
        """Whether the audio of answer ``key`` is at hand to be continued (it is the answer
        finished last in this session: after a restart it is not, and is not continued)."""
        return self._kept is not None and self._kept[0] == key

    def begin(self, ask: Ask, epoch: int) -> Recording:
        """Route the audio from now on to ``ask``'s recording (the same one on a repeat; after
        the answer finished last when ``ask.continued``: speech in progress then moves over
        from the question that was out, from just before its start, and that recording is
        discarded)."""
        cur = self.current
        if cur is not None and not cur.finished and cur.ask.key == ask.key:
            cur.ask, cur.epoch = ask, epoch
            cur.prompt_end_s = None
            cur.listening_since_s = None
            return cur
        carried, carried_speech_s = b"", 0.0
        if cur is not None and not cur.finished:
            seg = cur.open_segment
            if ask.continued and seg is not None and cur.sample_rate:
                lead = max(0.0, seg.start_s - (PRE_SPEECH_S - self.prefix_padding_s))
                carried = self._pcm(cur, lead, cur.time_s)
                carried_speech_s = seg.start_s - lead
            self._close(cur, discard=bool(carried) and not cur.segments)
        writer = self._open_writer(ask) if self._open_writer else None
        rec = Recording(ask=ask, epoch=epoch, writer=writer, stream_start=self.stream_samples)
        rec.sample_rate = self.sample_rate
        if ask.continued and self._kept is not None and self._kept[0] == ask.key:
            _, rec.earlier_pcm, rec.earlier = self._kept
        if carried:
            n = len(carried) // 2
            rec.pcm += carried
            rec.samples = n
            rec.vad_samples = float(n)
            rec.stream_start = self.stream_samples - n
            rec.started_wall -= n / rec.sample_rate if rec.sample_rate else 0.0
            rec.open_segment = Segment(start_s=carried_speech_s)
            self._start_file(rec, 0.0)
        elif self.speaking:  # speech running across the switch starts a segment here
            rec.open_segment = Segment(start_s=0.0)
            self._start_file(rec, 0.0)
        self.current = rec
        self.history.append(rec)
        return rec

    def _close(self, rec: Recording, *, discard: bool = False) -> None:
        if rec.finished:
            return
        rec.finished = True
        if rec.open_segment is not None:
            rec.open_segment = None  # speech past the switch belongs to the next question
        if rec.file_start_s is None and rec.earlier_pcm:
            self._start_file(rec, rec.time_s)  # nothing added: the earlier answer stays whole
        if rec.writer is not None:
            try:
                if discard:
                    rec.writer.discard()
                else:
                    rec.writer.close()
            except OSError as err:
                log.error("could not close the recording of %s: %s", rec.ask.key, err)
                if self._on_write_error is not None:
                    self._on_write_error(err)
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
        return turn_of(segments)

    @property
    def vad_stream_s(self) -> float:
        """How far the VAD has looked, on the stream clock."""
        rec, rate = self.current, self.sample_rate or 1
        return (self.stream_samples if rec is None else rec.stream_start + rec.vad_samples) / rate

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
        file_pcm = b""
        if rec.file_start_s is not None:
            file_pcm = rec.earlier_pcm + self._pcm(rec, rec.file_start_s, rec.time_s)
        self._close(rec)
        if not file_pcm:  # no new speech: _close wrote the earlier answer's audio alone
            file_pcm = rec.earlier_pcm
        onset = None
        if turn.segments and rec.prompt_end_s is not None:
            onset = round(max(0.0, turn.segments[0].start_s - rec.prompt_end_s), 3)
        speech = sum((s.end_s or s.start_s) - s.start_s for s in turn.segments)
        # word times are from the file's start: after the earlier part, from this one's start
        shift = len(rec.earlier_pcm) / 2 / rec.sample_rate if rec.sample_rate else 0.0
        shift -= rec.file_start_s or 0.0
        words = [
            {**w, "start": round(w["start"] + shift, 3), "end": round(w["end"] + shift, 3)}
            for w in turn.words
        ]
        audio = AnswerAudio(
            path=rec.writer.location if rec.writer is not None and file_pcm else None,
            words=words,
            # when the file starts (the report lines the camera up with it)
            started_at=datetime.fromtimestamp(rec.started_wall + (rec.file_start_s or 0.0), UTC),
            ended_at=datetime.now(UTC),
            speech_duration_s=round(speech, 3),
            onset_latency_s=onset,
        )
        if rec.earlier is not None:
            earlier = rec.earlier
            audio.words = earlier.words + audio.words
            audio.started_at = earlier.started_at
            audio.speech_duration_s = round(earlier.speech_duration_s + speech, 3)
            audio.onset_latency_s = earlier.onset_latency_s
        self._kept = (rec.ask.key, file_pcm, audio)
        return audio

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
            if rec.file_start_s is not None:
                self._write(rec, frame)

    def _write(self, rec: Recording, frame: rtc.AudioFrame) -> None:
        if rec.writer is None:
            return
        try:
            rec.writer.write(frame)
        except OSError as err:
            log.error("could not write the recording of %s: %s", rec.ask.key, err)
            rec.writer = None
            if self._on_write_error is not None:
                self._on_write_error(err)

    def _start_file(self, rec: Recording, at_s: float) -> None:
        """The answer's file starts here: the earlier part's audio (when continued) and this
        recording's from ``at_s``, then every frame as it arrives."""
        if rec.file_start_s is not None:
            return
        rec.file_start_s = max(0.0, at_s)
        rate = rec.sample_rate or self.sample_rate
        pcm = rec.earlier_pcm + self._pcm(rec, rec.file_start_s, rec.time_s)
        if pcm and rate:
            self._write(rec, rtc.AudioFrame(pcm, rate, 1, len(pcm) // 2))

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
            self.speech_started_s = (at - ev.speech_duration * self.sample_rate) / self.sample_rate
            if rec is not None and not rec.finished and rec.sample_rate:
                start = at - (ev.speech_duration + self.prefix_padding_s) * self.sample_rate
                if rec.last_speech_end_s is not None:
                    began = self._to_rec_s(rec, at - ev.speech_duration * self.sample_rate)
                    rec.pauses.append(round(max(0.0, began - rec.last_speech_end_s), 3))
                if rec.open_segment is None:
                    rec.open_segment = Segment(start_s=self._to_rec_s(rec, start))
                speech = self._to_rec_s(rec, at - ev.speech_duration * self.sample_rate)
                self._start_file(rec, speech - PRE_SPEECH_S)
            if self._on_speech is not None:
                self._on_speech(True)
        elif ev.type == vad.VADEventType.END_OF_SPEECH:
            self.speaking = False
            self.speech_ended_s = at / self.sample_rate - ev.silence_duration
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
        # the shared whisper worker takes this first once the applicant has stopped speaking
        awaited = AWAITED.set(lambda: not self.speaking and self.current is rec)
        try:
            with prompting(self._context(rec.ask) if self._context is not None else None):
                ev = await self._stt.recognize(buffer=frame)
        except Exception:
            log.exception("transcription failed for a segment of %s", rec.ask.key)
            return
        finally:
            AWAITED.reset(awaited)
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
