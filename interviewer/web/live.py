"""One browser tab driving one interview: the WebSocket transport wired to ``run_interview``.

The session is the voice engineers' :func:`interviewer.voice.session.run_interview`, the same
one a WAV file or a LiveKit room drives; this module only adds what a person in front of a
page needs on top of the audio:

- captions and the question on screen, sent in step with the speech. The TTS engine given to
  the session is a :class:`Pyttsx3TTS` that also announces each line it renders (text and
  duration) to the audio output, which sends the messages just before that line's first audio;
- the agent's state (listening / thinking / speaking) and the "repeat the question" button:
  ``run_interview``'s ``on_session(session, agent)`` hook hands both over before the first
  line, and the button calls ``InterviewAgent.repeat_question()``;
- one live tab per interview: a reload or a reconnect of the same tab takes over, another tab
  is refused while the first is alive;
- resume: a new connection simply runs the session again, which continues from the state it
  persisted after every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import AgentSession
from sqlalchemy import Engine, func, select
from starlette.websockets import WebSocket

from interviewer import invites
from interviewer.admission import Admission, busy_message
from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.errors import UserError
from interviewer.interview import PRACTICE_ID as PRACTICE_QUESTION_ID
from interviewer.interview import PRACTICE_INDEX, PRACTICE_TIME_LIMIT_S, InterviewFlow
from interviewer.proctoring import browser
from interviewer.proctoring.events import EventDraft, record
from interviewer.proctoring.thresholds import ProctoringThresholds, thresholds_from_settings
from interviewer.proctoring.worker import AnalysisPool
from interviewer.scoring.live import LiveScoring
from interviewer.store.db import session_scope
from interviewer.store.models import IntegrityEvent, Interview, Opening, utcnow
from interviewer.store.recordings import Recordings
from interviewer.transports.websocket import (
    CloseCode,
    Disconnected,
    Hello,
    Integrity,
    Limits,
    ProtocolViolation,
    Repeat,
    WebSocketTransport,
)

# Imported here, not lazily: livekit plugins (silero) must register on the main thread, and
# create_app runs there while sessions start on the server's event loop thread.
from interviewer.voice.agent import InterviewAgent
from interviewer.voice.session import SEGMENT_SILENCE_S, load_interview, run_interview
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.vad import load_vad

log = logging.getLogger(__name__)

MAX_BROWSER_EVENTS = 2_000
"""Integrity events stored per interview at most (a page reporting more is misbehaving)."""
STALE_AFTER_S = 6.0
"""A tab that has sent nothing (not even audio, ten messages a second) for this long is gone."""


@dataclass
class VoiceOptions:
    """How sessions run in this server (tests and the benchmark tune these)."""

    max_follow_ups: int = 1
    no_answer_timeout_s: float = 8.0
    warm_up: bool = True
    analyze_delay_s: float = 20.0  # after "done": the page uploads its last camera chunks
    limits: Limits = field(default_factory=Limits)


class VoiceStack:
    """Models shared by every interview in the process: loaded once, off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.vad: Any = None
        self.stt: Any = None
        self.ready = asyncio.Event()
        self.error: str | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            if self.ready.is_set():
                return
            try:
                self.vad = await asyncio.to_thread(load_vad, SEGMENT_SILENCE_S)
                self.stt = WhisperSTT(
                    backend=self.settings.stt_backend, model=self.settings.stt_model
                )
                await self.stt.warm_up()
            except Exception as err:
                self.error = str(err)
                log.exception("could not load the voice models")
                raise
            self.ready.set()

    def tts(self, on_line: Callable[[str, float], None]) -> CaptionedTTS:
        """A TTS engine for one interview, announcing each line it renders."""
        settings = self.settings
        return CaptionedTTS(
            on_line,
            voice=settings.tts_voice,
            rate=settings.tts_rate,
            cache_dir=settings.data_dir / "tts-cache",
        )

    async def prerender(self, bank: Bank) -> None:
        """Render a bank's lines ahead of its first interview (best effort)."""
        engine = self.tts(lambda *_: None)
        try:
            await engine.prerender(InterviewFlow(bank).prompts())
        except Exception:
            log.exception("could not prerender the lines of bank %s", bank.id)


