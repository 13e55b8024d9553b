"""Recruiters' decisions on an opening's interviews, and the opening's audit trail.

**A decision** is a person's call and is allowed on any interview of the opening; each one is
written to the audit log with its note and the decision it replaced, and the shortlist shows the
latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from interviewer import invites
from interviewer.errors import UserError
from interviewer.openings.applicants import clip
from interviewer.openings.shortlist import DECISIONS
from interviewer.store import repo
from interviewer.store.models import Applicant, AuditLog, Interview, Opening, User

MAX_NOTE_CHARS = 2000


def record_decision(
    session: Session,
    actor: User,
    opening: Opening,
    interview_id: int,
    decision: str,
    note: str = "",
) -> Interview:
    """Set (or, with ``decision == "clear"``, remove) the decision; audited with the note and
    the decision it replaces. LookupError when the interview is not in this opening."""
    interview = session.get(Interview, interview_id)
    if interview is None or interview.opening_id != opening.id:
        raise LookupError(interview_id)
    if decision not in (*DECISIONS, "clear"):
        raise UserError(f"choose one of {', '.join(DECISIONS)}, not “{clip(decision)}”")
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise UserError(f"the note is {len(note)} characters; keep it under {MAX_NOTE_CHARS}")
    previous = interview.decision
    interview.decision = None if decision == "clear" else decision
    interview.updated_at = datetime.now(UTC)
    repo.audit(
        session,
        actor,
        "decision",
        f"interview:{interview.id}",
        opening_id=opening.id,
        decision=decision,
        previous=previous,
        note=note,
    )
    session.flush()
    return interview


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    who: str
    action: str
    applicant: str
    interview_id: int | None
    detail: dict[str, Any]


def history(session: Session, opening: Opening, *, limit: int = 500) -> list[HistoryEntry]:
    """The opening's audit trail, newest first: decisions on its interviews and changes to it."""
    names = dict(
        session.execute(
            select(Interview.id, Applicant.name)
            .join(Applicant, Applicant.id == Interview.applicant_id)
            .where(Interview.opening_id == opening.id)
        ).all()
    )
    targets = [f"interview:{i}" for i in names] + [f"opening:{opening.id}"]
    rows = session.execute(
        select(AuditLog, User.name, User.email)
        .join(User, User.id == AuditLog.user_id, isouter=True)
        .where(AuditLog.target.in_(targets))
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    ).all()
    out = []
    for entry, name, email in rows:
        interview_id = (
            int(entry.target.split(":", 1)[1]) if entry.target.startswith("interview:") else None
        )
        out.append(
            HistoryEntry(
                at=invites._aware(entry.at),
                who=name or email or "system",
                action=entry.action,
                applicant=names.get(interview_id, "") if interview_id else "",
                interview_id=interview_id,
                detail=dict(entry.detail or {}),
            )
        )
    return out
