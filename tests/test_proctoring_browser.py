"""Browser-reported integrity events: strict payloads in, graded drafts out (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from interviewer.errors import UserError
from interviewer.proctoring.browser import (
    MAX_PAYLOAD_BYTES,
    BrowserPayloadError,
    server_concurrent_session,
    to_drafts,
)
from interviewer.proctoring.events import EventKind, Severity
from interviewer.proctoring.thresholds import ProctoringThresholds, thresholds_from_settings

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SENT = 1_700_000_000_000  # the page's clock, deliberately nowhere near the server's


def payload(*events: dict, page_id: str = "page-0123abcd", sent_at_ms: int = SENT) -> bytes:
    body = {"page_id": page_id, "sent_at_ms": sent_at_ms, "events": list(events)}
    return json.dumps(body).encode()


def ev(seq: int, type_: str, ago_ms: int = 1000, **fields: object) -> dict:
    return {"seq": seq, "type": type_, "t_ms": SENT - ago_ms, **fields}


def test_valid_batch_becomes_graded_drafts_on_the_server_clock() -> None:
    raw = payload(
        ev(1, "tab_hidden", 60_000, duration_ms=2_000, question_id="idempotent-payments"),
        ev(2, "tab_hidden", 50_000, duration_ms=12_000),
        ev(3, "window_blur", 40_000, duration_ms=90_000),
        ev(4, "paste", 30_000, chars=340),
        ev(5, "drop", 20_000, chars=5, files=1),
        ev(6, "reload", 10_000, count=3),
        ev(7, "concurrent_session", 5_000),
        ev(8, "fullscreen_exit", 4_000, duration_ms=5_000),  # the opening does not ask for it
    )
    drafts = to_drafts(raw, thresholds=ProctoringThresholds(), received_at=NOW)
    got = [(d.kind, d.severity) for d in drafts]
    assert got == [
        (EventKind.tab_hidden, Severity.info),
        (EventKind.tab_hidden, Severity.warning),
        (EventKind.window_blurred, Severity.high),
        (EventKind.paste, Severity.high),
        (EventKind.drop, Severity.info),
        (EventKind.page_reloaded, Severity.warning),
        (EventKind.concurrent_session, Severity.high),
    ]
    first = drafts[0]
    assert first.at == NOW - timedelta(seconds=60)  # only the page's clock *difference* counts
    assert first.question_id == "idempotent-payments"
    assert first.duration_s == 2.0
    assert first.key == "browser:page-0123abcd:1" and first.source == "browser"
    assert drafts[3].evidence["characters"] == 340
    assert drafts[4].evidence["files"] == 1


def test_fullscreen_is_recorded_only_when_the_opening_requires_it() -> None:
    thresholds = thresholds_from_settings({"proctoring": {"require_fullscreen": True}})
    raw = payload(
        ev(1, "fullscreen_exit", duration_ms=3_000), ev(2, "fullscreen_exit", duration_ms=45_000)
    )
    drafts = to_drafts(raw, thresholds=thresholds, received_at=NOW)
    assert [(d.kind, d.severity) for d in drafts] == [
        (EventKind.fullscreen_exited, Severity.warning),
        (EventKind.fullscreen_exited, Severity.high),
    ]


def test_unknown_duration_is_at_least_a_warning() -> None:
    drafts = to_drafts(
        payload(ev(1, "tab_hidden", duration_ms=None)),
        thresholds=ProctoringThresholds(),
        received_at=NOW,
    )
    assert drafts[0].severity is Severity.warning
    assert drafts[0].duration_s is None
    assert "unknown" in drafts[0].evidence["note"]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"not json", "payload"),
        (payload(ev(1, "paste", chars=3, text="secret answer")), "text"),  # content refused
        (payload(ev(1, "paste", chars="12")), "chars"),  # strict: no string-to-int
        (payload(ev(1, "keylogger")), "events.0"),
        (payload(ev(1, "paste", chars=-1)), "chars"),
        (payload(ev(1, "tab_hidden", duration_ms=10**12)), "duration_ms"),
        (payload(ev(1, "paste", chars=1, question_id="../etc")), "question_id"),
        (payload(page_id="x"), "page_id"),
        (payload(ev(1, "paste", ago_ms=-60_000, chars=1)), "before sending"),  # in the future
        (payload(ev(1, "paste", ago_ms=2 * 24 * 3600 * 1000, chars=1)), "before sending"),
    ],
)
def test_invalid_payloads_are_refused_with_a_short_reason(raw: bytes, where: str) -> None:
    with pytest.raises(BrowserPayloadError) as err:
        to_drafts(raw, thresholds=ProctoringThresholds(), received_at=NOW)
    assert err.value.status == 400
    assert where in str(err.value)
    assert "secret answer" not in str(err.value)


def test_unknown_question_is_refused_when_the_bank_is_given() -> None:
    raw = payload(ev(1, "paste", chars=1, question_id="not-in-bank"))
    with pytest.raises(BrowserPayloadError, match="unknown question"):
        to_drafts(raw, thresholds=ProctoringThresholds(), received_at=NOW, question_ids={"q1"})


def test_oversized_payload_is_refused_before_parsing() -> None:
    raw = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"
    with pytest.raises(BrowserPayloadError) as err:
        to_drafts(raw, thresholds=ProctoringThresholds(), received_at=NOW)
    assert err.value.status == 413
    too_many = payload(*(ev(i, "paste", chars=1) for i in range(501)))
    assert len(too_many) < MAX_PAYLOAD_BYTES
    with pytest.raises(BrowserPayloadError, match="events"):
        to_drafts(too_many, thresholds=ProctoringThresholds(), received_at=NOW)


def test_server_detected_second_session_is_high() -> None:
    made = server_concurrent_session(
        ProctoringThresholds(), at=NOW, connection="7", open_sessions=2
    )
    assert made.kind is EventKind.concurrent_session and made.severity is Severity.high
    assert made.key == "server:concurrent:7" and made.evidence["detected_by"] == "server"


def test_opening_thresholds_are_validated() -> None:
    assert thresholds_from_settings({}).tab_hidden_warning_s == 5.0
    assert thresholds_from_settings({"proctoring": {"no_face_warning_s": 8}}).no_face_warning_s == 8
    with pytest.raises(UserError, match="no_such_threshold"):
        thresholds_from_settings({"proctoring": {"no_such_threshold": 1}}, where="opening x")
    with pytest.raises(UserError, match="tab_hidden_high_s"):
        thresholds_from_settings({"proctoring": {"tab_hidden_high_s": 1}})
