"""Scoring stored answers: judge, evidence, and the rows they become; plus the worker process.

The unit of scoring is a *question*: its answer and any follow-up answers are judged as one
transcript (a follow-up exists to let the applicant make a point they missed, so it must count).
The question's ``CriterionScore`` rows, ``score`` and ``score_confidence`` go on its first answer
(attempt 0); follow-up answers get ``scored_at`` only. The interview score is the mean of its
questions' scores weighted by question weight (equal unless a bank gives ``weight``), counting
a question nobody answered as 0, and is written once every question of the bank has a scored
answer, or the interview is over (completed or abandoned).

Re-running is safe: a question's rows are replaced, never duplicated. Without ``rescore`` a
question already scored, with no answer newer than its score, is left alone.

``ScoringWorker`` runs all of this in one separate *process* (spawned, so no torch state is
forked) that loads the model once and takes answer ids from a bounded queue: the voice agent
``await``s ``submit(answer_id)`` after storing each answer and goes on with the interview;
scoring never runs on its event loop, and only the last answer's scoring is left to wait for
when the interview ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlmodel import Session

from interviewer.banks.model import Bank, Question
from interviewer.scoring.evidence import Evidence, EvidenceFinder, Part
from interviewer.scoring.judge import AnswerJudgement, Judge, is_empty
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    CriterionScore,
    Interview,
    InterviewState,
    utcnow,
)
from interviewer.store.repo import answers_of, bank_of

log = logging.getLogger(__name__)

PRACTICE_ID = "practice"
FINISHED = (InterviewState.completed, InterviewState.abandoned)


@dataclass(frozen=True)
class QuestionResult:
    question_id: str
    answer_id: int  # the answer that carries the question's score (attempt 0)
    score: float
    confidence: float
    judgement: AnswerJudgement | None  # None when it was already scored and left alone


@dataclass(frozen=True)
class InterviewResult:
    interview_id: int
    questions: list[QuestionResult]
    score: float | None  # None while the interview is unfinished and questions are missing
    confidence: float | None


# --- scoring stored answers ------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What judging one question needs, read from the database: nothing here is bound to a
    session, so the judge can run with no transaction open."""

    question: Question
    attempt_ids: list[int]  # attempt 0 first
    parts: list[Part]
    transcript: str


def _job(
    session: Session, interview: Interview, bank: Bank, question_id: str, rescore: bool
) -> _Job | QuestionResult:
    """The question's job, or its stored result when it is up to date (and not ``rescore``)."""
    try:
        question = bank.question(question_id)
    except KeyError:
        raise LookupError(
            f"answer to {question_id!r} is not a question of bank {bank.id} v{bank.version}"
        ) from None
    attempts = [a for a in answers_of(session, interview.id) if a.question_id == question_id]
    primary = attempts[0]
    if not rescore and _up_to_date(session, primary, attempts):
        return QuestionResult(
            question_id, primary.id, primary.score or 0.0, primary.score_confidence or 0.0, None
        )
    parts = [
        Part(a.transcript, a.words or (), a.id)
        for a in attempts
        if a.status != AnswerStatus.no_answer and not is_empty(a.transcript)
    ]
    transcript = "\n".join(p.transcript.strip() for p in parts)
    return _Job(question, [a.id for a in attempts], parts, transcript)


def _judge(
    job: _Job, judge: Judge, finder: EvidenceFinder | None
) -> tuple[AnswerJudgement, Evidence | None]:
    judgement = judge.score(job.question, job.transcript)
    evidence = finder.find(job.question, job.parts) if finder is not None and job.parts else None
    return judgement, evidence


def score_answer(
    engine: Engine,
    answer_id: int,
    judge: Judge,
    finder: EvidenceFinder | None = None,
    *,
    rescore: bool = False,
) -> QuestionResult | None:
    """Score the question ``answer_id`` answers (with its follow-ups); None for the practice
    question. Writes the rows, the answer's score and, when it can, the interview's score.

    Judging takes seconds to a minute, and live interviews share the database: a transaction
    open meanwhile would hold SQLite's write lock (or a PostgreSQL snapshot) that long, and
    every interview step would wait for it (bench/load.py: turn latency). So: read in one
    short transaction, judge with none open, write in another short one. A follow-up answer
    stored in between is not in this score; its own job (the voice agent submits every
    answer) rescores the question with it."""
    with session_scope(engine) as session:
        answer = session.get(Answer, answer_id)
        if answer is None:
            raise LookupError(f"no answer with id {answer_id}")
        if answer.question_id == PRACTICE_ID:
            return None
        interview = _interview(session, answer.interview_id)
        bank = bank_of(session, interview.bank_version_id)
        job = _job(session, interview, bank, answer.question_id, rescore)
        interview_id = interview.id
    if isinstance(job, QuestionResult):
        return job
    return _judge_and_write(engine, interview_id, bank, job, judge, finder, update_interview=True)


