"""Recruiters' openings: create one, invite applicants (one at a time or a CSV), the ranked
shortlist with statuses and decisions, its exports, and the numbers behind its charts.

No web here: ``interviewer/web/openings.py`` turns requests into these calls and renders what
they return, so the same rules hold for anything else that ever calls them.

Decisions, and why:

* **CSV imports are all or nothing.** A file with any bad row imports nothing; every problem is
  listed (row, column, what is wrong) so the recruiter fixes the file and uploads the same file
  again. Importing the valid rows instead would leave the recruiter to work out which rows went
  through, and uploading the corrected file would then invite those applicants twice (or trip
  the duplicate check on every one of them).
* **Row numbers are a spreadsheet's**: the header is row 1, the first applicant row 2, and a
  blank line still counts, so the number matches what the recruiter sees in their editor.
* **Self-reported fields** (sex, race/ethnicity, age band) are optional, stored apart
  (``ApplicantDemographics``) and read only by the fairness audit. Sex and race/ethnicity take
  the EEO-1 categories the NYC bias-audit rules use (any case), so one group is never split in
  two by spelling ("female" / "Female "); anything else is a row error naming the accepted values.
* **Statuses** are what a recruiter acts on: invited, in progress, abandoned, completed (not
  scored yet), scored, then decided (shortlist / reject / hold), which wins over the others.
* **A decision** is a person's call and is allowed on any interview of the opening; each one is
  written to the audit log with its note and the decision it replaced, and the shortlist shows
  the latest.
* **Exports** hold the page's columns plus the interval and the flag counts; a text cell that a
  spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from interviewer import invites
from interviewer.config import Settings
from interviewer.errors import UserError
from interviewer.proctoring.thresholds import SETTINGS_KEY as PROCTORING_KEY
from interviewer.scoring import audit as fairness
from interviewer.scoring import ranking
from interviewer.store import repo
from interviewer.store.models import (
    Answer,
    Applicant,
    AuditLog,
    BankVersion,
    Interview,
    Invite,
    Opening,
    OpeningRecruiter,
    Role,
    User,
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
MAX_NOTE_CHARS = 2000
MAX_CSV_BYTES = 1024 * 1024
MAX_CSV_ROWS = 5000
MAX_ERRORS_SHOWN = 200
NAME_MAX = 200
EMAIL_MAX = 320
REQUIRED_COLUMNS = ("name", "email")
OPTIONAL_COLUMNS = ("sex", "race_ethnicity", "age_band")
SEX_VALUES = ("Female", "Male")
RACE_VALUES = (
    "Hispanic or Latino",
    "White",
    "Black or African American",
    "Native Hawaiian or Pacific Islander",
    "Asian",
    "Native American or Alaska Native",
    "Two or More Races",
)
DECLINED = ("", "unknown", "declined", "prefer not to say", "not specified")
AGE_BAND_MAX = 32
EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\".]{2,}$")

# --- who sees what -------------------------------------------------------------------------------


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


# --- creating an opening -------------------------------------------------------------------------


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

    def options(self) -> dict[str, Any]:
        return {
            "shortlist_top_n": self.shortlist_top_n,
            "shortlist_threshold": self.shortlist_threshold,
            "retention_days": self.retention_days,
            "silence_threshold_s": self.silence_threshold_s,
            "settings": {PROCTORING_KEY: {"require_fullscreen": self.require_fullscreen}},
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
        what="The silence threshold",
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
    }


def update_opening(session: Session, actor: User, opening: Opening, data: OpeningInput) -> dict:
    """Change the title, rule, retention, silence and fullscreen (never the bank version: its
    interviews are pinned to it); audited with each changed field's old and new value."""
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
    opening.settings = settings  # a new dict: the JSON column sees the change
    after = opening_form(opening)
    changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changed:
        repo.audit(session, actor, "opening.update", f"opening:{opening.id}", **changed)
    session.flush()
    return changed


# --- recruiters of an opening --------------------------------------------------------------------


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


# --- applicants: one, or a CSV -------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    row: int  # spreadsheet numbering: the header is row 1
    column: str
    message: str


@dataclass
class ApplicantRow:
    row: int
    name: str
    email: str
    sex: str | None = None
    race_ethnicity: str | None = None
    age_band: str | None = None

    def demographics(self) -> dict[str, str | None]:
        return {"sex": self.sex, "race_ethnicity": self.race_ethnicity, "age_band": self.age_band}


