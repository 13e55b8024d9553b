"""Several ``interviewer scorer`` processes sharing one database's answers, each judged once.

The unit of work is a question of an interview (its answer and follow-ups are judged together,
see :mod:`interviewer.scoring.service`); its claim lives on the question's first answer
(attempt 0): ``claimed_by`` and ``lease_until``. A scorer takes the oldest question with an
unscored answer whose lease is free or expired, renews the lease while it judges, and frees it
when the rows are written. On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP
LOCKED``, so scorers on many machines never wait on each other, and the claim is an UPDATE of
that very row, so a scorer that read the row before another's claim committed re-checks the
lease and skips it. On SQLite (one machine) the write transaction is the lock. A scorer killed
mid-answer (kill -9, a lost machine) leaves its lease to expire; the next scorer retakes it.

Every claim is logged in ``ScoringClaim``: ``interviewer scorer --status`` reads backlog,
claims and per-scorer rates from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from interviewer.interview import PRACTICE_ID
from interviewer.scoring.evidence import EvidenceFinder
from interviewer.scoring.judge import Judge
from interviewer.scoring.service import score_answer, update_interview_score
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, Interview, InterviewState, ScoringClaim, utcnow

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 300.0  # SmolLM2 judges in a second, Qwen in up to a minute on 2 cores


def scorer_name() -> str:
    """This process's name in claims: host and pid, so scorers on many machines differ."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _waiting() -> list[object]:
    """Conditions on ``Answer`` (the attempt-0 row) for a question waiting for a scorer."""
    other = aliased(Answer)
    unscored = exists().where(
        other.interview_id == Answer.interview_id,
        other.question_id == Answer.question_id,
        other.scored_at.is_(None),
    )
    return [
        Answer.attempt == 0,
        Answer.question_id != PRACTICE_ID,
        Interview.state.in_([InterviewState.in_progress, InterviewState.completed]),
        unscored,
    ]


def _free(now: object) -> object:
    return or_(Answer.lease_until.is_(None), Answer.lease_until < now)


def claim(engine: Engine, scorer: str, lease_s: float = DEFAULT_LEASE_S) -> tuple[int, int] | None:
    """Claim the oldest waiting question: (its attempt-0 answer id, the log row id), or None."""
    with session_scope(engine, write=True) as s:
        now = utcnow()
        query = (
            select(Answer.id)
            .join(Interview, Interview.id == Answer.interview_id)
            .where(*_waiting(), _free(now))
            .order_by(Answer.id)
            .limit(1)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Answer)
        answer_id = s.scalars(query).first()
        if answer_id is None:
            return None
        # the lease condition again: on PostgreSQL the row is re-read if a claim committed
        # between the SELECT's snapshot and its lock, so two scorers never both win
        taken = s.execute(
            update(Answer)
            .where(Answer.id == answer_id, _free(now))
            .values(claimed_by=scorer, lease_until=now + timedelta(seconds=lease_s))
        )
        if taken.rowcount != 1:
            return None
        entry = ScoringClaim(answer_id=answer_id, scorer=scorer, claimed_at=now)
        s.add(entry)
        s.flush()
        assert entry.id is not None
        return answer_id, entry.id


def renew(engine: Engine, answer_id: int, scorer: str, lease_s: float) -> bool:
    """Extend our lease while the judge is still at it; False if it is no longer ours."""
    with session_scope(engine, write=True) as s:
        done = s.execute(
            update(Answer)
            .where(Answer.id == answer_id, Answer.claimed_by == scorer)
            .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        )
        return done.rowcount == 1


def release(engine: Engine, answer_id: int, claim_id: int, scorer: str, outcome: str) -> None:
    """The question is scored (or failed): free the lease (a failure keeps it until it expires,
    which is the retry's back-off), log the outcome, and write the interview's score if the
    last two questions were scored at once by two scorers, neither seeing the other's."""
    with session_scope(engine, write=True) as s:
        _finish(s, answer_id, claim_id, scorer, outcome, free=outcome == "ok")
        answer = s.get(Answer, answer_id)
        interview = None if answer is None else s.get(Interview, answer.interview_id)
        if interview is not None and interview.scored_at is None:
            update_interview_score(s, interview.id)


