"""The few writes everything else needs, each keeping one invariant the tables alone cannot.

* A published bank version never changes: republishing identical content is a no-op, different
  content under the same version is refused, and once an interview has used a version the ORM
  refuses to update it (see ``_refuse_changing_locked_bank`` at the bottom).
* An interview is pinned to the bank version of its opening when it is created.
* An answer is identified by (interview, question, attempt): saving it again replaces it, so a
  reconnecting client or a retried write never duplicates an answer.

Functions take a session and flush, never commit: the caller's ``session_scope`` owns the
transaction, so several calls can be one atomic change.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import attributes
from sqlmodel import Session

from interviewer.banks.model import Bank
from interviewer.errors import BankError, UserError
from interviewer.store.models import (
    Answer,
    Applicant,
    ApplicantDemographics,
    AuditLog,
    BankVersion,
    CriterionScore,
    Interview,
    InterviewState,
    Invite,
    LockedBankVersion,
    Opening,
    User,
    utcnow,
)

__all__ = [
    "LockedBankVersion",
    "answers_of",
    "audit",
    "bank_of",
    "content_sha256",
    "create_applicant",
    "create_interview",
    "create_opening",
    "publish_bank",
    "save_answer",
    "save_progress",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_DEMOGRAPHIC_FIELDS = ("sex", "race_ethnicity", "age_band")
_OPENING_OPTIONS = frozenset(Opening.model_fields) - {"id", "slug", "title", "bank_version_id"}


def content_sha256(content: Any) -> str:
    """Of canonical JSON, so key order and whitespace never make two equal banks differ."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _bank_version(session: Session, bank_id: str, version: int) -> BankVersion | None:
    query = select(BankVersion).where(BankVersion.bank_id == bank_id)
    return session.scalars(query.where(BankVersion.version == version)).first()


def _same_or_conflict(existing: BankVersion, bank: Bank, digest: str) -> BankVersion:
    if existing.sha256 != digest:
        raise BankError(
            f"bank {bank.id} version {bank.version} is already published with different "
            "content: bump `version`"
        )
    return existing


