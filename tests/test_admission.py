"""The line in front of a full server: at most N interviews at once, the rest first come first
served, told their place, and none lost when someone leaves the line or their turn comes."""

from __future__ import annotations

import asyncio

import pytest

from interviewer.admission import Admission, busy_message


async def test_unlimited_never_waits() -> None:
    gate = Admission(0)
    tickets = [await gate.wait_turn() for _ in range(50)]
    assert len(gate.running) == 50 and not gate.waiting
    for t in tickets:
        gate.release(t)
    assert not gate.running


async def test_line_is_fifo_and_each_is_told_their_place() -> None:
    gate = Admission(2)
    a, b = await gate.wait_turn(), await gate.wait_turn()
    told: dict[str, list[int]] = {"c": [], "d": []}
    c = asyncio.create_task(gate.wait_turn(told["c"].append, notify_every_s=0.05))
    d = asyncio.create_task(gate.wait_turn(told["d"].append, notify_every_s=0.05))
    await asyncio.sleep(0.2)
    assert not c.done() and not d.done()
    assert told["c"][0] == 1 and told["d"][0] == 2 and len(told["c"]) >= 3  # told again
    gate.release(a)
    got_c = await asyncio.wait_for(c, 1)
    assert got_c in gate.running and not d.done()
    await asyncio.sleep(0.1)
    assert told["d"][-1] == 1  # moved up
    gate.release(b)
    got_d = await asyncio.wait_for(d, 1)
    assert gate.running == {got_c, got_d} and not gate.waiting
    gate.release(got_c)
    gate.release(got_c)  # twice is harmless
    assert gate.running == {got_d}


async def test_leaving_the_line_frees_the_place() -> None:
    gate = Admission(1)
    first = await gate.wait_turn()
    page_gone: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    leaver = asyncio.create_task(gate.wait_turn(until=[page_gone], notify_every_s=0.05))
    stayer = asyncio.create_task(gate.wait_turn(notify_every_s=0.05))
    await asyncio.sleep(0.1)
    page_gone.set_result(None)
    assert await asyncio.wait_for(leaver, 1) is None
    assert len(gate.waiting) == 1
    gate.release(first)
    assert await asyncio.wait_for(stayer, 1) in gate.running


async def test_cancelled_when_its_turn_comes_passes_the_slot_on() -> None:
    gate = Admission(1)
    first = await gate.wait_turn()
    unlucky = asyncio.create_task(gate.wait_turn(notify_every_s=10))
    nxt = asyncio.create_task(gate.wait_turn(notify_every_s=10))
    await asyncio.sleep(0.05)
    gate.release(first)  # grants `unlucky`...
    unlucky.cancel()  # ...whose page is torn down before it runs
    await asyncio.gather(unlucky, return_exceptions=True)
    assert await asyncio.wait_for(nxt, 1) in gate.running and len(gate.running) == 1


def test_the_message_is_honest_and_says_what_to_do() -> None:
    assert "1 person is ahead" in busy_message(1)
    assert "3 people are ahead" in busy_message(3)
    assert "stay on this page" in busy_message(2)


# --- the embedded server with INTERVIEWER_MAX_LIVE_INTERVIEWS=1 ------------------------------


def _messages_until(ws, want: str, limit: int = 2000) -> list[dict]:
    import json

    seen = []
    for _ in range(limit):
        message = ws.receive()
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed before {want!r}: {seen[-3:]}")
        if message.get("text"):
            seen.append(json.loads(message["text"]))
            if seen[-1]["type"] == want:
                return seen
    raise AssertionError(f"no {want!r} in {limit} messages")


@pytest.mark.timeout(300)
def test_a_full_server_lines_the_next_applicant_up_with_a_message(tmp_path) -> None:
    import time

    from fastapi.testclient import TestClient
    from web_support import make_settings, seed_interview, send_csrf

    from interviewer.web import create_app
    from interviewer.web.live import VoiceOptions

    settings = make_settings(tmp_path, max_live_interviews=1)
    first, second = (seed_interview(settings, email=f"{n}@example.invalid") for n in "ab")
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    agree = {"recording": "yes", "scoring": "yes", "retention": "yes"}
    with TestClient(app) as client:
        send_csrf(client)
        for s in (first, second):
            client.post(f"/i/{s.token}/consent", data=agree).raise_for_status()
        with client.websocket_connect(f"/i/{first.token}/ws") as one:
            one.send_json({"type": "hello", "tab": "tab-first-11", "sample_rate": 16000})
            _messages_until(one, "ready")
            with client.websocket_connect(f"/i/{second.token}/ws") as two:
                two.send_json({"type": "hello", "tab": "tab-second-22", "sample_rate": 16000})
                seen = _messages_until(two, "notice")
                assert "ready" not in [m["type"] for m in seen]
                assert seen[-1]["message"] == busy_message(1)
                live = client.app.state.live
                assert second.interview_id in live.active and len(live.admission.waiting) == 1
                one.close(1000)  # the first interview's page goes: the next one starts
                seen = _messages_until(two, "ready")
                assert live.admission.waiting == []
                two.close(1000)
                deadline = time.monotonic() + 30
                while live.active and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not live.admission.running  # every slot given back


@pytest.mark.timeout(400)
def test_the_waiting_applicant_sees_why_in_chromium(tmp_path) -> None:
    """What the second applicant sees while the only slot is taken (screenshot
    test-artifacts/screenshots/admission-busy.png), and that their interview then starts."""
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from playwright import sync_api
    from web_support import CHROMIUM, LiveServer, chromium_args, make_settings, make_video
    from web_support import seed_interview as seed

    from interviewer.store.db import session_scope
    from interviewer.store.models import Interview
    from interviewer.web import create_app
    from interviewer.web.live import VoiceOptions

    shots = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    settings = make_settings(tmp_path, max_live_interviews=1)
    seeded = [seed(settings, email=f"{n}@example.invalid") for n in "ab"]
    for s in seeded:
        with session_scope(s.engine) as db:
            db.get(Interview, s.interview_id).consented_at = datetime.now(UTC)
    app = create_app(settings, voice=VoiceOptions(max_follow_ups=0))
    server = LiveServer(app).start(timeout=300)
    live = app.state.live
    try:
        with sync_api.sync_playwright() as pw:
            args = chromium_args(None, make_video(tmp_path / "c.y4m"))
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
            pages = []
            for s in seeded:
                page = browser.new_context(
                    bypass_csp=True, viewport={"width": 1000, "height": 800}
                ).new_page()
                page.goto(f"{server.url}/i/{s.token}/interview")
                page.wait_for_selector("#start:not([disabled])", timeout=60_000)
                page.click("#start")
                pages.append(page)
                if len(pages) == 1:
                    deadline = time.monotonic() + 120
                    while len(live.admission.running) < 1 and time.monotonic() < deadline:
                        time.sleep(0.1)
            waiting = pages[1]
            waiting.wait_for_selector("#banner:not([hidden])", timeout=60_000)
            text = waiting.inner_text("#banner")
            waiting.screenshot(path=str(shots / "admission-busy.png"), full_page=True)
            assert "All interviewers are busy" in text and "1 person is ahead" in text
            assert not waiting.is_visible("#problem")
            pages[0].context.close()  # the first applicant leaves: the second one starts
            waiting.wait_for_function(
                "document.getElementById('banner').hidden === true", timeout=60_000
            )
            deadline = time.monotonic() + 30
            while live.admission.waiting and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not live.admission.waiting and len(live.admission.running) == 1
            browser.close()
    finally:
        server.stop()
