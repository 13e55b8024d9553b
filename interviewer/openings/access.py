"""Who sees which openings: all of them for an admin, the assigned ones for anyone else."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from interviewer.store.models import Opening, OpeningRecruiter, Role, User


def is_admin(user: User) -> bool:
    return Role(user.role) is Role.admin


def visible_openings(session: Session, user: User) -> list[Opening]:
    """All openings for an admin; for anyone else only those they are assigned to."""
    query = select(Opening).order_by(Opening.created_at.desc(), Opening.id.desc())
    if not is_admin(user):
        query = query.join(OpeningRecruiter, OpeningRecruiter.opening_id == Opening.id).where(
            OpeningRecruiter.user_id == user.id
        )
    return list(session.scalars(query))


def can_see(session: Session, user: User, opening_id: int) -> bool:
    if is_admin(user):
        return True
    return session.get(OpeningRecruiter, (opening_id, user.id)) is not None
