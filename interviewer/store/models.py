"""The data model: SQLModel tables, one per thing a recruiter or the agent talks about.

Flow: a domain lead publishes a ``BankVersion`` (immutable once an interview used it); a recruiter
creates an ``Opening`` pinned to one bank version and sends ``Invite``s to ``Applicant``s; each
invite leads to one ``Interview``, which collects ``Answer``s; the scorer writes
``CriterionScore``s per answer and the proctor ``IntegrityEvent``s per interview.

Self-reported demographic fields live on ``ApplicantDemographics``, a separate table that the
scoring code never reads: only the fairness audit joins it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event, select
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import attributes
from sqlmodel import Field, SQLModel

from interviewer.errors import BankError

# Named constraints: SQLite alters a table by copying it (Alembic batch mode), which needs stable
# constraint names; PostgreSQL gets the same names, so one migration fits both engines.
# Must be set before any table class below is defined.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Aware UTC: SQLModel's datetime columns refuse naive values (and return aware ones)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands back naive datetimes for values stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _str_enum(enum_cls: type[enum.Enum]) -> SAEnum:
    """Enums as plain strings: no PostgreSQL enum types, so adding a state needs no migration."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Role(enum.StrEnum):
    admin = "admin"
    recruiter = "recruiter"
    domain_lead = "domain_lead"


class InterviewState(enum.StrEnum):
    invited = "invited"
    consented = "consented"
    in_progress = "in_progress"
    completed = "completed"
    abandoned = "abandoned"


class AnswerStatus(enum.StrEnum):
    answered = "answered"
    no_answer = "no_answer"
    timed_out = "timed_out"  # cut off at the time limit; what was said is kept


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role = Field(sa_type=_str_enum(Role))
    password_hash: str
    created_at: datetime = Field(default_factory=utcnow)
    active: bool = True


class StaffSession(SQLModel, table=True):
    """A signed-in staff browser (see interviewer.web.auth): the cookie holds a random token, this
    row only its sha256, so a copy of the database signs nobody in. Deleted on logout, on
    deactivation and on a password change; expired rows are ignored and swept at login."""

    id: str = Field(primary_key=True, max_length=64, description="sha256 of the cookie token.")
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class LoginAttempt(SQLModel, table=True):
    """Sign-in attempts counted per key ("acct:<email>", "ip:<address>") since the key's window
    opened (see interviewer.web.throttle). In the database, so that every server process counts
    the same attempts; a row whose window has passed counts nothing and is swept."""

    id: str = Field(primary_key=True, max_length=400, description='"acct:<email>" or "ip:<addr>".')
    count: int = Field(default=0, description="Attempts reserved in this window (failures).")
    window_start: float = Field(index=True, description="Epoch seconds of the first attempt.")


