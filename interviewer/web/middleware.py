"""The ASGI middleware in front of every route: who is signed in, the CSRF cookie, CSRF refusals.

Pure ASGI (not BaseHTTPMiddleware). A state-changing request's body is read here, bounded by
:func:`body_limit` (Content-Length first, then counted), and replayed unchanged to its route; a
form's is also parsed for its token. create_app adds it
before the access log, so it sits inside the log and its refusals are logged.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from starlette.datastructures import FormData
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interviewer import accounts
from interviewer.banks.check import MAX_BANK_BYTES
from interviewer.openings.applicants import MAX_CSV_BYTES
from interviewer.store.db import session_scope
from interviewer.store.models import User
from interviewer.web.applicant import MAX_CHUNK_BYTES
from interviewer.web.auth import SESSION_COOKIE, cookie_secure
from interviewer.web.csrf import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    NONCE,
    SAFE_METHODS,
    csrf_valid,
    new_nonce,
)
from interviewer.web.deps import app_services
from interviewer.web.pages import error_page

MAX_FORM_BYTES = 256 * 1024
"""Any other request's body (sign-in, decisions, settings, users: a few KB of text)."""
MAX_BANK_BODY_BYTES = 4 * MAX_BANK_BYTES
"""The bank editor's bodies carry one bank (at most MAX_BANK_BYTES) as form-encoded or JSON
text, which escaping can make a few times larger."""
MAX_CSV_BODY_BYTES = 2 * MAX_CSV_BYTES
"""An applicants CSV (at most MAX_CSV_BYTES) in a multipart form."""
_CSV_UPLOAD = re.compile(r"^/openings/[^/]+/invites/upload$")


def body_limit(path: str) -> int:
    """The most a request to ``path`` may send: each route's own limit, applied at the edge,
    before anything is parsed (a route's own check then only refines the message)."""
    if path.startswith("/i/") and "/media/" in path:
        return MAX_CHUNK_BYTES
    if path.startswith(("/banks/", "/api/banks/")):
        return MAX_BANK_BODY_BYTES
    if _CSV_UPLOAD.match(path):
        return MAX_CSV_BODY_BYTES
    return MAX_FORM_BYTES


def _cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def _cookies(scope: Scope) -> dict[str, str]:
    for key, _value in scope.get("headers", []):
        if key == b"cookie":
            return StarletteRequest(scope).cookies
    return {}


def _is_form(content_type: str) -> bool:
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


class AuthMiddleware:
    """Resolves the signed-in user, keeps the CSRF cookie, and refuses any state-changing
    request without a valid CSRF token before a route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        svc = app_services(scope["app"])
        settings = svc.settings
        state = scope.setdefault("state", {})
        cookies = _cookies(scope)
        nonce = cookies.get(CSRF_COOKIE, "")
        if NONCE.match(nonce):
            state["csrf_nonce"], state["csrf_set"] = nonce, False
        else:
            state["csrf_nonce"], state["csrf_set"] = new_nonce(), True
            nonce = ""
        state["user"] = None
        session_token = cookies.get(SESSION_COOKIE)
        if session_token:
            state["user"] = await asyncio.to_thread(_resolve_user, svc.engine, session_token)

        state["csrf_session"] = session_token or None

        method = scope["method"].upper()
        if method not in SAFE_METHODS:
            # Every body is bounded and read here, before any parser (form, multipart, JSON,
            # YAML) sees it, whether the CSRF token comes in the body or in a header.
            request = StarletteRequest(scope, receive)
            limit = body_limit(scope.get("path", ""))
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await _refuse(scope, send, 413, _too_large(limit))
            body = await _read_body(receive, limit)
            if body is None:
                return await _refuse(scope, send, 413, _too_large(limit))
            # then the client's own receive: a streamed response listens on it for a disconnect
            receive = _replay(body, receive)
            token = request.headers.get(CSRF_HEADER)
            content_type = request.headers.get("content-type", "").lower()
            if token is None and _is_form(content_type):
                token = await _form_token(scope, body)
            if not csrf_valid(settings, nonce, token, session_token):
                reason = "missing" if not token else "invalid"
                return await _refuse_csrf(scope, send, reason, bool(nonce))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("csrf_set"):
                secure = cookie_secure(scope.get("scheme", "http"), settings)
                headers = list(message.get("headers", []))
                headers.append(
                    (b"set-cookie", _cookie_header(CSRF_COOKIE, state["csrf_nonce"], secure=secure))
                )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _resolve_user(engine: Engine, token: str) -> User | None:
    with session_scope(engine) as s:
        return accounts.user_for_session(s, token)


def _too_large(limit: int) -> str:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return f"This request is too large to send (at most {size})."


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (counted as it streams in: a missing or
    false Content-Length changes nothing)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, then: Receive | None = None) -> Receive:
    """The body read already, then ``then`` (the client's own receive: a streamed response
    listens on it for a disconnect, and an instant one would cancel it before it starts)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _form_token(scope: Scope, body: bytes) -> str | None:
    try:
        form: FormData = await StarletteRequest(scope, _replay(body)).form()
    except Exception:  # a malformed body has no token; the route never sees it
        return None
    value = form.get(CSRF_FIELD)
    await form.close()  # the route parses its own copy of the body
    return value if isinstance(value, str) else None


def _json_path(scope: Scope) -> bool:
    path = scope.get("path", "")
    if path.startswith("/api/") or "/media/" in path:
        return True
    accept = StarletteRequest(scope).headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    scope.setdefault("router", scope["app"].router)  # url_for in the page's template
    request = Request(scope, no_body)
    if _json_path(scope):
        response: Response = JSONResponse({"error": message}, status_code=status)
    else:
        response = error_page(
            request,
            status,
            "This request could not be completed",
            message,
            "Go back, reload the page and try again.",
        )
    await response(scope, no_body, send)


async def _refuse_csrf(scope: Scope, send: Send, reason: str, had_cookie: bool) -> None:
    if not had_cookie:
        message = (
            "Your browser did not send the security cookie this page needs (cookies may be "
            "blocked, or the page was open for very long). Allow cookies for this site, reload "
            "the page and try again."
        )
    else:
        message = (
            "The page you sent this from is out of date (its security token is "
            f"{reason}). Reload the page and try again."
        )

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    scope.setdefault("router", scope["app"].router)
    request = Request(scope, no_body)
    if _json_path(scope):
        response: Response = JSONResponse({"error": message, "csrf": reason}, status_code=403)
    else:
        response = error_page(
            request,
            403,
            "This form has expired",
            message,
            "Reload the page, then send the form again.",
            code="csrf",
        )
    await response(scope, no_body, send)
