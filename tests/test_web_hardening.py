"""Issue 18's web-edge findings, each as an attacker found it: body sizes at the edge (4), the
security headers (6), the Host header (7), the CSRF token bound to the session (10), and, on a
real `interviewer serve` process, invite tokens in its log (1) and forwarded headers (11)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openings_support import PASSWORD, seed_opening, staff
from web_support import csrf_token, free_port, make_settings, seed_interview, staff_login
from websockets.sync.client import connect

from interviewer.banks.check import check_text
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, Opening
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "https://interviews.example.org"
CLI = "from interviewer.cli import app; app()"
FRESH = httpx.Limits(max_keepalive_connections=0)
"""A connection per request: none is reused just as the server's keep-alive timer closes it."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("hardening")
    cfg = make_settings(tmp, public_url=PUBLIC)
    seed = seed_opening(cfg, [("Ann", [0.9, 0.8]), ("Dan", None)])
    with session_scope(seed.engine) as s:
        opening = s.get(Opening, seed.opening_id)
        staff(s, "recruiter", email="rec@example.org", opening=opening)
        staff(s, "admin", email="admin@example.org")
    app = create_app(cfg, voice=VoiceOptions(warm_up=False))
    with TestClient(app) as anon:
        rec = staff_login(TestClient(app), "rec@example.org", PASSWORD)
        yield {"settings": cfg, "seed": seed, "app": app, "anon": anon, "rec": rec}
        rec.close()


# --- 4: every body bounded before it is parsed ---------------------------------------------------


def test_bodies_are_refused_at_the_edge_whatever_carries_the_token(world) -> None:
    app = world["app"]
    with TestClient(app) as client:
        headers = {"X-CSRF-Token": csrf_token(client, "/login")}
        fields = {f"f{i}": "x" * 100_000 for i in range(10)}  # 1 MB of form fields
        form = client.post("/login", data=fields, headers=headers)
        assert form.status_code == 413
        upload = client.post("/login", files={"f": ("big.bin", b"x" * 2_000_000)}, headers=headers)
        assert upload.status_code == 413
        # no Content-Length (chunked): the stream itself is counted
        chunked = client.post(
            "/login",
            content=iter([b"a=" + b"x" * 65_536] * 8),
            headers={**headers, "content-type": "application/x-www-form-urlencoded"},
        )
        assert chunked.status_code == 413
        # the bank editor's JSON: refused before the route (or its sign-in check) reads it
        big_json = client.post(
            "/api/banks/anything/validate",
            content=b'{"yaml": "' + b"x" * 9_000_000 + b'"}',
            headers={**headers, "content-type": "application/json"},
        )
        assert big_json.status_code == 413
        assert "too large" in big_json.json()["error"]
        small = client.post("/login", data={"email": "a@b.c", "password": "x"}, headers=headers)
        assert small.status_code == 401  # ordinary requests still reach their route


def test_a_yaml_flow_list_is_refused_fast() -> None:
    text = "questions: [" + ",".join(["1"] * 950_000) + "]\n"  # 1.9 MB, under the size limit
    started = time.monotonic()
    problems, bank = check_text(text)
    assert bank is None
    assert "more than 100,000 values" in problems[0].message
    assert time.monotonic() - started < 15  # was ~50 s: the whole list parsed first


# --- 6: CSP, no framing, no caching of pages -----------------------------------------------------