class BankVersion(SQLModel, table=True):
    """A published version of a bank, stored whole so interviews never see it change."""

    __table_args__ = (UniqueConstraint("bank_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    bank_id: str = Field(index=True, max_length=64)
    version: int
    title: str
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    sha256: str = Field(max_length=64, description="Of the canonical JSON of content.")
    published_at: datetime = Field(default_factory=utcnow)
    locked: bool = Field(default=False, description="Set once an interview used it.")


class LockedBankVersion(BankError):
    """Something tried to change or delete a bank version that interviews already used."""


_IMMUTABLE_BANK_FIELDS = ("bank_id", "version", "title", "content", "sha256", "locked")


def _locked_in_database(connection: Any, bank_version_id: int) -> bool:
    table = BankVersion.__table__
    query = select(table.c.locked).where(table.c.id == bank_version_id)
    return bool(connection.execute(query).scalar())


@event.listens_for(BankVersion, "before_update")
def _refuse_changing_locked_bank(_mapper: Any, connection: Any, target: BankVersion) -> None:
    """The last line of defence: asks the database (not the possibly stale object) if locked."""
    if not _locked_in_database(connection, target.id):
        return
    state = attributes.instance_state(target)
    changed = [
        name
        for name in _IMMUTABLE_BANK_FIELDS
        if (history := state.attrs[name].history).has_changes()
        and list(history.added) != list(history.deleted)
    ]
    if changed:
        raise LockedBankVersion(
            f"bank {target.bank_id} version {target.version} is used by interviews and cannot "
            f"change ({', '.join(changed)}): bump `version` and publish again"
        )


@event.listens_for(BankVersion, "before_delete")
def _refuse_deleting_locked_bank(_mapper: Any, connection: Any, target: BankVersion) -> None:
    if _locked_in_database(connection, target.id):
        raise LockedBankVersion(
            f"bank {target.bank_id} version {target.version} is used by interviews and cannot "
            "be deleted"
        )


class Opening(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    title: str
    bank_version_id: int = Field(foreign_key="bankversion.id")
    silence_threshold_s: float | None = None
    shortlist_top_n: int | None = None
    shortlist_threshold: float | None = None
    retention_days: int = 180
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class OpeningRecruiter(SQLModel, table=True):
    opening_id: int = Field(foreign_key="opening.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class Applicant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, max_length=320)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class ApplicantDemographics(SQLModel, table=True):
    """Optional, self-reported, kept apart: read only by the fairness audit."""

    applicant_id: int = Field(foreign_key="applicant.id", primary_key=True)
    sex: str | None = None
    race_ethnicity: str | None = None
    age_band: str | None = None


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    opening_id: int = Field(foreign_key="opening.id", index=True)
    applicant_id: int = Field(foreign_key="applicant.id", index=True)
    token_hash: str = Field(unique=True, max_length=64, description="sha256 of the token.")
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None


class Interview(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    invite_id: int | None = Field(default=None, foreign_key="invite.id", unique=True)
    opening_id: int = Field(foreign_key="opening.id", index=True)
    applicant_id: int = Field(foreign_key="applicant.id", index=True)
    bank_version_id: int = Field(foreign_key="bankversion.id")
    state: InterviewState = Field(default=InterviewState.invited, sa_type=_str_enum(InterviewState))
    # Resume point: index into the bank's questions of the next question to ask
    # (-1 = the practice question), plus the core's serialized state.
    next_question_index: int = -1
    core_state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    consented_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    score: float | None = None
    score_confidence: float | None = None
    scored_at: datetime | None = None
    decision: str | None = None


class Answer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("interview_id", "question_id", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", index=True)
    question_id: str = Field(max_length=64, description="'practice' for the warm-up question.")
    question_index: int
    attempt: int = Field(default=0, description="0 = the question, 1.. = follow-ups.")
    status: AnswerStatus = Field(default=AnswerStatus.answered, sa_type=_str_enum(AnswerStatus))
    audio_path: str | None = Field(default=None, description="Relative to the recordings root.")
    transcript: str = ""
    words: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="[{word, start, end, probability}] in seconds from the answer's start.",
    )
    started_at: datetime | None = None
    ended_at: datetime | None = None
    speech_duration_s: float | None = None
    onset_latency_s: float | None = Field(default=None, description="Question end -> speech.")
    created_at: datetime = Field(default_factory=utcnow)
    score: float | None = None
    score_confidence: float | None = None
    scored_at: datetime | None = None
    # scoring/claims.py: the scorer judging this question (attempt 0 carries it) and until when
    claimed_by: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = None


class CriterionScore(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("answer_id", "criterion_id"),)

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True)
    criterion_id: str = Field(max_length=64, description="A criterion or red-flag id.")
    kind: str = Field(default="criterion", max_length=16, description="criterion | red_flag")
    probability: float
    level: float | None = None
    evidence: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="[{quote, start, end, similarity}] quoted verbatim from the transcript.",
    )
    model: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class IntegrityEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", index=True)
    question_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=48)
    severity: str = Field(default="info", max_length=16, description="info | warning | high")
    at: datetime = Field(default_factory=utcnow)
    duration_s: float | None = None
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class VoicePrint(SQLModel, table=True):
    """An interview's voice as the speaker encoder hears it (proctoring/speakers.py): a unit
    vector, compared with other interviews' to find one person under several names or a
    re-take. Biometric data: erased with the interview, and with its recordings at the end of
    the retention period (privacy.py)."""

    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", index=True, unique=True)
    answer_id: int | None = Field(default=None, description="The answer it was taken from.")
    seconds: float = Field(description="Seconds of speech the vector averages.")
    vector: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    model: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Who did what: decisions, deletions, publications."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    action: str = Field(max_length=64)
    target: str = Field(max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ScoringClaim(SQLModel, table=True):
    """One claim of a question by a scorer (scoring/claims.py): the log behind
    ``interviewer scorer --status`` and the proof that each answer is judged once. No foreign
    key: an erased answer leaves its id here, which says nothing about anyone."""

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(index=True)
    scorer: str = Field(max_length=128)
    claimed_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = Field(default=None, index=True)
    outcome: str | None = Field(default=None, max_length=400, description="ok | error: ...")
