"""Creating and editing an opening (its form, checked field by field), the openings list's
cards, and which recruiters are assigned to it. Every change is audited."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from interviewer.config import OPENING_VOICE_KEY, VOICES
from interviewer.errors import UserError
from interviewer.interview import NO_ANSWER_KEY
from interviewer.openings.access import is_admin
from interviewer.proctoring.thresholds import SETTINGS_KEY as PROCTORING_KEY
from interviewer.store import repo
from interviewer.store.models import BankVersion, Interview, Opening, OpeningRecruiter, Role, User


@dataclass(frozen=True)
class OpeningCard:
    opening: Opening
    bank: str
    invited: int
    completed: int
    scored: int
    recruiters: list[str]


def cards(session: Session, openings: Sequence[Opening]) -> list[OpeningCard]:
    """What the openings list shows for each: bank, how far its applicants are, who recruits."""
    ids = [o.id for o in openings]
    if not ids:
        return []
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    rows = session.execute(
        select(Interview.opening_id, Interview.state, Interview.score.is_not(None), func.count())
        .where(Interview.opening_id.in_(ids))
        .group_by(Interview.opening_id, Interview.state, Interview.score.is_not(None))
    ).all()
    for opening_id, state, scored, n in rows:
        c = counts[opening_id]
        c["invited"] = c.get("invited", 0) + n
        if str(state) == "completed":
            c["completed"] = c.get("completed", 0) + n
            if scored:
                c["scored"] = c.get("scored", 0) + n
    banks = {
        b.id: f"{b.title} v{b.version}"
        for b in session.scalars(
            select(BankVersion).where(BankVersion.id.in_({o.bank_version_id for o in openings}))
        )
    }
    people: dict[int, list[str]] = {i: [] for i in ids}
    for opening_id, name, email in session.execute(
        select(OpeningRecruiter.opening_id, User.name, User.email)
        .join(User, User.id == OpeningRecruiter.user_id)
        .where(OpeningRecruiter.opening_id.in_(ids))
        .order_by(User.name, User.email)
    ):
        people[opening_id].append(name or email)
    return [
        OpeningCard(
            opening=o,
            bank=banks.get(o.bank_version_id, "?"),
            invited=counts[o.id].get("invited", 0),
            completed=counts[o.id].get("completed", 0),
            scored=counts[o.id].get("scored", 0),
            recruiters=people[o.id],
        )
        for o in openings
    ]


def bank_versions(session: Session) -> list[BankVersion]:
    """Published bank versions an opening can use, newest version of each bank first."""
    query = select(BankVersion).order_by(BankVersion.bank_id, BankVersion.version.desc())
    return list(session.scalars(query))


@dataclass
class OpeningInput:
    title: str
    bank_version_id: int
    shortlist_top_n: int | None
    shortlist_threshold: float | None  # on [0, 1]
    retention_days: int
    silence_threshold_s: float | None
    require_fullscreen: bool
    voice: str = ""  # one of VOICES; "" for the settings' default
    no_answer_timeout_s: float | None = None  # in ``settings``; None: the server's default

    def options(self) -> dict[str, Any]:
        settings: dict[str, Any] = {PROCTORING_KEY: {"require_fullscreen": self.require_fullscreen}}
        if self.voice:
            settings[OPENING_VOICE_KEY] = self.voice
        if self.no_answer_timeout_s is not None:
            settings[NO_ANSWER_KEY] = self.no_answer_timeout_s
        return {
            "shortlist_top_n": self.shortlist_top_n,
            "shortlist_threshold": self.shortlist_threshold,
            "retention_days": self.retention_days,
            "silence_threshold_s": self.silence_threshold_s,
            "settings": settings,
        }


def _number(
    form: Mapping[str, Any],
    name: str,
    errors: dict[str, str],
    *,
    kind: type,
    low: float,
    high: float,
    what: str,
) -> Any:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        errors[name] = f"{what} must be a {'whole ' if kind is int else ''}number, not “{raw}”"
        return None
    if not low <= value <= high:
        errors[name] = f"{what} must be between {low:g} and {high:g}, not {raw}"
        return None
    return value


def parse_opening_form(
    form: Mapping[str, Any], versions: Iterable[BankVersion]
) -> tuple[OpeningInput | None, dict[str, str]]:
    """The create form checked field by field: (input, {}) or (None, {field: what is wrong})."""
    errors: dict[str, str] = {}
    title = " ".join(str(form.get("title") or "").split())
    if not title:
        errors["title"] = "Give the opening a title, e.g. “Dermatologist reviewer, EU”"
    elif len(title) > 200:
        errors["title"] = f"The title is {len(title)} characters; keep it under 200"
    known = {v.id: v for v in versions}
    bank_raw = str(form.get("bank_version_id") or "").strip()
    bank_id = int(bank_raw) if bank_raw.isdigit() else None
    if bank_id not in known:
        errors["bank_version_id"] = (
            "Choose a published bank version"
            if known
            else "No bank is published yet: ask a domain lead to publish one"
        )
    top_n = _number(form, "shortlist_top_n", errors, kind=int, low=1, high=100_000, what="Top N")
    threshold = _number(
        form, "shortlist_threshold", errors, kind=float, low=0, high=100, what="The threshold"
    )
    retention = _number(
        form, "retention_days", errors, kind=int, low=1, high=3650, what="Retention"
    )
    if retention is None and "retention_days" not in errors:
        errors["retention_days"] = "Say how many days recordings are kept (1 to 3650)"
    silence = _number(
        form,
        "silence_threshold_s",
        errors,
        kind=float,
        low=0.3,
        high=10,
        what="The maximum pause",
    )
    voice = str(form.get("voice") or "").strip()
    if voice and voice not in VOICES:
        errors["voice"] = f"Choose the default voice or one of {', '.join(VOICES)}"
    no_answer = _number(
        form,
        NO_ANSWER_KEY,
        errors,
        kind=float,
        low=5,
        high=600,
        what="The wait for an answer",
    )
    if errors:
        return None, errors
    return (
        OpeningInput(
            title=title,
            bank_version_id=bank_id,
            shortlist_top_n=top_n,
            shortlist_threshold=None if threshold is None else round(threshold / 100, 6),
            retention_days=retention,
            silence_threshold_s=silence,
            require_fullscreen=str(form.get("require_fullscreen") or "") in ("1", "on", "yes"),
            voice=voice,
            no_answer_timeout_s=no_answer,
        ),
        {},
    )


def _slug_base(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:48].strip("-")
    return slug or "opening"


def unique_slug(session: Session, title: str) -> str:
    base = _slug_base(title)
    taken = set(session.scalars(select(Opening.slug).where(Opening.slug.like(f"{base}%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def create_opening(session: Session, actor: User, data: OpeningInput) -> Opening:
    """The opening, with its creator assigned when a recruiter creates it (else they could not
    see what they just made); audited."""
    version = session.get(BankVersion, data.bank_version_id)
    if version is None:
        raise UserError("that bank version no longer exists: choose another")
    opening = repo.create_opening(
        session,
        slug=unique_slug(session, data.title),
        title=data.title,
        bank_version=version,
        **data.options(),
    )
    if not is_admin(actor):
        session.add(OpeningRecruiter(opening_id=opening.id, user_id=actor.id))
    repo.audit(
        session,
        actor,
        "opening.create",
        f"opening:{opening.id}",
        title=opening.title,
        bank=f"{version.bank_id} v{version.version}",
        **{k: v for k, v in data.options().items() if k != "settings"},
        require_fullscreen=data.require_fullscreen,
        voice=data.voice or "default",
    )
    session.flush()
    return opening


def opening_form(opening: Opening) -> dict[str, str]:
    """The create/edit form's fields for an existing opening (the threshold on 0-100)."""
    proctoring = (opening.settings or {}).get(PROCTORING_KEY) or {}

    def text(value: Any) -> str:
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    threshold = opening.shortlist_threshold
    return {
        "title": opening.title,
        "bank_version_id": str(opening.bank_version_id),
        "shortlist_top_n": text(opening.shortlist_top_n),
        "shortlist_threshold": "" if threshold is None else f"{round(threshold * 100, 4):g}",
        "retention_days": text(opening.retention_days),
        "silence_threshold_s": text(opening.silence_threshold_s),
        "require_fullscreen": "on" if proctoring.get("require_fullscreen") else "",
        "voice": str((opening.settings or {}).get(OPENING_VOICE_KEY) or ""),
        NO_ANSWER_KEY: text((opening.settings or {}).get(NO_ANSWER_KEY)),
    }


