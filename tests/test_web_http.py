"""The applicant's pages over HTTP: consent before anything, uploads checked, errors a person
can act on (never a bare 500), tokens kept out of logs."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_support import make_settings, seed_interview, send_csrf

from interviewer.store.db import session_scope
from interviewer.store.models import Interview, InterviewState
from interviewer.web import applicant, create_app
from interviewer.web.live import VoiceOptions

AGREE = {"recording": "yes", "scoring": "yes", "retention": "yes"}
WEBM = {"content-type": "video/webm;codecs=vp8,opus"}


@pytest.fixture
def app_and_seed(tmp_path: Path):
    settings = make_settings(tmp_path)
    seeded = seed_interview(settings)
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as client:
        send_csrf(client)
        yield client, seeded, settings


def _interview(seeded) -> Interview:
    with session_scope(seeded.engine) as s:
        return s.get(Interview, seeded.interview_id)


def test_consent_is_required_and_stored(app_and_seed) -> None:
    client, seeded, _ = app_and_seed
    base = f"/i/{seeded.token}"
    page = client.get(base)
    assert page.status_code == 200
    for label in ("Recording.", "AI assessment.", "Retention.", "180 days"):
        assert label in page.text
    # the later steps send a person without consent back to the consent page
    for step in ("/check", "/interview"):
        response = client.get(base + step, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].endswith(base)

    partial = client.post(base + "/consent", data={"recording": "yes"}, follow_redirects=False)
    assert partial.status_code == 400
    assert "Please tick all three boxes" in partial.text
    assert _interview(seeded).consented_at is None

    ok = client.post(base + "/consent", data=AGREE, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].endswith(base + "/check")
    row = _interview(seeded)
    assert row.consented_at is not None
    assert InterviewState(row.state) is InterviewState.consented
    assert client.get(base, follow_redirects=False).headers["location"].endswith("/check")
    check = client.get(base + "/check")
    assert check.status_code == 200 and "Turn on camera and microphone" in check.text
    interview = client.get(base + "/interview")
    assert interview.status_code == 200 and 'id="repeat"' in interview.text


def test_nothing_is_recorded_before_consent(app_and_seed) -> None:
    client, seeded, settings = app_and_seed
    response = client.post(
        f"/i/{seeded.token}/media/camera?chunk=0", content=b"x" * 10, headers=WEBM
    )
    assert response.status_code == 409 and "consent" in response.json()["error"]
    assert not Path(settings.recordings_dir).exists() or not any(
        Path(settings.recordings_dir).rglob("*.webm")
    )


def test_uploads_are_checked_and_stored_under_server_paths(app_and_seed) -> None:
    client, seeded, settings = app_and_seed
    base = f"/i/{seeded.token}"
    client.post(base + "/consent", data=AGREE)
    url = base + "/media/camera"

    first = client.post(url + "?chunk=0", content=b"A" * 1000, headers=WEBM)
    assert first.status_code == 201, first.text
    part = first.json()["part"]
    assert (
        client.post(f"{url}?chunk=1&part={part}", content=b"B" * 10, headers=WEBM).status_code
        == 201
    )
    # a new recorder (after a reload) gets the next part; its chunks never overwrite the first
    second = client.post(url + "?chunk=0", content=b"C" * 10, headers=WEBM)
    assert second.json()["part"] == part + 1

    refusals = {
        "type": client.post(
            url + "?chunk=2&part=1", content=b"x", headers={"content-type": "text/html"}
        ),
        "no type": client.post(url + "?chunk=2&part=1", content=b"x"),
        "too big": client.post(
            url + "?chunk=2&part=1", content=b"x" * (applicant.MAX_CHUNK_BYTES + 1), headers=WEBM
        ),
        "empty": client.post(url + "?chunk=2&part=1", content=b"", headers=WEBM),
        "bad chunk": client.post(url + "?chunk=../../etc&part=1", content=b"x", headers=WEBM),
        "negative": client.post(url + "?chunk=-1&part=1", content=b"x", headers=WEBM),
        "no part": client.post(url + "?chunk=5", content=b"x", headers=WEBM),
        "unknown part": client.post(url + "?chunk=1&part=9", content=b"x", headers=WEBM),
        "kind": client.post(base + "/media/..%2F..%2Fetc?chunk=0", content=b"x", headers=WEBM),
        "other kind": client.post(base + "/media/screen?chunk=0", content=b"x", headers=WEBM),
        "forged": client.post(
            f"/i/{seeded.token}x/media/camera?chunk=0", content=b"x", headers=WEBM
        ),
    }
    expected = {
        "type": 415, "no type": 415, "too big": 413, "empty": 400, "bad chunk": 400,
        "negative": 400, "no part": 400, "unknown part": 409, "kind": 404, "other kind": 404,
        "forged": 403,
    }  # fmt: skip
    assert {k: r.status_code for k, r in refusals.items()} == expected
    for response in refusals.values():
        assert response.json()["error"]  # JSON with a reason, never an HTML 500

    root = Path(settings.recordings_dir).resolve()
    stored = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert stored == [
        f"{seeded.interview_id}/media/camera/00100000.webm",
        f"{seeded.interview_id}/media/camera/00100001.webm",
        f"{seeded.interview_id}/media/camera/00200000.webm",
    ]
    assert (root / stored[0]).read_bytes() == b"A" * 1000


def test_uploads_stop_after_the_interview_ends(app_and_seed) -> None:
    client, seeded, _ = app_and_seed
    client.post(f"/i/{seeded.token}/consent", data=AGREE)
    url = f"/i/{seeded.token}/media/camera?chunk=0"
    with session_scope(seeded.engine) as s:
        row = s.get(Interview, seeded.interview_id)
        row.state = InterviewState.completed
        row.completed_at = datetime.now(UTC)
    assert client.post(url, content=b"x", headers=WEBM).status_code == 201  # the last chunks
    with session_scope(seeded.engine) as s:
        row = s.get(Interview, seeded.interview_id)
        row.completed_at = datetime.now(UTC) - applicant.UPLOAD_GRACE - timedelta(seconds=1)
    assert client.post(url, content=b"x", headers=WEBM).status_code == 409


def test_error_pages_say_what_to_do(app_and_seed, monkeypatch) -> None:
    client, seeded, _ = app_and_seed
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "What to do:" in missing.text

    def broken(*_a, **_k):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(applicant, "_context", broken)
    page = client.get(f"/i/{seeded.token}")
    assert page.status_code == 503  # an unexpected failure is "try again", not a bare 500
    text = html.unescape(page.text)
    assert "Something went wrong on our side" in text and "Reload this page" in text
    assert "database on fire" not in text


def test_tokens_never_reach_the_log(app_and_seed, caplog) -> None:
    client, seeded, _ = app_and_seed
    with caplog.at_level(logging.INFO, logger="interviewer.web"):
        client.get(f"/i/{seeded.token}")
        client.get(f"/i/{seeded.token}/check")
    assert "/i/…" in caplog.text
    assert seeded.token not in caplog.text
    response = client.get(f"/i/{seeded.token}")
    assert response.headers["referrer-policy"] == "no-referrer"
