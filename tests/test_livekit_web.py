"""The applicant's side of the LiveKit transport, without a LiveKit server (none installs here).

Tokens are decoded and checked with livekit-api's own ``TokenVerifier`` (signature, room,
identity, grants) and PyJWT for the expiry; the page is opened in Debian's Chromium with a
minted token and a LiveKit URL where nothing listens, and must say so (screenshot in
test-artifacts/screenshots/livekit-unreachable.png).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from livekit import api
from web_support import (
    CHROMIUM,
    LiveServer,
    chromium_args,
    free_port,
    make_settings,
    seed_interview,
)

from interviewer.store.db import session_scope
from interviewer.store.models import Interview, InterviewState
from interviewer.web import livekit as web_lk
from interviewer.web.app import create_app
from interviewer.web.live import VoiceOptions

KEY = "APIinterviewertest"
SECRET = "a-livekit-secret-of-more-than-32-characters"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
NO_VOICE = VoiceOptions(warm_up=False)


def _settings(tmp: Path, **kw: Any) -> Any:
    values: dict[str, Any] = {
        "transport": "livekit",
        "livekit_url": f"ws://127.0.0.1:{free_port()}",  # nothing listens there
        "livekit_api_key": KEY,
        "livekit_api_secret": SECRET,
        "livekit_token_ttl_s": 300,
    }
    values.update(kw)
    return make_settings(tmp, **values)


def _consent(seeded: Any) -> None:
    with session_scope(seeded.engine) as s:
        s.get(Interview, seeded.interview_id).consented_at = datetime.now(UTC)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Any, Any]]:
    settings = _settings(tmp_path)
    seeded = seed_interview(settings)
    with TestClient(create_app(settings, voice=NO_VOICE)) as c:
        yield c, settings, seeded


def test_token_grants_only_this_room_to_this_invite(client: Any) -> None:
    c, settings, seeded = client
    _consent(seeded)
    before = int(time.time())
    res = c.get(f"/i/{seeded.token}/livekit")
    assert res.status_code == 200, res.text
    assert res.headers["cache-control"] == "no-store"
    body = res.json()
    room = f"interview-{seeded.interview_id}"
    identity = f"invite-{seeded.invite_id}"
    assert (body["url"], body["room"], body["identity"]) == (settings.livekit_url, room, identity)

    claims = api.TokenVerifier(KEY, SECRET).verify(body["token"])
    assert claims.identity == identity
    assert claims.kind == "standard"
    video = claims.video
    assert video.room == room and video.room_join is True
    assert video.can_publish is True and video.can_subscribe is True
    assert video.can_publish_sources == ["microphone", "camera"]
    assert video.can_publish_data is False
    admin_grants = ["room_create", "room_list", "room_record", "room_admin", "ingress_admin"]
    flags = ["hidden", "recorder", "agent", "can_update_own_metadata", "destination_room",
             "can_manage_agent_session", "can_subscribe_metrics"]  # fmt: skip
    for grant in admin_grants + flags:
        assert not getattr(video, grant), grant
    assert not claims.sip.admin and not claims.sip.call
    assert not claims.inference.perform

    raw = jwt.decode(body["token"], SECRET, algorithms=["HS256"], issuer=KEY)
    # nothing beyond the room grants: no sip/inference/observability sections at all
    assert set(raw) <= {"iss", "sub", "nbf", "exp", "name", "kind", "video", "roomConfig",
                        "metadata", "attributes", "sha256", "jti"}, raw  # fmt: skip
    assert set(raw["video"]) == {
        "roomJoin", "room", "canPublish", "canSubscribe", "canPublishData",
        "canPublishSources", "canUpdateOwnMetadata",
    }  # fmt: skip
    assert before + 300 - 5 <= raw["exp"] <= int(time.time()) + 300 + 5
    assert raw["roomConfig"]["agents"] == [{"agentName": "interviewer"}]

    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-that-is-long-enough-to-use").verify(body["token"])


def test_token_refusals_say_what_to_do(client: Any, tmp_path: Path) -> None:
    c, _, seeded = client
    res = c.get(f"/i/{seeded.token}/livekit")
    assert res.status_code == 409 and res.json()["error"] == "consent"
    assert res.json()["invite"].endswith(f"/i/{seeded.token}")
    res = c.get("/i/not-a-token/livekit")
    assert res.status_code == 404 and res.json()["next"]
    _consent(seeded)
    with session_scope(seeded.engine) as s:
        s.get(Interview, seeded.interview_id).state = InterviewState.completed
    res = c.get(f"/i/{seeded.token}/livekit")
    assert res.status_code == 410 and res.json()["done"].endswith("/done")


def test_websocket_transport_and_missing_keys(tmp_path: Path) -> None:
    ws = make_settings(tmp_path / "ws")
    seeded = seed_interview(ws)
    _consent(seeded)
    with TestClient(create_app(ws, voice=NO_VOICE)) as c:
        res = c.get(f"/i/{seeded.token}/livekit")
        assert res.status_code == 409 and res.json()["error"] == "transport"
        page = c.get(f"/i/{seeded.token}/interview").text
        assert "interview.js" in page and "livekit" not in page  # the default is untouched
    bare = _settings(tmp_path / "bare", livekit_api_secret=None)
    seeded = seed_interview(bare)
    _consent(seeded)
    with TestClient(create_app(bare, voice=NO_VOICE)) as c:
        res = c.get(f"/i/{seeded.token}/livekit")
        assert res.status_code == 503
        assert "INTERVIEWER_LIVEKIT_API_SECRET" in res.json()["detail"]


def test_sdk_is_served_from_node_modules(client: Any, tmp_path: Path) -> None:
    c, _, seeded = client
    if web_lk.sdk_path() is None:
        pytest.fail("livekit-client is not installed: run `make js` (npm ci)", pytrace=False)
    res = c.get("/vendor/livekit-client.mjs")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/javascript")
    assert b"registerTextStreamHandler" in res.content
    assert web_lk.sdk_path(tmp_path) is None  # nothing installed there -> the 503 branch
    settings = make_settings(tmp_path / "x", node_modules_dir=tmp_path)
    with TestClient(create_app(settings, voice=NO_VOICE)) as bare:
        res = bare.get("/vendor/livekit-client.mjs")
        assert res.status_code == 503 and b"make js" in res.content
    _consent(seeded)
    page = c.get(f"/i/{seeded.token}/interview").text
    assert "livekit-interview.js" in page and "/vendor/livekit-client.mjs" in page


@pytest.mark.timeout(300)
def test_page_says_when_the_livekit_server_is_unreachable(tmp_path: Path) -> None:
    from playwright import sync_api
    from web_support import make_video

    settings = _settings(tmp_path)
    seeded = seed_interview(settings)
    _consent(seeded)
    server = LiveServer(create_app(settings, voice=NO_VOICE)).start(wait_voice=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    video = make_video(tmp_path / "cam.y4m", seconds=3)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=chromium_args(None, video)
            )
            page = browser.new_page(viewport={"width": 1100, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/i/{seeded.token}/interview")
            page.wait_for_selector("#start:not([disabled])", timeout=60_000)
            page.click("#start")
            problem = page.wait_for_selector(
                "#problem[data-problem=livekit-unreachable]", state="visible", timeout=90_000
            )
            text = problem.inner_text()
            page.screenshot(path=str(SHOTS / "livekit-unreachable.png"), full_page=True)
            assert "could not be reached" in text
            assert "Try again" in text and "recruiter" in text
            assert page.is_visible("#problem [data-action=retry]")
            assert not errors, errors
            browser.close()
    finally:
        server.stop()