def update_opening(session: Session, actor: User, opening: Opening, data: OpeningInput) -> dict:
    """Change the title, rule, retention, silence, fullscreen and voice (never the bank
    version: its interviews are pinned to it); audited with each changed field's old and new
    value."""
    opening = session.get(Opening, opening.id)
    before = opening_form(opening)
    options = data.options()
    opening.title = data.title
    for name in ("shortlist_top_n", "shortlist_threshold", "retention_days", "silence_threshold_s"):
        setattr(opening, name, options[name])
    settings = dict(opening.settings or {})
    proctoring = dict(settings.get(PROCTORING_KEY) or {})
    proctoring["require_fullscreen"] = data.require_fullscreen
    settings[PROCTORING_KEY] = proctoring
    settings.pop(OPENING_VOICE_KEY, None)
    settings.update({k: v for k, v in options["settings"].items() if k == OPENING_VOICE_KEY})
    settings.pop(NO_ANSWER_KEY, None)
    if data.no_answer_timeout_s is not None:
        settings[NO_ANSWER_KEY] = data.no_answer_timeout_s
    opening.settings = settings  # a new dict: the JSON column sees the change
    after = opening_form(opening)
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changed:
        repo.audit(session, actor, "opening.update", f"opening:{opening.id}", **changed)
    session.flush()
    return changed


