"""The applicant's pages: invite link -> consent -> device check -> interview -> finish.

Every route is authorised by the invite token in its path, checked on every request (a link can
expire or be completed while a tab is open). Nothing is recorded before consent: the consent
form stores ``consented_at``, and both the voice socket and the media upload refuse an
interview without it.

Media uploads: the page's MediaRecorder posts each chunk as it is produced. The client sends
only numbers (which recorder "part", which chunk); the file name is built here by
``Recordings.media_chunk`` from the server's interview id, and the type and size are checked
before a byte is written. A part is one continuous recording (one page load): its chunks
concatenated, in order, form a playable file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from interviewer import invites
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, InterviewState, Opening
from interviewer.store.repo import bank_of
from interviewer.web.deps import services
from interviewer.web.pages import error_page, render

router = APIRouter()

MEDIA_TYPES = {"video/webm": "webm", "audio/webm": "webm", "video/mp4": "mp4", "audio/mp4": "mp4"}
MEDIA_KINDS = frozenset({"camera"})
MAX_CHUNK_BYTES = 8 * 1024 * 1024  # a 4 s chunk at the page's 800 kbit/s is about 400 KB
MAX_INTERVIEW_MEDIA_BYTES = 2 * 1024**3
CHUNKS_PER_PART = 100_000
MAX_PART = 999
UPLOAD_GRACE = timedelta(minutes=2)
"""After the last answer, the final chunks still arrive for a moment."""

INVITE_ERRORS: dict[str, tuple[int, str, str, str]] = {
    "forged": (
        403,
        "This link doesn't work",
        "The invite link is incomplete, was changed, or has been replaced by a newer one.",
        "Open the link from your invitation email again, copying the whole address. If it "
        "still fails, ask the recruiter who invited you for a new link.",
    ),
    "expired": (
        410,
        "This invite has expired",
        "Invite links can only be used for a limited time, and this one has run out.",
        "Ask the recruiter who invited you to send a new link.",
    ),
    "used": (
        410,
        "This interview is already complete",
        "Your answers were recorded. This link cannot be used again.",
        "There is nothing more to do: you can close this tab. The recruiter will contact you.",
    ),
}


def _invite_error(request: Request, err: invites.InviteError) -> HTMLResponse:
    status, title, message, next_step = INVITE_ERRORS.get(err.code, INVITE_ERRORS["forged"])
    return error_page(request, status, title, message, next_step, code=err.code)


def _context(request: Request, token: str, *, allow_used: bool = False) -> dict[str, Any]:
    """Blocking: the invite's interview, opening and bank, or an InviteError."""
    svc = services(request)
    with session_scope(svc.engine) as s:
        check = invites.check_invite(s, svc.settings, token, allow_used=allow_used)
        interview = s.get(Interview, check.interview_id)
        opening = s.get(Opening, check.opening_id)
        bank = bank_of(s, interview.bank_version_id)
        minutes = sum(q.time_limit_s for q in bank.questions) / 60
        return {
            "token": token,
            "check": check,
            "interview_id": interview.id,
            "state": InterviewState(interview.state),
            "consented": interview.consented_at is not None,
            "opening_title": opening.title if opening else bank.title,
            "retention_days": opening.retention_days if opening else 180,
            "questions": len(bank.questions),
            "max_minutes": max(1, round(minutes)),
            "expires_at": check.expires_at,
            "resumed": bool(interview.core_state),
        }


async def _load(request: Request, token: str, *, allow_used: bool = False) -> Any:
    try:
        return await asyncio.to_thread(_context, request, token, allow_used=allow_used)
    except invites.InviteError as err:
        return _invite_error(request, err)


def _go(request: Request, name: str, token: str) -> RedirectResponse:
    # A path, not an absolute URL: nothing of the request's Host header goes into Location.
    return RedirectResponse(request.app.url_path_for(name, token=token), status_code=303)


@router.get("/i/{token}", response_class=HTMLResponse, name="invite")
async def invite(request: Request, token: str) -> Response:
    ctx = await _load(request, token, allow_used=True)
    if isinstance(ctx, Response):
        return ctx
    if ctx["state"] is InterviewState.completed:
        return _go(request, "done", token)
    if ctx["consented"]:
        return _go(request, "check", token)
    return render(request, "consent.html", **ctx, step=1, missing=[])


CONSENT_ITEMS = ("recording", "scoring", "retention")


@router.post("/i/{token}/consent", name="consent")
async def consent(request: Request, token: str) -> Response:
    ctx = await _load(request, token)
    if isinstance(ctx, Response):
        return ctx
    form = await request.form()
    missing = [item for item in CONSENT_ITEMS if form.get(item) != "yes"]
    if missing:
        return render(request, "consent.html", status_code=400, **ctx, step=1, missing=missing)
    await asyncio.to_thread(_record_consent, services(request).engine, ctx["interview_id"])
    return _go(request, "check", token)


def _record_consent(engine: Any, interview_id: int) -> None:
    with session_scope(engine, write=True) as s:
        interview = s.get(Interview, interview_id)
        if interview is None or interview.consented_at is not None:
            return
        now = datetime.now(UTC)
        interview.consented_at = now
        interview.updated_at = now
        if InterviewState(interview.state) is InterviewState.invited:
            interview.state = InterviewState.consented


async def _consented_page(request: Request, token: str, template: str, step: int) -> Response:
    """The steps after consent: without it, back to the invite page to give it."""
    ctx = await _load(request, token)
    if isinstance(ctx, Response):
        return ctx
    if not ctx["consented"]:
        return _go(request, "invite", token)
    return render(request, template, **ctx, step=step)


