"""The voice socket: strict limits close a misbehaving socket cleanly (a close code and one log
line) without touching any other interview; one live tab per interview."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from web_support import make_settings, seed_interview, send_csrf

from interviewer.store.db import session_scope
from interviewer.store.models import IntegrityEvent, Interview, Invite
from interviewer.transports.websocket import CloseCode
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

AGREE = {"recording": "yes", "scoring": "yes", "retention": "yes"}
_count = 0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("web-socket")
    settings = make_settings(tmp)
    seed_interview(settings)  # migrates the database before the app starts
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as client:
        send_csrf(client)
        yield client, settings


def _new(env, *, consent: bool = True, **kw: Any):
    global _count
    client, settings = env
    _count += 1
    seeded = seed_interview(settings, email=f"a{_count}@example.invalid", **kw)
    if consent:
        client.post(f"/i/{seeded.token}/consent", data=AGREE)
    return seeded


def _hello(ws, tab: str = "tab-aaaaaaaa") -> None:
    ws.send_json({"type": "hello", "tab": tab, "sample_rate": 16000})


def _close_code(ws) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes; the close code and the JSON messages seen before it."""
    seen: list[dict[str, Any]] = []
    for _ in range(1000):
        message = ws.receive()
        if message["type"] == "websocket.close":
            return message["code"], seen
        if message.get("text"):
            seen.append(json.loads(message["text"]))
    raise AssertionError("the socket was not closed")


def _leave(client, ws, seeded) -> None:
    """Close from the page side and wait until the server has let the interview go (TestClient
    cancels a handler still running when its block ends; uvicorn lets it finish)."""
    ws.close(1000)
    live = client.app.state.live
    deadline = time.monotonic() + 30
    while seeded.interview_id in live.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seeded.interview_id not in live.active