@dataclass
class CsvCheck:
    rows: list[ApplicantRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total_errors: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    def error(self, row: int, column: str, message: str) -> None:
        self.total_errors += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(RowError(row, column, message))


def _canonical(value: str, allowed: Sequence[str]) -> str | None:
    folded = " ".join(value.split()).casefold()
    for candidate in allowed:
        if candidate.casefold() == folded:
            return candidate
    return None


def check_applicant(
    fields: Mapping[str, str],
    *,
    row: int,
    seen: dict[str, int],
    invited: set[str],
    report: CsvCheck,
) -> ApplicantRow | None:
    """One applicant (a form or a CSV row): errors go to ``report``; ``seen`` maps the emails
    already accepted to their row, ``invited`` holds the opening's invited emails (casefolded)."""
    before = report.total_errors
    name = " ".join((fields.get("name") or "").split())
    email = (fields.get("email") or "").strip()
    if not name:
        report.error(row, "name", "the name is empty")
    elif len(name) > NAME_MAX:
        report.error(row, "name", f"the name is {len(name)} characters; at most {NAME_MAX}")
    if not email:
        report.error(row, "email", "the email is empty")
    elif len(email) > EMAIL_MAX or not EMAIL.match(email):
        report.error(row, "email", f"“{_clip(email)}” is not an email address")
    else:
        key = email.casefold()
        if key in seen:
            where = f"row {seen[key]}" if seen[key] > 1 else "the form"
            report.error(row, "email", f"{email} appears twice (also on {where})")
        elif key in invited:
            report.error(
                row, "email", f"{email} is already invited to this opening: remove this row"
            )
    values: dict[str, str | None] = {}
    for column, allowed in (("sex", SEX_VALUES), ("race_ethnicity", RACE_VALUES)):
        raw = " ".join((fields.get(column) or "").split())
        if raw.casefold() in DECLINED:
            values[column] = None
            continue
        canonical = _canonical(raw, allowed)
        if canonical is None:
            report.error(
                row,
                column,
                f"“{_clip(raw)}” is not one of: {', '.join(allowed)} (or leave it empty)",
            )
        values[column] = canonical
    age = " ".join((fields.get("age_band") or "").split())
    if len(age) > AGE_BAND_MAX:
        report.error(row, "age_band", f"the age band is {len(age)} characters; at most 32")
    if report.total_errors != before:
        return None
    seen[email.casefold()] = row
    return ApplicantRow(
        row=row,
        name=name,
        email=email,
        sex=values["sex"],
        race_ethnicity=values["race_ethnicity"],
        age_band=age or None,
    )


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode(data: bytes, report: CsvCheck) -> str | None:
    if b"\x00" in data[:4096] or data[:4] == b"PK\x03\x04":
        report.error(
            1,
            "file",
            "this is not a CSV text file (a spreadsheet such as .xlsx?): save it as "
            "“CSV UTF-8” and upload that",
        )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        report.error(
            line,
            "file",
            f"the file is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}): save it "
            "as “CSV UTF-8” in your spreadsheet and upload it again",
        )
        return None


def _delimiter(header: str) -> str:
    """Comma, or what a spreadsheet in another locale used instead (semicolon, tab)."""
    if "," in header:
        return ","
    for candidate in (";", "\t"):
        if candidate in header:
            return candidate
    return ","


def _column_key(raw: str) -> str:
    return re.sub(r"[\s/-]+", "_", raw.strip().casefold())


def parse_applicants_csv(data: bytes, *, invited: Iterable[str] = ()) -> CsvCheck:
    """Check an uploaded applicants file; ``rows`` holds them all only when ``errors`` is empty.

    Columns: name, email (required), sex, race_ethnicity, age_band (optional), in any order and
    case; ``invited`` are the emails the opening already has.
    """
    report = CsvCheck()
    if len(data) > MAX_CSV_BYTES:
        report.error(
            1,
            "file",
            f"the file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
            f"{MAX_CSV_BYTES // 1024 // 1024} MB (about {MAX_CSV_ROWS} applicants): split it",
        )
        return report
    text = _decode(data, report)
    if text is None:
        return report
    if not text.strip():
        report.error(1, "file", "the file is empty: its first row must be the header name,email")
        return report
    first_line = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        records = list(reader)
    except csv.Error as err:
        report.error(
            reader.line_num or 1,
            "file",
            f"the file cannot be read as CSV ({err}): check its quotes",
        )
        return report
    # Leading blank lines are tolerated; their numbering is kept.
    start = 0
    while start < len(records) and not any(c.strip() for c in records[start]):
        start += 1
    if start == len(records):
        report.error(1, "file", "the file is empty: its first row must be the header name,email")
        return report
    header_row = start + 1
    header = [_column_key(c) for c in records[start]]
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    problems = False
    for column in REQUIRED_COLUMNS:
        if column not in header:
            report.error(
                header_row,
                column,
                f"the header has no “{column}” column: the first row must name the columns, "
                "e.g. name,email",
            )
            problems = True
    for raw, key in zip(records[start], header, strict=True):
        if key and key not in known:
            report.error(
                header_row,
                _clip(raw.strip()),
                f"unknown column “{_clip(raw.strip())}”: the columns are name, email and "
                f"optionally {', '.join(OPTIONAL_COLUMNS)}",
            )
            problems = True
        elif not key:
            report.error(header_row, "header", "a column has no name in the header")
            problems = True
    repeated = sorted({k for k in header if k and header.count(k) > 1})
    for key in repeated:
        report.error(header_row, key, f"the column “{key}” appears twice in the header")
        problems = True
    if problems:
        return report
    body = records[start + 1 :]
    filled = [(i, r) for i, r in enumerate(body, start=header_row + 1) if any(c.strip() for c in r)]
    if not filled:
        report.error(header_row, "file", "the file has a header but no applicants")
        return report
    if len(filled) > MAX_CSV_ROWS:
        report.error(
            filled[MAX_CSV_ROWS][0],
            "file",
            f"the file has {len(filled)} applicants; at most {MAX_CSV_ROWS} per upload: split it",
        )
        return report
    seen: dict[str, int] = {}
    already = {e.casefold() for e in invited}
    for number, record in filled:
        if len(record) != len(header):
            report.error(
                number,
                "row",
                f"this row has {len(record)} fields but the header has {len(header)}: "
                "check for a missing or extra comma (quote values that contain commas)",
            )
            continue
        row = check_applicant(
            dict(zip(header, record, strict=True)),
            row=number,
            seen=seen,
            invited=already,
            report=report,
        )
        if row is not None:
            report.rows.append(row)
    if report.errors:
        report.rows = []
    return report


def invited_emails(session: Session, opening_id: int) -> set[str]:
    query = (
        select(Applicant.email)
        .join(Invite, Invite.applicant_id == Applicant.id)
        .where(Invite.opening_id == opening_id)
    )
    return {e.casefold() for e in session.scalars(query)}


def invite_applicants(
    session: Session,
    settings: Settings,
    actor: User,
    opening: Opening,
    rows: Sequence[ApplicantRow],
    *,
    source: str = "form",
) -> list[invites.IssuedInvite]:
    """One applicant, invite and interview per row, all in the caller's transaction; audited."""
    issued = []
    for row in rows:
        applicant = repo.create_applicant(
            session, name=row.name, email=row.email, demographics=row.demographics()
        )
        issued.append(invites.issue_invite(session, settings, opening=opening, applicant=applicant))
    repo.audit(
        session,
        actor,
        "invite.create",
        f"opening:{opening.id}",
        count=len(rows),
        source=source,
        emails=[r.email for r in rows[:50]],
    )
    return issued


@dataclass(frozen=True)
class InviteLink:
    invite_id: int
    interview_id: int | None
    name: str
    email: str
    token: str | None  # None: cannot be rebuilt (older link or another key): renew it
    expires_at: datetime
    status: str
    expired: bool
    used: bool


def invite_links(
    session: Session, settings: Settings, opening: Opening, *, now: datetime | None = None
) -> list[InviteLink]:
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(Invite, Applicant, Interview)
        .join(Applicant, Applicant.id == Invite.applicant_id)
        .join(Interview, Interview.invite_id == Invite.id, isouter=True)
        .where(Invite.opening_id == opening.id)
        .order_by(Invite.id)
    ).all()
    out = []
    for invite, applicant, interview in rows:
        expires = invites._aware(invite.expires_at)
        used = invite.used_at is not None or (
            interview is not None and str(interview.state) == "completed"
        )
        out.append(
            InviteLink(
                invite_id=invite.id,
                interview_id=interview.id if interview else None,
                name=applicant.name,
                email=applicant.email,
                token=None if used else invites.link_token(settings, invite),
                expires_at=expires,
                status=status_of(interview) if interview else "invited",
                expired=now >= expires and not used,
                used=used,
            )
        )
    return out


