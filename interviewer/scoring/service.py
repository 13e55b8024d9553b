"""Scoring stored answers: judge, similarity, evidence, and the rows they become.

A question's score is the judge's blended with the answer's similarity to the reference answer
and capped when the answer is off topic (:mod:`interviewer.scoring.similarity`, with the
evidence finder's embedder; without one, e.g. ``--no-evidence``, the judge's score alone).

The unit of scoring is a *question*: its answer and any follow-up answers are judged as one
transcript (a follow-up exists to let the applicant make a point they missed, so it must count).
The question's ``CriterionScore`` rows, ``score`` and ``score_confidence`` go on its first answer
(attempt 0); follow-up answers get ``scored_at`` only. The interview score is the mean of its
questions' scores weighted by question weight (equal unless a bank gives ``weight``), counting
a question nobody answered as 0, and is written once every question of the bank has a scored
answer, or the interview is over (completed or abandoned).

Re-running is safe: a question's rows are replaced, never duplicated. Without ``rescore`` a
question already scored, with no answer newer than its score, is left alone.

:mod:`interviewer.scoring.process` runs this in a separate process beside live interviews.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlmodel import Session

from interviewer.banks.model import Bank, Question
from interviewer.interview import PRACTICE_ID
from interviewer.scoring import similarity
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
    parts = _parts(attempts)
    return _Job(question, [a.id for a in attempts], parts, _transcript(parts))


def _parts(attempts: Sequence[Answer]) -> list[Part]:
    return [
        Part(a.transcript, a.words or (), a.id)
        for a in attempts
        if a.status != AnswerStatus.no_answer and not is_empty(a.transcript)
    ]


def _transcript(parts: Sequence[Part]) -> str:
    return "\n".join(p.transcript.strip() for p in parts)


def _judge(
    job: _Job, judge: Judge, finder: EvidenceFinder | None
) -> tuple[AnswerJudgement, Evidence | None]:
    embed = finder.embed if finder is not None else None
    judgement = similarity.score(judge, embed, job.question, job.transcript)
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
        interview = interview_of(session, answer.interview_id)
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
        interview = interview_of(session, interview_id)
        bank = bank_of(session, interview.bank_version_id)
        answered = {a.question_id for a in answers_of(session, interview_id)} - {PRACTICE_ID}
    results = []
    for question in bank.questions:
        if question.id in answered:
            with session_scope(engine) as session:
                job = _job(session, interview_of(session, interview_id), bank, question.id, rescore)
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


STALE_ROUNDS = 3
"""Times a question is judged again when its transcript changed while it was judged; the last
round writes whatever it judged (an answer re-saved after that is queued again anyway)."""


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
    for _round in range(STALE_ROUNDS):
        judgement, evidence = _judge(job, judge, finder)
        with session_scope(engine, write=True) as session:
            attempts = [session.get(Answer, i) for i in job.attempt_ids]
            if any(a is None for a in attempts):  # erased meanwhile (privacy): nothing to write
                raise LookupError(f"answers {job.attempt_ids} are gone")
            parts = _parts(attempts)  # type: ignore[arg-type]  (none is None: checked above)
            if _transcript(parts) != job.transcript and _round < STALE_ROUNDS - 1:
                # the answer grew while it was judged ("I wasn't finished" appends to it): a
                # score of the shorter text must not land on the longer one; judge it again
                job = _Job(job.question, job.attempt_ids, parts, _transcript(parts))
                continue
            _write(session, job.question, attempts, judgement, evidence)
            if update_interview:
                update_interview_score(session, interview_id, bank=bank)
        break
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
    quotes_of = {
        "criterion": evidence.criteria if evidence else {},
        "red_flag": evidence.red_flags if evidence else {},
    }
    scored: list[tuple[str, str, float, float | None]] = [
        ("criterion", c.criterion_id, c.probability, c.level) for c in judgement.criteria
    ]
    scored += [("red_flag", r.red_flag_id, r.probability, None) for r in judgement.red_flags]
    for kind, criterion_id, probability, level in scored:
        quotes = quotes_of[kind].get(criterion_id, [])
        session.add(
            CriterionScore(
                answer_id=primary.id,
                criterion_id=criterion_id,
                kind=kind,
                probability=round(probability, 6),
                level=None if level is None else round(level, 6),
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


def interview_of(session: Session, interview_id: int) -> Interview:
    interview = session.get(Interview, interview_id)
    if interview is None:
        raise LookupError(f"no interview with id {interview_id}")
    return interview


# --- the interview's score -------------------------------------------------------------------


def questions_to_score(session: Session, interview_id: int) -> int:
    """How many questions ``score_interview`` will go through (for a progress bar's total)."""
    interview = interview_of(session, interview_id)
    return len(bank_of(session, interview.bank_version_id).questions)


def update_interview_score(
    session: Session, interview_id: int, *, bank: Bank | None = None, force: bool = False
) -> tuple[float | None, float | None]:
    """Write the interview's score when every question is scored or the interview is over.

    ``force`` writes it anyway (unanswered questions count 0), as ``score_interview`` does for
    an explicit request; the voice agent's worker never forces, so an interview in progress
    never shows a partial score as if it were final."""
    interview = interview_of(session, interview_id)
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