def _pong(ws) -> bool:
    ws.send_json({"type": "ping"})
    for _ in range(1000):
        message = ws.receive()
        if message["type"] == "websocket.close":
            return False
        if message.get("text") and json.loads(message["text"])["type"] == "pong":
            return True
    return False


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("forged", CloseCode.INVALID_LINK, "forged"),
        ("expired", CloseCode.FINISHED, "expired"),
        ("no consent", CloseCode.CONSENT_NEEDED, "consent"),
    ],
)
def test_links_that_cannot_open_the_socket(env, case: str, code: int, reason: str) -> None:
    client, _ = env
    seeded = _new(env, consent=case != "no consent")
    token = seeded.token + ("x" if case == "forged" else "")
    if case == "expired":
        with session_scope(seeded.engine) as s:
            s.get(Invite, seeded.invite_id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with client.websocket_connect(f"/i/{token}/ws") as ws:
        got, seen = _close_code(ws)
    assert got == code
    assert seen and seen[-1]["type"] == "error" and seen[-1]["code"] == reason


@pytest.mark.parametrize(
    ("before_hello", "send", "code"),
    [
        (True, lambda ws: ws.send_text("{not json"), CloseCode.INVALID),
        (True, lambda ws: ws.send_bytes(b"\0\0" * 100), CloseCode.POLICY),
        (True, lambda ws: ws.send_json({"type": "played", "segment": 1}), CloseCode.POLICY),
        (True, lambda ws: ws.send_json({"type": "hello", "tab": "x"}), CloseCode.POLICY),
        (False, lambda ws: ws.send_bytes(b"\0" * 20_000), CloseCode.TOO_BIG),
        (False, lambda ws: ws.send_bytes(b"\0" * 3201), CloseCode.INVALID),
        (False, lambda ws: ws.send_text("x" * 5000), CloseCode.TOO_BIG),
        (False, lambda ws: ws.send_json([1, 2, 3]), CloseCode.INVALID),
        (False, lambda ws: ws.send_json({"type": "shutdown"}), CloseCode.POLICY),
        (False, lambda ws: ws.send_json({"type": "played", "segment": "1"}), CloseCode.POLICY),
        (False, lambda ws: ws.send_json({"type": "played", "segment": 1, "x": 1}), 1008),
        (False, lambda ws: ws.send_json({"type": "repeat", "now": True}), CloseCode.POLICY),
        (False, lambda ws: [ws.send_json({"type": "ping"}) for _ in range(80)], CloseCode.POLICY),
        (False, lambda ws: [ws.send_bytes(b"\0" * 3200) for _ in range(400)], CloseCode.POLICY),
    ],
    ids=[
        "not-json", "audio-before-hello", "no-hello", "bad-hello", "oversized-audio", "odd-pcm",
        "oversized-text", "json-array", "unknown-type", "wrong-field-type", "extra-field",
        "repeat-with-junk", "message-flood", "audio-faster-than-real-time",
    ],
)  # fmt: skip
def test_garbage_closes_only_that_socket(env, caplog, before_hello: bool, send, code: int) -> None:
    client, _ = env
    bystander = _new(env)
    offender = _new(env)
    with (
        caplog.at_level(logging.WARNING, logger="interviewer.transports.websocket"),
        client.websocket_connect(f"/i/{bystander.token}/ws") as other,
    ):
        _hello(other, "tab-bystander")
        assert _pong(other)
        with client.websocket_connect(f"/i/{offender.token}/ws") as ws:
            if not before_hello:
                _hello(ws)
            send(ws)
            got, _ = _close_code(ws)
        assert got == code
        assert _pong(other), "another interview's socket was affected"
        _leave(client, other, bystander)
    assert f"closing ({code})" in caplog.text


def test_a_second_tab_is_refused_and_a_reload_takes_over(env) -> None:
    client, _ = env
    seeded = _new(env)
    url = f"/i/{seeded.token}/ws"
    with client.websocket_connect(url) as first:
        _hello(first, "tab-first-1")
        assert _pong(first)
        with client.websocket_connect(url) as second:
            _hello(second, "tab-second-2")
            got, seen = _close_code(second)
        assert got == CloseCode.OTHER_TAB
        assert seen[-1]["code"] == "other_tab"
        assert "another tab" in seen[-1]["message"]
        assert _pong(first), "the first tab must keep its interview"
        # the server itself records the second session (the first is not affected)
        events = _events(seeded)
        assert [(e.kind, e.severity) for e in events] == [("concurrent_session", "high")]
        assert events[0].evidence["detected_by"] == "server"

        # the same tab reconnecting (a reload, a dropped network) replaces its old socket
        with client.websocket_connect(url) as reloaded:
            _hello(reloaded, "tab-first-1")
            got, _ = _close_code(first)
            assert got == CloseCode.REPLACED
            assert _pong(reloaded)
            _leave(client, reloaded, seeded)
    with session_scope(seeded.engine) as s:
        assert s.get(Interview, seeded.interview_id) is not None


def test_a_closed_tab_frees_the_interview(env) -> None:
    client, _ = env
    seeded = _new(env)
    url = f"/i/{seeded.token}/ws"
    with client.websocket_connect(url) as first:
        _hello(first, "tab-closed-1")
        assert _pong(first)
        _leave(client, first, seeded)
    with client.websocket_connect(url) as other:
        _hello(other, "tab-other-22")
        assert _pong(other)
        _leave(client, other, seeded)


def _page(ws, until, timeout_s: float = 180.0) -> list[dict[str, Any]]:
    """Act as the page: report each segment as played at once; read until ``until(message)``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = ws.receive()
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')}): {seen[-3:]}")
        if not message.get("text"):
            continue  # agent audio
        m = json.loads(message["text"])
        seen.append(m)
        if m["type"] == "segment":
            ws.send_json({"type": "started", "segment": m["segment"]})
        elif m["type"] == "segment_end":
            ws.send_json({"type": "played", "segment": m["segment"], "position": 0.5})
        if until(m):
            return seen
    raise AssertionError(f"not seen in {timeout_s:.0f} s: {seen[-5:]}")


def test_agent_state_and_the_repeat_button(env) -> None:
    """The session's hook gives the page the agent's state from the start, and the repeat
    button says the pending question again (the socket reaches the agent through public API)."""
    client, _ = env
    seeded = _new(env)
    with client.websocket_connect(f"/i/{seeded.token}/ws") as ws:
        _hello(ws, "tab-repeat-01")
        spoke: list[bool] = []

        def practice_asked(m: dict[str, Any]) -> bool:
            if m["type"] == "question" and m.get("practice"):
                spoke.append(True)
            return bool(spoke) and m["type"] == "state" and m["state"] == "listening"

        seen = _page(ws, practice_asked)
        states = [m["state"] for m in seen if m["type"] == "state"]
        assert "speaking" in states, states
        ws.send_json({"type": "repeat"})
        seen = _page(ws, lambda m: m["type"] == "caption" and "What do you do?" in m["text"])
        captions = [m["text"] for m in seen if m["type"] == "caption"]
        assert any(c.startswith("Of course") for c in captions), captions
        _leave(client, ws, seeded)
    with session_scope(seeded.engine) as s:
        assert s.get(Interview, seeded.interview_id).core_state["repeats"] == 1


def test_more_time_and_not_finished_over_the_socket(env) -> None:
    """The page's two requests reach the agent: "I need more time" is answered aloud and the
    wait starts again; "I wasn't finished" with no answer yet is refused with a notice. The
    label never says listening before the question has been said."""
    client, _ = env
    seeded = _new(env)
    with client.websocket_connect(f"/i/{seeded.token}/ws") as ws:
        _hello(ws, "tab-request-01")
        seen = _page(ws, lambda m: m["type"] == "state" and m["state"] == "listening")
        asked = next(i for i, m in enumerate(seen) if m["type"] == "question")
        before = [m["state"] for m in seen[:asked] if m["type"] == "state"]
        assert "listening" not in before and "thinking" in before, before
        agent_states = [m for m in seen if m["type"] == "state" and m["state"] != "preparing"]
        assert agent_states and all("can_continue" in m for m in agent_states), agent_states
        ws.send_json({"type": "continue"})
        seen = _page(ws, lambda m: m["type"] == "notice")
        assert "no earlier answer" in seen[-1]["message"]
        ws.send_json({"type": "more_time"})
        _page(ws, lambda m: m["type"] == "caption" and "take your time" in m["text"])
        _page(ws, lambda m: m["type"] == "state" and m["state"] == "listening")  # waits again
        _leave(client, ws, seeded)
    with session_scope(seeded.engine) as s:
        assert s.get(Interview, seeded.interview_id).core_state["more_time"] == 1


# --- integrity reports over the socket ---------------------------------------------------------


def _events(seeded) -> list[IntegrityEvent]:
    with session_scope(seeded.engine) as s:
        rows = s.scalars(
            select(IntegrityEvent)
            .where(IntegrityEvent.interview_id == seeded.interview_id)
            .order_by(IntegrityEvent.id)
        ).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def _batch(*events: dict[str, Any], page_id: str = "page-1234abcd") -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "type": "integrity",
        "batch": {
            "page_id": page_id,
            "sent_at_ms": now,
            "events": [{"t_ms": now - 1000, **e} for e in events],
        },
    }


def _reply(ws, kinds: tuple[str, ...] = ("integrity_ack", "integrity_error")) -> dict[str, Any]:
    for _ in range(2000):
        message = ws.receive()
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')})")
        if message.get("text"):
            m = json.loads(message["text"])
            if m["type"] == "segment_end":
                ws.send_json({"type": "played", "segment": m["segment"], "position": 0.5})
            if m["type"] in kinds:
                return m
    raise AssertionError("no reply")


def test_integrity_reports_are_stored_with_durations_on_their_question(env) -> None:
    client, _ = env
    seeded = _new(env)
    with client.websocket_connect(f"/i/{seeded.token}/ws") as ws:
        _hello(ws, "tab-integrity1")
        ready = _page(ws, lambda m: m["type"] == "ready")[-1]
        assert ready["proctoring"] == {"fullscreen": False}  # the opening does not ask for it
        _page(ws, lambda m: m["type"] == "question" and m.get("practice"))
        batch = _batch(
            {"seq": 1, "type": "tab_hidden", "duration_ms": 4200},
            {"seq": 2, "type": "paste", "chars": 340, "question_id": "colour"},
            {"seq": 3, "type": "window_blur", "duration_ms": 12500},
            {"seq": 4, "type": "fullscreen_exit", "duration_ms": 3000},  # not required: ignored
            {"seq": 5, "type": "reload", "count": 1},
        )
        ws.send_json(batch)
        ack = _reply(ws)
        assert ack == {"type": "integrity_ack", "page_id": "page-1234abcd", "upto": 5, "stored": 4}
        ws.send_json(batch)  # resent after a network error: nothing stored twice
        assert _reply(ws)["stored"] == 0
        assert _pong(ws)
        _leave(client, ws, seeded)
    got = {e.kind: e for e in _events(seeded)}
    assert set(got) == {"tab_hidden", "paste", "window_blurred", "page_reloaded"}
    assert got["tab_hidden"].duration_s == 4.2 and got["tab_hidden"].severity == "info"
    assert got["tab_hidden"].question_id == "practice"  # the question out when it came in
    assert got["paste"].question_id == "colour" and got["paste"].severity == "high"
    assert got["paste"].evidence["characters"] == 340
    assert got["window_blurred"].duration_s == 12.5 and got["window_blurred"].severity == "warning"


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_good_event = {"seq": 1, "type": "paste", "t_ms": 1_000, "chars": 5}
_bad_events = st.one_of(
    st.fixed_dictionaries({"seq": st.integers(max_value=-1)}).map(lambda d: {**_good_event, **d}),
    st.fixed_dictionaries({"chars": st.integers(max_value=-1) | st.text(max_size=4)}).map(
        lambda d: {**_good_event, **d}
    ),
    st.fixed_dictionaries({"text": st.text(max_size=20)}).map(lambda d: {**_good_event, **d}),
    st.fixed_dictionaries({"type": st.text(max_size=12).filter(lambda t: t not in _KNOWN)}).map(
        lambda d: {**_good_event, **d}
    ),
    st.fixed_dictionaries(
        {"question_id": st.text(max_size=20).filter(lambda q: q not in _QIDS)}
    ).map(lambda d: {**_good_event, **d}),
    st.fixed_dictionaries({"t_ms": st.integers(min_value=20_000, max_value=10**15)}).map(
        lambda d: {**_good_event, **d}
    ),
    st.fixed_dictionaries({"duration_ms": st.integers(min_value=24 * 3600 * 1000 + 1)}).map(
        lambda d: {**_good_event, "type": "tab_hidden", "chars": None, **d}
    ),
    _junk,
)
_KNOWN = {"tab_hidden", "window_blur", "fullscreen_exit", "paste", "drop", "reload",
          "concurrent_session"}  # fmt: skip
_QIDS = {"practice", "colour", "animal"}
_bad_batches = st.one_of(
    st.dictionaries(st.text(max_size=10), _junk, max_size=4),
    st.builds(
        lambda page, events: {"page_id": page, "sent_at_ms": 10_000, "events": events},
        st.sampled_from(["page-1234abcd", "x", "../../etc", "page 1234abcd"]),
        st.lists(_bad_events, min_size=1, max_size=3),
    ),
)


def test_bad_integrity_reports_are_refused_and_the_interview_goes_on(env) -> None:
    """Whatever the page sends as a report: a one-line refusal, nothing stored, the socket and
    the interview untouched (a report can never cost an applicant their interview)."""
    client, _ = env
    seeded = _new(env)
    sent = 0
    with client.websocket_connect(f"/i/{seeded.token}/ws") as ws:
        _hello(ws, "tab-integrity2")
        _page(ws, lambda m: m["type"] == "ready")

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(batch=_bad_batches)
        def send_bad(batch: dict[str, Any]) -> None:
            nonlocal sent
            text = json.dumps({"type": "integrity", "batch": batch})
            assume(len(text) < 1800)  # larger messages are the transport's size limit's case
            time.sleep(0.12)  # under the socket's message rate
            ws.send_text(text)
            reply = _reply(ws)
            sent += 1
            assert reply["type"] == "integrity_error", (batch, reply)
            assert len(reply["message"]) <= 200

        send_bad()
        assert sent >= 10
        assert _pong(ws)
        ws.send_json(_batch({"seq": 9, "type": "paste", "chars": 3}))
        assert _reply(ws)["stored"] == 1  # a good report still goes through
        _leave(client, ws, seeded)
    assert [e.kind for e in _events(seeded)] == ["paste"]
