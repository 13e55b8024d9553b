"""Malformed input is refused at the edge (400/404/422), never answered 503: digits Python
accepts and int() refuses, ids past SQLite's 64-bit integers, JSON nested past any bank."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_support import make_settings, seed_interview, send_csrf, staff_login

from interviewer import accounts
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, Role
from interviewer.web import create_app
from interviewer.web.inputs import MAX_JSON_DEPTH, json_depth, number
from interviewer.web.live import VoiceOptions

PASSWORD = "correct horse battery staple"
SHIPPED = Path(__file__).resolve().parent.parent / "question_banks"
TOO_BIG = str(2**63)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("malformed")
    banks = tmp / "banks"
    banks.mkdir()
    shutil.copy(SHIPPED / "law.yaml", banks / "law.yaml")
    settings = make_settings(tmp, banks_dir=banks)
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        accounts.create_user(s, email="admin@example.org", role=Role.admin, password=PASSWORD)
        opening_id = s.get(Interview, seeded.interview_id).opening_id
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        staff_login(client, "admin@example.org", PASSWORD)
        send_csrf(client, "/staff")
        yield client, opening_id, seeded.interview_id


def _refused(response, *allowed: int) -> None:
    assert response.status_code in (allowed or (400, 404, 422)), response.text[:300]
    assert "Traceback" not in response.text


def test_unicode_digits_in_query_and_form(site) -> None:
    client, opening_id, _ = site
    page = client.get(f"/openings/{opening_id}/invites?added=²&renewed=²")
    assert page.status_code == 200
    assert client.get(f"/openings/{opening_id}/settings?saved=²").status_code == 200
    added = client.post(f"/openings/{opening_id}/recruiters", data={"user_id": "²"})
    _refused(added)
    _refused(client.post("/banks/law/restore", data={"version": "²", "base_sha": "x"}), 400, 409)
    _refused(client.get(f"/openings/{opening_id}/compare?i=²&i={TOO_BIG}"), 200, 400)


@pytest.mark.parametrize(
    "path",
    [
        f"/openings/{TOO_BIG}/shortlist",
        f"/openings/{TOO_BIG}/settings",
        "/openings/{opening}/applicants/" + TOO_BIG,
        "/openings/{opening}/applicants/{interview}/answers/" + TOO_BIG + "/audio",
        "/openings/{opening}/applicants/{interview}/report.csv".replace("{interview}", TOO_BIG),
        "/openings/{opening}/compare?i=" + TOO_BIG,
    ],
)
def test_ids_past_64_bits_in_paths(site, path: str) -> None:
    client, opening_id, interview_id = site
    url = path.format(opening=opening_id, interview=interview_id)
    _refused(client.get(url), 200, 400, 404, 422)


def test_ids_past_64_bits_in_posts(site) -> None:
    client, opening_id, _ = site
    _refused(client.post(f"/users/{TOO_BIG}/deactivate"))
    _refused(client.post(f"/users/{TOO_BIG}/role", data={"role": "recruiter"}))
    _refused(client.post(f"/openings/{opening_id}/invites/{TOO_BIG}/renew"))
    _refused(client.post(f"/openings/{opening_id}/recruiters/{TOO_BIG}/remove"))
    _refused(client.post(f"/openings/{opening_id}/recruiters", data={"user_id": TOO_BIG}))


def test_deeply_nested_json_to_the_bank_api(site) -> None:
    client, _, _ = site
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/api/banks/law/validate", "/api/banks/law/draft", "/api/banks/law/audio"):
        response = client.post(path, content=deep, headers={"content-type": "application/json"})
        _refused(response, 400)
    nested = '{"yaml": "x", "more": ' + "[" * 65 + "]" * 65 + "}"
    assert json_depth(nested) > MAX_JSON_DEPTH
    assert json_depth('{"text": "' + "[" * 100 + '"}') == 1  # brackets in a string: text


def test_number_takes_ascii_digits_within_bounds() -> None:
    assert number("42") == 42 and number(" 7 ") == 7
    for bad in ("²", "٣", "-1", "1e3", "", None, TOO_BIG, "9" * 40):
        assert number(bad) is None, bad
    assert number(str(2**63 - 1)) == 2**63 - 1