def publish_bank(session: Session, bank: Bank) -> BankVersion:
    """Store ``bank`` as an immutable version; publishing the same content again returns it."""
    content = bank.model_dump(mode="json")
    digest = content_sha256(content)
    existing = _bank_version(session, bank.id, bank.version)
    if existing is not None:
        return _same_or_conflict(existing, bank, digest)
    row = BankVersion(
        bank_id=bank.id, version=bank.version, title=bank.title, content=content, sha256=digest
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another process published this id+version between our read and our insert.
        existing = _bank_version(session, bank.id, bank.version)
        if existing is None:
            raise
        return _same_or_conflict(existing, bank, digest)
    return row


def bank_of(session: Session, bank_version_id: int) -> Bank:
    row = session.get(BankVersion, bank_version_id)
    if row is None:
        raise LookupError(f"no bank version with id {bank_version_id}")
    return Bank.model_validate(row.content)


def create_opening(
    session: Session, *, slug: str, title: str, bank_version: BankVersion, **opts: Any
) -> Opening:
    """``opts`` are Opening's other columns (silence_threshold_s, shortlist_top_n, settings...)."""
    unknown = set(opts) - _OPENING_OPTIONS
    if unknown:
        raise TypeError(f"create_opening: unknown option(s) {', '.join(sorted(unknown))}")
    if not _SLUG.match(slug):
        raise UserError(
            f"opening slug {slug!r} must be lowercase letters, digits and dashes (at most 64)"
        )
    if session.scalars(select(Opening).where(Opening.slug == slug)).first() is not None:
        raise UserError(f"an opening with slug {slug!r} already exists: choose another slug")
    if bank_version.id is None:
        session.flush()
    opening = Opening(slug=slug, title=title, bank_version_id=bank_version.id, **opts)
    session.add(opening)
    session.flush()
    return opening


def create_applicant(
    session: Session, *, name: str, email: str, demographics: dict[str, str | None] | None = None
) -> Applicant:
    """Demographics go to their own table, and only when the applicant gave any."""
    demographics = demographics or {}
    unknown = set(demographics) - set(_DEMOGRAPHIC_FIELDS)
    if unknown:
        raise ValueError(f"unknown demographic field(s) {', '.join(sorted(unknown))}")
    applicant = Applicant(name=name.strip(), email=email.strip())
    session.add(applicant)
    session.flush()
    given = {key: value for key, value in demographics.items() if value not in (None, "")}
    if given:
        session.add(ApplicantDemographics(applicant_id=applicant.id, **given))
        session.flush()
    return applicant


def create_interview(
    session: Session, *, opening: Opening, applicant: Applicant, invite: Invite | None = None
) -> Interview:
    """Pins the interview to the opening's bank version and locks that version for good."""
    if invite is not None and (
        invite.opening_id != opening.id or invite.applicant_id != applicant.id
    ):
        raise ValueError(f"invite {invite.id} is not for this opening and applicant")
    bank_version = session.get(BankVersion, opening.bank_version_id)
    if bank_version is None:
        raise LookupError(f"opening {opening.slug!r} points at a missing bank version")
    if not bank_version.locked:
        bank_version.locked = True
    interview = Interview(
        invite_id=invite.id if invite is not None else None,
        opening_id=opening.id,
        applicant_id=applicant.id,
        bank_version_id=bank_version.id,
    )
    session.add(interview)
    session.flush()
    return interview


def save_answer(session: Session, answer: Answer) -> Answer:
    """Insert, or replace the stored answer with the same interview, question and attempt.

    Returns the stored row, which is not ``answer`` when one existed: use the return value.
    Replacing the transcript deletes the criterion scores of the old one (they judged other words).
    """
    key = (
        Answer.interview_id == answer.interview_id,
        Answer.question_id == answer.question_id,
        Answer.attempt == answer.attempt,
    )
    existing = session.scalars(select(Answer).where(*key)).first()
    if existing is None:
        try:
            with session.begin_nested():
                session.add(answer)
            return answer
        except IntegrityError:
            existing = session.scalars(select(Answer).where(*key)).first()
            if existing is None:
                raise
    if existing is answer:
        session.flush()
        return answer
    transcript_changed = existing.transcript != answer.transcript or existing.words != answer.words
    for field in Answer.model_fields:
        if field not in ("id", "created_at"):
            setattr(existing, field, getattr(answer, field))
    if transcript_changed:
        session.execute(delete(CriterionScore).where(CriterionScore.answer_id == existing.id))
    session.flush()
    return existing


def save_progress(
    session: Session,
    interview_id: int,
    *,
    next_question_index: int,
    core_state: dict[str, Any],
    state: InterviewState | str,
) -> Interview:
    """The resume point, written after every answer so a dropped connection loses nothing."""
    interview = session.get(Interview, interview_id)
    if interview is None:
        raise LookupError(f"no interview with id {interview_id}")
    state = InterviewState(state)
    if interview.state is InterviewState.completed and state is not InterviewState.completed:
        raise ValueError(f"interview {interview_id} is completed; it cannot become {state}")
    now = utcnow()
    # A copy via JSON: fails here (not at commit) on unserialisable state, and a dict the caller
    # keeps mutating can never alias the stored one.
    interview.core_state = json.loads(json.dumps(core_state))
    attributes.flag_modified(interview, "core_state")
    interview.next_question_index = next_question_index
    interview.state = state
    if state is InterviewState.consented and interview.consented_at is None:
        interview.consented_at = now
    if state is InterviewState.in_progress and interview.started_at is None:
        interview.started_at = now
    if state is InterviewState.completed and interview.completed_at is None:
        interview.completed_at = now
    interview.updated_at = now
    session.flush()
    return interview


def answers_of(session: Session, interview_id: int) -> list[Answer]:
    """In interview order: by question, then the question before its follow-ups."""
    query = (
        select(Answer)
        .where(Answer.interview_id == interview_id)
        .order_by(Answer.question_index, Answer.attempt, Answer.id)
    )
    return list(session.scalars(query))


def audit(
    session: Session, user: User | int | None, action: str, target: str, **detail: Any
) -> AuditLog:
    """One AuditLog row: who (``None`` = the system or an anonymous caller), what, on what.

    ``detail`` must be JSON-serialisable; it is stored as given, so never put a password or an
    invite token in it.
    """
    user_id = user.id if isinstance(user, User) else user
    row = AuditLog(
        user_id=user_id,
        action=action[:64],
        target=target[:128],
        detail=json.loads(json.dumps(detail, default=str)),
    )
    session.add(row)
    session.flush()
    return row