def renew_link(
    session: Session, settings: Settings, actor: User, opening: Opening, invite_id: int
) -> str:
    invite = session.get(Invite, invite_id)
    if invite is None or invite.opening_id != opening.id:
        raise LookupError(invite_id)
    token = invites.renew_invite(session, settings, invite)
    repo.audit(session, actor, "invite.renew", f"opening:{opening.id}", invite=invite.id)
    return token


def links_csv(links: Sequence[InviteLink], url_of: Any) -> str:
    """name,email,status,expires_at,link: ``url_of(token)`` makes the absolute link."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["name", "email", "status", "expires_at", "link"])
    for link in links:
        writer.writerow(
            [
                _cell(link.name),
                _cell(link.email),
                "completed" if link.used else ("expired" if link.expired else link.status),
                link.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                url_of(link.token) if link.token else "",
            ]
        )
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """Keep spreadsheets from running applicant-typed text as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --- the shortlist -------------------------------------------------------------------------------


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
        .where(Answer.interview_id.in_(ids), Answer.question_id != "practice")
        .where(Answer.score.is_not(None))
        .order_by(Answer.interview_id, Answer.question_index, Answer.attempt)
    ).all()
    for interview_id, question_id, score in rows:
        out[interview_id].setdefault(question_id, float(score))
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
            answered=r.answered,
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
            answered=sum(v is not None for v in per_question[u.interview_id].values()),
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