def bank_voice(session: Session, bank_id: str) -> str | None:
    """The voice applicants of this bank hear, for the bank editor's Listen: the one voice its
    openings chose, None (the settings' default) when none chose or they differ."""
    query = (
        select(Opening.settings)
        .join(BankVersion, BankVersion.id == Opening.bank_version_id)
        .where(BankVersion.bank_id == bank_id)
    )
    chosen = {
        (settings or {}).get(OPENING_VOICE_KEY) or None for settings in session.scalars(query)
    }
    return chosen.pop() if len(chosen) == 1 else None


def recruiters_of(session: Session, opening_id: int) -> list[User]:
    query = (
        select(User)
        .join(OpeningRecruiter, OpeningRecruiter.user_id == User.id)
        .where(OpeningRecruiter.opening_id == opening_id)
        .order_by(User.name, User.email)
    )
    return list(session.scalars(query))


def assignable(session: Session, opening_id: int) -> list[User]:
    """Active recruiters not yet on the opening."""
    assigned = select(OpeningRecruiter.user_id).where(OpeningRecruiter.opening_id == opening_id)
    query = (
        select(User)
        .where(User.role == Role.recruiter, User.active.is_(True), User.id.not_in(assigned))
        .order_by(User.name, User.email)
    )
    return list(session.scalars(query))


def assign(session: Session, actor: User, opening: Opening, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active or Role(user.role) is not Role.recruiter:
        raise UserError("only an active recruiter account can be assigned to an opening")
    if session.get(OpeningRecruiter, (opening.id, user.id)) is None:
        session.add(OpeningRecruiter(opening_id=opening.id, user_id=user.id))
        repo.audit(session, actor, "opening.assign", f"opening:{opening.id}", recruiter=user.email)
        session.flush()
    return user


def unassign(session: Session, actor: User, opening: Opening, user_id: int) -> User:
    link = session.get(OpeningRecruiter, (opening.id, user_id))
    user = session.get(User, user_id)
    if link is None or user is None:
        raise UserError("that recruiter is not assigned to this opening")
    session.delete(link)
    repo.audit(session, actor, "opening.unassign", f"opening:{opening.id}", recruiter=user.email)
    session.flush()
    return user
