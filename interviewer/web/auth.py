"""Staff sign-in, roles, per-opening access and CSRF: the contract every staff route uses.

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
* CSRF: every POST/PUT/PATCH/DELETE, staff or applicant, must carry a token, checked here in
  :class:`AuthMiddleware` before any route runs. Forms: ``{{ csrf_input() }}`` (a hidden
  ``csrf_token`` field). fetch(): header ``X-CSRF-Token`` with the value of
  ``<meta name="csrf-token">`` (both base templates have it; ``csrfHeaders()`` in common.js).
  Without a valid token: 403, "reload the page and try again".

How it works. Sessions are rows (``StaffSession``, see :mod:`interviewer.accounts`): the HTTP-only
``interviewer_session`` cookie holds a random token, the row its sha256. Signing in always makes a
new session (no fixation) and a new CSRF secret; logout, deactivation and a password change delete
the rows, so a copied cookie stops working at once. CSRF is a signed double submit: the HTTP-only
``interviewer_csrf`` cookie holds a random nonce, the token in the page is that nonce signed with
the server's secret key (itsdangerous). A site that can plant a cookie still cannot sign a token
for it, and applicants (who never sign in) are covered the same way. Cookies are SameSite=Lax and
HTTP-only; ``INTERVIEWER_SECURE_COOKIES`` (auto | always | never) sets the Secure flag ("auto":
when the request came over https).

Failed sign-ins are counted per account and per client address by :class:`LoginThrottle`
(in-process, which is right for the single-process embedded server); past the limit the form
answers 429 with how long to wait. Failures and lock-outs are written to the audit log.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, Signer
from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interviewer import accounts, invites
from interviewer.config import Settings
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, Opening, OpeningRecruiter, Role, User
from interviewer.web.pages import TEMPLATES, error_page, render

SESSION_COOKIE = "interviewer_session"
CSRF_COOKIE = "interviewer_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_SALT = "interviewer.csrf.v1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_FORM_BYTES = 16 * 1024 * 1024
"""A form body is read whole to find its token; larger forms are refused (413)."""
IP_FAILURE_FACTOR = 4
"""A client address may fail this many times more than one account (an office behind one NAT)."""
_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")

router = APIRouter()


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


def _may_see_opening(session: Any, opening_id: int, user: User) -> Opening | None:
    opening = session.get(Opening, opening_id)
    if opening is None:
        return None
    if user.role is Role.admin:
        return opening
    if user.role is not Role.recruiter:
        return None
    assigned = session.get(OpeningRecruiter, (opening_id, user.id))
    return opening if assigned is not None else None


def _not_found() -> Exception:
    from starlette.exceptions import HTTPException

    return HTTPException(404, "Not found")


def opening_for(request: Request, opening_id: int, user: User) -> Opening:
    """Blocking (call it in a thread): the opening for an admin or its assigned recruiter; 404
    for anyone else, so that nobody learns which openings exist."""
    with session_scope(request.app.state.engine) as s:
        opening = _may_see_opening(s, opening_id, user)
    if opening is None:
        raise _not_found()
    return opening


def interview_for(request: Request, interview_id: int, user: User) -> Interview:
    """Blocking: the interview when ``user`` may see its opening, else 404."""
    with session_scope(request.app.state.engine) as s:
        interview = s.get(Interview, interview_id)
        if interview is None or _may_see_opening(s, interview.opening_id, user) is None:
            raise _not_found()
    return interview


async def require_opening(
    request: Request, opening_id: int, user: User = Depends(require_role(Role.recruiter))
) -> Opening:
    return await asyncio.to_thread(opening_for, request, opening_id, user)


async def require_interview(
    request: Request, interview_id: int, user: User = Depends(require_role(Role.recruiter))
) -> Interview:
    return await asyncio.to_thread(interview_for, request, interview_id, user)


# --- CSRF ------------------------------------------------------------------------------------


def _signer(settings: Settings) -> Signer:
    return Signer(invites.secret_key(settings), salt=CSRF_SALT)


def csrf_token_for(settings: Settings, nonce: str) -> str:
    return _signer(settings).sign(nonce).decode("ascii")


def csrf_valid(settings: Settings, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or len(token) > 200:
        return False
    try:
        signed = _signer(settings).unsign(token).decode("ascii")
    except (BadSignature, UnicodeDecodeError):
        return False
    return hmac.compare_digest(signed, nonce)


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The token for this browser's CSRF cookie (what forms and fetch() send back)."""
    state = request.state
    nonce = getattr(state, "csrf_nonce", None)
    if nonce is None:  # outside the middleware (a unit test rendering a template)
        state.csrf_nonce = nonce = new_nonce()
        state.csrf_set = True
    return csrf_token_for(request.app.state.settings, nonce)


