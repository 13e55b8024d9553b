"""The domain lead's bank editor: list, create, edit, validate, listen, publish, diff, import,
export. Admins see it too; recruiters and applicants get nothing here (see ``web/access.py``).

The pages are a thin layer over :mod:`interviewer.banks.drafts`, which owns the rules (drafts are
the YAML files, published versions are immutable rows, no edit is ever silently lost). All of
its calls block (files, database, the validator), so they run in worker threads.

JSON endpoints live under ``/api/banks/...`` (errors there are JSON); the pages under
``/banks/...``. Every write needs the CSRF token (forms: hidden field; fetch: header).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from interviewer.banks import check as bankcheck
from interviewer.banks.check import check_text
from interviewer.banks.diff import diff_banks, unified_diff
from interviewer.banks.drafts import RESERVED_IDS, BankStore, DraftConflict, PublishRefused
from interviewer.banks.versions import UnknownBank
from interviewer.banks.yamltext import dump_yaml, form_shape_ok, leading_comments, parse_yaml
from interviewer.config import VOICES
from interviewer.errors import BankError, UserError
from interviewer.openings.manage import bank_voice
from interviewer.store.db import session_scope
from interviewer.store.models import Role, User
from interviewer.voice.stack import InterviewerTTS, build_tts
from interviewer.web.auth import require_role
from interviewer.web.deps import services
from interviewer.web.inputs import BadInput, json_body, number
from interviewer.web.pages import render

router = APIRouter()

LEAD = Depends(require_role(Role.domain_lead))
MAX_AUDIO_TEXT = 4000
_KEY = re.compile(r"^[0-9a-f]{64}$")


def store(request: Request) -> BankStore:
    return services(request).bankstore


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    next_step: str,
    back: str = "/banks",
) -> HTMLResponse:
    """A staff page for a problem: what happened, what to do, and the way back."""
    return render(
        request,
        "banks/error.html",
        status_code=status,
        title=title,
        message=message,
        next_step=next_step,
        back=back,
    )


def _bank_error(request: Request, err: UserError, status: int = 400) -> HTMLResponse:
    return error_page(
        request,
        status,
        "This bank action could not be completed",
        str(err),
        "Go back to the bank list and try again.",
        back="/banks",
    )


def _not_found(request: Request, err: UserError) -> HTMLResponse:
    return error_page(
        request,
        404,
        "No such bank",
        str(err),
        "Open the bank list and pick a bank, or create one.",
        back="/banks",
    )


def _valid_id(bank_id: str) -> bool:
    return bool(re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", bank_id))


# --- pages -----------------------------------------------------------------------------------


@router.get("/banks", response_class=HTMLResponse)
async def bank_list(request: Request, user: User = LEAD) -> HTMLResponse:
    summaries = await asyncio.to_thread(store(request).summaries)
    return render(
        request,
        "banks/list.html",
        user=user,
        banks=summaries,
        banks_dir=str(services(request).settings.banks_dir),
    )


@router.get("/banks/new", response_class=HTMLResponse)
async def new_bank_form(request: Request, user: User = LEAD) -> HTMLResponse:
    return render(request, "banks/new.html", user=user, values={}, error=None)


@router.post("/banks/new", response_model=None)
async def new_bank(request: Request, user: User = LEAD) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")).strip() for k in ("id", "title", "domain", "description")}
    try:
        await asyncio.to_thread(
            store(request).create,
            bank_id=values["id"],
            title=values["title"],
            domain=values["domain"],
            description=values["description"],
            user_id=user.id,
        )
    except UserError as err:
        return render(
            request, "banks/new.html", status_code=400, user=user, values=values, error=str(err)
        )
    return RedirectResponse(f"/banks/{values['id']}/edit", status_code=303)


@router.get("/banks/import", response_class=HTMLResponse)
async def import_form(request: Request, user: User = LEAD) -> HTMLResponse:
    return render(request, "banks/import.html", user=user, problems=None, confirm=None)


@router.post("/banks/import", response_model=None)
async def import_bank(request: Request, user: User = LEAD) -> Response:
    """Upload (or paste) YAML: validated first; a new bank becomes a draft, an existing bank's
    draft is replaced only after the person saw the differences and confirmed."""
    form = await request.form()
    upload = form.get("file")
    name = "pasted.yaml"
    data: bytes = b""
    if isinstance(upload, UploadFile) or hasattr(upload, "read"):
        name = getattr(upload, "filename", None) or "upload.yaml"
        data = await upload.read(bankcheck.MAX_BANK_BYTES + 1)  # type: ignore[union-attr]
    if not data:
        data = str(form.get("yaml", "")).encode("utf-8")
        if form.get("confirm_name"):
            name = str(form.get("confirm_name"))
    if not data.strip():
        return render(
            request,
            "banks/import.html",
            status_code=400,
            user=user,
            problems=[],
            error="Choose a .yaml file to upload, or paste the bank's YAML.",
            confirm=None,
        )
    bs = store(request)
    problems, bank = await asyncio.to_thread(check_text, data, name)
    text = data.decode("utf-8-sig", "replace")  # a byte-order mark is not part of the bank
    if bank is None and not problems:
        problems = [bankcheck.Problem(Path(name), 1, None, "holds no bank", "upload a bank file")]
    if problems or bank is None:
        return render(
            request,
            "banks/import.html",
            status_code=422,
            user=user,
            problems=problems,
            name=name,
            lines=text.splitlines(),
            confirm=None,
        )
    if bank.id in RESERVED_IDS:
        return _bank_error(
            request, BankError(f"bank id {bank.id!r} is reserved by the editor: change `id:`")
        )
    current = await asyncio.to_thread(bs.draft, bank.id)
    base_sha = str(form.get("base_sha", "")) or None
    confirmed = form.get("confirm") == "yes"
    if current is not None and current.text == text:
        return RedirectResponse(f"/banks/{bank.id}?notice=unchanged", status_code=303)
    if current is not None and not confirmed:
        sections = diff_banks(parse_yaml(current.text), bank.model_dump(mode="json"))
        return render(
            request,
            "banks/import.html",
            user=user,
            problems=None,
            confirm={
                "bank_id": bank.id,
                "file": current.file,
                "base_sha": current.sha,
                "text": text,
                "name": name,
                "sections": sections,
            },
        )
    try:
        await asyncio.to_thread(
            bs.save_draft,
            bank.id,
            text,
            base_sha if current is not None else None,
            user_id=user.id,
            action="bank.import",
            upload=name[:200],
        )
    except DraftConflict as err:
        return _bank_error(request, err, 409)
    except UserError as err:
        return _bank_error(request, err)
    return RedirectResponse(f"/banks/{bank.id}?notice=imported", status_code=303)


NOTICES = {
    "imported": "Imported as the draft. Review it, then publish.",
    "unchanged": "The uploaded file is identical to the draft: nothing changed.",
    "saved": "Draft saved.",
    "restored": "A new draft was started from the published version.",
    "already": "This draft is already published with exactly this content: nothing to do.",
}


@router.get("/banks/{bank_id}", response_class=HTMLResponse)
async def bank_page(request: Request, bank_id: str, user: User = LEAD) -> HTMLResponse:
    if not _valid_id(bank_id):
        return _not_found(request, BankError(f"{bank_id!r} is not a bank id"))
    try:
        summary = await asyncio.to_thread(store(request).summary, bank_id)
    except UnknownBank as err:
        return _not_found(request, err)
    issues = []
    if summary.draft is not None:
        checked = await asyncio.to_thread(
            store(request).check, bank_id, summary.draft.text, name=summary.draft.file
        )
        issues = checked.issues
    return render(
        request,
        "banks/bank.html",
        user=user,
        s=summary,
        issues=issues,
        notice=NOTICES.get(request.query_params.get("notice", "")),
    )


@router.get("/banks/{bank_id}/edit", response_class=HTMLResponse)
async def edit_page(request: Request, bank_id: str, user: User = LEAD) -> HTMLResponse:
    if not _valid_id(bank_id):
        return _not_found(request, BankError(f"{bank_id!r} is not a bank id"))
    bs = store(request)
    try:
        summary = await asyncio.to_thread(bs.summary, bank_id)
    except UnknownBank as err:
        return _not_found(request, err)
    if summary.draft is None:
        return _not_found(
            request,
            BankError(
                f"bank {bank_id} has no draft file: start one from a published version on its page"
            ),
        )
    checked = await asyncio.to_thread(
        bs.check, bank_id, summary.draft.text, name=summary.draft.file
    )
    return render(
        request,
        "banks/edit.html",
        user=user,
        s=summary,
        draft=summary.draft,
        data=checked.data if form_shape_ok(checked.data) else None,
        issues=[i.as_dict() for i in checked.issues],
    )


@router.post("/banks/{bank_id}/draft", response_model=None)
async def save_draft_form(request: Request, bank_id: str, user: User = LEAD) -> Response:
    """The YAML mode's plain form post (works without JavaScript)."""
    form = await request.form()
    text = str(form.get("yaml", "")).replace("\r\n", "\n")
    base_sha = str(form.get("base_sha", "")) or None
    try:
        await asyncio.to_thread(store(request).save_draft, bank_id, text, base_sha, user_id=user.id)
    except DraftConflict as err:
        return render(
            request,
            "banks/conflict.html",
            status_code=409,
            user=user,
            bank_id=bank_id,
            message=str(err),
            mine=text,
            theirs_sha=err.current_sha,
            theirs=err.current_text or "",
            diff=unified_diff(err.current_text or "", text, "file now", "your text"),
        )
    except UserError as err:
        return _bank_error(request, err)
    return RedirectResponse(f"/banks/{bank_id}/edit", status_code=303)


