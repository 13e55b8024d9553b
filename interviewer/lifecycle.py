"""One interview's life, for any transport: load once, admit, run the session, feed scoring,
store integrity events, finish.

A transport (the browser WebSocket in :mod:`interviewer.web.live`, a LiveKit room in
:mod:`interviewer.transports.livekit`) only moves audio and messages. Everything an interview
needs around its voice session happens here, in this order:

1. :meth:`Interviews.prepare` reads the interview once (bank version, resume point, the
   opening's silence and proctoring thresholds) and lets the scorer load its model and get
   ahead on the bank while the applicant is still being admitted;
2. :meth:`Interviews.admit` keeps the machine within ``max_live_interviews``: past it,
   applicants wait in line (told their place) before anything is recorded;
3. :meth:`Interviews.run` runs the session (:func:`interviewer.voice.session.run_interview`)
   with the process's shared voice models; each stored answer goes to the scorer at once;
4. :meth:`Interviews.record_events` stores integrity events as they come (at most
   ``MAX_INTEGRITY_EVENTS`` per interview, so a page cannot fill the database);
5. :meth:`Interviews.finish`: a completed interview spends its invite link and has its
   recordings analysed in a worker process a little later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice import io
from sqlalchemy import Engine, func, select

from interviewer import invites
from interviewer.admission import Admission
from interviewer.banks.model import Bank
from interviewer.config import OPENING_VOICE_KEY, Settings
from interviewer.errors import UserError
from interviewer.interview import PRACTICE_ID
from interviewer.proctoring.events import EventDraft, record
from interviewer.proctoring.pool import AnalysisPool
from interviewer.proctoring.thresholds import ProctoringThresholds, thresholds_from_settings
from interviewer.scoring.live import LiveScoring
from interviewer.store.db import session_scope
from interviewer.store.models import IntegrityEvent
from interviewer.store.recordings import Recordings
from interviewer.voice.agent import InterviewAgent
from interviewer.voice.session import (
    InterviewReport,
    Loaded,
    SessionOptions,
    load_interview,
    run_interview,
)
from interviewer.voice.stack import VoiceStack

log = logging.getLogger(__name__)

MAX_INTEGRITY_EVENTS = 2_000
"""Integrity events stored per interview at most (a page reporting more is misbehaving)."""


@dataclass(frozen=True)
class Prepared:
    """One interview as read at its start: what its session and its proctoring need."""

    loaded: Loaded
    thresholds: ProctoringThresholds
    question_ids: frozenset[str]

    @property
    def interview_id(self) -> int:
        return self.loaded.interview_id

    @property
    def bank(self) -> Bank:
        return self.loaded.bank

    @property
    def voice(self) -> str | None:
        """The opening's voice (None: the settings' default)."""
        return self.loaded.opening_settings.get(OPENING_VOICE_KEY) or None


def prepare_interview(engine: Engine, interview_id: int) -> Prepared:
    """Blocking: the interview and its opening's proctoring thresholds (defaults, and a log
    line, if they are broken, so that a misconfigured opening still interviews)."""
    loaded = load_interview(engine, interview_id)
    where = f"opening {loaded.opening_slug}" if loaded.opening_slug else "opening"
    try:
        thresholds = thresholds_from_settings(loaded.opening_settings, where=where)
    except UserError as err:
        log.error("%s; using the default proctoring thresholds", err)
        thresholds = ProctoringThresholds()
    ids = frozenset({q.id for q in loaded.bank.questions} | {PRACTICE_ID})
    return Prepared(loaded, thresholds, ids)


class Interviews:
    """The interviews of one process, whatever carries them; see the module docstring.

    ``scoring`` and ``analysis`` are None where this process does not score or analyse (a
    LiveKit job process: the deployment's one ``interviewer scorer`` does, so that each job
    process does not load its own judge). ``analyze_delay_s``: after a completed interview, the
    page may still be uploading its last camera chunks.
    """

    def __init__(
        self,
        engine: Engine,
        recordings: Recordings,
        stack: VoiceStack,
        *,
        options: SessionOptions | None = None,
        max_live: int = 0,
        scoring: LiveScoring | None = None,
        analysis: AnalysisPool | None = None,
        analyze_delay_s: float = 20.0,
    ) -> None:
        self.engine = engine
        self.recordings = recordings
        self.stack = stack
        self.options = options or SessionOptions()
        self.admission = Admission(max_live)
        self.scoring = scoring
        self.analysis = analysis
        self.analyze_delay_s = analyze_delay_s
        self._scoring_resumed = False
        self._event_locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        recordings: Recordings,
        stack: VoiceStack,
        *,
        options: SessionOptions | None = None,
        analyze_delay_s: float = 20.0,
    ) -> Interviews:
        """Scoring and integrity analysis as the settings ask (the web server's way)."""
        scoring = None
        if settings.score_answers:
            scoring = LiveScoring(
                settings.resolved_database_url,
                model=settings.scoring_model,
                model_dir=settings.model_dir,
            )
        analysis = None
        if settings.analyze_integrity:
            analysis = AnalysisPool(
                settings.resolved_database_url, recordings.root, settings.model_dir
            )
        return cls(
            engine,
            recordings,
            stack,
            options=options,
            max_live=settings.max_live_interviews,
            scoring=scoring,
            analysis=analysis,
            analyze_delay_s=analyze_delay_s,
        )

    # -- 1. prepare --

    async def prepare(self, interview_id: int) -> Prepared:
        prepared = await asyncio.to_thread(prepare_interview, self.engine, interview_id)
        self._start_scoring(interview_id)
        return prepared

    def _start_scoring(self, interview_id: int) -> None:
        """The scorer loads its model while the interview starts; answers a restart left
        unscored are queued once per process."""
        if self.scoring is None:
            return
        self._spawn(self.scoring.start_interview(self.engine, interview_id), "scoring-start")
        if not self._scoring_resumed:
            self._scoring_resumed = True
            self._spawn(self.scoring.resubmit_pending(self.engine), "scoring-resume")

    # -- 2. admit --

    async def admit(
        self, on_place: Callable[[int], None], *, until: tuple[asyncio.Future[Any], ...] = ()
    ) -> Any:
        """A slot for one live interview (None if one of ``until`` finished first: the
        applicant went while waiting). Give it back with :meth:`release`."""
        return await self.admission.wait_turn(on_place, until=until)

    def release(self, slot: Any) -> None:
        self.admission.release(slot)

    # -- 3. run --

    async def run(
        self,
        prepared: Prepared,
        *,
        audio_input: io.AudioInput | None = None,
        audio_output: io.AudioOutput | None = None,
        room: rtc.Room | None = None,
        room_options: Any = None,
        on_line: Callable[[str, float], None] | None = None,
        on_session: Callable[[AgentSession, InterviewAgent], None] | None = None,
    ) -> InterviewReport:
        """The voice session until it ends (or is cancelled: its state is saved after every
        step, so a new run resumes). ``on_line(text, seconds)`` hears of each line as it is
        rendered (captions); ``on_session`` as in ``run_interview``."""
        await self.stack.load()
        return await run_interview(
            self.engine,
            prepared.loaded,
            audio_input=audio_input,
            audio_output=audio_output,
            room=room,
            room_options=room_options,
            recordings=self.recordings,
            models=self.stack.models(on_line, voice=prepared.voice),
            options=self.options,
            on_session=on_session,
            on_answer=self.scoring.submit if self.scoring is not None else None,
        )

    # -- 4. integrity events --

    async def record_events(self, interview_id: int, drafts: list[EventDraft]) -> int:
        """Stored under the interview's lock (``record`` dedups keys per interview); how many
        were new."""
        if not drafts:
            return 0
        lock = self._event_locks.setdefault(interview_id, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self._record_events, interview_id, drafts)

    def _record_events(self, interview_id: int, drafts: list[EventDraft]) -> int:
        with session_scope(self.engine, write=True) as s:
            count = s.scalar(
                select(func.count())
                .select_from(IntegrityEvent)
                .where(IntegrityEvent.interview_id == interview_id)
            )
            room = MAX_INTEGRITY_EVENTS - int(count or 0)
            if room < len(drafts):
                log.warning(
                    "interview %d: %d integrity events already; dropping %d",
                    interview_id,
                    count,
                    len(drafts) - max(room, 0),
                )
                drafts = drafts[: max(room, 0)]
            return len(record(s, interview_id, *drafts))

    # -- 5. finish --

    async def finish(self, prepared: Prepared, report: InterviewReport) -> None:
        """After a session that ended: a completed interview spends its link, is logged with
        its turn latencies, and is analysed later."""
        if not report.completed:
            return
        invite_id = prepared.loaded.invite_id
        if invite_id is not None:
            await asyncio.to_thread(self._mark_used, invite_id)
        latency = sorted(t.turn_latency_s for t in report.turns if t.turn_latency_s is not None)
        lag = sorted(t.transcript_lag_s for t in report.turns if t.transcript_lag_s is not None)
        log.info(
            "interview %d completed: end of answer -> next line median %s s, "
            "transcript lag median %s s",
            prepared.interview_id,
            f"{latency[len(latency) // 2]:.2f}" if latency else "-",
            f"{lag[len(lag) // 2]:.2f}" if lag else "-",
        )
        self._schedule_analysis(prepared.interview_id)

    def _mark_used(self, invite_id: int) -> None:
        with session_scope(self.engine, write=True) as s:
            invites.mark_used(s, invite_id)

    def _schedule_analysis(self, interview_id: int) -> None:
        """Camera, voices and answers analysed in a worker process, once the page has had time
        to upload its last camera chunks."""
        if self.analysis is None:
            return
        analysis = self.analysis

        async def run() -> None:
            await asyncio.sleep(self.analyze_delay_s)
            detail = await analysis.analyze(interview_id)
            log.info(
                "interview %d: integrity analysis stored %s (skipped: %s)",
                interview_id,
                detail["events"],
                ", ".join(detail["skipped"]) or "none",
            )

        self._spawn(run(), f"integrity-analysis-{interview_id}")

    # -- the process stopping --

    async def shutdown(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.analysis is not None:
            self.analysis.close()
        if self.scoring is not None:
            await self.scoring.aclose()

    def spawn(self, work: Awaitable[Any], name: str) -> None:
        """Background work of an interview (e.g. storing events beside the socket's reader),
        logged if it fails and cancelled at shutdown."""
        self._spawn(work, name)

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_task_error)


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
