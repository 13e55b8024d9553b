"""Sign-in and sign-out pages, the CSRF token refresh, and the staff home that sends each role on.

Signing in always makes a new session (no fixation) and a new CSRF secret; failed attempts are
reserved and counted by :class:`interviewer.web.throttle.LoginThrottle` (in the database, before
the password is checked) and written to the audit log, as are
lock-outs.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from interviewer import accounts
from interviewer.config import Settings
from interviewer.store import repo
from interviewer.store.db import retry_busy, session_scope
from interviewer.store.models import Role, User
from interviewer.web.auth import SESSION_COOKIE, cookie_secure, current_user, require_role
from interviewer.web.csrf import csrf_token, new_nonce
from interviewer.web.deps import services
from interviewer.web.pages import render
from interviewer.web.throttle import LoginThrottle, throttle_keys

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//evil`` or ``https://evil``) is a place to return to."""
    if not target or len(target) > 2000:
        return "/staff"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/staff"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/staff"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request, status: int = 200, *, error: str = "", email: str = "", next_: str = ""
) -> Response:
    return render(
        request,
        "staff/login.html",
        status_code=status,
        error=error,
        email=email,
        next=safe_next(next_),
        signed_out=request.query_params.get("signed_out") == "1",
    )


@router.get("/login", name="login")
async def login_page(request: Request, next: str = "") -> Response:
    if current_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_=next)


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@router.post("/login", name="login_submit")
async def login_submit(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "")[:320]
    password = str(form.get("password") or "")
    next_ = str(form.get("next") or "")[:2000]
    svc = services(request)
    outcome = await asyncio.to_thread(
        _sign_in, svc.engine, svc.settings, email, password, _client(request), svc.login_throttle
    )
    if isinstance(outcome, str):
        return _login_page(
            request, outcome_status(outcome), error=outcome, email=email, next_=next_
        )
    token, _user = outcome
    response = RedirectResponse(safe_next(next_), status_code=303)
    secure = cookie_secure(request.url.scheme, svc.settings)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await asyncio.to_thread(_end, svc.engine, old)
    max_age = int(svc.settings.session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    # A new CSRF secret with the new session: a token seen before sign-in is worthless after.
    request.state.csrf_nonce, request.state.csrf_set = new_nonce(), True
    return response


WRONG = (
    "Wrong email or password. Check both and try again; after {n} failed tries sign-in pauses "
    "for {m}."
)
DEACTIVATED = "This account is deactivated. Ask an admin to reactivate it."
EMPTY = "Enter your email and your password."


def outcome_status(message: str) -> int:
    if message.startswith("Too many"):
        return 429
    if message == DEACTIVATED:
        return 403
    if message == EMPTY:
        return 400
    return 401


def _paused(wait: float) -> str:
    return (
        f"Too many failed sign-ins. Sign-in is paused: try again in {_minutes(wait)}, "
        "or ask an admin to set a new password for you."
    )


def _sign_in(
    engine: Any, settings: Settings, email: str, password: str, client: str, throttle: LoginThrottle
) -> tuple[str, User] | str:
    """Blocking (argon2): a session token, or the message to show.

    The attempt is reserved before the password is checked, so that concurrent guesses cannot
    all be checked under the limit; it is given back when the password was right."""
    keys = throttle_keys(email, client)
    if not email.strip() or not password:
        wait = throttle.retry_after(*keys)
        return _paused(wait) if wait > 0 else EMPTY
    reservation = throttle.reserve(*keys)
    if not reservation.granted:
        return _paused(reservation.wait)
    # argon2 outside any transaction: a write lock is never held while a password is hashed.
    # (a rehash on sign-in writes: on the rare busy answer, the whole check runs again)
    user, known = retry_busy(lambda: _check_password(engine, email, password))
    if user is not None:
        throttle.release(reservation, reset=keys[0] if user.active else None)
        return retry_busy(lambda: _signed_in(engine, settings, user, client))
    target = f"user:{known.id}" if known else "login"
    detail: dict[str, Any] = {"ip": client}
    if known is None:
        detail["email"] = email.strip().lower()[:120]

    def failed() -> None:
        with session_scope(engine, write=True) as s:
            repo.audit(s, known, "login.failed", target, **detail)
            if reservation.reached:
                repo.audit(s, known, "login.locked", target, **detail)

    retry_busy(failed)
    if reservation.reached:
        return _paused(throttle.retry_after(*keys))
    minutes = settings.login_lockout_minutes
    return WRONG.format(n=settings.login_max_failures, m=_minutes(minutes * 60))


def _check_password(engine: Any, email: str, password: str) -> tuple[User | None, User | None]:
    """(the account if the password is right, the account the email names)."""
    with session_scope(engine) as s:
        user = accounts.authenticate(s, email, password)
        return user, user or accounts.user_by_email(s, email)


def _signed_in(engine: Any, settings: Settings, user: User, client: str) -> tuple[str, User] | str:
    """The right password: a new session for an active account, else the deactivated message."""
    with session_scope(engine, write=True) as s:
        if not user.active:
            repo.audit(s, user, "login.deactivated", f"user:{user.id}", ip=client)
            return DEACTIVATED
        token = accounts.start_session(s, user, hours=settings.session_hours)
        repo.audit(s, user, "login", f"user:{user.id}", ip=client)
        return token, user


def _end(engine: Any, token: str) -> None:
    with session_scope(engine, write=True) as s:
        accounts.end_session(s, token)


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    user = current_user(request)
    if token:

        def end() -> None:
            with session_scope(services(request).engine, write=True) as s:
                accounts.end_session(s, token)
                if user is not None:
                    repo.audit(s, user, "logout", f"user:{user.id}")

        await asyncio.to_thread(end)
    response = RedirectResponse("/login?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    request.state.csrf_nonce, request.state.csrf_set = new_nonce(), True
    return response


@router.get("/csrf", name="csrf")
async def csrf(request: Request) -> Response:
    """This browser's current CSRF token, for a page whose token went stale (the cookie changed
    in another tab). Harmless to anyone else: reading it needs the cookie itself, and a
    cross-site page cannot read the answer."""
    return JSONResponse({"token": csrf_token(request)}, headers={"Cache-Control": "no-store"})


@router.get("/staff", name="staff_home")
async def staff_home(request: Request, user: User = Depends(require_role())) -> Response:
    """Each role to its area; an admin gets a page with all three."""
    if user.role is Role.recruiter:
        return RedirectResponse("/openings", status_code=303)
    if user.role is Role.domain_lead:
        return RedirectResponse("/banks", status_code=303)
    return render(request, "staff/home.html", user=user)