@contextlib.contextmanager
def _renewing(engine: Engine, answer_id: int, scorer: str, lease_s: float) -> Iterator[None]:
    """Renew the lease every third of it while the block runs (the judge holds this thread)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(lease_s / 3):
            try:
                if not renew(engine, answer_id, scorer, lease_s):
                    log.warning("lease on answer %d taken over", answer_id)
                    return
            except Exception as err:  # a database blip: the next renewal may succeed
                log.warning("could not renew the lease on answer %d: %s", answer_id, err)

    thread = threading.Thread(target=loop, name=f"lease-{answer_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def score_claimed(
    engine: Engine,
    judge: Judge,
    finder: EvidenceFinder | None,
    *,
    scorer: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    interval_s: float = 5.0,
    stop: threading.Event | None = None,
    until_idle: bool = False,
    on_scored: Callable[[int], None] | None = None,
) -> int:
    """Claim, judge, release until ``stop`` (or, ``until_idle``, until nothing is waiting);
    polls every ``interval_s`` when idle. Returns how many questions this scorer judged."""
    scorer = scorer or scorer_name()
    stop = stop or threading.Event()
    judged = 0
    while not stop.is_set():
        taken = claim(engine, scorer, lease_s)
        if taken is None:
            if until_idle and not claimed_elsewhere(engine):
                break
            stop.wait(interval_s)
            continue
        answer_id, claim_id = taken
        outcome = "ok"
        try:
            with _renewing(engine, answer_id, scorer, lease_s):
                score_answer(engine, answer_id, judge, finder, rescore=True)
        except (KeyboardInterrupt, SystemExit):
            with contextlib.suppress(Exception):  # let another scorer take it at once
                _give_up(engine, answer_id, claim_id, scorer)
            raise
        except Exception as err:
            log.exception("scoring answer %d failed", answer_id)
            outcome = f"error: {type(err).__name__}: {err}"
        release(engine, answer_id, claim_id, scorer, outcome)
        judged += outcome == "ok"
        if on_scored is not None:
            on_scored(answer_id)
    return judged


def _give_up(engine: Engine, answer_id: int, claim_id: int, scorer: str) -> None:
    with session_scope(engine, write=True) as s:
        _finish(s, answer_id, claim_id, scorer, "interrupted", free=True)


def _finish(
    s: Session, answer_id: int, claim_id: int, scorer: str, outcome: str, *, free: bool
) -> None:
    """Log the claim's outcome; ``free``: give the lease back now (still this scorer's)."""
    if free:
        s.execute(
            update(Answer)
            .where(Answer.id == answer_id, Answer.claimed_by == scorer)
            .values(lease_until=None)
        )
    entry = s.get(ScoringClaim, claim_id)
    if entry is not None:
        entry.finished_at, entry.outcome = utcnow(), outcome[:400]


def claimed_elsewhere(engine: Engine) -> bool:
    """Some question is leased and unscored (a scorer at work, or a dead one's lease)."""
    with session_scope(engine) as s:
        now = utcnow()
        query = (
            select(Answer.id)
            .join(Interview, Interview.id == Answer.interview_id)
            .where(*_waiting(), Answer.lease_until >= now)
            .limit(1)
        )
        return s.scalars(query).first() is not None


# --- progress ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerRate:
    scorer: str
    scored: int  # questions judged in the window
    per_minute: float
    last: object  # when its last question finished


@dataclass(frozen=True)
class Status:
    backlog: int  # questions waiting for a scorer
    claimed: int  # questions being judged now (lease still valid)
    minutes: float
    scorers: list[ScorerRate]
    failed: int  # failures in the window


def status(engine: Engine, minutes: float = 10.0) -> Status:
    """What ``interviewer scorer --status`` prints: the backlog and each scorer's recent rate."""
    now = utcnow()
    since = now - timedelta(minutes=minutes)
    with session_scope(engine) as s:
        waiting = (
            select(func.count(Answer.id))
            .join(Interview, Interview.id == Answer.interview_id)
            .where(*_waiting())
        )
        backlog = int(s.scalar(waiting.where(_free(now))) or 0)
        claimed = int(s.scalar(waiting.where(Answer.lease_until >= now)) or 0)
        rows = s.execute(
            select(
                ScoringClaim.scorer, func.count(ScoringClaim.id), func.max(ScoringClaim.finished_at)
            )
            .where(ScoringClaim.finished_at >= since, ScoringClaim.outcome == "ok")
            .group_by(ScoringClaim.scorer)
            .order_by(ScoringClaim.scorer)
        ).all()
        failed = int(
            s.scalar(
                select(func.count(ScoringClaim.id)).where(
                    and_(ScoringClaim.finished_at >= since, ScoringClaim.outcome.like("error%"))
                )
            )
            or 0
        )
    rates = [ScorerRate(name, int(n), round(n / minutes, 2), last) for name, n, last in rows]
    return Status(backlog, claimed, minutes, rates, failed)
