"""What the applicant's browser reports (tab hidden, window blurred, fullscreen left, paste,
drop, a second tab, reloads), checked and turned into event drafts.

A pure function for the web layer: ``events = to_drafts(await request.body(), thresholds=...,
received_at=utcnow())`` then ``record(session, interview_id, *events)``. Everything the page
sends is untrusted, so the payload is strict (unknown fields refused, so pasted *content* can
never be stored by mistake: only a character count is accepted), capped in size and count, and
times come from the server's clock: the page sends its own clock's time of each event and of
sending, and only the difference is used, so a wrong client clock shifts nothing.

Payload::

    {"page_id": "k3J9...",            # random per page load, 8-64 of [A-Za-z0-9_-]
     "sent_at_ms": 1732590000000,     # the page's clock when sending
     "events": [
       {"seq": 1, "type": "tab_hidden", "t_ms": ..., "duration_ms": 4200, "question_id": "q1"},
       {"seq": 2, "type": "window_blur", "t_ms": ..., "duration_ms": 1200},
       {"seq": 3, "type": "fullscreen_exit", "t_ms": ..., "duration_ms": 8000},
       {"seq": 4, "type": "paste", "t_ms": ..., "chars": 340},
       {"seq": 5, "type": "drop", "t_ms": ..., "chars": 0, "files": 1},
       {"seq": 6, "type": "reload", "t_ms": ..., "count": 2},
       {"seq": 7, "type": "concurrent_session", "t_ms": ...}]}

``seq`` numbers the page's events; (page_id, seq) is the idempotency key, so resending a batch
after a network error stores nothing twice. ``duration_ms`` may be null when the page could not
measure it (closed while hidden): such an event is at least a warning.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from interviewer.proctoring.events import EventDraft, EventKind, Severity, draft
from interviewer.proctoring.thresholds import ProctoringThresholds

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_EVENTS = 500
MAX_AGE_MS = 24 * 3600 * 1000  # an event older than this when sent is refused
MAX_CLOCK_AHEAD_MS = 5_000  # an event "after" the send time (clock hiccup) is tolerated this much
MAX_DURATION_MS = 24 * 3600 * 1000

PageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
QuestionId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Millis = Annotated[int, Field(ge=0, le=10**14)]
Duration = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]


class BrowserPayloadError(ValueError):
    """The payload is refused; ``status`` is the HTTP status a route should answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    seq: Annotated[int, Field(ge=0, le=10**9)]
    t_ms: Millis
    question_id: QuestionId | None = None


class TabHidden(_Event):
    type: Literal["tab_hidden"]
    duration_ms: Duration | None


class WindowBlur(_Event):
    type: Literal["window_blur"]
    duration_ms: Duration | None


class FullscreenExit(_Event):
    type: Literal["fullscreen_exit"]
    duration_ms: Duration | None


class Paste(_Event):
    type: Literal["paste"]
    chars: Annotated[int, Field(ge=0, le=10**7)]


class Drop(_Event):
    type: Literal["drop"]
    chars: Annotated[int, Field(ge=0, le=10**7)]
    files: Annotated[int, Field(ge=0, le=1000)] = 0


class Reload(_Event):
    type: Literal["reload"]
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class ConcurrentSession(_Event):
    type: Literal["concurrent_session"]


BrowserEvent = Annotated[
    TabHidden | WindowBlur | FullscreenExit | Paste | Drop | Reload | ConcurrentSession,
    Field(discriminator="type"),
]


class BrowserPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    page_id: PageId
    sent_at_ms: Millis
    events: Annotated[list[BrowserEvent], Field(max_length=MAX_EVENTS)]


def parse_payload(raw: bytes | str) -> BrowserPayload:
    """Size first (before any parsing), then strict JSON validation."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_PAYLOAD_BYTES:
        raise BrowserPayloadError(
            f"integrity payload is {size} bytes; at most {MAX_PAYLOAD_BYTES}", status=413
        )
    try:
        payload = BrowserPayload.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise BrowserPayloadError(f"invalid integrity payload at {where}: {first['msg']}") from None
    for event in payload.events:
        age = payload.sent_at_ms - event.t_ms
        if age > MAX_AGE_MS or age < -MAX_CLOCK_AHEAD_MS:
            raise BrowserPayloadError(
                f"invalid integrity payload: event {event.seq} is {age} ms before sending"
            )
    return payload


def _at(payload: BrowserPayload, t_ms: int, received_at: datetime) -> datetime:
    return received_at - timedelta(milliseconds=max(0, payload.sent_at_ms - t_ms))


def to_drafts(
    raw: bytes | str | BrowserPayload,
    *,
    thresholds: ProctoringThresholds,
    received_at: datetime,
    question_ids: set[str] | None = None,
) -> list[EventDraft]:
    """Drafts for the events worth recording (fullscreen only when the opening requires it).

    ``received_at`` is the server's time of receipt (aware UTC). ``question_ids``, when given,
    are the bank's ids: an event naming another question is refused.
    """
    payload = raw if isinstance(raw, BrowserPayload) else parse_payload(raw)
    drafts: list[EventDraft] = []
    for event in payload.events:
        if question_ids is not None and event.question_id not in (None, *question_ids):
            raise BrowserPayloadError(
                f"invalid integrity payload: unknown question {event.question_id!r}"
            )
        common = {
            "key": f"browser:{payload.page_id}:{event.seq}",
            "source": "browser",
            "at": _at(payload, event.t_ms, received_at),
            "question_id": event.question_id,
        }
        evidence: dict[str, object] = {"page_id": payload.page_id, "seq": event.seq}
        made: EventDraft | None
        match event:
            case TabHidden() | WindowBlur() | FullscreenExit():
                if isinstance(event, FullscreenExit) and not thresholds.require_fullscreen:
                    continue
                kind = {
                    "tab_hidden": EventKind.tab_hidden,
                    "window_blur": EventKind.window_blurred,
                    "fullscreen_exit": EventKind.fullscreen_exited,
                }[event.type]
                seconds = None if event.duration_ms is None else event.duration_ms / 1000
                made = draft(
                    kind, seconds, thresholds, duration_s=seconds, evidence=evidence, **common
                )
                if made is not None and seconds is None:
                    made.evidence["seconds"] = None
                    made.evidence["note"] = "duration unknown (page closed or reloaded meanwhile)"
                    if made.severity is Severity.info:
                        made.severity = Severity.warning
            case Paste() | Drop():
                evidence["characters"] = event.chars
                if isinstance(event, Drop):
                    evidence["files"] = event.files
                kind = EventKind.paste if isinstance(event, Paste) else EventKind.drop
                made = draft(kind, event.chars, thresholds, evidence=evidence, **common)
            case Reload():
                made = draft(
                    EventKind.page_reloaded, event.count, thresholds, evidence=evidence, **common
                )
            case ConcurrentSession():
                evidence["detected_by"] = "browser"
                made = draft(
                    EventKind.concurrent_session, 1, thresholds, evidence=evidence, **common
                )
        if made is not None:
            drafts.append(made)
    return drafts


def server_concurrent_session(
    thresholds: ProctoringThresholds, *, at: datetime, connection: str, open_sessions: int
) -> EventDraft:
    """For the server itself: a second live connection on one invite (``connection`` is a
    server-made id of the new connection, e.g. a counter, never a client-supplied string)."""
    made = draft(
        EventKind.concurrent_session,
        open_sessions,
        thresholds,
        key=f"server:concurrent:{connection}",
        source="server",
        at=at,
        evidence={"open_sessions": open_sessions, "detected_by": "server"},
    )
    assert made is not None  # fixed severity: always recorded
    return made
