"""Personal data: retention purge, and an applicant's requests to see or erase their data.

* **Retention.** Each opening keeps recordings ``retention_days`` (180 by default) after an
  interview's last activity (completed, or last updated if it never completed). After that the
  interview's whole recordings folder goes: answer audio, camera video and the proctoring
  thumbnails cut from it. Transcripts, scores and events stay (the recruiter's decision rests
  on them); the stored audio paths and thumbnail references are cleared so nothing points at a
  missing file. The web app runs :func:`purge_expired` at start and every hour
  (:func:`retention_loop`); ``interviewer db purge [--dry-run]`` runs it by hand.
* **Access request.** :func:`export_interviews` writes a zip: ``report.json`` per interview
  (the same report the recruiter sees), the applicant's own record and self-reported
  demographics, and every recording file.
* **Erasure request.** :func:`delete_interviews` removes recordings, answers, transcripts,
  scores, integrity events, the invite and, once no interview of theirs is left, the applicant
  row and demographics. Rows other tables hold about the interview (decisions, say) go too.

Every purge, export and deletion writes an ``AuditLog`` row, and those rows never hold personal
data: ids, counts and bytes only. Audit rows that were *about* a deleted interview keep their
action and time but lose their free-text detail (a decision note can quote the applicant).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, String, cast, delete, func, or_, select, update
from sqlalchemy.orm import attributes
from sqlmodel import Session, SQLModel

from interviewer.reports import build_report
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    Applicant,
    ApplicantDemographics,
    AuditLog,
    CriterionScore,
    IntegrityEvent,
    Interview,
    Invite,
    Opening,
    VoicePrint,
    as_utc,
)
from interviewer.store.recordings import Recordings, stored_keys
from interviewer.store.repo import audit

log = logging.getLogger("interviewer.privacy")

PURGE_INTERVAL_S = 3600.0
REDACTED = {"redacted": "personal data deleted on request"}


def folder_usage(recordings: Recordings, interview_id: int) -> tuple[int, int]:
    """(files, bytes) stored for one interview; bytes count the local copies."""
    keys = stored_keys(recordings, interview_id)
    folder = recordings.root / str(interview_id)
    if not keys and folder.is_symlink():
        return 1, 0  # a planted link: purge_interview removes it
    total = 0
    for key in keys:
        local = recordings.root / key
        if local.is_file() and not local.is_symlink():
            total += local.stat().st_size
    return len(keys), total


def _scrub(value: Any, emails: set[str]) -> Any:
    """``value`` with every string equal to one of ``emails`` (any case) replaced."""
    if isinstance(value, str):
        return "[deleted]" if value.strip().lower() in emails else value
    if isinstance(value, list):
        return [_scrub(v, emails) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, emails) for k, v in value.items()}
    return value


def _scrub_audit_emails(session: Session, emails: set[str]) -> int:
    """Remove deleted applicants' email addresses from other audit rows (invite batches list
    the addresses they were sent to). Returns how many rows changed."""
    if not emails:
        return 0
    text = cast(AuditLog.detail, String)
    query = select(AuditLog).where(or_(*(func.lower(text).contains(e) for e in emails)))
    changed = 0
    for row in session.scalars(query):
        clean = _scrub(row.detail, emails)
        if clean != row.detail:
            row.detail = clean
            attributes.flag_modified(row, "detail")
            changed += 1
    session.flush()
    return changed


# --- retention ---------------------------------------------------------------------------------


@dataclass
class Purged:
    interview_id: int
    opening_id: int
    retention_days: int
    last_activity: str
    files: int
    bytes: int


def expired_interviews(session: Session, now: datetime) -> list[tuple[Interview, Opening]]:
    rows = session.execute(
        select(Interview, Opening).join(Opening, Opening.id == Interview.opening_id)
    ).all()
    out = []
    for interview, opening in rows:
        last = interview.completed_at or interview.updated_at
        if last is None or opening.retention_days is None or opening.retention_days < 0:
            continue
        if as_utc(last) + timedelta(days=opening.retention_days) <= now:
            out.append((interview, opening))
    return out


def purge_expired(
    engine: Engine,
    recordings: Recordings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    user_id: int | None = None,
) -> list[Purged]:
    """Delete the recordings of every interview past its opening's retention period.

    Interviews whose folder is already gone are skipped (nothing to log twice). With
    ``dry_run`` nothing changes and the list says what would go.
    """
    now = now or datetime.now(UTC)
    done: list[Purged] = []
    with session_scope(engine) as s:
        candidates = [
            (iv.id, op.id, op.retention_days, iv.completed_at or iv.updated_at)
            for iv, op in expired_interviews(s, now)
        ]
    for interview_id, opening_id, days, last in candidates:
        files, size = folder_usage(recordings, interview_id)
        if files == 0:
            continue
        item = Purged(interview_id, opening_id, days, as_utc(last).isoformat(), files, size)
        if not dry_run:
            with session_scope(engine, write=True) as s:
                recordings.purge_interview(interview_id)
                _forget_media(s, interview_id)
                audit(
                    s,
                    user_id,
                    "retention.purge",
                    f"interview:{interview_id}",
                    opening_id=opening_id,
                    retention_days=days,
                    files=files,
                    bytes=size,
                )
            log.info("retention: deleted %d recording files of interview %d", files, interview_id)
        done.append(item)
    return done


def _forget_media(session: Session, interview_id: int) -> None:
    """Clear what pointed at the deleted files; keep a note that they were purged. The voice
    print goes with the recordings it was taken from: it is as personal as they are."""
    session.execute(
        update(Answer).where(Answer.interview_id == interview_id).values(audio_path=None)
    )
    session.execute(delete(VoicePrint).where(VoicePrint.interview_id == interview_id))
    events = session.scalars(
        select(IntegrityEvent).where(IntegrityEvent.interview_id == interview_id)
    )
    for event in events:
        if event.evidence.get("thumbnail"):
            _drop_evidence(event, lambda key: key == "thumbnail", "thumbnail_purged")
    session.flush()


def _drop_evidence(event: IntegrityEvent, dropped: Callable[[str], bool], note: str) -> None:
    """Remove the evidence keys ``dropped`` picks and set ``note`` (the event itself stays)."""
    kept = {k: v for k, v in event.evidence.items() if not dropped(k)}
    event.evidence = {**kept, note: True}
    attributes.flag_modified(event, "evidence")


async def retention_loop(
    engine: Engine, recordings: Recordings, interval_s: float = PURGE_INTERVAL_S
) -> None:
    """The web app's background purge: now, then every ``interval_s``; errors are logged."""
    while True:
        try:
            purged = await asyncio.to_thread(purge_expired, engine, recordings)
            if purged:
                log.info("retention: purged recordings of %d interview(s)", len(purged))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention purge failed; retrying in %.0f s", interval_s)
        await asyncio.sleep(interval_s)