@pass_context
def _csrf_input(context: Any) -> Markup:
    token = csrf_token(context["request"])
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


@pass_context
def _csrf_token_global(context: Any) -> str:
    return csrf_token(context["request"])


@pass_context
def _current_user_global(context: Any) -> User | None:
    return current_user(context["request"])


TEMPLATES.env.globals["csrf_input"] = _csrf_input
TEMPLATES.env.globals["csrf_token"] = _csrf_token_global
TEMPLATES.env.globals["current_user"] = _current_user_global


def cookie_secure(request_scheme: str, settings: Settings) -> bool:
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    return request_scheme in ("https", "wss")


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
    request without a valid CSRF token before a route sees it.

    Pure ASGI (not BaseHTTPMiddleware): a media upload's body still streams to its route; only a
    form's body is read here (to find its token) and then replayed unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        settings: Settings = scope["app"].state.settings
        state = scope.setdefault("state", {})
        cookies = _cookies(scope)
        nonce = cookies.get(CSRF_COOKIE, "")
        if _NONCE.match(nonce):
            state["csrf_nonce"], state["csrf_set"] = nonce, False
        else:
            state["csrf_nonce"], state["csrf_set"] = new_nonce(), True
            nonce = ""
        state["user"] = None
        session_token = cookies.get(SESSION_COOKIE)
        if session_token:
            engine = scope["app"].state.engine
            state["user"] = await asyncio.to_thread(_resolve_user, engine, session_token)

        method = scope["method"].upper()
        if method not in SAFE_METHODS:
            request = StarletteRequest(scope, receive)
            token = request.headers.get(CSRF_HEADER)
            content_type = request.headers.get("content-type", "").lower()
            if token is None and _is_form(content_type):
                body = await _read_body(receive)
                if body is None:
                    return await _refuse(scope, send, 413, "This form is too large to send.")
                receive = _replay(body)
                token = await _form_token(scope, body)
            if not csrf_valid(settings, nonce, token):
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


def _resolve_user(engine: Any, token: str) -> User | None:
    with session_scope(engine) as s:
        return accounts.user_for_session(s, token)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
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


# --- the login throttle ----------------------------------------------------------------------


class LoginThrottle:
    """Failed sign-ins per key ("acct:<email>", "ip:<address>") in a sliding window.

    ``retry_after(keys)`` is 0 while every key is under its limit, else the seconds until the
    oldest counted failure of the worst key leaves the window. In-process by design: the
    embedded server is one process (a multi-process deployment would keep this in the database).
    """

    MAX_KEYS = 50_000

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        *,
        ip_factor: int = IP_FAILURE_FACTOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.ip_factor = ip_factor
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _limit(self, key: str) -> int:
        return self.max_failures * (self.ip_factor if key.startswith("ip:") else 1)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def retry_after(self, *keys: str) -> float:
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self._limit(key):
                    wait = max(wait, self.window_s - (now - times[-self._limit(key)]))
        return wait

    def failure(self, *keys: str) -> bool:
        """Count a failure; True when it made some key reach its limit."""
        now = self.clock()
        reached = False
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while len(times) > self._limit(key):
                    times.popleft()
                reached = reached or len(times) >= self._limit(key)
        return reached

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def throttle_keys(email: str, client: str) -> tuple[str, str]:
    return f"acct:{email.strip().lower()[:320]}", f"ip:{client}"