@router.post("/banks/{bank_id}/publish", response_model=None)
async def publish(request: Request, bank_id: str, user: User = LEAD) -> Response:
    form = await request.form()
    sha = str(form.get("sha", ""))
    bs = store(request)
    try:
        published = await asyncio.to_thread(bs.publish, bank_id, sha, user.id)
    except (DraftConflict, PublishRefused) as err:
        return error_page(
            request,
            409,
            "Not published",
            str(err),
            "Open the editor, fix what is listed, save, and publish again.",
            back=f"/banks/{bank_id}/edit",
        )
    except UserError as err:
        return _bank_error(request, err)
    row = published.row
    if not published.created:
        return RedirectResponse(f"/banks/{bank_id}?notice=already", status_code=303)
    versions = await asyncio.to_thread(bs.versions, bank_id)
    older = [v.version for v in versions if v.version < row.version]
    if older:
        return RedirectResponse(
            f"/banks/{bank_id}/diff?a={older[-1]}&b={row.version}&published={row.version}",
            status_code=303,
        )
    return RedirectResponse(f"/banks/{bank_id}?published={row.version}", status_code=303)


@router.post("/banks/{bank_id}/restore", response_model=None)
async def restore(request: Request, bank_id: str, user: User = LEAD) -> Response:
    """Start the draft from a published version (the draft must be the one on the page)."""
    form = await request.form()
    version = str(form.get("version", ""))
    base_sha = str(form.get("base_sha", "")) or None
    if number(version) is None:
        return _bank_error(request, BankError("choose a published version number"))
    try:
        await asyncio.to_thread(
            store(request).draft_from_version, bank_id, number(version), base_sha, user_id=user.id
        )
    except DraftConflict as err:
        return _bank_error(request, err, 409)
    except UnknownBank as err:
        return _not_found(request, err)
    except UserError as err:
        return _bank_error(request, err)
    return RedirectResponse(f"/banks/{bank_id}/edit", status_code=303)