def score_interview(
    engine: Engine,
    interview_id: int,
    judge: Judge,
    finder: EvidenceFinder | None = None,
    *,
    rescore: bool = False,
    on_question: Callable[[str], None] | None = None,
) -> InterviewResult:
    """Score every answered question of the interview, then the interview itself (its score
    even when questions are missing: they count 0). ``on_question(question_id)`` is called
    after each question (for a progress bar). As in ``score_answer``, no transaction is open
    while the model runs: ``interviewer score`` may run while interviews go on."""
    with session_scope(engine) as session:
        interview = _interview(session, interview_id)
        bank = bank_of(session, interview.bank_version_id)
        answered = {a.question_id for a in answers_of(session, interview_id)} - {PRACTICE_ID}
    results = []
    for question in bank.questions:
        if question.id in answered:
            with session_scope(engine) as session:
                job = _job(session, _interview(session, interview_id), bank, question.id, rescore)
            if not isinstance(job, QuestionResult):
                job = _judge_and_write(
                    engine, interview_id, bank, job, judge, finder, update_interview=False
                )
            results.append(job)
        if on_question is not None:
            on_question(question.id)
    with session_scope(engine, write=True) as session:
        score, confidence = update_interview_score(session, interview_id, bank=bank, force=True)
    return InterviewResult(interview_id, results, score, confidence)


def _judge_and_write(
    engine: Engine,
    interview_id: int,
    bank: Bank,
    job: _Job,
    judge: Judge,
    finder: EvidenceFinder | None,
    *,
    update_interview: bool,
) -> QuestionResult:
    judgement, evidence = _judge(job, judge, finder)
    with session_scope(engine, write=True) as session:
        attempts = [session.get(Answer, i) for i in job.attempt_ids]
        if any(a is None for a in attempts):  # erased meanwhile (privacy): nothing to write
            raise LookupError(f"answers {job.attempt_ids} are gone")
        _write(session, job.question, attempts, judgement, evidence)
        if update_interview:
            update_interview_score(session, interview_id, bank=bank)
    return QuestionResult(
        job.question.id, job.attempt_ids[0], judgement.score, judgement.confidence, judgement
    )


def _up_to_date(session: Session, primary: Answer, attempts: Sequence[Answer]) -> bool:
    if primary.scored_at is None or primary.score is None:
        return False
    has_rows = session.scalars(
        select(CriterionScore.id).where(CriterionScore.answer_id == primary.id).limit(1)
    ).first()
    if has_rows is None:
        return False
    return all(_aware(a.created_at) <= _aware(primary.scored_at) for a in attempts)


