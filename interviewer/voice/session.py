"""Runs one interview end to end: loads it, wires the voice stack, persists every step.

:func:`run_interview` is the one session runner: the CLI, the demo and the tests call it, and
every transport reaches it through :mod:`interviewer.lifecycle`. It takes the audio input and
output as arguments, so the same run drives a WAV file, a browser WebSocket or a LiveKit room.

What is persisted, and when (one transaction per step, before the next line is spoken):

- each answer row (``store.repo.save_answer``, an upsert keyed by interview, question and
  attempt) with its status, transcript, word timings, timings and the relative path of its
  WAV, which was written frame by frame while the applicant spoke;
- the interview's resume point (``store.repo.save_progress``): the core's state and the index
  of the next question. A process that dies loses at most the answer in progress, and a new
  run asks that question again (its WAV is rewritten from the start).

When an answer is over is decided by :mod:`interviewer.voice.turns` (the end-of-turn model,
the words so far and the applicant's pace), within the opening's maximum pause
(``silence_threshold_s``, else the settings'). The VAD cuts speech into segments at short pauses
(``SEGMENT_SILENCE_S``, so long answers are transcribed while they are spoken); the session's
own endpointing only hands the turn to the agent once the decision can be asked.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice import io
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from interviewer.banks.model import Bank
from interviewer.config import OPENING_VOICE_KEY, get_settings
from interviewer.interview import NO_ANSWER_KEY, Ask, InterviewFlow
from interviewer.priority import LiveGate, LiveWindow
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, AnswerStatus, Interview, InterviewState, Opening
from interviewer.store.recordings import Recordings
from interviewer.store.storage import open_storage
from interviewer.voice.agent import NO_ANSWER_TIMEOUT_S, InterviewAgent, Step
from interviewer.voice.capture import AnswerCapture, Recording
from interviewer.voice.context import context_for
from interviewer.voice.io import StreamingWavWriter, WavAudioInput
from interviewer.voice.scripted import ScriptedLLM
from interviewer.voice.stack import VoiceModels
from interviewer.voice.turns import EndOfTurn, TurnPolicy

log = logging.getLogger(__name__)

MIN_ENDPOINTING_S = 0.2
SAVE_RETRY_S = 20.0
"""How long a step's save is retried while the database is unreachable (a PostgreSQL restart,
a busy SQLite) before the interview is paused."""

RECORDING_FAILED = (
    "We cannot save your recording right now, so the interview is paused. Your answers so far "
    "are saved. Please try again later: the interview continues at this question."
)
SAVING_FAILED = (
    "We cannot save your answers right now, so the interview is paused. Your answers so far "
    "are saved. Please try again in a few minutes: the interview continues at this question."
)


class InterviewPaused(Exception):
    """The interview cannot go on safely now (its recording cannot be written, or its answers
    cannot be stored): the session stops without storing the answer in progress, so a later
    run asks that question again. ``message`` is what the applicant is told."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"interview paused: {reason}")
        self.reason = reason
        self.message = message


@dataclass
class Loaded:
    interview_id: int
    bank: Bank
    core_state: dict[str, Any]
    state: InterviewState
    silence_threshold_s: float
    invite_id: int | None = None
    opening_settings: dict[str, Any] = field(default_factory=dict)
    opening_slug: str = ""


def load_interview(engine: Engine, interview_id: int) -> Loaded:
    """Blocking: the interview's bank version, resume point and its opening's settings."""
    with session_scope(engine) as s:
        interview = s.get(Interview, interview_id)
        if interview is None:
            raise LookupError(f"no interview with id {interview_id}")
        opening = s.get(Opening, interview.opening_id)
        threshold = (
            opening.silence_threshold_s
            if opening is not None and opening.silence_threshold_s
            else get_settings().silence_threshold_s
        )
        return Loaded(
            interview_id=interview_id,
            bank=repo.bank_of(s, interview.bank_version_id),
            core_state=dict(interview.core_state or {}),
            state=InterviewState(interview.state),
            silence_threshold_s=float(threshold),
            invite_id=interview.invite_id,
            opening_settings=dict(opening.settings or {}) if opening is not None else {},
            opening_slug=opening.slug if opening is not None else "",
        )