# --- data-subject requests ---------------------------------------------------------------------


def interviews_of_email(session: Session, email: str) -> list[int]:
    """Every interview of every applicant row with this email (case-insensitive)."""
    wanted = email.strip().lower()
    return list(
        session.scalars(
            select(Interview.id)
            .join(Applicant, Applicant.id == Interview.applicant_id)
            .where(func.lower(Applicant.email) == wanted)
            .order_by(Interview.id)
        )
    )


def applicants_of_email(session: Session, email: str) -> list[int]:
    wanted = email.strip().lower()
    return list(session.scalars(select(Applicant.id).where(func.lower(Applicant.email) == wanted)))


def export_interviews(
    engine: Engine,
    recordings: Recordings,
    interview_ids: list[int],
    *,
    user_id: int | None = None,
    applicant_ids: list[int] | None = None,
    include_demographics: bool = True,
) -> bytes:
    """:func:`write_export` into memory, for small exports (tests); a download streams."""
    buffer = io.BytesIO()
    write_export(
        engine,
        recordings,
        interview_ids,
        buffer,
        user_id=user_id,
        applicant_ids=applicant_ids,
        include_demographics=include_demographics,
    )
    return buffer.getvalue()


def write_export(
    engine: Engine,
    recordings: Recordings,
    interview_ids: list[int],
    out: BinaryIO,
    *,
    user_id: int | None = None,
    applicant_ids: list[int] | None = None,
    include_demographics: bool = True,
) -> int:
    """Write a zip with everything stored about the applicant(s) of these interviews to
    ``out`` (which need not seek: a download's stream); the number of files in it.

    Recordings are copied into the zip a block at a time, never whole in memory (an interview
    may hold gigabytes of media). Self-reported demographics are kept away from recruiters
    (only the fairness audit reads them), so a recruiter's export leaves them out
    (``include_demographics=False``) and says so; an admin's or the command line's has them."""
    entries: list[tuple[str, str | Path]] = []  # (name in the zip, text or a file to copy)
    with session_scope(engine) as s:
        people: dict[int, dict[str, Any]] = {}
        for interview_id in interview_ids:
            interview = s.get(Interview, interview_id)
            if interview is None:
                continue
            people.setdefault(interview.applicant_id, {})
            report = build_report(s, recordings, interview_id)
            entries.append((f"interview-{interview_id}/report.json", _json(report)))
            for key in stored_keys(recordings, interview_id):
                try:
                    checked = recordings.open_for_read(key)
                except (FileNotFoundError, ValueError):
                    continue
                name = f"interview-{interview_id}/recordings/{key.split('/', 1)[1]}"
                entries.append((name, Path(checked)))
        for applicant_id in sorted(set(people) | set(applicant_ids or [])):
            applicant = s.get(Applicant, applicant_id)
            if applicant is None:
                continue
            demo = s.get(ApplicantDemographics, applicant_id)
            record = {
                "applicant": applicant.model_dump(mode="json"),
                "demographics": (
                    (demo.model_dump(mode="json") if demo else None)
                    if include_demographics
                    else "withheld: self-reported demographics are exported by an admin"
                ),
                "invites": [
                    {k: v for k, v in inv.model_dump(mode="json").items() if k != "token_hash"}
                    for inv in s.scalars(select(Invite).where(Invite.applicant_id == applicant_id))
                ],
            }
            entries.append((f"applicant-{applicant_id}.json", _json(record)))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries:
            if isinstance(content, Path):
                zf.write(content, name)
            else:
                zf.writestr(name, content)
        zf.writestr(
            "README.txt",
            "Everything this interviewer installation stores about you: one folder per "
            "interview with report.json (answers, transcripts with word timings, scores, "
            "evidence and integrity events) and your recordings, and your applicant record.\n",
        )
    with session_scope(engine, write=True) as s:
        for interview_id in interview_ids:
            audit(
                s,
                user_id,
                "applicant.export",
                f"interview:{interview_id}",
                files=len(entries),
                demographics=include_demographics,
            )
    return len(entries)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