@router.get("/banks/{bank_id}/diff", response_class=HTMLResponse)
async def diff_page(request: Request, bank_id: str, user: User = LEAD) -> HTMLResponse:
    bs = store(request)
    try:
        summary = await asyncio.to_thread(bs.summary, bank_id)
    except UnknownBank as err:
        return _not_found(request, err)
    choices = [str(v.version) for v in summary.versions]
    if summary.draft is not None:
        choices.append("draft")
    if len(choices) < 2:
        return error_page(
            request,
            400,
            "Nothing to compare yet",
            f"Bank {bank_id} has only one version so far.",
            "Edit and save the draft, or publish a second version, then compare.",
            back=f"/banks/{bank_id}",
        )
    a = request.query_params.get("a") or choices[-2]
    b = request.query_params.get("b") or choices[-1]
    if a not in choices or b not in choices:
        return error_page(
            request,
            404,
            "No such version",
            f"Bank {bank_id} has versions {', '.join(choices)}.",
            "Pick two of them from the lists.",
            back=f"/banks/{bank_id}/diff",
        )
    (la, da, ta), (lb, db, tb) = await asyncio.gather(
        asyncio.to_thread(bs.content, bank_id, a), asyncio.to_thread(bs.content, bank_id, b)
    )
    sections = diff_banks(da, db)
    # The text view compares normalised YAML, so comments and layout do not drown the changes.
    text_a = dump_yaml(da) if da is not None else ta
    text_b = dump_yaml(db) if db is not None else tb
    return render(
        request,
        "banks/diff.html",
        user=user,
        s=summary,
        choices=choices,
        a=a,
        b=b,
        label_a=la,
        label_b=lb,
        sections=sections,
        unified=unified_diff(text_a, text_b, la, lb),
        published=request.query_params.get("published"),
    )


