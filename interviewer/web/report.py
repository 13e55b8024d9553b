"""The recruiter's applicant page, its media, exports, compare view and personal-data actions.

Every route is under ``/openings/{opening_id}/...`` and starts with the same check: the caller is
an admin or a recruiter assigned to the opening (``auth.opening_for``: 404 otherwise, so nobody
learns which openings exist), and the interview belongs to that opening (404 otherwise). Media
is found from database ids only: an answer id gives ``Answer.audio_path``, a part number gives
that camera part's chunks, an event id gives the thumbnail its evidence names; each path goes
through ``Recordings.open_for_read``. Media responses honour Range requests and are never
stored by a cache (``Cache-Control: private, no-store``).

The page itself is server-rendered from :func:`interviewer.reports.build_report`; the only script
(``static/report.js``) ties the transcript, quotes and timeline to the players.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.exceptions import HTTPException

from interviewer import privacy, reports
from interviewer.scoring.ranking import display_score
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    Applicant,
    IntegrityEvent,
    Interview,
    Opening,
    Role,
    User,
    as_utc,
)
from interviewer.web.auth import opening_for, require_role
from interviewer.web.deps import services
from interviewer.web.inputs import Id, number
from interviewer.web.media import attachment, serve_files, stream_written, streamed_attachment
from interviewer.web.pages import render

router = APIRouter()
recruiter = require_role(Role.recruiter)
BASE = "/openings/{opening_id}/applicants/{interview_id}"
COMPARE_MIN, COMPARE_MAX = 2, 4


def _not_found(what: str = "Not found") -> HTTPException:
    return HTTPException(404, what)


def _gone(what: str) -> HTTPException:
    """The interview is there and the caller may see it, but this file is not (any more)."""
    return HTTPException(410, what)


def _check(request: Request, opening_id: Id, interview_id: Id, user: User) -> Opening:
    """Blocking: the opening when ``user`` may see it and the interview is in it; else 404."""
    opening = opening_for(request, opening_id, user)
    with session_scope(services(request).engine) as s:
        interview = s.get(Interview, interview_id)
        if interview is None or interview.opening_id != opening.id:
            raise _not_found()
    return opening


async def _allowed(request: Request, opening_id: Id, interview_id: Id, user: User) -> Opening:
    return await asyncio.to_thread(_check, request, opening_id, interview_id, user)


def _report(request: Request, interview_id: Id) -> dict[str, Any]:
    with session_scope(services(request).engine) as s:
        return reports.build_report(s, services(request).recordings, interview_id)


# --- presentation helpers ----------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "–" if value is None else display_score(value)


def _parse(value: str | None) -> datetime | None:
    """ISO text -> aware UTC datetime (SQLite can hand back naive ones; all stored are UTC)."""
    if not value:
        return None
    return as_utc(datetime.fromisoformat(value))


def timeline(report: dict[str, Any]) -> dict[str, Any]:
    """Answers and events placed on one strip: each at its share of the interview's span."""
    spans = []
    for q in report["questions"]:
        for a in q["answers"]:
            start, end = _parse(a["started_at"]), _parse(a["ended_at"])
            if start and end:
                spans.append((q, a, start, end))
    events = [(e, _parse(e["at"])) for e in report["integrity"]["timeline"]]
    moments = [m for _, _, s, e in spans for m in (s, e)] + [m for _, m in events if m]
    iv = report["interview"]
    for key in ("started_at", "completed_at"):
        if iv[key]:
            moments.append(_parse(iv[key]))
    if not moments:
        return {"answers": [], "events": [], "start": None, "seconds": 0}
    t0, t1 = min(moments), max(moments)
    total = max((t1 - t0).total_seconds(), 1.0)

    def at(moment: datetime) -> float:
        return round(100 * (moment - t0).total_seconds() / total, 2)

    return {
        "start": t0.isoformat(),
        "seconds": round(total),
        "answers": [
            {
                "question_id": q["question_id"],
                "label": "P" if q["practice"] else f"Q{q['number']}",
                "answer_id": a["answer_id"],
                "left": at(s),
                "width": max(0.5, at(e) - at(s)),
            }
            for q, a, s, e in spans
        ],
        "events": [
            {
                **e,
                "left": at(m) if m else 0,
                "offset_s": round((m - t0).total_seconds()) if m else 0,
                **_inside_answer(spans, m),
            }
            for e, m in events
        ],
    }


