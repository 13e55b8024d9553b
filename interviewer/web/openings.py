"""Recruiters' pages: openings, invites (one or a CSV), the ranked shortlist with decisions,
exports, charts and the per-opening history. The rules live in :mod:`interviewer.openings`;
this module only turns requests into those calls and renders the answers.

Access: every route needs a signed-in recruiter (admin passes), and every route under
``/openings/{opening_id}`` goes through ``require_opening``, so a recruiter of another opening
gets the same 404 as for an opening that does not exist. Invite links are secrets: they appear
only on the invites page and in its CSV export, both sent with ``Cache-Control: no-store``,
and each export is audited. Database work runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from interviewer import openings as svc
from interviewer.errors import UserError
from interviewer.invites import InviteError
from interviewer.scoring.audit import FOUR_FIFTHS
from interviewer.scoring.ranking import display_score, integrity_summary
from interviewer.store import repo
from interviewer.store.db import retry_busy, session_scope
from interviewer.store.models import BankVersion, Opening, Role, User
from interviewer.web.auth import require_opening, require_role
from interviewer.web.deps import services
from interviewer.web.inputs import Id, number
from interviewer.web.media import attachment
from interviewer.web.pages import public_link, render

router = APIRouter()
Recruiter = Depends(require_role(Role.recruiter))
NO_STORE = {"Cache-Control": "no-store"}


def _pct(value: float | None) -> str:
    return "–" if value is None else display_score(value)


def _globals(request: Request) -> dict[str, Any]:
    return {
        "pct": _pct,
        "flags_text": integrity_summary,
        "status_labels": svc.STATUS_LABELS,
        "decisions": svc.DECISIONS,
        "four_fifths": FOUR_FIFTHS,
    }


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    return render(
        request, f"openings/{template}", status_code=status_code, **_globals(request), **context
    )


async def _db(request: Request, work: Callable[..., Any], *args: Any, write: bool = False) -> Any:
    """Run ``work(session, *args)`` in a thread, in one transaction; ``write`` for work that
    writes (it takes the write lock up front, and is tried again briefly if SQLite is busy)."""

    def run() -> Any:
        with session_scope(services(request).engine, write=write) as s:
            return work(s, *args)

    return await asyncio.to_thread(retry_busy, run) if write else await asyncio.to_thread(run)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _attempt(
    request: Request, refused: type[UserError], work: Callable[..., Any], *args: Any
) -> str | None:
    """Run ``work(session, *args)`` like :func:`_db`: None when it went through, the reason
    when it was refused with ``refused``; a target that is not in this opening is a 404."""

    def run(s: Any) -> str | None:
        try:
            work(s, *args)
        except LookupError:
            raise HTTPException(404, "Not found") from None
        except refused as err:
            return str(err)
        return None

    return await _db(request, run, write=True)


def _int(value: Any) -> int | None:
    return number(value, maximum=10**11)


# --- the list and a new opening ------------------------------------------------------------------


@router.get("/openings", name="openings")
async def openings_list(request: Request, user: User = Recruiter) -> Response:
    def load(s: Any) -> list[svc.OpeningCard]:
        return svc.cards(s, svc.visible_openings(s, user))

    cards = await _db(request, load)
    return _page(request, "list.html", cards=cards, user=user)


@router.get("/openings/new", name="opening_new")
async def opening_new(request: Request, user: User = Recruiter) -> Response:
    versions = await _db(request, svc.bank_versions)
    return _page(request, "new.html", versions=versions, form={}, errors={})


@router.post("/openings", name="opening_create")
async def opening_create(request: Request, user: User = Recruiter) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

    def create(s: Any) -> tuple[Opening | None, dict[str, str], list[Any]]:
        versions = svc.bank_versions(s)
        data, errors = svc.parse_opening_form(form, versions)
        if data is None:
            return None, errors, versions
        try:
            return svc.create_opening(s, user, data), {}, versions
        except UserError as err:
            return None, {"bank_version_id": str(err)}, versions

    opening, errors, versions = await _db(request, create, write=True)
    if opening is None:
        return _page(request, "new.html", 400, versions=versions, form=form, errors=errors)
    return _redirect(f"/openings/{opening.id}/invites?created=1")


# --- the shortlist -------------------------------------------------------------------------------


def _filters(request: Request) -> svc.Filters:
    return svc.Filters.from_query(request.query_params)


async def _shortlist_page(
    request: Request, opening: Opening, filters: svc.Filters, status_code: int = 200, **context: Any
) -> Response:
    sl = await _db(request, svc.load_shortlist, opening, filters)
    return _page(
        request,
        "shortlist.html",
        status_code,
        opening=opening,
        tab="shortlist",
        sl=sl,
        filters=filters,
        query=urlencode(filters.query()),
        urlencode=urlencode,
        **context,
    )


@router.get("/openings/{opening_id}", name="opening_shortlist")
async def shortlist_page(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    saved = _int(request.query_params.get("saved"))
    return await _shortlist_page(request, opening, _filters(request), saved=saved)


@router.get("/openings/{opening_id}/shortlist.csv", name="shortlist_csv")
async def shortlist_csv(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    sl = await _db(request, svc.load_shortlist, opening, _filters(request))
    return attachment(
        svc.shortlist_csv(sl), "text/csv; charset=utf-8", f"{opening.slug}-shortlist.csv", NO_STORE
    )


@router.get("/openings/{opening_id}/shortlist.json", name="shortlist_json")
async def shortlist_json(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    sl = await _db(request, svc.load_shortlist, opening, _filters(request))
    return attachment(
        svc.shortlist_json(sl), "application/json", f"{opening.slug}-shortlist.json", NO_STORE
    )


@router.post("/openings/{opening_id}/decisions/{interview_id}", name="decide")
async def decide(
    request: Request,
    interview_id: Id,
    opening: Opening = Depends(require_opening),
    user: User = Recruiter,
) -> Response:
    form = await request.form()
    decision = str(form.get("decision") or "")
    note = str(form.get("note") or "")
    filters = svc.Filters.from_query(dict(parse_qsl(str(form.get("back") or "")[:2000])))
    error = await _attempt(
        request, UserError, svc.record_decision, user, opening, interview_id, decision, note
    )
    if error:
        return await _shortlist_page(
            request,
            opening,
            filters,
            400,
            saved=None,
            error=f"The decision was not saved: {error}.",
            error_row=interview_id,
        )
    query = urlencode({**filters.query(), "saved": interview_id})
    return _redirect(f"/openings/{opening.id}?{query}#row-{interview_id}")


@router.get("/openings/{opening_id}/history", name="opening_history")
async def history_page(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    entries = await _db(request, svc.history, opening)
    return _page(request, "history.html", opening=opening, tab="history", entries=entries)


@router.get("/openings/{opening_id}/charts", name="opening_charts")
async def charts_page(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    def load(s: Any) -> tuple[Any, Any]:
        return svc.load_shortlist(s, opening), svc.load_audit(s, opening)

    sl, audit = await _db(request, load)
    overall, per_question = svc.distributions(sl)
    return _page(
        request,
        "charts.html",
        opening=opening,
        tab="charts",
        sl=sl,
        overall=overall,
        per_question=per_question,
        audit=audit,
    )


# --- invites -------------------------------------------------------------------------------------


def _link(request: Request, token: str) -> str:
    return public_link(request, services(request).settings.public_url, "invite", token=token)


async def _invites_page(
    request: Request, opening: Opening, status_code: int = 200, **context: Any
) -> Response:
    settings = services(request).settings
    links = await _db(request, svc.invite_links, settings, opening)
    context.setdefault("one", {})
    context.setdefault("one_errors", {})
    response = _page(
        request,
        "invites.html",
        status_code,
        opening=opening,
        tab="invites",
        links=links,
        link=lambda token: _link(request, token),
        now=datetime.now(UTC),
        max_rows=svc.MAX_CSV_ROWS,
        max_mb=svc.MAX_CSV_BYTES // 1024 // 1024,
        optional_columns=svc.OPTIONAL_COLUMNS,
        sex_values=svc.SEX_VALUES,
        race_values=svc.RACE_VALUES,
        **context,
    )
    response.headers.update(NO_STORE)
    return response


@router.get("/openings/{opening_id}/invites", name="opening_invites")
async def invites_page(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    q = request.query_params
    return await _invites_page(
        request,
        opening,
        added=_int(q.get("added")),
        created=q.get("created") == "1",
        renewed=_int(q.get("renewed")),
    )


@router.post("/openings/{opening_id}/invites", name="invite_one")
async def invite_one(
    request: Request, opening: Opening = Depends(require_opening), user: User = Recruiter
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    settings = services(request).settings

    def add(s: Any) -> dict[str, str]:
        report = svc.CsvCheck()
        row = svc.check_applicant(
            form, row=1, seen={}, invited=svc.invited_emails(s, opening.id), report=report
        )
        if row is None:
            return {e.column: e.message for e in report.errors}
        svc.invite_applicants(s, settings, user, opening, [row], source="form")
        return {}

    errors = await _db(request, add, write=True)
    if errors:
        return await _invites_page(request, opening, 400, one=form, one_errors=errors)
    return _redirect(f"/openings/{opening.id}/invites?added=1#links")


@router.post("/openings/{opening_id}/invites/upload", name="invite_upload")
async def invite_upload(
    request: Request, opening: Opening = Depends(require_opening), user: User = Recruiter
) -> Response:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        report = svc.CsvCheck()
        report.error(1, "file", "choose a CSV file first")
        return await _invites_page(request, opening, 400, report=report, filename="")
    data = await upload.read(svc.MAX_CSV_BYTES + 1)
    settings = services(request).settings

    def check_and_add(s: Any) -> svc.CsvCheck:
        report = svc.parse_applicants_csv(data, invited=svc.invited_emails(s, opening.id))
        if report.ok:
            svc.invite_applicants(s, settings, user, opening, report.rows, source="csv")
        return report

    report = await _db(request, check_and_add, write=True)
    if not report.ok:
        return await _invites_page(
            request, opening, 400, report=report, filename=upload.filename[:200]
        )
    return _redirect(f"/openings/{opening.id}/invites?added={len(report.rows)}#links")


@router.get("/openings/{opening_id}/invites.csv", name="invites_csv")
async def invites_csv(
    request: Request, opening: Opening = Depends(require_opening), user: User = Recruiter
) -> Response:
    settings = services(request).settings

    def load(s: Any) -> list[svc.InviteLink]:
        links = svc.invite_links(s, settings, opening)
        repo.audit(s, user, "invite.export", f"opening:{opening.id}", count=len(links))
        return links

    links = await _db(request, load, write=True)
    return attachment(
        svc.links_csv(links, lambda token: _link(request, token)),
        "text/csv; charset=utf-8",
        f"{opening.slug}-invite-links.csv",
        NO_STORE,
    )


@router.post("/openings/{opening_id}/invites/{invite_id}/renew", name="invite_renew")
async def invite_renew(
    request: Request,
    invite_id: Id,
    opening: Opening = Depends(require_opening),
    user: User = Recruiter,
) -> Response:
    settings = services(request).settings
    error = await _attempt(request, InviteError, svc.renew_link, settings, user, opening, invite_id)
    if error:
        return await _invites_page(request, opening, 409, renew_error=error)
    return _redirect(f"/openings/{opening.id}/invites?renewed={invite_id}#invite-{invite_id}")


# --- settings and recruiters ---------------------------------------------------------------------


async def _settings_page(
    request: Request, opening: Opening, status_code: int = 200, **context: Any
) -> Response:
    def load(s: Any) -> dict[str, Any]:
        return {
            "recruiters": svc.recruiters_of(s, opening.id),
            "assignable": svc.assignable(s, opening.id),
            "bank": s.get(BankVersion, opening.bank_version_id),
        }

    data = await _db(request, load)
    context.setdefault("form", svc.opening_form(opening))
    context.setdefault("errors", {})
    return _page(
        request, "settings.html", status_code, opening=opening, tab="settings", **data, **context
    )


@router.get("/openings/{opening_id}/settings", name="opening_settings")
async def settings_page(request: Request, opening: Opening = Depends(require_opening)) -> Response:
    q = request.query_params
    notice = "Recruiters updated." if q.get("changed") == "1" else ""
    fields = q.get("saved", "").split(",")[:8]
    saved = ", ".join(f.replace("_", " ") for f in fields if f in SAVED)
    if fields == ["none"]:
        saved = "nothing changed"
    return await _settings_page(request, opening, notice=notice, saved=saved)


SAVED = frozenset(svc.opening_form(Opening(title="", slug="x", bank_version_id=0)))


@router.post("/openings/{opening_id}/settings", name="opening_update")
async def opening_update(
    request: Request, opening: Opening = Depends(require_opening), user: User = Recruiter
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    form["bank_version_id"] = str(opening.bank_version_id)  # never changed here

    def save(s: Any) -> tuple[dict[str, Any], dict[str, str]]:
        data, errors = svc.parse_opening_form(form, svc.bank_versions(s))
        if data is None:
            return {}, errors
        return svc.update_opening(s, user, opening, data), {}

    changed, errors = await _db(request, save, write=True)
    if errors:
        return await _settings_page(request, opening, 400, form=form, errors=errors)
    fields = ",".join(changed) or "none"
    return _redirect(f"/openings/{opening.id}/settings?{urlencode({'saved': fields})}")


async def _recruiters_changed(
    request: Request, opening: Opening, work: Callable[..., Any], *args: Any
) -> Response | None:
    """Assign or unassign a recruiter: None when done, else the settings page saying why not."""
    try:
        await _db(request, work, *args, write=True)
    except UserError as err:
        return await _settings_page(request, opening, 400, error=str(err))
    return None


@router.post("/openings/{opening_id}/recruiters", name="recruiter_add")
async def recruiter_add(
    request: Request, opening: Opening = Depends(require_opening), user: User = Recruiter
) -> Response:
    form = await request.form()
    user_id = _int(form.get("user_id"))
    refused = await _recruiters_changed(request, opening, svc.assign, user, opening, user_id or 0)
    return refused or _redirect(f"/openings/{opening.id}/settings?changed=1")


@router.post("/openings/{opening_id}/recruiters/{user_id}/remove", name="recruiter_remove")
async def recruiter_remove(
    request: Request,
    user_id: Id,
    opening: Opening = Depends(require_opening),
    user: User = Recruiter,
) -> Response:
    refused = await _recruiters_changed(request, opening, svc.unassign, user, opening, user_id)
    if refused:
        return refused
    if user_id == user.id and user.role is not Role.admin:
        return _redirect("/openings")  # they no longer see it
    return _redirect(f"/openings/{opening.id}/settings?changed=1")
