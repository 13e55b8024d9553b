"""Inviting applicants to an opening, one from a form or many from a CSV, and their invite
links (listed, renewed).

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
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session

from interviewer import invites
from interviewer.config import Settings
from interviewer.openings.shortlist import status_of
from interviewer.store import repo
from interviewer.store.models import Applicant, Interview, Invite, Opening, User

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
        report.error(row, "email", f"“{clip(email)}” is not an email address")
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
                f"“{clip(raw)}” is not one of: {', '.join(allowed)} (or leave it empty)",
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


def clip(text: str, limit: int = 60) -> str:
    """Someone's text quoted in an error message, cut so a pasted essay cannot swamp the page."""
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
                clip(raw.strip()),
                f"unknown column “{clip(raw.strip())}”: the columns are name, email and "
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