def save_step(engine: Engine, recordings: Recordings, interview_id: int, step: Step) -> list[int]:
    """Blocking: the answers of one step and the resume point, in one transaction; returns
    the stored answers' ids."""
    ids: list[int] = []
    # finished WAVs go to storage first (an upload for S3), never inside the transaction
    keys = {
        i: recordings.commit(audio.path)
        for i, (_, audio) in enumerate(step.records)
        if audio is not None and audio.path is not None and Path(audio.path).exists()
    }
    with session_scope(engine, write=True) as s:
        for i, (record, audio) in enumerate(step.records):
            answer = Answer(
                interview_id=interview_id,
                question_id=record.question_id,
                question_index=record.question_index,
                attempt=record.attempt,
                status=AnswerStatus(record.status.value),
                transcript=record.transcript,
            )
            if audio is not None:
                answer.audio_path = keys.get(i)
                answer.words = audio.words
                answer.started_at = audio.started_at
                answer.ended_at = audio.ended_at
                answer.speech_duration_s = audio.speech_duration_s
                answer.onset_latency_s = audio.onset_latency_s
            saved = repo.save_answer(s, answer)
            if saved is not None and saved.id is not None:
                ids.append(saved.id)
        repo.save_progress(
            s,
            interview_id,
            next_question_index=step.next_question_index,
            core_state=step.state,
            state=InterviewState.completed if step.finished else InterviewState.in_progress,
        )
    return ids


def no_answer_timeout(loaded: Loaded) -> float:
    """The opening's no-answer timeout (its settings JSON), else the default."""
    value = loaded.opening_settings.get(NO_ANSWER_KEY)
    return float(value) if isinstance(value, int | float) and value > 0 else NO_ANSWER_TIMEOUT_S


class _LazyWav:
    """Creates the WAV at the first frame, when its sample rate is known."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: StreamingWavWriter | None = None

    @property
    def location(self) -> Path:
        return self.path

    def write(self, frame: rtc.AudioFrame) -> None:
        if self._writer is None:
            self._writer = StreamingWavWriter(self.path, frame.sample_rate)
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class TurnTiming:
    """One answer's end as the applicant experienced it (times are ``time.time()``)."""

    question_id: str
    attempt: int
    speech_end: float | None
    transcribed: float | None
    next_audio: float | None

    @property
    def turn_latency_s(self) -> float | None:
        if self.speech_end is None or self.next_audio is None:
            return None
        return self.next_audio - self.speech_end

    @property
    def transcript_lag_s(self) -> float | None:
        if self.speech_end is None or self.transcribed is None:
            return None
        return max(0.0, self.transcribed - self.speech_end)


@dataclass
class InterviewReport:
    interview_id: int
    completed: bool
    resumed: bool
    silence_threshold_s: float
    answers: list[Answer] = field(default_factory=list)
    turns: list[TurnTiming] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def turn_timings(recordings: list[Recording], first_frames: list[float]) -> list[TurnTiming]:
    """Per answered recording: when the speech ended, was transcribed, and the agent spoke."""
    out = []
    for rec in recordings:
        taken = [s for s in rec.segments if s.taken and s.text]
        if not taken:
            continue
        # the speech ended where the VAD said so: a long answer's last segment may have been
        # cut on a dip before that, leaving only a sliver (with the time) after it
        ends = [s.speech_end_wall for s in rec.segments if s.taken and s.speech_end_wall]
        end = max(ends) if ends else None
        transcribed = max((s.transcribed_wall or 0.0) for s in taken) or None
        nxt = next((t for t in first_frames if end is not None and t > end), None)
        out.append(TurnTiming(rec.ask.question_id, rec.ask.attempt, end, transcribed, nxt))
    return out


@dataclass
class SessionOptions:
    """How one session runs (the opening's settings come from the interview itself).

    ``silence_threshold_s`` overrides the opening's silence that ends an answer and
    ``no_answer_timeout_s`` its silence that counts as no answer (None: the opening's
    ``settings["no_answer_timeout_s"]``, else :data:`~interviewer.voice.agent.NO_ANSWER_TIMEOUT_S`);
    ``max_follow_ups`` per question (0 for a pre-recorded applicant, who cannot answer
    questions nobody can predict); ``timeout_s`` stops the run (state saved) if the interview
    has not ended by then; ``hold_input``: a :class:`~interviewer.voice.io.WavAudioInput` waits
    at pauses while the agent speaks (a polite applicant). ``live_gate_dir``: where the session
    holds the live gate from the applicant's speech to the next line (None: this machine's).
    """

    silence_threshold_s: float | None = None
    no_answer_timeout_s: float | None = None
    max_follow_ups: int = 1
    timeout_s: float | None = None
    hold_input: bool = True
    live_gate_dir: Path | None = None