@dataclass
class Deleted:
    interviews: list[int] = field(default_factory=list)
    applicants: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CORE = {"interview", "answer", "criterionscore", "integrityevent", "invite", "applicant"}
_CORE |= {"applicantdemographics", "auditlog"}


def _dependents(target: str) -> list[tuple[Any, Any]]:
    """(table, fk column) of tables other modules added that point at ``target``'s id."""
    out = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name in _CORE:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == target:
                out.append((table, fk.parent))
    return out


def _count_delete(session: Session, rows: dict[str, int], name: str, statement: Any) -> None:
    result = session.execute(statement)
    if result.rowcount:
        rows[name] = rows.get(name, 0) + int(result.rowcount)


def _unlink_duplicates(session: Session, interview_ids: list[int]) -> None:
    """Other applicants' "duplicate answer" and "duplicate voice" events point at the deleted
    interview's answer: keep the event (it is about *their* answer) but drop the pointer."""
    gone = set(interview_ids)
    query = select(IntegrityEvent).where(
        IntegrityEvent.kind.in_(("duplicate_answer", "duplicate_voice")),
        IntegrityEvent.interview_id.not_in(gone),
    )
    for event in session.scalars(query):
        if event.evidence.get("other_interview_id") in gone:
            _drop_evidence(event, lambda key: key.startswith("other_"), "other_deleted")
    session.flush()


def _still_used(session: Session, applicant_id: int) -> bool:
    for model in (Interview, Invite):
        query = select(func.count()).select_from(model).where(model.applicant_id == applicant_id)
        if session.scalar(query):
            return True
    return False


