"""Who may see which opening: the one rule, for the openings list and for every page of one."""

from __future__ import annotations

from sqlalchemy import Select, false, select
from sqlmodel import Session

from interviewer.store.models import Opening, OpeningRecruiter, Role, User


def is_admin(user: User) -> bool:
    return Role(user.role) is Role.admin


def _visible_to(query: Select, user: User) -> Select:
    """``query`` (over Opening) narrowed to what ``user`` may see: every opening for an admin,
    the assigned ones for a recruiter, none for anyone else, so that an account moved from
    recruiter to another role stops seeing the openings it was once assigned to."""
    if is_admin(user):
        return query
    if Role(user.role) is not Role.recruiter:
        return query.where(false())
    return query.join(OpeningRecruiter, OpeningRecruiter.opening_id == Opening.id).where(
        OpeningRecruiter.user_id == user.id
    )


def visible_openings(session: Session, user: User) -> list[Opening]:
    """The openings ``user`` may see, newest first."""
    query = select(Opening).order_by(Opening.created_at.desc(), Opening.id.desc())
    return list(session.scalars(_visible_to(query, user)))


def visible_opening(session: Session, user: User, opening_id: int) -> Opening | None:
    """The opening when ``user`` may see it; None when it does not exist or they may not, which
    callers answer alike (404) so that nobody learns which openings exist."""
    query = select(Opening).where(Opening.id == opening_id)
    return session.scalars(_visible_to(query, user)).first()