async def run_interview(
    engine: Engine,
    interview: int | Loaded,
    *,
    audio_input: io.AudioInput | None = None,
    audio_output: io.AudioOutput | None = None,
    room: rtc.Room | None = None,
    room_options: Any = None,
    recordings: Recordings | None = None,
    models: VoiceModels | None = None,
    options: SessionOptions | None = None,
    on_session: Callable[[AgentSession, InterviewAgent], None] | None = None,
    on_answer: Callable[[list[int]], Awaitable[None]] | None = None,
) -> InterviewReport:
    """Run (or resume) ``interview`` (its id, or what :func:`load_interview` read of it) until
    its closing line has played. ``models`` default to the settings' (loaded here).

    ``on_session(session, agent)`` is called once both exist, just before the session starts,
    so a transport can follow the agent's state from its first change and reach the agent
    (``agent.repeat_question()``). ``on_answer(answer_ids)`` is awaited after each step that
    stored answers, with their database ids, once they are committed (scoring hooks in here).

    Audio comes from ``audio_input``/``audio_output`` (a WAV, the browser WebSocket) or, in the
    LiveKit worker, from ``room``: livekit's RoomIO then reads the participant that
    ``room_options`` names and publishes the agent's voice; nothing else changes.
    """
    if room is None and (audio_input is None or audio_output is None):
        raise ValueError("run_interview needs audio_input and audio_output, or a LiveKit room")
    options = options or SessionOptions()
    started = time.monotonic()
    recordings = recordings or open_storage(get_settings())
    if isinstance(interview, Loaded):
        loaded = interview
    else:
        loaded = await asyncio.to_thread(load_interview, engine, interview)
    interview_id = loaded.interview_id
    threshold = options.silence_threshold_s or loaded.silence_threshold_s
    report = InterviewReport(
        interview_id=interview_id,
        completed=loaded.state is InterviewState.completed,
        resumed=bool(loaded.core_state),
        silence_threshold_s=threshold,
    )
    if report.completed:
        report.answers = await asyncio.to_thread(_answers, engine, interview_id)
        return report

    if models is None:
        models = await VoiceModels.load(voice=loaded.opening_settings.get(OPENING_VOICE_KEY))
    stt_engine, tts_engine, vad_model = models.stt, models.tts, models.vad
    max_follow_ups = options.max_follow_ups
    no_answer_timeout_s = options.no_answer_timeout_s or no_answer_timeout(loaded)
    timeout_s = options.timeout_s

    flow = InterviewFlow(loaded.bank, loaded.core_state or None, max_follow_ups=max_follow_ups)
    # one after the other: loading torch on one thread while espeak-ng loads on another
    # segfaulted once here
    warm = getattr(stt_engine, "warm_up", None)
    if warm is not None:
        await warm()
    prerender = getattr(tts_engine, "prerender", None)
    if prerender is not None:
        await prerender(flow.prompts())

    def open_writer(ask: Ask) -> _LazyWav:
        return _LazyWav(recordings.answer_audio(interview_id, ask.question_id, ask.attempt))

    paused: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause(reason: str, message: str, cause: object) -> None:
        if not paused.done():
            log.error("interview %d paused (%s): %s", interview_id, reason, cause)
            paused.set_exception(InterviewPaused(reason, message))

    def on_write_error(err: OSError) -> None:
        pause("recording not written", RECORDING_FAILED, err)

    capture = AnswerCapture(
        vad=vad_model,
        stt=stt_engine,
        open_writer=open_writer,
        on_write_error=on_write_error,
        context=functools.partial(context_for, loaded.bank),
    )

    async def persist(step: Step) -> None:
        if paused.done():  # never store an answer whose recording is incomplete
            raise InterviewPaused("paused", RECORDING_FAILED)
        try:
            ids = await _save(engine, recordings, interview_id, step)
        except Exception as err:
            pause("answers not saved", SAVING_FAILED, f"{type(err).__name__}: {err}")
            raise
        if on_answer is not None and ids:
            try:
                await on_answer(ids)
            except Exception:  # the interview goes on; scoring can be re-run later
                log.exception("interview %d: answer hook failed for %s", interview_id, ids)

    policy = TurnPolicy(max_pause_s=threshold)
    end_of_turn = EndOfTurn(
        policy, await models.end_of_turn_model(), log_name=f"interview {interview_id}"
    )
    agent = InterviewAgent(
        flow,
        persist=persist,
        capture=capture,
        no_answer_timeout_s=no_answer_timeout_s,
        silence_threshold_s=threshold,
        end_of_turn=end_of_turn,
        log_name=f"interview {interview_id}",
    )
    session: AgentSession = AgentSession(
        stt=stt_engine,
        vad=vad_model,
        tts=tts_engine,
        llm=ScriptedLLM(),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {
                # hand over when the end-of-turn decision is first asked: the agent's
                # llm_node waits for it (voice/turns.py)
                "min_delay": max(MIN_ENDPOINTING_S, min(policy.check_after_s, threshold)),
                "max_delay": max(3.0, threshold),
            },
            "interruption": {
                "enabled": True,
                "mode": "vad",
                "min_duration": 0.5,
                # the applicant's words during a line that cannot be interrupted are still
                # their answer: keep them
                "discard_audio_if_uninterruptible": False,
            },
            "preemptive_generation": {"enabled": False},
        },
        aec_warmup_duration=None,
        user_away_timeout=None,
        tts_text_transforms=None,
    )
    if options.hold_input and isinstance(audio_input, WavAudioInput):
        # a WAV applicant who has finished an answer waits for the next question
        audio_input.follow(
            lambda: (
                session.agent_state in ("initializing", "thinking", "speaking")
                or capture.transcribing()
                or capture.has_untaken_words()
                or (capture.current is not None and capture.current.prompt_end_s is None)
            ),
            hold_after_s=threshold + 0.2,
        )
    # scoring and integrity analysis pause from the applicant's speech until the next line
    window = LiveWindow(LiveGate(options.live_gate_dir), f"interview-{interview_id}")
    session.on("user_state_changed", lambda ev: window.user_speaking(ev.new_state == "speaking"))
    session.on(
        "agent_state_changed",
        lambda ev: window.agent_speaking() if ev.new_state == "speaking" else None,
    )
    if audio_input is not None:
        session.input.audio = audio_input
    if audio_output is not None:
        session.output.audio = audio_output
    if on_session is not None:
        on_session(session, agent)
    if room is None:
        await session.start(agent)
    else:  # our own recordings (AnswerCapture), not livekit's session recorder
        await session.start(agent, room=room, room_options=room_options, record=False)
    ended = asyncio.ensure_future(agent.ended.wait())
    try:
        done, _ = await asyncio.wait(
            {ended, paused}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if paused.done():
            paused.result()  # raises InterviewPaused
        if not done:
            log.warning("interview %s timed out: %s", interview_id, _stuck(session, agent))
            raise TimeoutError
    finally:
        ended.cancel()
        await session.aclose()
        window.close()  # after the session's last event
        capture.stop()
        if paused.done():
            paused.exception()  # retrieved: a pause while closing is not an unhandled error
    first_frames = list(getattr(audio_output, "first_frame_times", []))
    report.turns = turn_timings(capture.history, first_frames)
    report.said = agent.said
    report.completed = flow.finished
    report.answers = await asyncio.to_thread(_answers, engine, interview_id)
    report.wall_s = time.monotonic() - started
    return report


async def _save(engine: Engine, recordings: Recordings, interview_id: int, step: Step) -> list[int]:
    """``save_step`` off the event loop, retried for SAVE_RETRY_S while the database cannot be
    reached (nothing of a failed attempt is committed: it is one transaction)."""
    deadline = time.monotonic() + SAVE_RETRY_S
    delay = 0.25
    while True:
        try:
            return await asyncio.to_thread(save_step, engine, recordings, interview_id, step)
        except (OperationalError, InterfaceError) as err:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "interview %d: saving the step failed (%s), retrying", interview_id, err.orig
            )
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


def _answers(engine: Engine, interview_id: int) -> list[Answer]:
    with session_scope(engine) as s:
        rows = repo.answers_of(s, interview_id)
        for row in rows:
            s.expunge(row)
        return rows


def _stuck(session: AgentSession, agent: InterviewAgent) -> str:
    """Where an interview that did not end stands: what is waiting for what."""
    capture, rec = agent.capture, agent.capture.current if agent.capture else None
    parts = [
        f"agent {session.agent_state}",
        f"user {session.user_state}",
        f"last said {agent.said[-1:]!r}",
    ]
    if rec is not None:
        parts.append(
            f"question {rec.ask.question_id}/{rec.ask.attempt} epoch {rec.epoch} (agent at "
            f"{agent._epoch}), prompt end {rec.prompt_end_s}, listening since "
            f"{rec.listening_since_s}, {len(rec.segments)} segments, transcribing "
            f"{capture.transcribing()}, untaken words {capture.has_untaken_words()}"
        )
    return "; ".join(parts)