def delete_interviews(
    engine: Engine,
    recordings: Recordings,
    interview_ids: list[int],
    *,
    user_id: int | None = None,
    reason: str = "data-subject request",
    applicant_ids: list[int] | None = None,
) -> Deleted:
    """Erase these interviews and everything hanging off them; the applicant row too when
    it has no interview left. ``applicant_ids`` (a request covering the whole person) adds
    those applicant rows and all their invites, interviewed or not. Files first (an
    interrupted run is safe to repeat: the rows are still there to find them), then all rows in
    one transaction with the audit entry."""
    result = Deleted()
    for interview_id in interview_ids:
        files, size = folder_usage(recordings, interview_id)
        recordings.purge_interview(interview_id)
        result.files += files
        result.bytes += size
    with session_scope(engine, write=True) as s:
        interviews = list(s.scalars(select(Interview).where(Interview.id.in_(interview_ids))))
        ids = [iv.id for iv in interviews]
        whole_people = set(applicant_ids or [])
        applicant_ids = sorted({iv.applicant_id for iv in interviews} | whole_people)
        invite_ids = [iv.invite_id for iv in interviews if iv.invite_id is not None]
        answer_ids = list(s.scalars(select(Answer.id).where(Answer.interview_id.in_(ids))))
        rows = result.rows
        for table, column in _dependents("answer"):
            _count_delete(s, rows, table.name, delete(table).where(column.in_(answer_ids)))
        for table, column in _dependents("interview"):
            _count_delete(s, rows, table.name, delete(table).where(column.in_(ids)))
        scores = delete(CriterionScore).where(CriterionScore.answer_id.in_(answer_ids))
        _count_delete(s, rows, "criterionscore", scores)
        _count_delete(s, rows, "answer", delete(Answer).where(Answer.id.in_(answer_ids)))
        events = delete(IntegrityEvent).where(IntegrityEvent.interview_id.in_(ids))
        _count_delete(s, rows, "integrityevent", events)
        _count_delete(s, rows, "interview", delete(Interview).where(Interview.id.in_(ids)))
        _unlink_duplicates(s, ids)
        # The invites of these interviews, and any unused invite the same applicant still has
        # for the same openings (it names them just as well).
        openings = {iv.opening_id for iv in interviews}
        leftover_invites = select(Invite.id).where(
            Invite.applicant_id.in_(applicant_ids),
            Invite.opening_id.in_(openings),
            ~Invite.id.in_(select(Interview.invite_id).where(Interview.invite_id.is_not(None))),
        )
        invite_ids += list(s.scalars(leftover_invites))
        if whole_people:
            invite_ids += list(
                s.scalars(select(Invite.id).where(Invite.applicant_id.in_(whole_people)))
            )
        for table, column in _dependents("invite"):
            _count_delete(s, rows, table.name, delete(table).where(column.in_(invite_ids)))
        _count_delete(s, rows, "invite", delete(Invite).where(Invite.id.in_(invite_ids)))
        orphans = [a for a in applicant_ids if not _still_used(s, a)]
        gone = {
            applicant.email.strip().lower()
            for a in orphans
            if (applicant := s.get(Applicant, a)) is not None and applicant.email.strip()
        }
        for table, column in _dependents("applicant"):
            _count_delete(s, rows, table.name, delete(table).where(column.in_(orphans)))
        _count_delete(
            s,
            rows,
            "applicantdemographics",
            delete(ApplicantDemographics).where(ApplicantDemographics.applicant_id.in_(orphans)),
        )
        _count_delete(s, rows, "applicant", delete(Applicant).where(Applicant.id.in_(orphans)))
        targets = [f"interview:{i}" for i in ids] + [f"interview/{i}" for i in ids]
        targets += [f"applicant:{a}" for a in orphans]
        s.execute(update(AuditLog).where(AuditLog.target.in_(targets)).values(detail=REDACTED))
        # Addresses still used by another applicant row stay (that row is still someone's).
        remaining = {
            e.lower()
            for e in s.scalars(select(Applicant.email).where(func.lower(Applicant.email).in_(gone)))
        }
        _scrub_audit_emails(s, gone - remaining)
        result.interviews = ids
        result.applicants = orphans
        for interview in interviews:
            audit(
                s,
                user_id,
                "applicant.delete",
                f"interview:{interview.id}",
                opening_id=interview.opening_id,
                reason=reason,
                files=result.files,
                bytes=result.bytes,
                rows=dict(rows),
                applicant_row_deleted=interview.applicant_id in orphans,
            )
        interviewed = {iv.applicant_id for iv in interviews}
        for applicant_id in orphans:
            if applicant_id not in interviewed:
                audit(
                    s,
                    user_id,
                    "applicant.delete",
                    f"applicant:{applicant_id}",
                    reason=reason,
                    rows=dict(rows),
                )
    log.info("deleted interviews %s (%d files)", ids, result.files)
    return result
