"""Seeds for the recruiter tests (tests/test_openings*.py): an opening whose applicants are
invited, part-way or completed and scored, with integrity events; staff accounts.

Scores are written straight into Answer/Interview rows (the scorer is tested elsewhere): the
interview score is the mean of the question scores, as scoring/service.py makes it with equal
weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web_support import bank_question

from interviewer import invites
from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import (
    Answer,
    IntegrityEvent,
    Interview,
    InterviewState,
    Opening,
    OpeningRecruiter,
    Role,
    User,
    utcnow,
)

RECRUITER_BANK = Bank.model_validate(
    {
        "id": "recruiter-fixture",
        "title": "Recruiter test screen",
        "domain": "test",
        "version": 1,
        "description": "Two questions for the recruiter tests.",
        "practice_question": "What do you do?",
        "questions": [
            bank_question("q1", "Explain how you would triage a rash."),
            bank_question("q2", "When do you refer a patient?"),
        ],
    }
)
PASSWORD = "correct horse battery staple"


@dataclass
class SeededOpening:
    engine: Any
    opening_id: int
    ids: dict[str, int] = field(default_factory=dict)  # applicant name -> interview id
    tokens: dict[str, str] = field(default_factory=dict)


def password_hash(password: str = PASSWORD) -> str:
    from interviewer.accounts import hash_password

    return hash_password(password)


def staff(
    session: Any,
    role: str,
    *,
    email: str | None = None,
    opening: Opening | None = None,
    name: str | None = None,
) -> User:
    """A staff account (found again by email), assigned to ``opening`` when given."""
    from sqlalchemy import select

    email = email or f"{role}@example.org"
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        user = User(
            email=email,
            name=name or f"{role.replace('_', ' ').title()} {email.split('@')[0]}",
            role=Role(role),
            password_hash=password_hash(),
        )
        session.add(user)
        session.flush()
    if opening is not None and session.get(OpeningRecruiter, (opening.id, user.id)) is None:
        session.add(OpeningRecruiter(opening_id=opening.id, user_id=user.id))
        session.flush()
    return user


def seed_opening(
    settings: Settings,
    applicants: list[tuple[str, list[float] | None]],
    *,
    slug: str = "derm-reviewer",
    title: str = "Dermatologist reviewer",
    top_n: int | None = None,
    threshold: float | None = None,
    flags: dict[str, list[str]] | None = None,
    demographics: dict[str, tuple[str | None, str | None]] | None = None,
    states: dict[str, InterviewState] | None = None,
    bank: Bank = RECRUITER_BANK,
) -> SeededOpening:
    """``applicants``: (name, question scores) - None = invited only, [] = completed unscored."""
    engine = create_db_engine(settings.resolved_database_url)
    migrate(engine)
    flags, demographics, states = flags or {}, demographics or {}, states or {}
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        opening = repo.create_opening(
            s,
            slug=slug,
            title=title,
            bank_version=version,
            shortlist_top_n=top_n,
            shortlist_threshold=threshold,
        )
        seeded = SeededOpening(engine, opening.id)
        for name, scores in applicants:
            sex, race = demographics.get(name, (None, None))
            applicant = repo.create_applicant(
                s,
                name=name,
                email=f"{name.lower().replace(' ', '.')}@example.org",
                demographics={"sex": sex, "race_ethnicity": race},
            )
            issued = invites.issue_invite(s, settings, opening=opening, applicant=applicant)
            interview = s.get(Interview, issued.interview_id)
            seeded.ids[name], seeded.tokens[name] = interview.id, issued.token
            if scores is not None:
                for i, (question, score) in enumerate(zip(bank.questions, scores, strict=False)):
                    s.add(
                        Answer(
                            interview_id=interview.id,
                            question_id=question.id,
                            question_index=i,
                            transcript=f"answer {i}",
                            score=score,
                            scored_at=utcnow(),
                        )
                    )
                interview.state = InterviewState.completed
                interview.completed_at = utcnow()
                if scores:
                    interview.score = sum(scores) / len(bank.questions)
                    interview.scored_at = utcnow()
            if name in states:
                interview.state = states[name]
            for severity in flags.get(name, []):
                s.add(
                    IntegrityEvent(interview_id=interview.id, kind="tab_hidden", severity=severity)
                )
        s.flush()
    return seeded
