"""An opening's shortlist: every interview ranked as ranking.py ranks it, with its status,
decision and per-question scores, filtered and sorted for the page.

**Statuses** are what a recruiter acts on: invited, in progress, abandoned, completed (not scored
yet), scored, then decided (shortlist / reject / hold), which wins over the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from interviewer.interview import PRACTICE_ID
from interviewer.openings.demo import is_demo_email
from interviewer.scoring import ranking
from interviewer.store import repo
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    Applicant,
    AuditLog,
    Interview,
    Opening,
)

DECISIONS = ("shortlist", "reject", "hold")
STATUSES = ("invited", "in_progress", "abandoned", "completed", "scored", "decided")
STATUS_LABELS = {
    "invited": "invited",
    "in_progress": "in progress",
    "abandoned": "abandoned",
    "completed": "completed, not scored yet",
    "scored": "scored",
    "decided": "decided",
}
SORTS = ("rank", "score", "name", "flags", "status")


def status_of(interview: Interview) -> str:
    if interview.decision:
        return "decided"
    state = str(interview.state)
    if state == "completed":
        return "scored" if interview.score is not None else "completed"
    if state in ("consented", "in_progress"):
        return "in_progress"
    return state


@dataclass
class Filters:
    status: str = ""
    decision: str = ""  # "", a decision, or "none"
    flagged: str = ""  # "", "yes", "no"
    sort: str = "rank"
    order: str = "asc"

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Filters:
        """Unknown values fall back to "everything": a stale bookmark still shows a page."""
        f = cls(
            status=params.get("status", ""),
            decision=params.get("decision", ""),
            flagged=params.get("flagged", ""),
            sort=params.get("sort", "rank"),
            order=params.get("order", "asc"),
        )
        if f.status not in STATUSES:
            f.status = ""
        if f.decision not in (*DECISIONS, "none"):
            f.decision = ""
        if f.flagged not in ("yes", "no"):
            f.flagged = ""
        if f.sort not in SORTS:
            f.sort = "rank"
        if f.order not in ("asc", "desc"):
            f.order = "asc"
        return f

    def query(self, **changes: str) -> dict[str, str]:
        """As query parameters (defaults left out), with ``changes`` applied."""
        values = {**asdict(self), **changes}
        defaults = asdict(Filters())
        return {k: v for k, v in values.items() if v and v != defaults[k]}

    @property
    def active(self) -> bool:
        return bool(self.status or self.decision or self.flagged)


@dataclass
class Row:
    interview_id: int
    applicant_id: int
    name: str
    email: str
    status: str
    state: str
    rank: int | None
    tied: bool
    score: float | None
    low: float | None
    high: float | None
    questions: list[float | None]
    answered: int
    integrity: dict[str, int]
    shortlisted: bool
    overlaps_previous: bool
    decision: str | None
    decision_note: str
    reason: str

    @property
    def flagged(self) -> bool:
        return bool(self.integrity.get("high") or self.integrity.get("warning"))

    @property
    def demo(self) -> bool:
        """A demo applicant (`make run`'s seeded interviews): badged, so nobody hires one."""
        return is_demo_email(self.email)

    @property
    def flags(self) -> int:
        return sum(self.integrity.values())


@dataclass(frozen=True)
class Question:
    id: str
    number: int
    prompt: str


@dataclass
class Shortlist:
    opening: Opening
    rule: ranking.ShortlistRule
    confidence: float
    questions: list[Question]
    ranked: list[Row]
    unranked: list[Row]
    filters: Filters
    total: int

    @property
    def rows(self) -> list[Row]:
        return [*self.ranked, *self.unranked]


def _question_scores(session: Session, ids: list[int]) -> dict[int, dict[str, float]]:
    """Each interview's score per question: the first attempt's, as ranking.py reads them."""
    out: dict[int, dict[str, float]] = {i: {} for i in ids}
    if not ids:
        return out
    rows = session.execute(
        select(Answer.interview_id, Answer.question_id, Answer.score)
        .where(Answer.interview_id.in_(ids), Answer.question_id != PRACTICE_ID)
        .where(Answer.score.is_not(None))
        .order_by(Answer.interview_id, Answer.question_index, Answer.attempt)
    ).all()
    for interview_id, question_id, score in rows:
        out[interview_id].setdefault(question_id, float(score))
    return out


def _answered_counts(session: Session, ids: list[int]) -> dict[int, int]:
    """Each interview's questions answered, whether scored yet or not: a finished interview
    reads N/N answered while the scorer is still working through it (issue 16)."""
    out = dict.fromkeys(ids, 0)
    if not ids:
        return out
    rows = session.execute(
        select(Answer.interview_id, func.count())
        .where(Answer.interview_id.in_(ids), Answer.question_id != PRACTICE_ID)
        # cut off at the time limit is answered too: what was said is kept and scored
        .where(Answer.attempt == 0)
        .where(Answer.status.in_([AnswerStatus.answered, AnswerStatus.timed_out]))
        .group_by(Answer.interview_id)
    ).all()
    for interview_id, count in rows:
        out[interview_id] = int(count)
    return out


def latest_notes(session: Session, interview_ids: Iterable[int]) -> dict[int, str]:
    targets = {f"interview:{i}": i for i in interview_ids}
    if not targets:
        return {}
    notes: dict[int, str] = {}
    query = (
        select(AuditLog.target, AuditLog.detail)
        .where(AuditLog.action == "decision", AuditLog.target.in_(list(targets)))
        .order_by(AuditLog.at, AuditLog.id)
    )
    for target, detail in session.execute(query):
        notes[targets[target]] = str((detail or {}).get("note") or "")
    return notes


def load_shortlist(session: Session, opening: Opening, filters: Filters | None = None) -> Shortlist:
    """The opening ranked as ranking.py ranks it, with status, decisions and question scores,
    then filtered and sorted; ranks (and ties) are always those of the whole opening."""
    filters = filters or Filters()
    result = ranking.load_ranking(session, opening.id)
    bank = repo.bank_of(session, opening.bank_version_id)
    questions = [Question(q.id, i, q.prompt) for i, q in enumerate(bank.questions, start=1)]
    interviews = {
        i.id: i
        for i in session.scalars(select(Interview).where(Interview.opening_id == opening.id))
    }
    emails = dict(
        session.execute(
            select(Applicant.id, Applicant.email).where(
                Applicant.id.in_({i.applicant_id for i in interviews.values()})
            )
        ).all()
    )
    per_question = _question_scores(session, list(interviews))
    answered = _answered_counts(session, list(interviews))
    notes = latest_notes(session, interviews)

    def row(interview_id: int, **values: Any) -> Row:
        interview = interviews[interview_id]
        got = per_question[interview_id]
        return Row(
            interview_id=interview_id,
            applicant_id=interview.applicant_id,
            email=emails.get(interview.applicant_id, ""),
            status=status_of(interview),
            state=str(interview.state),
            questions=[got.get(q.id) for q in questions],
            answered=answered[interview_id],
            decision=interview.decision,
            decision_note=notes.get(interview_id, ""),
            **values,
        )

    ranked = [
        row(
            r.interview_id,
            name=r.name,
            rank=r.rank,
            tied=r.tied,
            score=r.score,
            low=r.low,
            high=r.high,
            integrity=r.integrity,
            shortlisted=r.shortlisted,
            overlaps_previous=r.overlaps_previous,
            reason="",
        )
        for r in result.ranked
    ]
    unranked = [
        row(
            u.interview_id,
            name=u.name,
            rank=None,
            tied=False,
            score=interviews[u.interview_id].score,
            low=None,
            high=None,
            integrity=u.integrity,
            shortlisted=False,
            overlaps_previous=False,
            reason=u.reason,
        )
        for u in result.unranked
    ]
    total = len(ranked) + len(unranked)
    ranked = _sorted(_filtered(ranked, filters), filters)
    unranked = _sorted(_filtered(unranked, filters), filters)
    return Shortlist(
        opening=opening,
        rule=result.rule,
        confidence=result.confidence,
        questions=questions,
        ranked=ranked,
        unranked=unranked,
        filters=filters,
        total=total,
    )


def _filtered(rows: list[Row], f: Filters) -> list[Row]:
    out = []
    for r in rows:
        if f.status and r.status != f.status:
            continue
        if f.decision == "none" and r.decision:
            continue
        if f.decision and f.decision != "none" and r.decision != f.decision:
            continue
        if f.flagged == "yes" and not r.flagged:
            continue
        if f.flagged == "no" and r.flagged:
            continue
        out.append(r)
    return out


def _sorted(rows: list[Row], f: Filters) -> list[Row]:
    """Ascending is the natural order (rank 1 first, lowest score first, fewest flags first);
    rows without the key (no rank, no score) always come last, whichever the order."""
    keys = {
        "rank": lambda r: r.rank,
        "score": lambda r: r.score,
        "name": lambda r: r.name.casefold(),
        "flags": lambda r: (r.integrity.get("high", 0), r.integrity.get("warning", 0), r.flags),
        "status": lambda r: STATUSES.index(r.status),
    }
    key = keys[f.sort]
    present = [r for r in rows if key(r) is not None]
    missing = [r for r in rows if key(r) is None]
    # Ties keep a fixed order (interview id) in both directions.
    present.sort(key=lambda r: r.interview_id)
    present.sort(key=key, reverse=f.order == "desc")
    return present + missing
