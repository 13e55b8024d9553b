"""The web app: ``create_app(settings)`` builds everything from one settings object.

Server-rendered pages (Jinja2) with plain JavaScript modules from ``web/static``: no build step,
nothing to install in a browser, and a page that works when a script fails to load still tells
the person what to do. Applicant pages live in :mod:`interviewer.web.applicant`; the live voice
connection in :mod:`interviewer.web.live`.

Every error a person can meet renders a page that says what happened and what to do next; an
unexpected one is logged with its traceback and shown as "try again", never as a bare 500.
Invite tokens are secrets in URLs, so the access log is this module's own, with tokens masked.
Every response carries the security headers (CSP, no framing, no-store on pages); a request for
a host not in the trusted hosts is refused first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from interviewer import privacy
from interviewer.banks.drafts import BankStore
from interviewer.config import Settings, get_settings
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import Opening
from interviewer.store.storage import open_storage
from interviewer.voice.stack import VoiceStack
from interviewer.web import (
    applicant,
    auth,
    banks_editor,
    livekit,
    login,
    openings,
    report,
    users,
)
from interviewer.web.deps import Services
from interviewer.web.live import LiveInterviews, VoiceOptions
from interviewer.web.middleware import AuthMiddleware
from interviewer.web.pages import STATIC_DIR, error_page, mask_path, render
from interviewer.web.throttle import LoginThrottle

log = logging.getLogger("interviewer.web")


def create_app(settings: Settings | None = None, *, voice: VoiceOptions | None = None) -> FastAPI:
    settings = settings or get_settings()
    voice = voice or VoiceOptions()
    engine = create_db_engine(settings.resolved_database_url)
    recordings = open_storage(settings)
    stack = VoiceStack(settings)
    live = LiveInterviews(settings, engine, recordings, stack, voice)
    services = Services(
        settings=settings,
        engine=engine,
        recordings=recordings,
        stack=stack,
        live=live,
        voice=voice,
        login_throttle=LoginThrottle(
            settings.login_max_failures, settings.login_lockout_minutes * 60, engine=engine
        ),
        bankstore=BankStore(settings.banks_dir, engine, settings.data_dir / "locks"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, engine)
        warm: asyncio.Task[None] | None = None
        if voice.warm_up:
            warm = asyncio.create_task(_warm(stack, engine))
        # Recordings past their opening's retention period: deleted now and every hour.
        purge = asyncio.create_task(privacy.retention_loop(engine, recordings))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(BaseException):
                await purge
            await live.shutdown()
            if warm is not None and not warm.done():
                warm.cancel()
                with contextlib.suppress(BaseException):
                    await warm

    app = FastAPI(
        title="interviewer",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # no route listing: every route is in access.py, nothing else served
    )
    # The typed services are the app's state (Starlette itself never reads app.state): the one
    # place it is set. Routes reach it through web/deps.py.
    app.state = services  # type: ignore[assignment]
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    # Sign-in and CSRF (before access_log, so it sits inside it and refusals are logged).
    app.add_middleware(AuthMiddleware)
    app.add_exception_handler(auth.LoginRequired, auth.login_required_response)
    app.add_exception_handler(auth.Forbidden, auth.forbidden_response)
    app.include_router(login.router)
    app.include_router(users.router)

    csp = content_security_policy(settings)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Response:
        started = time.monotonic()
        try:
            response = await call_next(request)
        except Exception as exc:  # caught here, not re-raised: the person gets a page
            response = _unexpected(request, exc)
        log.info(
            "%s %s %d %.0f ms",
            request.method,
            mask_path(request.url.path),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        # Invite pages hold a token in their URL: never send it on as a Referer.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static/"):
            # Pages show secrets (a new password, invite links) and personal data: no copy
            # in a browser's or proxy's cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # Outermost: a Host header that is not ours is refused before anything reads it, so no
    # link or redirect can be built from it.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/static/")) or "/media/" in request.url.path:
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        if (
            exc.status_code == 404
            and not request.url.path.startswith("/i/")
            and auth.current_user(request)
        ):
            # Staff: an opening or applicant they may not see looks the same as a missing one.
            return error_page(
                request,
                404,
                "Page not found",
                "There is nothing here that your account can open: the address may be "
                "mistyped, the applicant's data deleted, or the opening not assigned to you.",
                "Start again from the Openings list, or ask an admin to assign you.",
            )
        if exc.status_code == 404:
            return error_page(
                request,
                404,
                "Page not found",
                "There is nothing at this address.",
                "Open the invite link from your invitation email again.",
            )
        return error_page(
            request,
            exc.status_code,
            "This request could not be completed",
            str(exc.detail),
            "Go back and try again.",
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "ok": True,
            "voice_ready": stack.ready.is_set(),
            "voice_error": stack.error,
            "live": len(live.active),
        }

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        return render(request, "index.html")

    app.include_router(applicant.router)
    app.include_router(banks_editor.router)
    app.include_router(report.router)
    app.include_router(openings.router)
    app.include_router(livekit.router)
    return app


def content_security_policy(settings: Settings) -> str:
    """Scripts only from this site's static files (no inline script, no eval), no framing by
    any site (clickjacking), forms and sockets only to this site (and the LiveKit server).

    Style attributes stay allowed: the report's timeline and the charts place their parts
    with computed ``style="left: …"`` values; style elements and sheets still come from here.
    """
    connect = ["'self'"]
    if settings.livekit_url:
        parts = urlsplit(settings.livekit_url)
        http = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        # the SDK's socket, and its HTTP calls to the same server (validate, region list)
        connect += [f"{parts.scheme}://{parts.netloc}", f"{http}://{parts.netloc}"]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src {' '.join(connect)}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s", mask_path(request.url.path), exc_info=exc)
    if "/media/" in request.url.path:
        return JSONResponse({"error": "server error, try again"}, status_code=503)
    return error_page(
        request,
        503,
        "Something went wrong on our side",
        "The server could not complete this request. Your answers so far are saved.",
        "Reload this page in a minute. If it keeps happening, contact the recruiter "
        "who invited you.",
    )


async def _warm(stack: VoiceStack, engine: Any) -> None:
    """Load the models and render every opening's lines, so the first interview starts fast."""
    try:
        await stack.load()
    except Exception:
        return

    def banks() -> list[Any]:
        with session_scope(engine) as s:
            ids = sorted({o.bank_version_id for o in s.scalars(select(Opening))})
            return [repo.bank_of(s, i) for i in ids]

    for bank in await asyncio.to_thread(banks):
        await stack.prerender(bank)
