"""CSRF tokens: a signed double submit, and the template globals that put the token in pages.

The HTTP-only ``interviewer_csrf`` cookie holds a random nonce; the token in the page is that
nonce signed with the server's secret key (itsdangerous). A site that can plant a cookie still
cannot sign a token for it, and applicants (who never sign in) are covered the same way. Once
signed in, the token also signs (a digest of) the session cookie: a token a client got while
anonymous is refused on a staff request. The
check itself runs in :class:`interviewer.web.middleware.AuthMiddleware`, before any route.

Forms: ``{{ csrf_input() }}`` (a hidden ``csrf_token`` field). fetch(): header ``X-CSRF-Token``
with the value of ``<meta name="csrf-token">`` (both base templates have it; ``csrfHeaders()`` in
common.js).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, Signer
from jinja2 import pass_context
from markupsafe import Markup, escape

from interviewer import invites
from interviewer.config import Settings
from interviewer.web.deps import services
from interviewer.web.pages import TEMPLATES

CSRF_COOKIE = "interviewer_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_SALT = "interviewer.csrf.v1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
"""What a nonce from the cookie must look like; anything else is replaced by a fresh one."""


def _signer(settings: Settings) -> Signer:
    return Signer(invites.secret_key(settings), salt=CSRF_SALT)


def _bound(nonce: str, session: str | None) -> str:
    """What the token signs: the nonce, and once signed in a digest of the session cookie, so a
    token minted for an anonymous client (or another session) is worthless to a signed-in one."""
    if not session:
        return nonce
    digest = hashlib.sha256(session.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{nonce}.{digest}"


def csrf_token_for(settings: Settings, nonce: str, session: str | None = None) -> str:
    return _signer(settings).sign(_bound(nonce, session)).decode("ascii")


def csrf_valid(
    settings: Settings, nonce: str | None, token: str | None, session: str | None = None
) -> bool:
    if not nonce or not token or len(token) > 300:
        return False
    try:
        signed = _signer(settings).unsign(token).decode("ascii")
    except (BadSignature, UnicodeDecodeError):
        return False
    return hmac.compare_digest(signed, _bound(nonce, session))


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The token for this browser's CSRF cookie (what forms and fetch() send back)."""
    state = request.state
    nonce = getattr(state, "csrf_nonce", None)
    if nonce is None:  # outside the middleware (a unit test rendering a template)
        state.csrf_nonce = nonce = new_nonce()
        state.csrf_set = True
    session = getattr(state, "csrf_session", None)
    return csrf_token_for(services(request).settings, nonce, session)


@pass_context
def _csrf_input(context: Any) -> Markup:
    token = csrf_token(context["request"])
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


@pass_context
def _csrf_token_global(context: Any) -> str:
    return csrf_token(context["request"])


TEMPLATES.env.globals["csrf_input"] = _csrf_input
TEMPLATES.env.globals["csrf_token"] = _csrf_token_global
