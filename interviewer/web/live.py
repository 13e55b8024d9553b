"""One browser tab driving one interview: the WebSocket transport around the lifecycle.

Everything an interview needs around its session (loading, admission, scoring, integrity
events, finishing) is :mod:`interviewer.lifecycle`'s, shared with the LiveKit transport. This
module adds only what a person in front of a page needs on top of the audio:

- captions and the question on screen, sent in step with the speech: the session's voice
  announces each line it renders (text and duration) to the audio output, which sends the
  messages just before that line's first audio;
- what the interviewer is doing (``InterviewAgent.on_status``: speaking, listening, hearing
  the applicant, about to speak, finished) and the applicant's buttons: "repeat the question",
  "I need more time" and "I wasn't finished" call the agent's ``repeat_question()``,
  ``more_time()`` and ``continue_answer()`` (the rules are the interview core's);
- the page's integrity reports, checked and graded here, stored by the lifecycle;
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
from sqlalchemy import Engine
from starlette.websockets import WebSocket

from interviewer import invites
from interviewer.admission import Admission, busy_message
from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.interview import (
    PRACTICE_ID,
    PRACTICE_INDEX,
    PRACTICE_TIME_LIMIT_S,
    Ask,
    InterviewFlow,
)
from interviewer.lifecycle import Interviews, Prepared
from interviewer.proctoring import browser
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.store.db import session_scope
from interviewer.store.models import utcnow
from interviewer.store.recordings import Recordings
from interviewer.transports.websocket import (
    CloseCode,
    Disconnected,
    Hello,
    Integrity,
    Limits,
    ProtocolViolation,
    Repeat,
    Request,
    WebSocketTransport,
)
from interviewer.voice.agent import InterviewAgent
from interviewer.voice.session import InterviewPaused, SessionOptions
from interviewer.voice.stack import VoiceStack

log = logging.getLogger(__name__)

STALE_AFTER_S = 6.0
"""A tab that has sent nothing (not even audio, ten messages a second) for this long is gone."""


@dataclass
class VoiceOptions:
    """How sessions run in this server (tests and the benchmark tune these)."""

    max_follow_ups: int = 1
    no_answer_timeout_s: float | None = None  # None: the opening's, else the default
    warm_up: bool = True
    analyze_delay_s: float = 20.0  # after "done": the page uploads its last camera chunks
    limits: Limits = field(default_factory=Limits)

    def session(self) -> SessionOptions:
        return SessionOptions(
            max_follow_ups=self.max_follow_ups, no_answer_timeout_s=self.no_answer_timeout_s
        )


# --- what the page shows, derived from the bank -----------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def question_messages(bank: Bank) -> dict[str, dict[str, Any]]:
    """The spoken text of every question -> the ``question`` message that puts it on screen."""
    total = len(bank.questions)
    out: dict[str, dict[str, Any]] = {
        _norm(bank.practice_question): {
            "type": "question",
            "id": PRACTICE_ID,
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
        self.options = options
        self.interviews = Interviews.from_settings(
            settings,
            engine,
            recordings,
            stack,
            options=options.session(),
            analyze_delay_s=options.analyze_delay_s,
        )
        self.active: dict[int, Live] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.shutting_down = False
        self._connections = itertools.count(1)

    @property
    def admission(self) -> Admission:
        """The process's waiting line (the lifecycle's), for the health check and tests."""
        return self.interviews.admission

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
        await self.interviews.shutdown()

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
            await self._run(live)
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

    async def _run(self, live: Live) -> None:
        """Read the socket from the start (a misbehaving page is closed at once, even while the
        models load), then run the session until it ends or the page goes."""
        transport = live.transport
        interviews = self.interviews
        prepared = await interviews.prepare(live.interview_id)
        bridge = _Bridge(transport, prepared, self._integrity_handler(live))
        live.bridge = bridge
        reader = asyncio.create_task(transport.run(bridge.on_message))
        stopped = asyncio.create_task(live.stop.wait())
        runner: asyncio.Task[Any] | None = None
        slot = None
        try:
            stack = interviews.stack
            if not stack.ready.is_set():
                transport.send_json({"type": "state", "state": "preparing"})
                loading = asyncio.create_task(stack.load())
                await asyncio.wait({loading, reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not loading.done():
                    loading.cancel()
                    return  # the page went (or was replaced) while the models loaded
                loading.result()  # raises if the models could not load
            # a full server: wait in line, told so, until an interview ends (nothing recorded)
            slot = await interviews.admit(
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
                    "resumed": bool(prepared.loaded.core_state),
                    "total": len(prepared.bank.questions),
                    "question": current_question(prepared.bank, prepared.loaded.core_state),
                    "proctoring": {"fullscreen": prepared.thresholds.require_fullscreen},
                }
            )
            runner = asyncio.create_task(
                interviews.run(
                    prepared,
                    audio_input=transport.audio_input,
                    audio_output=transport.audio_output,
                    on_line=bridge.on_line,
                    on_session=bridge.bind,
                ),
                name=f"interview-{live.interview_id}",
            )
            await asyncio.wait({runner, reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            log.exception("interview %d could not start", live.interview_id)
            self._server_error(transport)
            return
        finally:
            interviews.release(slot)
            tasks = [t for t in (runner, reader, stopped) if t is not None]
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if runner.cancelled():
            log.info("interview %d: page gone; state saved for resume", live.interview_id)
            return
        err = runner.exception()
        if isinstance(err, InterviewPaused):  # logged by the session, in one line
            transport.send_json({"type": "error", "code": "paused", "message": err.message})
            transport.close(CloseCode.INTERNAL, "paused")
            return
        if err is not None:
            log.error("interview %d failed", live.interview_id, exc_info=err)
            self._server_error(transport)
            return
        report = runner.result()
        await interviews.finish(prepared, report)
        if report.completed:
            transport.send_json({"type": "done"})
            transport.close(CloseCode.NORMAL, "done")

    # -- the page's integrity reports --

    def _integrity_handler(self, live: Live) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def handle(batch: dict[str, Any]) -> None:
            # stored beside the socket's reader, which must go on taking the microphone
            self.interviews.spawn(self._record_browser(live, batch), "integrity-batch")

        return handle

    async def _record_browser(self, live: Live, batch: dict[str, Any]) -> None:
        """One ``integrity`` message: checked, graded, stored, acknowledged. A bad batch is
        answered with ``integrity_error`` and stored nowhere; the socket stays open."""
        bridge = live.bridge
        assert bridge is not None
        transport = live.transport
        prepared = bridge.prepared
        try:
            raw = json.dumps(batch, separators=(",", ":"), allow_nan=False)
            drafts = browser.to_drafts(
                raw,
                thresholds=prepared.thresholds,
                received_at=utcnow(),
                question_ids=set(prepared.question_ids),
            )
        except (browser.BrowserPayloadError, ValueError) as err:
            log.warning("interview %d: integrity batch refused: %s", live.interview_id, err)
            transport.send_json({"type": "integrity_error", "message": str(err)[:200]})
            return
        current = bridge.question_id()
        for item in drafts:
            if item.question_id is None:
                item.question_id = current  # the question out when the report arrived
        stored = await self.interviews.record_events(live.interview_id, drafts)
        seqs = [e["seq"] for e in batch.get("events", [])]
        transport.send_json(
            {
                "type": "integrity_ack",
                "page_id": batch.get("page_id"),
                "upto": max(seqs) if seqs else None,
                "stored": stored,
            }
        )

    async def _record_concurrent(self, interview_id: int) -> None:
        """A second tab or device opened the interview while the first is live (the server
        saw it: it does not depend on the second page reporting anything)."""
        holder = self.active.get(interview_id)
        bridge = holder.bridge if holder is not None else None
        item = browser.server_concurrent_session(
            bridge.prepared.thresholds if bridge is not None else ProctoringThresholds(),
            at=utcnow(),
            connection=f"{id(self)}-{next(self._connections)}",
            open_sessions=2,
        )
        item.question_id = bridge.question_id() if bridge is not None else None
        try:
            await self.interviews.record_events(interview_id, [item])
        except Exception:
            log.exception("interview %d: could not record the second session", interview_id)

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


class _Bridge:
    """Per connection: lines -> captions and questions; agent state, repeat requests and the
    page's integrity reports."""

    def __init__(
        self,
        transport: WebSocketTransport,
        prepared: Prepared,
        on_integrity: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.transport = transport
        self.prepared = prepared
        self.questions = question_messages(prepared.bank)
        self.agent: InterviewAgent | None = None
        self._on_integrity = on_integrity

    def question_id(self) -> str | None:
        """The question waiting for an answer now, if any."""
        ask = self.agent.flow.current if self.agent is not None else None
        return ask.question_id if ask is not None else None

    def on_line(self, text: str, duration_s: float) -> None:
        if not text:  # the next sentence of the line before (a streamed, uncached line)
            self.transport.audio_output.expect_line(duration_s, [])
            return
        text = _norm(text)
        messages: list[dict[str, Any]] = []
        question = self.questions.get(text)
        agent = self.agent
        if question is None and agent is not None and text == _norm(agent.flow.script.go_on):
            # back to an answer to continue: its question goes on screen again, unspoken
            ask = agent.flow.current
            question = self.questions.get(_norm(ask.text)) if ask is not None else None
        if question is not None:
            messages.append(question)
        messages.append({"type": "caption", "text": text})
        self.transport.audio_output.expect_line(duration_s, messages)

    def bind(self, session: AgentSession, agent: InterviewAgent) -> None:
        """``run_interview``'s hook: the session is about to start."""
        self.agent = agent
        agent.on_status = self._send_state
        agent.on_question = self._show_question
        self._send_state("thinking", False)

    def _show_question(self, ask: Ask) -> None:
        """The applicant took the turn back: their question, not the withdrawn one, is on
        screen again at once (no line is spoken that would carry it)."""
        question = self.questions.get(_norm(ask.text))
        if question is not None:
            self.transport.send_json({"type": "taken_back", "question": question})

    def _send_state(self, status: str, can_continue: bool) -> None:
        self.transport.send_json({"type": "state", "state": status, "can_continue": can_continue})

    async def _request(self, kind: str) -> None:
        agent = self.agent
        if kind == "more_time":
            outcome = "none" if agent is None else await agent.more_time()
            refused = {
                "limit": "You have asked for more time several times on this question. "
                "Please answer as best you can.",
                "none": "There is no question waiting for your answer just now.",
            }
        else:
            outcome = "none" if agent is None else await agent.continue_answer()
            refused = {"none": "There is no earlier answer to continue just now."}
        if outcome in refused:
            self.transport.send_json({"type": "notice", "message": refused[outcome]})

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
        elif isinstance(message, Request):
            await self._request(message.type)
        elif isinstance(message, Integrity):
            await self._on_integrity(message.batch)
        elif isinstance(message, Hello):
            raise ProtocolViolation(CloseCode.POLICY, "hello sent twice")