@router.get("/i/{token}/check", response_class=HTMLResponse, name="check")
async def check(request: Request, token: str) -> Response:
    return await _consented_page(request, token, "check.html", 2)


@router.get("/i/{token}/interview", response_class=HTMLResponse, name="interview")
async def interview_page(request: Request, token: str) -> Response:
    return await _consented_page(request, token, "interview.html", 3)


@router.get("/i/{token}/done", response_class=HTMLResponse, name="done")
async def done(request: Request, token: str) -> Response:
    ctx = await _load(request, token, allow_used=True)
    if isinstance(ctx, Response):
        return ctx
    if ctx["state"] is not InterviewState.completed:
        return _go(request, "invite", token)
    return render(request, "done.html", **ctx, step=4)


@router.websocket("/i/{token}/ws")
async def voice_socket(websocket: WebSocket, token: str) -> None:
    await services(websocket).live.serve(websocket, token)


# --- media uploads ---------------------------------------------------------------------------


def _upload_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _UploadGate:
    """Per interview: uploads one at a time (part numbers are allocated race-free) and a
    sustained rate a recorder never needs to exceed."""

    def __init__(self) -> None:
        self.locks: dict[int, asyncio.Lock] = {}
        self.times: dict[int, list[float]] = {}

    def allow(self, interview_id: int, per_minute: int = 120) -> bool:
        now = time.monotonic()
        recent = [t for t in self.times.get(interview_id, []) if now - t < 60]
        if len(recent) >= per_minute:
            self.times[interview_id] = recent
            return False
        recent.append(now)
        self.times[interview_id] = recent
        return True


_gate = _UploadGate()


def _upload_allowed(request: Request, token: str) -> tuple[int, str | None]:
    """Blocking: (interview id, refusal message or None)."""
    svc = services(request)
    with session_scope(svc.engine) as s:
        check = invites.check_invite(s, svc.settings, token, allow_used=True)
        interview = s.get(Interview, check.interview_id)
        if interview.consented_at is None:
            return check.interview_id, "no recording before consent"
        if InterviewState(interview.state) is InterviewState.completed:
            ended = interview.completed_at
            if ended is not None and ended.tzinfo is None:
                ended = ended.replace(tzinfo=UTC)
            if ended is None or datetime.now(UTC) - ended > UPLOAD_GRACE:
                return check.interview_id, "the interview is over"
        return check.interview_id, None


def _media_folder_usage(folder: Path) -> tuple[int, int]:
    """(highest part present, total bytes) of one interview's media folder."""
    highest, total = 0, 0
    for entry in folder.iterdir():
        stem = entry.name.split(".", 1)[0]
        if stem.isdigit():
            highest = max(highest, int(stem) // CHUNKS_PER_PART)
            total += entry.stat().st_size
    return highest, total


def _write_chunk(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@router.post("/i/{token}/media/{kind}", name="media")
async def upload_media(request: Request, token: str, kind: str) -> Response:
    if kind not in MEDIA_KINDS:
        return _upload_error(404, "unknown media kind")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    ext = MEDIA_TYPES.get(content_type)
    if ext is None:
        return _upload_error(415, f"media type must be one of {', '.join(sorted(MEDIA_TYPES))}")
    try:
        chunk = int(request.query_params.get("chunk", ""))
        part_text = request.query_params.get("part")
        part = int(part_text) if part_text not in (None, "") else None
    except ValueError:
        return _upload_error(400, "chunk and part must be integers")
    if not 0 <= chunk < CHUNKS_PER_PART or (part is not None and not 1 <= part <= MAX_PART):
        return _upload_error(400, "chunk or part out of range")
    if part is None and chunk != 0:
        return _upload_error(400, "a new recording starts at chunk 0")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_CHUNK_BYTES):
        return _upload_error(413, f"a chunk may be at most {MAX_CHUNK_BYTES} bytes")

    try:
        interview_id, refusal = await asyncio.to_thread(_upload_allowed, request, token)
    except invites.InviteError as err:
        return _upload_error(403 if err.code == "forged" else 410, str(err))
    if refusal is not None:
        return _upload_error(409, refusal)
    if not _gate.allow(interview_id):
        return _upload_error(429, "too many uploads; slow down")

    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_CHUNK_BYTES:
            return _upload_error(413, f"a chunk may be at most {MAX_CHUNK_BYTES} bytes")
    if not body:
        return _upload_error(400, "empty chunk")

    recordings = services(request).recordings
    lock = _gate.locks.setdefault(interview_id, asyncio.Lock())
    async with lock:
        # seq 0 is never a chunk (parts start at 1): asking for it just yields the folder.
        folder = (await asyncio.to_thread(recordings.media_chunk, interview_id, kind, 0)).parent
        highest, used = await asyncio.to_thread(_media_folder_usage, folder)
        if used + len(body) > MAX_INTERVIEW_MEDIA_BYTES:
            return _upload_error(413, "this interview has reached its recording quota")
        if part is None:
            if highest >= MAX_PART:
                return _upload_error(409, "too many recordings for this interview")
            part = highest + 1
        elif part > highest:
            return _upload_error(409, "unknown recording part: start a new one at chunk 0")
        seq = part * CHUNKS_PER_PART + chunk
        path = await asyncio.to_thread(recordings.media_chunk, interview_id, kind, seq, ext=ext)
        try:
            await asyncio.to_thread(_write_chunk, path, bytes(body))
        except OSError as err:
            return _upload_error(507, f"could not store the chunk: {err.strerror}")
        # to the configured storage (an S3 upload; a failed one stays staged for `storage sync`)
        await asyncio.to_thread(recordings.commit, path)
    return JSONResponse({"part": part, "chunk": chunk, "bytes": len(body)}, status_code=201)