@router.get("/banks/{bank_id}/export", response_model=None)
async def export(request: Request, bank_id: str, user: User = LEAD) -> Response:
    which = request.query_params.get("version", "draft")
    try:
        _label, _data, text = await asyncio.to_thread(store(request).content, bank_id, which)
    except UnknownBank as err:
        return _not_found(request, err)
    suffix = "draft" if which == "draft" else f"v{which}"
    filename = f"{bank_id}-{suffix}.yaml"
    return Response(
        text,
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


# --- JSON for the editor's scripts -----------------------------------------------------------


async def _payload_text(request: Request, bs: BankStore, bank_id: str) -> tuple[str, dict]:
    """The text to check or save: raw ``yaml``, or the form's ``bank`` data dumped as YAML
    (keeping the draft's header comment)."""
    try:
        body = await json_body(request)
    except BadInput:
        body = None
    if not isinstance(body, dict):
        raise BankError("send a JSON object with `yaml` (text) or `bank` (the form's data)")
    if isinstance(body.get("yaml"), str):
        return body["yaml"].replace("\r\n", "\n"), body
    if "bank" in body:
        draft = await asyncio.to_thread(bs.draft, bank_id)
        header = leading_comments(draft.text) if draft is not None else ""
        return dump_yaml(body["bank"], header), body
    raise BankError("send a JSON object with `yaml` (text) or `bank` (the form's data)")


def _json_error(message: str, status: int = 400, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


@router.post("/api/banks/{bank_id}/validate")
async def validate(request: Request, bank_id: str, user: User = LEAD) -> JSONResponse:
    """The validator's messages for the editor's current text (nothing is saved)."""
    bs = store(request)
    try:
        text, _body = await _payload_text(request, bs, bank_id)
    except UserError as err:
        return _json_error(str(err))
    if len(text.encode("utf-8", "replace")) > bankcheck.MAX_BANK_BYTES:
        return _json_error("the bank is larger than 2 MB: split it into several banks", 413)
    checked = await asyncio.to_thread(bs.check, bank_id, text)
    draft = await asyncio.to_thread(bs.draft, bank_id)
    return JSONResponse(
        {
            "ok": checked.ok,
            "issues": [i.as_dict() for i in checked.issues],
            "yaml": text,
            "data": checked.data if form_shape_ok(checked.data) else None,
            "disk_sha": draft.sha if draft is not None else None,
        }
    )


@router.post("/api/banks/{bank_id}/draft")
async def save_draft(request: Request, bank_id: str, user: User = LEAD) -> JSONResponse:
    bs = store(request)
    try:
        text, body = await _payload_text(request, bs, bank_id)
        base_sha = body.get("base_sha") or None
        draft = await asyncio.to_thread(bs.save_draft, bank_id, text, base_sha, user_id=user.id)
    except DraftConflict as err:
        return _json_error(
            str(err),
            409,
            current_yaml=err.current_text,
            current_sha=err.current_sha,
            diff=unified_diff(err.current_text or "", text, "file now", "your version"),
        )
    except UserError as err:
        return _json_error(str(err))
    checked = await asyncio.to_thread(bs.check, bank_id, draft.text, name=draft.file)
    summary = await asyncio.to_thread(bs.summary, bank_id)
    return JSONResponse(
        {
            "sha": draft.sha,
            "yaml": draft.text,
            "ok": checked.ok,
            "issues": [i.as_dict() for i in checked.issues],
            "state": summary.state,
            "message": summary.message,
        }
    )


@router.post("/api/banks/{bank_id}/audio")
async def render_audio(request: Request, bank_id: str, user: User = LEAD) -> JSONResponse:
    """Speak ``text`` with the interview's voice (cached): ``voice`` if given, else the one
    this bank's openings chose, else the default; returns the URL of the WAV."""
    try:
        body = await json_body(request)
    except BadInput:
        body = None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return _json_error("write the question's text first, then listen")
    if len(text) > MAX_AUDIO_TEXT:
        return _json_error(f"text longer than {MAX_AUDIO_TEXT} characters: shorten the question")
    voice = body.get("voice") if isinstance(body, dict) else None
    if voice is not None and voice not in VOICES:
        return _json_error(f"unknown voice: choose one of {', '.join(VOICES)}")
    if voice is None:
        voice = await asyncio.to_thread(_bank_voice, request, bank_id)
    try:
        tts = await _tts(request, voice)
        await tts.prerender([text])
    except UserError as err:
        return _json_error(str(err), 503)
    except (OSError, RuntimeError) as err:
        return _json_error(f"speech synthesis failed ({err}); try again", 503)
    key = tts.cache_path(text).stem
    return JSONResponse({"url": f"/api/banks/{bank_id}/audio/{key}.wav", "voice": voice})


@router.get("/api/banks/{bank_id}/audio/{key}.wav", response_model=None)
async def audio_file(request: Request, bank_id: str, key: str, user: User = LEAD) -> Response:
    if not _KEY.match(key):
        return _json_error("no such audio", 404)
    tts = await _tts(request, None)  # every voice caches in the same folder
    path = tts.cache_dir / key[:2] / f"{key}.wav"  # built here from a checked hex key
    if not await asyncio.to_thread(path.is_file):
        # Gone, not "not found": the key is well-formed, its render just is not (or no longer)
        # in the cache.
        return _json_error("this audio is not rendered (any more): press Listen again", 410)
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private"})


async def _tts(request: Request, voice: str | None) -> InterviewerTTS:
    """A voice as applicants hear it (voice.stack), built on its first Listen."""
    svc = services(request)
    voice = voice or svc.settings.voice
    engines = svc.bank_tts.value
    if engines is None:
        engines = svc.bank_tts.value = {}
    if voice not in engines:
        engines[voice] = await asyncio.to_thread(build_tts, svc.settings, voice=voice)
    return engines[voice]


def _bank_voice(request: Request, bank_id: str) -> str:
    svc = services(request)
    with session_scope(svc.engine) as s:
        return bank_voice(s, bank_id) or svc.settings.voice
