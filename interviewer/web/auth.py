"""Staff sign-in and roles: who is asking, and the dependencies every staff route uses.

For route authors (openings, reports, banks, users)::

    from interviewer.web.auth import require_role, require_opening, current_user
    from interviewer.store.models import Role

    @router.get("/openings/{opening_id}")
    async def page(request: Request, opening: Opening = Depends(require_opening)): ...

    @router.post("/banks")
    async def create(request: Request, user: User = Depends(require_role(Role.domain_lead))): ...

* ``current_user(request)`` -> the signed-in ``User`` or None (resolved once per request by the
  middleware; cheap to call).
* ``require_role(*roles)`` -> a dependency returning the ``User``. Anonymous: HTML routes get a
  303 to ``/login?next=...``, JSON/media routes (``/api/...``, ``.../media/...``, or a request that
  accepts JSON and not HTML) a 401. Wrong role: 403 page (or JSON). Admin passes every check.
  ``require_role()`` with no roles admits any signed-in staff member.
* ``require_opening`` (path parameter ``opening_id``) / ``opening_for(request, opening_id, user)``
  -> the ``Opening`` for an admin or a recruiter assigned to it (``OpeningRecruiter``); anyone
  else gets 404, so an opening's existence is not revealed. ``require_interview`` /
  ``interview_for`` do the same for an interview through its opening.
* CSRF: every POST/PUT/PATCH/DELETE, staff or applicant, must carry a token, checked in
  :class:`interviewer.web.middleware.AuthMiddleware` before any route runs (how to send it: see
  :mod:`interviewer.web.csrf`). Without a valid token: 403, "reload the page and try again".

How it works. Sessions are rows (``StaffSession``, see :mod:`interviewer.accounts`): the HTTP-only
``interviewer_session`` cookie holds a random token, the row its sha256. Signing in
(:mod:`interviewer.web.login`) always makes a new session (no fixation) and a new CSRF secret;
logout, deactivation and a password change delete the rows, so a copied cookie stops working at
once. Cookies are SameSite=Lax and HTTP-only; ``INTERVIEWER_SECURE_COOKIES`` (auto | always |
never) sets the Secure flag ("auto": when the request came over https). Failed sign-ins are
counted by :class:`interviewer.web.throttle.LoginThrottle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jinja2 import pass_context
from starlette.exceptions import HTTPException

from interviewer.config import Settings
from interviewer.openings.access import visible_opening
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, Opening, Role, User

# The csrf and throttle names are re-exported (see __all__): callers and tests use auth.<name>.
from interviewer.web.csrf import CSRF_COOKIE, csrf_token_for, new_nonce
from interviewer.web.deps import services
from interviewer.web.inputs import Id
from interviewer.web.pages import TEMPLATES, render
from interviewer.web.throttle import IP_FAILURE_FACTOR

__all__ = [
    "CSRF_COOKIE",
    "IP_FAILURE_FACTOR",
    "SESSION_COOKIE",
    "Forbidden",
    "LoginRequired",
    "cookie_secure",
    "csrf_token_for",
    "current_user",
    "forbidden_response",
    "interview_for",
    "login_required_response",
    "new_nonce",
    "opening_for",
    "require_interview",
    "require_opening",
    "require_role",
    "wants_json",
]

SESSION_COOKIE = "interviewer_session"


# --- who is asking -------------------------------------------------------------------------------


def current_user(request: Request) -> User | None:
    """The signed-in staff member (resolved by AuthMiddleware), or None."""
    return getattr(request.state, "user", None)


class LoginRequired(Exception):
    """Raised by require_role for an anonymous caller; answered with 303 /login or 401."""


class Forbidden(Exception):
    """Signed in, but not allowed; answered with the 403 page (or JSON)."""

    def __init__(self, message: str = "Your account is not allowed to open this page.") -> None:
        super().__init__(message)
        self.message = message


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or "/media/" in path:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def require_role(*roles: Role) -> Callable[[Request], Awaitable[User]]:
    """A dependency admitting ``roles`` (and admin); no roles = any signed-in staff member."""
    allowed = frozenset(roles)

    async def dependency(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise LoginRequired()
        if allowed and user.role is not Role.admin and user.role not in allowed:
            raise Forbidden()
        return user

    return dependency


def _not_found() -> Exception:
    return HTTPException(404, "Not found")


def opening_for(request: Request, opening_id: Id, user: User) -> Opening:
    """Blocking (call it in a thread): the opening for an admin or its assigned recruiter; 404
    for anyone else, so that nobody learns which openings exist."""
    with session_scope(services(request).engine) as s:
        opening = visible_opening(s, user, opening_id)
    if opening is None:
        raise _not_found()
    return opening


def interview_for(request: Request, interview_id: Id, user: User) -> Interview:
    """Blocking: the interview when ``user`` may see its opening, else 404."""
    with session_scope(services(request).engine) as s:
        interview = s.get(Interview, interview_id)
        if interview is None or visible_opening(s, user, interview.opening_id) is None:
            raise _not_found()
    return interview


async def require_opening(
    request: Request, opening_id: Id, user: User = Depends(require_role(Role.recruiter))
) -> Opening:
    return await asyncio.to_thread(opening_for, request, opening_id, user)


async def require_interview(
    request: Request, interview_id: Id, user: User = Depends(require_role(Role.recruiter))
) -> Interview:
    return await asyncio.to_thread(interview_for, request, interview_id, user)


def cookie_secure(request_scheme: str, settings: Settings) -> bool:
    """Whether a cookie set now gets the Secure flag (``INTERVIEWER_SECURE_COOKIES``)."""
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    return request_scheme in ("https", "wss")


@pass_context
def _current_user_global(context: Any) -> User | None:
    return current_user(context["request"])


TEMPLATES.env.globals["current_user"] = _current_user_global


# --- answers to a refused dependency (create_app registers them as exception handlers) --------


async def login_required_response(request: Request, _exc: LoginRequired) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"error": "sign in first: open /login in this browser"}, status_code=401
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def forbidden_response(request: Request, exc: Forbidden) -> Response:
    if wants_json(request):
        return JSONResponse({"error": exc.message}, status_code=403)
    return render(request, "staff/403.html", status_code=403, message=exc.message)