# --- decisions -----------------------------------------------------------------------------------


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
        raise UserError(f"choose one of {', '.join(DECISIONS)}, not “{_clip(decision)}”")
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


# --- exports -------------------------------------------------------------------------------------


def export_columns(shortlist: Shortlist) -> list[str]:
    return [
        "rank",
        "tied",
        "interview_id",
        "name",
        "email",
        "status",
        "score",
        "interval_low",
        "interval_high",
        "answered",
        "questions",
        *(f"q{q.number}_{q.id}" for q in shortlist.questions),
        *(f"flags_{s}" for s in ranking.SEVERITIES),
        "shortlisted_by_rule",
        "decision",
        "decision_note",
        "not_ranked_because",
    ]


def export_records(shortlist: Shortlist) -> list[dict[str, Any]]:
    """The page's columns plus the interval and the flag counts, scores on the page's 0-100."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 1)

    records = []
    for r in shortlist.rows:
        values = [
            r.rank,
            r.tied,
            r.interview_id,
            r.name,
            r.email,
            r.status,
            pct(r.score),
            pct(r.low),
            pct(r.high),
            r.answered,
            len(shortlist.questions),
            *(pct(v) for v in r.questions),
            *(r.integrity.get(s, 0) for s in ranking.SEVERITIES),
            r.shortlisted,
            r.decision or "",
            r.decision_note,
            r.reason,
        ]
        records.append(dict(zip(export_columns(shortlist), values, strict=True)))
    return records


def shortlist_csv(shortlist: Shortlist) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=export_columns(shortlist), lineterminator="\r\n")
    writer.writeheader()
    for record in export_records(shortlist):
        writer.writerow({k: "" if v is None else _cell(v) for k, v in record.items()})
    return buffer.getvalue()


def shortlist_json(shortlist: Shortlist) -> str:
    payload = {
        "opening": {
            "id": shortlist.opening.id,
            "slug": shortlist.opening.slug,
            "title": shortlist.opening.title,
        },
        "rule": shortlist.rule.describe(),
        "interval": f"{round(shortlist.confidence * 100)}% bootstrap over the questions",
        "scale": "0-100",
        "filters": shortlist.filters.query(),
        "questions": [asdict(q) for q in shortlist.questions],
        "candidates": export_records(shortlist),
    }
    return json.dumps(payload, ensure_ascii=False, indent=1)


# --- chart data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    low: float  # 0-100
    high: float
    count: int


def histogram(values: Iterable[float], bins: int = 10) -> list[Bin]:
    """Counts of [0, 1] scores in equal bins over 0-100; the last bin includes 100."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    width = 100 / bins
    return [Bin(i * width, (i + 1) * width, n) for i, n in enumerate(counts)]


@dataclass(frozen=True)
class Distribution:
    label: str
    n: int
    bins: list[Bin]
    median: float | None  # 0-100

    @property
    def peak(self) -> int:
        return max((b.count for b in self.bins), default=0)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return (s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2) * 100


def distributions(shortlist: Shortlist) -> tuple[Distribution, list[Distribution]]:
    """Interview scores of the ranked applicants, and each question's scores (scored answers)."""
    scores = [r.score for r in shortlist.ranked if r.score is not None]
    overall = Distribution("Interview score", len(scores), histogram(scores), _median(scores))
    per_question = []
    for i, q in enumerate(shortlist.questions):
        values = [r.questions[i] for r in shortlist.ranked if r.questions[i] is not None]
        per_question.append(
            Distribution(f"Q{q.number} {q.prompt}", len(values), histogram(values), _median(values))
        )
    return overall, per_question


def load_audit(session: Session, opening: Opening) -> fairness.Audit:
    return fairness.load_audit(session, opening.id)
