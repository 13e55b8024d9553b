"""Typed access to what create_app builds, so routes never read untyped ``request.app.state``.

``create_app`` builds one :class:`Services` and makes it the app's ``state``; a route, a
dependency or the middleware asks for it with ``services(request)`` (or ``app_services(app)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from interviewer.banks.drafts import BankStore
from interviewer.config import Settings
from interviewer.store.storage import LocalStorage
from interviewer.web.throttle import LoginThrottle

if TYPE_CHECKING:  # types only: the live objects are built (and imported) by create_app
    from interviewer.voice.stack import InterviewerTTS, VoiceStack
from interviewer.web.live import LiveInterviews, VoiceOptions

T = TypeVar("T")


@dataclass(eq=False)
class Slot(Generic[T]):
    """A value built on first use by the one route that needs it, then kept for the app's life
    (e.g. the bank editor's text-to-speech, which loads an engine)."""

    value: T | None = None


@dataclass(frozen=True, eq=False)
class Services:
    """Everything one app shares between requests; built once, in ``create_app``."""

    settings: Settings
    engine: Engine
    recordings: LocalStorage
    stack: VoiceStack
    live: LiveInterviews
    voice: VoiceOptions
    login_throttle: LoginThrottle
    bankstore: BankStore
    bank_tts: Slot[dict[str, InterviewerTTS]] = field(default_factory=Slot)  # by voice


def app_services(app: Starlette) -> Services:
    """The app's services (for code that holds the app, not a request: the ASGI middleware)."""
    state = app.state
    if not isinstance(state, Services):
        raise TypeError("this app was not built by interviewer.web.create_app")
    return state


def services(conn: HTTPConnection) -> Services:
    """The services of the app serving this request or WebSocket."""
    return app_services(conn.app)