# --- pages -------------------------------------------------------------------------------------


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
    app = request.app
    throttle: LoginThrottle = app.state.login_throttle
    keys = throttle_keys(email, _client(request))
    wait = throttle.retry_after(*keys)
    if wait > 0:
        return _login_page(
            request,
            429,
            error=f"Too many failed sign-ins. Sign-in is paused: try again in {_minutes(wait)}, "
            "or ask an admin to set a new password for you.",
            email=email,
            next_=next_,
        )
    if not email.strip() or not password:
        return _login_page(
            request, 400, error="Enter your email and your password.", email=email, next_=next_
        )
    outcome = await asyncio.to_thread(
        _sign_in, app.state.engine, app.state.settings, email, password, _client(request), throttle
    )
    if isinstance(outcome, str):
        return _login_page(
            request, outcome_status(outcome), error=outcome, email=email, next_=next_
        )
    token, _user = outcome
    response = RedirectResponse(safe_next(next_), status_code=303)
    secure = cookie_secure(request.url.scheme, app.state.settings)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await asyncio.to_thread(_end, app.state.engine, old)
    max_age = int(app.state.settings.session_hours * 3600)
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


def outcome_status(message: str) -> int:
    if message.startswith("Too many"):
        return 429
    if message == DEACTIVATED:
        return 403
    return 401


def _sign_in(
    engine: Any, settings: Settings, email: str, password: str, client: str, throttle: LoginThrottle
) -> tuple[str, User] | str:
    """Blocking (argon2): a session token, or the message to show."""
    keys = throttle_keys(email, client)
    with session_scope(engine) as s:
        user = accounts.authenticate(s, email, password)
        if user is not None and user.active:
            throttle.reset(keys[0])
            token = accounts.start_session(s, user, hours=settings.session_hours)
            repo.audit(s, user, "login", f"user:{user.id}", ip=client)
            return token, user
        if user is not None:
            repo.audit(s, user, "login.deactivated", f"user:{user.id}", ip=client)
            return DEACTIVATED
        known = accounts.user_by_email(s, email)
        locked = throttle.failure(*keys)
        target = f"user:{known.id}" if known else "login"
        detail: dict[str, Any] = {"ip": client}
        if known is None:
            detail["email"] = email.strip().lower()[:120]
        repo.audit(s, known, "login.failed", target, **detail)
        if locked:
            repo.audit(s, known, "login.locked", target, **detail)
            wait = throttle.retry_after(*keys)
            return (
                f"Too many failed sign-ins. Sign-in is paused: try again in {_minutes(wait)}, "
                "or ask an admin to set a new password for you."
            )
    minutes = settings.login_lockout_minutes
    return WRONG.format(n=settings.login_max_failures, m=_minutes(minutes * 60))


def _end(engine: Any, token: str) -> None:
    with session_scope(engine) as s:
        accounts.end_session(s, token)


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    user = current_user(request)
    if token:

        def end() -> None:
            with session_scope(request.app.state.engine) as s:
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


# --- wiring --------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Called by create_app: middleware, error handlers, login routes and the Users pages."""
    settings: Settings = app.state.settings
    app.state.login_throttle = LoginThrottle(
        settings.login_max_failures, settings.login_lockout_minutes * 60
    )
    app.add_middleware(AuthMiddleware)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"error": "sign in first: open /login in this browser"}, status_code=401
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=403)
        return render(request, "staff/403.html", status_code=403, message=exc.message)

    app.include_router(router)
    from interviewer.web import users

    app.include_router(users.router)