def _inside_answer(spans: list[Any], moment: datetime | None) -> dict[str, Any]:
    """The answer (with a recording) an event happened in, and how far into it: the page
    offers to play from there."""
    if moment is None:
        return {}
    for _q, a, start, end in spans:
        if a["has_audio"] and start <= moment <= end:
            return {"answer_id": a["answer_id"], "answer_at": (moment - start).total_seconds()}
    return {}


def _context(report: dict[str, Any]) -> dict[str, Any]:
    events = {e["id"]: e for e in report["integrity"]["timeline"]}
    return {
        "r": report,
        "pct": pct,
        "events": events,
        "strip": timeline(report),
        "describe": reports.describe_event,
        "red_flag_at": reports.RED_FLAG_SHOWN_AT,
    }


# --- the applicant page ----------------------------------------------------------------------


@router.get(BASE, name="report_applicant")
async def applicant_page(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    opening = await _allowed(request, opening_id, interview_id, user)
    report = await asyncio.to_thread(_report, request, interview_id)
    others = await asyncio.to_thread(_applicants, request, opening.id)
    return render(
        request,
        "report/applicant.html",
        opening=opening,
        user=user,
        others=[o for o in others if o["interview_id"] != interview_id],
        **_context(report),
    )


def _applicants(request: Request, opening_id: Id) -> list[dict[str, Any]]:
    with session_scope(services(request).engine) as s:
        rows = s.execute(
            select(Interview.id, Applicant.name, Interview.state, Interview.score)
            .join(Applicant, Applicant.id == Interview.applicant_id)
            .where(Interview.opening_id == opening_id)
            .order_by(Interview.score.desc(), Interview.id)
        ).all()
    return [{"interview_id": i, "name": n, "state": str(st), "score": sc} for i, n, st, sc in rows]


# --- media -----------------------------------------------------------------------------------


def _stored(request: Request, relative: object, *, none: str, purged: str) -> Path:
    """The file a row names, or 410: ``none`` when the row names none, ``purged`` when the file
    is gone (or the name points outside the recordings)."""
    if not isinstance(relative, str) or not relative:
        raise _gone(none)
    try:
        return services(request).recordings.open_for_read(relative)
    except (FileNotFoundError, ValueError):
        raise _gone(purged) from None


def _answer_file(request: Request, interview_id: int, answer_id: int) -> tuple[Path, str]:
    with session_scope(services(request).engine) as s:
        answer = s.get(Answer, answer_id)
        if answer is None or answer.interview_id != interview_id:
            raise _not_found("no such answer in this interview")
        relative = answer.audio_path
    path = _stored(
        request,
        relative,
        none="no recording of this answer is stored (none was made, or it was purged)",
        purged="the recording is no longer stored (deleted or purged)",
    )
    return path, reports.MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")


@router.get(BASE + "/media/answers/{answer_id}", name="report_answer_audio")
async def answer_audio(
    request: Request,
    opening_id: Id,
    interview_id: Id,
    answer_id: Id,
    user: User = Depends(recruiter),
) -> Response:
    await _allowed(request, opening_id, interview_id, user)
    path, media_type = await asyncio.to_thread(_answer_file, request, interview_id, answer_id)
    return await asyncio.to_thread(serve_files, request, [path], media_type)


@router.get(BASE + "/media/camera/{part}", name="report_camera")
async def camera(
    request: Request,
    opening_id: Id,
    interview_id: Id,
    part: int,
    user: User = Depends(recruiter),
) -> Response:
    await _allowed(request, opening_id, interview_id, user)
    parts = await asyncio.to_thread(
        reports.camera_parts, services(request).recordings, interview_id
    )
    found = parts.get(part)
    if found is None:
        raise _gone("no camera recording with this number is stored")
    return await asyncio.to_thread(serve_files, request, list(found.chunks), found.media_type)


def _thumbnail(request: Request, interview_id: int, event_id: int) -> Path:
    with session_scope(services(request).engine) as s:
        event = s.get(IntegrityEvent, event_id)
        if event is None or event.interview_id != interview_id:
            raise _not_found("no such event")
        relative = event.evidence.get("thumbnail")
    return _stored(
        request,
        relative,
        none="no camera frame is stored for this event",
        purged="the frame is no longer stored (deleted or purged)",
    )


@router.get(BASE + "/media/events/{event_id}", name="report_thumbnail")
async def thumbnail(
    request: Request,
    opening_id: Id,
    interview_id: Id,
    event_id: Id,
    user: User = Depends(recruiter),
) -> Response:
    await _allowed(request, opening_id, interview_id, user)
    path = await asyncio.to_thread(_thumbnail, request, interview_id, event_id)
    return await asyncio.to_thread(serve_files, request, [path], "image/jpeg")


# --- exports ---------------------------------------------------------------------------------


def _audit_export(request: Request, user: User, interview_id: Id, fmt: str) -> None:
    """Exports carry personal data out of the system: who took which one is logged."""
    with session_scope(services(request).engine, write=True) as s:
        repo.audit(s, user, "report.export", f"interview:{interview_id}", format=fmt)


EXPORTS = {
    "json": (lambda r: json.dumps(r, indent=2, ensure_ascii=False), "application/json"),
    "csv": (reports.report_csv, "text/csv; charset=utf-8"),
}


async def _export(
    request: Request, opening_id: Id, interview_id: Id, user: User, fmt: str
) -> Response:
    await _allowed(request, opening_id, interview_id, user)
    report = await asyncio.to_thread(_report, request, interview_id)
    await asyncio.to_thread(_audit_export, request, user, interview_id, fmt)
    write, media_type = EXPORTS[fmt]
    return attachment(
        write(report), media_type, f"interview-{report['interview']['id']}-report.{fmt}"
    )


@router.get(BASE + "/report.json", name="report_json")
async def export_json(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    return await _export(request, opening_id, interview_id, user, "json")


@router.get(BASE + "/report.csv", name="report_csv")
async def export_csv(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    return await _export(request, opening_id, interview_id, user, "csv")


# --- compare ---------------------------------------------------------------------------------


def _compare(request: Request, opening_id: Id, ids: list[int]) -> list[dict[str, Any]]:
    with session_scope(services(request).engine) as s:
        found = {
            iv.id
            for iv in s.scalars(
                select(Interview).where(Interview.id.in_(ids), Interview.opening_id == opening_id)
            )
        }
        if found != set(ids):
            raise _not_found("one of these applicants is not in this opening")
        return [reports.build_report(s, services(request).recordings, i) for i in ids]


def compare_rows(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per question (in the bank's order): each applicant's score, criteria, best quote and
    flags, side by side."""
    rows = []
    for index, q in enumerate(people[0]["questions"] if people else []):
        if q["practice"]:
            continue
        cells = []
        for report in people:
            mine = next(
                (x for x in report["questions"] if x["question_id"] == q["question_id"]), None
            )
            if mine is None:
                cells.append(None)
                continue
            quotes = [
                (e["similarity"] or 0, e, c["criterion_id"])
                for c in mine["criteria"]
                for e in c["evidence"]
            ]
            quotes.sort(key=lambda t: -t[0])
            events = [e for e in report["integrity"]["timeline"] if e["id"] in mine["events"]]
            cells.append(
                {
                    "score": mine["score"],
                    "confidence": mine["score_confidence"],
                    "answered": bool(mine["answers"]),
                    "criteria": mine["criteria"],
                    "quotes": [(e, c) for _, e, c in quotes[:2]],
                    "red_flags": [f for f in mine["red_flags"] if f["raised"]],
                    "events": events,
                }
            )
        rows.append({"question": q, "index": index, "cells": cells})
    return rows


@router.get("/openings/{opening_id}/compare", name="report_compare")
async def compare(request: Request, opening_id: Id, user: User = Depends(recruiter)) -> Response:
    opening = await asyncio.to_thread(opening_for, request, opening_id, user)
    others = await asyncio.to_thread(_applicants, request, opening.id)
    raw = request.query_params.getlist("i")
    numbers = [number(x) for x in raw]
    ids = list(dict.fromkeys(n for n in numbers if n is not None)) if None not in numbers else []
    problem = None
    people: list[dict[str, Any]] = []
    if raw and not COMPARE_MIN <= len(ids) <= COMPARE_MAX:
        problem = (
            f"Choose between {COMPARE_MIN} and {COMPARE_MAX} applicants to compare "
            f"(you chose {len(ids)})."
        )
    elif ids:
        people = await asyncio.to_thread(_compare, request, opening.id, ids)
    return render(
        request,
        "report/compare.html",
        status_code=400 if problem else 200,
        opening=opening,
        people=people,
        rows=compare_rows(people),
        chosen=set(ids),
        others=others,
        problem=problem,
        pct=pct,
        describe=reports.describe_event,
        limits=(COMPARE_MIN, COMPARE_MAX),
    )


# --- personal data ---------------------------------------------------------------------------


@router.get(BASE + "/personal-data", name="report_personal_data")
async def personal_data(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    opening = await _allowed(request, opening_id, interview_id, user)
    report = await asyncio.to_thread(_report, request, interview_id)
    return await _personal_data_page(request, opening, report, interview_id)


async def _personal_data_page(
    request: Request,
    opening: Opening,
    report: dict[str, Any],
    interview_id: Id,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    files, size = await asyncio.to_thread(
        privacy.folder_usage, services(request).recordings, interview_id
    )
    return render(
        request,
        "report/personal_data.html",
        purge_on=purge_date(report),
        status_code=status_code,
        opening=opening,
        r=report,
        files=files,
        size=size,
        error=error,
    )


@router.post(BASE + "/personal-data/export", name="report_personal_export")
async def personal_export(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    await _allowed(request, opening_id, interview_id, user)
    svc = services(request)

    def write(out: Any) -> None:
        privacy.write_export(
            svc.engine,
            svc.recordings,
            [interview_id],
            out,
            user_id=user.id,
            include_demographics=user.role is Role.admin,
        )

    # Streamed as it is zipped: an interview may hold gigabytes of media.
    return streamed_attachment(
        stream_written(write), "application/zip", f"interview-{interview_id}-personal-data.zip"
    )


@router.post(BASE + "/personal-data/delete", name="report_personal_delete")
async def personal_delete(
    request: Request, opening_id: Id, interview_id: Id, user: User = Depends(recruiter)
) -> Response:
    opening = await _allowed(request, opening_id, interview_id, user)
    form = await request.form()
    typed = str(form.get("confirm") or "").strip().lower()
    report = await asyncio.to_thread(_report, request, interview_id)
    expected = (report["applicant"]["email"] or "").strip().lower()
    if not expected or typed != expected:
        return await _personal_data_page(
            request,
            opening,
            report,
            interview_id,
            400,
            "Nothing was deleted: the address you typed does not match this applicant's. "
            "Type their email address exactly as shown, then press Delete again.",
        )
    if interview_id in _live_ids(request):
        return await _personal_data_page(
            request,
            opening,
            report,
            interview_id,
            409,
            "Nothing was deleted: the applicant is taking this interview right now. "
            "Try again once the interview has ended (its state will be completed or "
            "abandoned).",
        )
    result = await asyncio.to_thread(
        privacy.delete_interviews,
        services(request).engine,
        services(request).recordings,
        [interview_id],
        user_id=user.id,
    )
    return render(
        request,
        "report/deleted.html",
        opening=opening,
        result=result,
        interview_id=interview_id,
    )


def purge_date(report: dict[str, Any]) -> str | None:
    """When the retention purge will take this interview's recordings (ISO date)."""
    days = report["opening"]["retention_days"]
    iv = report["interview"]
    last = _parse(iv["completed_at"] or iv.get("updated_at"))
    if days is None or last is None:
        return None
    return (last + timedelta(days=days)).date().isoformat()


def _live_ids(request: Request) -> set[int]:
    """Interviews with a voice session open in this server right now."""
    return set(services(request).live.active)