class CaptionedTTS(Pyttsx3TTS):
    """The session's TTS, telling ``on_line(text, seconds)`` about each line as it renders it
    (the agent renders one line at a time, in the order it will be heard)."""

    def __init__(self, on_line: Callable[[str, float], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_line = on_line

    async def pcm(self, text: str) -> bytes:
        data = await super().pcm(text)
        self._on_line(text, len(data) / 2 / self.sample_rate)
        return data


# --- what the page shows, derived from the bank -----------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def question_messages(bank: Bank) -> dict[str, dict[str, Any]]:
    """The spoken text of every question -> the ``question`` message that puts it on screen."""
    total = len(bank.questions)
    out: dict[str, dict[str, Any]] = {
        _norm(bank.practice_question): {
            "type": "question",
            "id": PRACTICE_QUESTION_ID,
            "index": PRACTICE_INDEX,
            "attempt": 0,
            "number": 0,
            "total": total,
            "practice": True,
            "text": _norm(bank.practice_question),
            "time_limit_s": PRACTICE_TIME_LIMIT_S,
        }
    }
    for i, q in enumerate(bank.questions):
        prompts = [q.prompt] + [f.prompt for f in q.follow_ups]
        for attempt, prompt in enumerate(prompts):
            out.setdefault(
                _norm(prompt),
                {
                    "type": "question",
                    "id": q.id,
                    "index": i,
                    "attempt": attempt,
                    "number": i + 1,
                    "total": total,
                    "practice": False,
                    "text": _norm(prompt),
                    "time_limit_s": q.time_limit_s,
                },
            )
    return out


def current_question(bank: Bank, core_state: dict[str, Any]) -> dict[str, Any] | None:
    """The question a resumed interview is waiting on, as a ``question`` message."""
    if not core_state:
        return None
    ask = InterviewFlow(bank, core_state).current
    if ask is None:
        return None
    message = dict(question_messages(bank).get(_norm(ask.text)) or {})
    return message or None


# --- one connection --------------------------------------------------------------------------


@dataclass
class Live:
    interview_id: int
    tab: str
    transport: WebSocketTransport
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    bridge: _Bridge | None = None

    def stale(self) -> bool:
        return time.monotonic() - self.transport.last_message > STALE_AFTER_S


class LiveInterviews:
    """The open interview connections of this process: at most one per interview."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        recordings: Recordings,
        stack: VoiceStack,
        options: VoiceOptions,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.recordings = recordings
        self.stack = stack
        self.options = options
        self.active: dict[int, Live] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.shutting_down = False
        # past the machine's capacity, interviews wait in line (transports/admission.py)
        self.admission = Admission(settings.max_live_interviews)
        self.scoring: LiveScoring | None = None
        if settings.score_answers:
            self.scoring = LiveScoring(
                settings.resolved_database_url,
                model=settings.scoring_model,
                model_dir=settings.model_dir,
            )
        self._scoring_resumed = False
        self.analysis: AnalysisPool | None = None
        if settings.analyze_integrity:
            self.analysis = AnalysisPool(
                settings.resolved_database_url, recordings.root, settings.model_dir
            )
        self._background: set[asyncio.Task[Any]] = set()
        self._event_locks: dict[int, asyncio.Lock] = {}
        self._connections = itertools.count(1)

    async def claim(self, live: Live) -> bool:
        """Register ``live``; False if another tab holds the interview and is alive."""
        lock = self._locks.setdefault(live.interview_id, asyncio.Lock())
        async with lock:
            current = self.active.get(live.interview_id)
            if current is not None and not current.done.is_set():
                # A closed socket is a page that went (its session may still be saving): the
                # newcomer waits for it instead of being told another tab holds the interview.
                gone = current.transport.closed or current.stale()
                if current.tab != live.tab and not gone:
                    return False
                log.info(
                    "interview %d: %s, replacing the old socket",
                    live.interview_id,
                    "tab reconnected" if current.tab == live.tab else "the old page is gone",
                )
                current.transport.close(CloseCode.REPLACED, "reopened elsewhere")
                current.stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(current.done.wait(), 15)
            self.active[live.interview_id] = live
            return True

    def release(self, live: Live) -> None:
        live.done.set()
        if self.active.get(live.interview_id) is live:
            del self.active[live.interview_id]

    async def shutdown(self) -> None:
        """Server stopping: every page is told to reconnect; sessions save and stop."""
        self.shutting_down = True
        lives = list(self.active.values())
        for live in lives:
            live.transport.send_json(
                {"type": "notice", "message": "The server is restarting. Reconnecting…"}
            )
            live.transport.close(CloseCode.RESTART, "server restarting")
            live.stop.set()
        for live in lives:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.done.wait(), 10)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.analysis is not None:
            self.analysis.close()
        if self.scoring is not None:
            await self.scoring.aclose()

    # -- the socket endpoint --

    async def serve(self, websocket: WebSocket, token: str) -> None:
        await websocket.accept()
        transport = WebSocketTransport(websocket, limits=self.options.limits, label="interview")
        transport.start()
        try:
            await self._serve(transport, token)
        finally:
            transport.close(CloseCode.NORMAL)
            await transport.wait_closed()

    async def _serve(self, transport: WebSocketTransport, token: str) -> None:
        if self.shutting_down:
            return self._refuse(
                transport, CloseCode.RESTART, "restarting", "The server is restarting."
            )
        try:
            check = await asyncio.to_thread(self._check, token)
        except invites.InviteError as err:
            code = CloseCode.INVALID_LINK if err.code == "forged" else CloseCode.FINISHED
            return self._refuse(transport, code, err.code, str(err))
        if not check.consented:
            return self._refuse(
                transport, CloseCode.CONSENT_NEEDED, "consent", "Please agree to the terms first."
            )
        transport.label = f"interview {check.interview_id}"
        try:
            hello = await transport.expect_hello()
        except ProtocolViolation as bad:
            return transport.violation(bad)
        except Disconnected:
            return None

        live = Live(check.interview_id, hello.tab, transport)
        if not await self.claim(live):
            log.info("interview %d: refused a second tab", check.interview_id)
            await self._record_concurrent(check.interview_id)
            return self._refuse(
                transport,
                CloseCode.OTHER_TAB,
                "other_tab",
                "This interview is already open in another tab or window.",
            )
        try:
            await self._run(live, check)
        finally:
            self.release(live)
        return None

    def _check(self, token: str) -> invites.InviteCheck:
        with session_scope(self.engine) as s:
            return invites.check_invite(s, self.settings, token)

    @staticmethod
    def _refuse(transport: WebSocketTransport, code: int, reason: str, message: str) -> None:
        transport.send_json({"type": "error", "code": reason, "message": message})
        transport.close(code, reason)

    async def _run(self, live: Live, check: invites.InviteCheck) -> None:
        """Read the socket from the start (a misbehaving page is closed at once, even while the
        models load), then run the session until it ends or the page goes."""
        transport = live.transport
        loaded = await asyncio.to_thread(load_interview, self.engine, live.interview_id)
        proctoring = await asyncio.to_thread(self._proctoring, live.interview_id, loaded.bank)
        self._start_scoring(live.interview_id)
        bridge = _Bridge(transport, loaded.bank, proctoring, self._integrity_handler(live))
        live.bridge = bridge
        reader = asyncio.create_task(transport.run(bridge.on_message))
        stopped = asyncio.create_task(live.stop.wait())
        runner: asyncio.Task[Any] | None = None
        slot = None
        try:
            if not self.stack.ready.is_set():
                transport.send_json({"type": "state", "state": "preparing"})
                loading = asyncio.create_task(self.stack.load())
                await asyncio.wait({loading, reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not loading.done():
                    loading.cancel()
                    return  # the page went (or was replaced) while the models loaded
                loading.result()  # raises if the models could not load
            # a full server: wait in line, told so, until an interview ends (nothing recorded)
            slot = await self.admission.wait_turn(
                lambda place: transport.send_json(
                    {"type": "notice", "message": busy_message(place)}
                ),
                until=(reader, stopped),
            )
            if slot is None:
                return  # the page went while it waited
            transport.send_json(
                {
                    "type": "ready",
                    "resumed": bool(loaded.core_state),
                    "total": len(loaded.bank.questions),
                    "question": current_question(loaded.bank, loaded.core_state),
                    "proctoring": {"fullscreen": proctoring.thresholds.require_fullscreen},
                }
            )
            runner = asyncio.create_task(
                run_interview(
                    self.engine,
                    live.interview_id,
                    audio_input=transport.audio_input,
                    audio_output=transport.audio_output,
                    recordings=self.recordings,
                    stt_engine=self.stack.stt,
                    tts_engine=self.stack.tts(bridge.on_line),
                    vad_model=self.stack.vad,
                    max_follow_ups=self.options.max_follow_ups,
                    no_answer_timeout_s=self.options.no_answer_timeout_s,
                    on_session=bridge.bind,
                    on_answer=self.scoring.submit if self.scoring is not None else None,
                ),
                name=f"interview-{live.interview_id}",
            )
            await asyncio.wait({runner, reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            log.exception("interview %d could not start", live.interview_id)
            self._server_error(transport)
            return
        finally:
            self.admission.release(slot)
            tasks = [t for t in (runner, reader, stopped) if t is not None]
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if runner.cancelled():
            log.info("interview %d: page gone; state saved for resume", live.interview_id)
            return
        err = runner.exception()
        if err is not None:
            log.error("interview %d failed", live.interview_id, exc_info=err)
            self._server_error(transport)
            return
        report = runner.result()
        if report.completed:
            await asyncio.to_thread(self._mark_used, check.invite_id)
            latency = sorted(t.turn_latency_s for t in report.turns if t.turn_latency_s is not None)
            lag = sorted(t.transcript_lag_s for t in report.turns if t.transcript_lag_s is not None)
            log.info(
                "interview %d completed: end of answer -> next line median %s s, "
                "transcript lag median %s s",
                live.interview_id,
                f"{latency[len(latency) // 2]:.2f}" if latency else "-",
                f"{lag[len(lag) // 2]:.2f}" if lag else "-",
            )
            transport.send_json({"type": "done"})
            transport.close(CloseCode.NORMAL, "done")
            self._schedule_analysis(live.interview_id)

    # -- proctoring --

    def _proctoring(self, interview_id: int, bank: Bank) -> Proctoring:
        """Blocking: the opening's thresholds; defaults (and a log line) if they are broken,
        so that a misconfigured opening still interviews."""
        with session_scope(self.engine) as s:
            interview = s.get(Interview, interview_id)
            opening = s.get(Opening, interview.opening_id) if interview is not None else None
            raw = dict(opening.settings or {}) if opening is not None else {}
            where = f"opening {opening.slug}" if opening is not None else "opening"
        try:
            thresholds = thresholds_from_settings(raw, where=where)
        except UserError as err:
            log.error("%s; using the default proctoring thresholds", err)
            thresholds = ProctoringThresholds()
        ids = {q.id for q in bank.questions} | {PRACTICE_QUESTION_ID}
        return Proctoring(thresholds, frozenset(ids))

    def _integrity_handler(self, live: Live) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def handle(batch: dict[str, Any]) -> None:
            # stored beside the socket's reader, which must go on taking the microphone
            task = asyncio.create_task(self._record_browser(live, batch))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(_log_task_error)

        return handle

    async def _record_browser(self, live: Live, batch: dict[str, Any]) -> None:
        """One ``integrity`` message: checked, graded, stored, acknowledged. A bad batch is
        answered with ``integrity_error`` and stored nowhere; the socket stays open."""
        bridge = live.bridge
        assert bridge is not None
        transport = live.transport
        try:
            raw = json.dumps(batch, separators=(",", ":"), allow_nan=False)
            drafts = browser.to_drafts(
                raw,
                thresholds=bridge.proctoring.thresholds,
                received_at=utcnow(),
                question_ids=set(bridge.proctoring.question_ids),
            )
        except (browser.BrowserPayloadError, ValueError) as err:
            log.warning("interview %d: integrity batch refused: %s", live.interview_id, err)
            transport.send_json({"type": "integrity_error", "message": str(err)[:200]})
            return
        current = bridge.question_id()
        for item in drafts:
            if item.question_id is None:
                item.question_id = current  # the question out when the report arrived
        stored = await self._store_events(live.interview_id, drafts)
        seqs = [e["seq"] for e in batch.get("events", [])]
        transport.send_json(
            {
                "type": "integrity_ack",
                "page_id": batch.get("page_id"),
                "upto": max(seqs) if seqs else None,
                "stored": stored,
            }
        )

    async def _store_events(self, interview_id: int, drafts: list[EventDraft]) -> int:
        """Stored under the interview's lock (``record`` dedups keys per interview); at most
        MAX_BROWSER_EVENTS per interview, so a page cannot fill the database."""
        if not drafts:
            return 0
        lock = self._event_locks.setdefault(interview_id, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self._store_events_blocking, interview_id, drafts)

    def _store_events_blocking(self, interview_id: int, drafts: list[EventDraft]) -> int:
        with session_scope(self.engine, write=True) as s:
            count = s.scalar(
                select(func.count())
                .select_from(IntegrityEvent)
                .where(IntegrityEvent.interview_id == interview_id)
            )
            room = MAX_BROWSER_EVENTS - int(count or 0)
            if room < len(drafts):
                log.warning(
                    "interview %d: %d integrity events already; dropping %d",
                    interview_id,
                    count,
                    len(drafts) - max(room, 0),
                )
                drafts = drafts[: max(room, 0)]
            return len(record(s, interview_id, *drafts))

    async def _record_concurrent(self, interview_id: int) -> None:
        """A second tab or device opened the interview while the first is live (the server
        saw it: it does not depend on the second page reporting anything)."""
        holder = self.active.get(interview_id)
        bridge = holder.bridge if holder is not None else None
        item = browser.server_concurrent_session(
            bridge.proctoring.thresholds if bridge is not None else ProctoringThresholds(),
            at=utcnow(),
            connection=f"{id(self)}-{next(self._connections)}",
            open_sessions=2,
        )
        item.question_id = bridge.question_id() if bridge is not None else None
        try:
            await self._store_events(interview_id, [item])
        except Exception:
            log.exception("interview %d: could not record the second session", interview_id)

    def _schedule_analysis(self, interview_id: int) -> None:
        """After the interview: camera, voices and answers analysed in a worker process, once
        the page has had time to upload its last camera chunks."""
        if self.analysis is None:
            return

        async def run() -> None:
            await asyncio.sleep(self.options.analyze_delay_s)
            detail = await self.analysis.analyze(interview_id)  # type: ignore[union-attr]
            log.info(
                "interview %d: integrity analysis stored %s (skipped: %s)",
                interview_id,
                detail["events"],
                ", ".join(detail["skipped"]) or "none",
            )

        task = asyncio.create_task(run(), name=f"integrity-analysis-{interview_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_task_error)

    def _start_scoring(self, interview_id: int) -> None:
        """The scoring worker loads its model while the interview starts; answers a restart
        left unscored are queued once."""
        if self.scoring is None:
            return
        task = asyncio.create_task(self.scoring.start_interview(self.engine, interview_id))
        task.add_done_callback(_log_task_error)
        if not self._scoring_resumed:
            self._scoring_resumed = True
            task = asyncio.create_task(self.scoring.resubmit_pending(self.engine))
            task.add_done_callback(_log_task_error)

    @staticmethod
    def _server_error(transport: WebSocketTransport) -> None:
        transport.send_json(
            {
                "type": "error",
                "code": "server_error",
                "message": "Something went wrong on our side. Your answers so far are saved.",
            }
        )
        transport.close(CloseCode.INTERNAL, "server error")

    def _mark_used(self, invite_id: int) -> None:
        with session_scope(self.engine, write=True) as s:
            invites.mark_used(s, invite_id)


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())


@dataclass(frozen=True)
class Proctoring:
    """One interview's proctoring settings, read once per connection."""

    thresholds: ProctoringThresholds
    question_ids: frozenset[str]


class _Bridge:
    """Per connection: lines -> captions and questions; agent state, repeat requests and the
    page's integrity reports."""

    def __init__(
        self,
        transport: WebSocketTransport,
        bank: Bank,
        proctoring: Proctoring,
        on_integrity: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.transport = transport
        self.questions = question_messages(bank)
        self.agent: InterviewAgent | None = None
        self.proctoring = proctoring
        self._on_integrity = on_integrity

    def question_id(self) -> str | None:
        """The question waiting for an answer now, if any."""
        ask = self.agent.flow.current if self.agent is not None else None
        return ask.question_id if ask is not None else None

    def on_line(self, text: str, duration_s: float) -> None:
        text = _norm(text)
        messages: list[dict[str, Any]] = []
        question = self.questions.get(text)
        if question is not None:
            messages.append(question)
        messages.append({"type": "caption", "text": text})
        self.transport.audio_output.expect_line(duration_s, messages)

    def bind(self, session: AgentSession, agent: InterviewAgent) -> None:
        """``run_interview``'s hook: the session is about to start."""
        self.agent = agent
        session.on("agent_state_changed", self._on_state)
        self._send_state(session.agent_state)

    def _on_state(self, ev: Any) -> None:
        self._send_state(ev.new_state)

    def _send_state(self, state: str) -> None:
        shown = {"initializing": "thinking", "idle": "listening"}.get(state, state)
        self.transport.send_json({"type": "state", "state": shown})

    async def on_message(self, message: Any) -> None:
        if isinstance(message, Repeat):
            outcome = "none" if self.agent is None else await self.agent.repeat_question()
            if outcome == "limit":
                self.transport.send_json(
                    {
                        "type": "notice",
                        "message": "This question has been repeated several times already. "
                        "Please answer as best you can.",
                    }
                )
            elif outcome == "none":
                self.transport.send_json(
                    {"type": "notice", "message": "There is no question to repeat just now."}
                )
        elif isinstance(message, Integrity):
            await self._on_integrity(message.batch)
        elif isinstance(message, Hello):
            raise ProtocolViolation(CloseCode.POLICY, "hello sent twice")