def _aware(value: Any) -> Any:
    """SQLite may hand back naive datetimes; everything stored is UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _write(
    session: Session,
    question: Question,
    attempts: Sequence[Answer],
    judgement: AnswerJudgement,
    evidence: Evidence | None,
) -> None:
    ids = [a.id for a in attempts]
    session.execute(delete(CriterionScore).where(CriterionScore.answer_id.in_(ids)))
    primary = attempts[0]
    model = judgement.model
    for c in judgement.criteria:
        quotes = evidence.criteria.get(c.criterion_id, []) if evidence else []
        session.add(
            CriterionScore(
                answer_id=primary.id,
                criterion_id=c.criterion_id,
                kind="criterion",
                probability=round(c.probability, 6),
                level=round(c.level, 6),
                evidence=[q.to_json() for q in quotes],
                model=model,
            )
        )
    for r in judgement.red_flags:
        quotes = evidence.red_flags.get(r.red_flag_id, []) if evidence else []
        session.add(
            CriterionScore(
                answer_id=primary.id,
                criterion_id=r.red_flag_id,
                kind="red_flag",
                probability=round(r.probability, 6),
                level=None,
                evidence=[q.to_json() for q in quotes],
                model=model,
            )
        )
    now = utcnow()
    primary.score = round(judgement.score, 6)
    primary.score_confidence = round(judgement.confidence, 6)
    primary.scored_at = now
    for follow_up in attempts[1:]:
        follow_up.score = None
        follow_up.score_confidence = None
        follow_up.scored_at = now
    session.flush()


def _interview(session: Session, interview_id: int) -> Interview:
    interview = session.get(Interview, interview_id)
    if interview is None:
        raise LookupError(f"no interview with id {interview_id}")
    return interview


# --- the interview's score -------------------------------------------------------------------


def questions_to_score(session: Session, interview_id: int) -> int:
    """How many questions ``score_interview`` will go through (for a progress bar's total)."""
    interview = _interview(session, interview_id)
    return len(bank_of(session, interview.bank_version_id).questions)


def update_interview_score(
    session: Session, interview_id: int, *, bank: Bank | None = None, force: bool = False
) -> tuple[float | None, float | None]:
    """Write the interview's score when every question is scored or the interview is over.

    ``force`` writes it anyway (unanswered questions count 0), as ``score_interview`` does for
    an explicit request; the voice agent's worker never forces, so an interview in progress
    never shows a partial score as if it were final."""
    interview = _interview(session, interview_id)
    bank = bank or bank_of(session, interview.bank_version_id)
    primary: dict[str, Answer] = {}
    for a in answers_of(session, interview_id):
        primary.setdefault(a.question_id, a)
    finished = interview.state in FINISHED
    total = weighted = confident = 0.0
    for question in bank.questions:
        weight = float(getattr(question, "weight", 1.0))
        answer = primary.get(question.id)
        if answer is not None and answer.score is not None:
            score, confidence = answer.score, answer.score_confidence or 0.0
        elif answer is None and (finished or force):
            score, confidence = 0.0, 1.0  # never answered: certainly no credit
        elif force:
            score, confidence = 0.0, 0.0  # answered but not scored (should not happen)
        else:
            return None, None  # not ready: an answer is still to come or to be scored
        total += weight
        weighted += weight * score
        confident += weight * confidence
    interview.score = round(weighted / total, 6)
    interview.score_confidence = round(confident / total, 6)
    interview.scored_at = utcnow()
    session.flush()
    return interview.score, interview.score_confidence


# --- the worker process ----------------------------------------------------------------------


class WorkerError(RuntimeError):
    """The scoring worker process failed to start or died."""


class ScoringWorker:
    """One spawned process that loads the judge once and scores answer ids from a queue.

    Use from asyncio: ``worker.start()``, then ``await worker.submit(answer_id)`` after each
    stored answer (it waits, without blocking the loop, while the queue is full), and
    ``await worker.drain()`` / ``worker.stop()`` at the end; ``prepare(interview_id)`` when an
    interview starts lets it get ahead on that bank. ``results`` collects
    ``(answer_id, score or None, error or None)`` as they come back.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        model: str | None = None,
        model_dir: Path | str | None = None,
        maxsize: int = 32,
        threads: int | None = None,
        evidence: bool = True,
    ) -> None:
        self.database_url = database_url
        self.model = model
        self.model_dir = str(model_dir) if model_dir is not None else None
        self.maxsize = maxsize
        self.threads = threads
        self.evidence = evidence
        self.results: list[tuple[int, float | None, str | None]] = []
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._submitted = 0

    def start(self) -> ScoringWorker:
        if self._process is not None:
            return self
        self._queue = self._ctx.Queue(self.maxsize)
        self._done = self._ctx.Queue()
        self._ready = self._ctx.Event()
        self._idle = self._ctx.Event()
        self._process = self._ctx.Process(
            target=_worker_main,
            args=(
                self._queue,
                self._done,
                self._ready,
                self._idle,
                self.database_url,
                self.model,
                self.model_dir,
                self.threads,
                self.evidence,
            ),
            name="interviewer-scoring",
            daemon=True,
        )
        self._process.start()
        return self

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def submit_nowait(self, answer_id: int) -> None:
        """Raises ``queue.Full`` when the worker is that far behind."""
        self._check_alive()
        self._queue.put_nowait(("score", int(answer_id)))
        self._submitted += 1

    async def submit(self, answer_id: int, *, poll_s: float = 0.05) -> None:
        """Queue an answer for scoring; awaits (cancellably) while the queue is full."""
        while True:
            try:
                self.submit_nowait(answer_id)
                return
            except queue.Full:
                await asyncio.sleep(poll_s)
                poll_s = min(poll_s * 2, 0.5)

    def prepare(self, interview_id: int) -> bool:
        """Hint that an interview is starting: the worker computes the per-question anchors of
        its bank while idle, so each answer later costs one judgement. False if the queue is
        full (the hint is dropped: it only saves time)."""
        self._check_alive()
        try:
            self._queue.put_nowait(("warm", int(interview_id)))
        except queue.Full:
            return False
        return True

    def collect(self) -> list[tuple[int, float | None, str | None]]:
        """Results that came back since the last call (also appended to ``results``)."""
        new = []
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            if item[0] == "failed":
                raise WorkerError(item[1])
            new.append(tuple(item[1:]))
        self.results.extend(new)
        return new

    async def ready(self, timeout: float | None = None) -> None:
        """Wait until the model is loaded (the first answer would wait for it otherwise)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            self.collect()
            self._check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("scoring worker did not load its model in time")
            await asyncio.sleep(0.1)

    async def drain(
        self, timeout: float | None = None
    ) -> list[tuple[int, float | None, str | None]]:
        """Wait until every submitted answer has come back; returns all results so far."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self.results) < self._submitted:
            self.collect()
            if len(self.results) >= self._submitted:
                break
            self._check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"scoring worker: {self._submitted - len(self.results)} answers still pending"
                )
            await asyncio.sleep(0.1)
        return list(self.results)

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until the worker has nothing queued and no warm-up left (benchmarks, tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._idle.is_set():
            self.collect()
            self._check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("scoring worker is still busy")
            await asyncio.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """Let the worker finish what is queued, then end it (killed after ``timeout``)."""
        if self._process is None:
            return
        with contextlib.suppress(Exception):
            if self._process.is_alive():
                self._queue.put(None, timeout=timeout)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        with contextlib.suppress(WorkerError):
            self.collect()
        self._process = None

    async def aclose(self, timeout: float = 30.0) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop, timeout)

    def _check_alive(self) -> None:
        if self._process is None:
            raise WorkerError("scoring worker is not started: call start() first")
        if not self._process.is_alive():
            self.collect()
            raise WorkerError(f"scoring worker exited with code {self._process.exitcode}")


def _worker_main(
    jobs: Any,
    done: Any,
    ready: Any,
    idle: Any,
    database_url: str | None,
    model: str | None,
    model_dir: str | None,
    threads: int | None,
    evidence: bool,
) -> None:
    # Before torch loads: idle OpenMP threads sleep instead of spinning, which otherwise steals
    # the cores the voice agent (whisper, VAD) needs and slows both sides many times over.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from interviewer.priority import lower_priority
    from interviewer.store.db import create_db_engine

    lower_priority()  # live interviews first: the backlog waits, not the applicants

    try:
        engine = create_db_engine(database_url)
        judge = Judge(model, model_dir, threads=threads).load()
        finder = EvidenceFinder(model_dir).load() if evidence else None
    except Exception as err:  # reported to the parent, which raises it as WorkerError
        done.put(("failed", f"scoring worker could not start: {err}"))
        return
    ready.set()
    warm: list[Any] = []  # questions whose anchors are still to compute, done while idle
    parent = multiprocessing.parent_process()
    while True:
        try:
            job = jobs.get(timeout=0.2 if warm else 0.5)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                break  # the interview process was killed: nobody is left to score for
            if warm:
                judge.warm(warm.pop(0))
            else:
                idle.set()
            continue
        idle.clear()
        if job is None:
            break
        kind, ident = job
        try:
            if kind == "warm":
                with session_scope(engine) as session:
                    _queue_warm_up(session, ident, judge, warm)
                continue
            # no transaction is open while the model runs: interview steps never wait for it
            result = score_answer(engine, ident, judge, finder, rescore=True)
            with session_scope(engine) as session:
                answer = session.get(Answer, ident)
                if answer is not None:
                    _queue_warm_up(session, answer.interview_id, judge, warm)
            done.put(("done", ident, None if result is None else result.score, None))
        except Exception as err:
            log.exception("scoring job %s %s failed", kind, ident)
            if kind == "score":
                done.put(("done", ident, None, f"{type(err).__name__}: {err}"))


def _queue_warm_up(session: Session, interview_id: int, judge: Judge, warm: list[Any]) -> None:
    interview = _interview(session, interview_id)
    for question in bank_of(session, interview.bank_version_id).questions:
        if not judge.has_anchors(question) and question not in warm:
            warm.append(question)