def test_pages_carry_the_security_headers(world) -> None:
    seed, anon, rec = world["seed"], world["anon"], world["rec"]
    pages = {
        "login": anon.get("/login"),
        "invite": anon.get(f"/i/{seed.tokens['Dan']}"),
        "missing": anon.get("/nothing-here"),
        "invites": rec.get(f"/openings/{seed.opening_id}/invites"),
        "shortlist": rec.get(f"/openings/{seed.opening_id}"),
    }
    for name, page in pages.items():
        assert page.status_code in (200, 404), name
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, name
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0], name
        assert page.headers["x-frame-options"] == "DENY", name
        assert page.headers["cache-control"] == "no-store", name
    static = anon.get("/static/style.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


def test_templates_have_no_inline_script() -> None:
    """What the CSP would block: a <script> with code in it, or an on...= handler."""
    templates = ROOT / "interviewer" / "web" / "templates"
    for path in templates.rglob("*.html"):
        html = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", html), path.name


# --- 7: links and redirects never from the Host header --------------------------------------------


def test_links_use_the_public_url_and_foreign_hosts_are_refused(world) -> None:
    seed, anon, rec = world["seed"], world["anon"], world["rec"]
    page = rec.get(f"/openings/{seed.opening_id}/invites")
    links = re.findall(r'class="link" value="([^"]+)"', page.text)
    assert links and all(link.startswith(f"{PUBLIC}/i/") for link in links)
    forged = rec.get(f"/openings/{seed.opening_id}/invites", headers={"host": "evil.example"})
    assert forged.status_code == 400 and "evil.example" not in forged.text
    token = seed.tokens["Dan"]
    assert anon.get(f"/i/{token}", headers={"host": "evil.example"}).status_code == 400
    consent = anon.post(
        f"/i/{token}/consent",
        data={
            "recording": "yes",
            "scoring": "yes",
            "retention": "yes",
            "csrf_token": csrf_token(anon, f"/i/{token}"),
        },
        follow_redirects=False,
    )
    assert consent.status_code == 303
    assert consent.headers["location"] == f"/i/{token}/check"


# --- 10: the CSRF token is bound to the session --------------------------------------------------


def test_a_token_minted_while_anonymous_is_refused_once_signed_in(world) -> None:
    seed, app, rec = world["seed"], world["app"], world["rec"]
    base = f"/openings/{seed.opening_id}"
    url = f"{base}/decisions/{seed.ids['Ann']}"
    with TestClient(app) as attacker:
        anon_token = csrf_token(attacker, "/login")
        nonce = attacker.cookies.get("interviewer_csrf")
    # the attacker plants its CSRF cookie in the recruiter's browser, and posts its token
    with TestClient(app) as victim:
        victim.cookies.set("interviewer_session", rec.cookies.get("interviewer_session"))
        victim.cookies.set("interviewer_csrf", nonce)
        refused = victim.post(
            url, data={"decision": "reject", "csrf_token": anon_token}, follow_redirects=False
        )
        assert refused.status_code == 403
        with session_scope(seed.engine) as s:
            assert s.get(Interview, seed.ids["Ann"]).decision != "reject"
        # the token the signed-in page gives works
        ok = victim.post(
            url,
            data={"decision": "hold", "csrf_token": csrf_token(victim, base)},
            follow_redirects=False,
        )
        assert ok.status_code == 303


# --- 1 and 11: the real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`interviewer serve` in its own process, as `make run` starts it; its whole output kept."""
    tmp = tmp_path_factory.mktemp("served")
    cfg = make_settings(tmp)
    seeded = seed_interview(cfg)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "INTERVIEWER_DATA_DIR": str(cfg.data_dir),
        "INTERVIEWER_DATABASE_URL": cfg.resolved_database_url,
        "INTERVIEWER_RECORDINGS_DIR": str(cfg.recordings_dir),
        "INTERVIEWER_BANKS_DIR": str(tmp / "banks"),
        "INTERVIEWER_SECRET_KEY": cfg.secret_key or "",
        "INTERVIEWER_STT_MODEL": "tiny.en",
        "INTERVIEWER_SCORE_ANSWERS": "false",
        "INTERVIEWER_ANALYZE_INTEGRITY": "false",
        "INTERVIEWER_LOGIN_MAX_FAILURES": "2",  # 8 failures per client address
    }
    for name in ("INTERVIEWER_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    (tmp / "banks").mkdir()
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield {"url": url, "token": seeded.token, "log": log, "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_no_invite_token_in_the_server_log(served) -> None:
    url, token = served["url"], served["token"]
    with httpx.Client(limits=FRESH, base_url=url) as client:
        for path in ("", "/check", "/interview", "/done", "x", "x/check"):
            client.get(f"/i/{token}{path}")
        client.post(f"/i/{token}/media/camera?chunk=0", content=b"x")
    ws_url = f"ws://127.0.0.1:{served['port']}/i/{token}/ws"
    with connect(ws_url, open_timeout=30) as ws:  # no consent yet: told so, then closed
        ws.recv(timeout=30)
    time.sleep(1.0)
    text = served["log"].read_text(errors="replace")
    assert 'WebSocket /i/…/ws"' in text  # the handshake is logged...
    assert token not in text and token[:16] not in text  # ...without its token


def test_forwarded_headers_are_ignored_from_an_unconfigured_proxy(served) -> None:
    with httpx.Client(limits=FRESH, base_url=served["url"]) as client:
        token = csrf_token(client, "/login")
        statuses = []
        for i in range(9):
            response = client.post(
                "/login",
                data={"email": f"nobody{i}@example.org", "password": "wrong", "csrf_token": token},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}", "X-Forwarded-Proto": "https"},
            )
            statuses.append(response.status_code)
            assert "secure" not in response.headers.get("set-cookie", "").lower()
    # one address (the real one): its limit (8) is reached whatever the header claims
    assert statuses[:7] == [401] * 7 and statuses[7:] == [429, 429], statuses


def test_a_foreign_host_header_is_refused_by_the_server(served) -> None:
    response = httpx.get(f"{served['url']}/login", headers={"host": "evil.example"})
    assert response.status_code == 400
