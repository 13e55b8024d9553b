"""Scoring each answer as soon as it is stored: the bridge from running interviews to the
scoring worker process (:class:`interviewer.scoring.process.ScorerProcess`).

One :class:`LiveScoring` per process (the web server, ``interviewer interview``) owns one worker
and a bounded backlog in front of it. ``run_interview(..., on_answer=scoring.submit)`` hands
over the ids of each step's stored answers; ``submit`` only appends to the backlog and returns,
so a slow model never delays the next question. One feeder task moves ids from the backlog into
the worker's own bounded queue, waiting (without blocking the event loop) while the worker is
behind: that is the backpressure. If the backlog itself is full (the worker far behind, or
dead), the answer is logged and left unscored; ``pending_answers`` finds such answers again
(the web server re-submits them when it starts) and ``interviewer score`` scores them by hand.

The worker starts on the first answer or ``prepare`` (an interview starting), never at import
or when a server starts with nothing to score, so a process that never sees an answer never
loads a model. The interview's score is written by the worker after the last answer (the
interview is marked completed in the same transaction as its last answer, and the worker
writes the interview score once every question is scored or the interview is over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from interviewer.interview import PRACTICE_ID
from interviewer.scoring.process import ScorerError, ScorerProcess
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, Interview, InterviewState

log = logging.getLogger(__name__)

Result = tuple[int, float | None, str | None]  # answer id, its question's score, error


class LiveScoring:
    """Answers of live interviews -> the scoring worker; see the module docstring.

    ``threads``: torch threads of the worker; 1 by default so that whisper and the VAD of the
    interviews going on keep the other core of a small machine; it pauses while they hold the
    live gate in ``gate_dir`` (:mod:`interviewer.priority`; None: this machine's default).
    """

    def __init__(
        self,
        database_url: str,
        *,
        model: str | None = None,
        model_dir: Path | str | None = None,
        backlog: int = 1024,
        worker_queue: int = 8,
        threads: int | None = 1,
        evidence: bool = True,
        gate_dir: Path | str | None = None,
    ) -> None:
        self.database_url = database_url
        self.model = model
        self.model_dir = model_dir
        self.backlog_size = backlog
        self.worker_queue = worker_queue
        self.threads = threads
        self.evidence = evidence
        self.gate_dir = gate_dir
        self.error: str | None = None
        self.dropped: list[int] = []
        self.submitted: list[int] = []
        self._backlog: asyncio.Queue[tuple[str, int]] | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._worker: Any = None
        self._in_flight = 0

    # -- what interviews call --

    async def submit(self, answer_ids: list[int]) -> None:
        """Queue stored answers for scoring; returns at once (``run_interview``'s on_answer)."""
        for answer_id in answer_ids:
            self._put(("score", int(answer_id)))

    def prepare(self, interview_id: int) -> None:
        """An interview starts: load the model now and let the worker get ahead on its bank."""
        self._put(("warm", int(interview_id)))

    async def start_interview(self, engine: Engine, interview_id: int) -> None:
        """``prepare``, and queue the interview's answers stored but not scored (a resumed
        interview whose earlier run died), so that its score can be computed at the end."""
        self.prepare(interview_id)
        await self.submit(await asyncio.to_thread(pending_answers, engine, interview_id))

    def _put(self, job: tuple[str, int]) -> None:
        if self.error is not None:
            if job[0] == "score":
                self.dropped.append(job[1])
            return
        self._ensure_started()
        assert self._backlog is not None
        try:
            self._backlog.put_nowait(job)
        except asyncio.QueueFull:
            if job[0] == "score":
                self.dropped.append(job[1])
                log.warning(
                    "scoring backlog full (%d answers): answer %d left unscored; "
                    "`interviewer score` scores it later",
                    self.backlog_size,
                    job[1],
                )
            return
        if job[0] == "score":
            self.submitted.append(job[1])

    # -- the feeder --

    def _ensure_started(self) -> None:
        if self._feeder is None:
            self._backlog = asyncio.Queue(self.backlog_size)
            self._feeder = asyncio.create_task(self._feed(), name="scoring-feeder")

    async def _start_worker(self) -> Any:
        worker = ScorerProcess(
            self.database_url,
            model=self.model,
            model_dir=self.model_dir,
            maxsize=self.worker_queue,
            threads=self.threads,
            evidence=self.evidence,
            gate_dir=self.gate_dir,
        )
        await asyncio.to_thread(worker.start)
        return worker

    async def _feed(self) -> None:
        assert self._backlog is not None
        try:
            self._worker = await self._start_worker()
            while True:
                kind, ident = await self._backlog.get()
                self._in_flight += 1
                try:
                    if kind == "warm":
                        self._worker.prepare(ident)
                    else:
                        await self._worker.submit(ident)
                finally:
                    self._in_flight -= 1
                self._collect()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # ScorerError (no model, a crash), or a bug: stop scoring
            self.error = str(err)
            log.error(
                "scoring worker failed: %s; answers stay unscored (`interviewer score`)",
                err,
                exc_info=not isinstance(err, ScorerError),
            )
            while not self._backlog.empty():
                kind, ident = self._backlog.get_nowait()
                if kind == "score":
                    self.dropped.append(ident)

    def _collect(self) -> None:
        for answer_id, _score, error in self._worker.collect():
            if error is not None:
                log.error("scoring answer %d failed: %s", answer_id, error)

    # -- waiting and stopping --

    @property
    def results(self) -> list[Result]:
        return list(self._worker.results) if self._worker is not None else []

    async def wait(self, timeout: float | None = None) -> list[Result]:
        """Until every answer submitted so far has been scored (tests, the CLI, shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._feeder is not None and self.error is None:
            backlog_empty = self._backlog is None or self._backlog.empty()
            if backlog_empty and not self._in_flight and self._worker is not None:
                remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
                try:
                    await self._worker.drain(remaining)
                except ScorerError as err:
                    self.error = str(err)
                    break
                if self._backlog is None or self._backlog.empty():
                    break
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("scoring is still busy")
            if self._feeder.done():
                break
            await asyncio.sleep(0.05)
        return self.results

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop feeding and end the worker (what it holds in its queue is scored first)."""
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
            with contextlib.suppress(BaseException):
                await self._feeder
        if self._worker is not None:
            await self._worker.aclose(timeout)
        self._feeder = None

    # -- answers left unscored --

    async def resubmit_pending(self, engine: Engine) -> int:
        """Submit answers stored but never scored (a restart, a full backlog); how many."""
        ids = await asyncio.to_thread(pending_answers, engine)
        if ids:
            log.info("scoring %d answers stored but not scored yet", len(ids))
            await self.submit(ids)
        return len(ids)


def pending_answers(
    engine: Engine, interview_id: int | None = None, *, limit: int = 500
) -> list[int]:
    """Blocking: ids of stored, unscored answers of interviews under way or completed (of one
    interview when given), oldest first."""
    with session_scope(engine) as s:
        query = (
            select(Answer.id)
            .join(Interview, Interview.id == Answer.interview_id)
            .where(Answer.scored_at.is_(None), Answer.question_id != PRACTICE_ID)
            .where(Interview.state.in_([InterviewState.in_progress, InterviewState.completed]))
        )
        if interview_id is not None:
            query = query.where(Answer.interview_id == interview_id)
        return [int(i) for i in s.scalars(query.order_by(Answer.id).limit(limit))]
