"""Staff sign-in over HTTP: cookies, session fixation, logout, deactivation, the login throttle,
CSRF (staff and applicant), the Users page, and hostile input on the login form."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from web_support import csrf_token, make_settings, seed_interview

from interviewer import accounts
from interviewer.store.db import session_scope
from interviewer.store.models import AuditLog, Role, User
from interviewer.web import auth, create_app
from interviewer.web.live import VoiceOptions
from interviewer.web.login import safe_next
from interviewer.web.throttle import LoginThrottle

PASSWORD = "correct horse battery staple"
AGREE = {"recording": "yes", "scoring": "yes", "retention": "yes"}


def _app(tmp: Path, **overrides):
    settings = make_settings(tmp, **overrides)
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        for email, role in (
            ("admin@example.org", Role.admin),
            ("rec@example.org", Role.recruiter),
            ("lead@example.org", Role.domain_lead),
        ):
            accounts.create_user(s, email=email, role=role, password=PASSWORD, name=email[:3])
    return create_app(settings, voice=VoiceOptions(warm_up=False)), seeded, settings


@pytest.fixture
def env(tmp_path: Path):
    app, seeded, settings = _app(tmp_path)
    with TestClient(app) as client:
        yield client, seeded, settings


def _login(client: TestClient, email: str, password: str = PASSWORD, **extra: str):
    token = csrf_token(client, "/")
    data = {"email": email, "password": password, "csrf_token": token, **extra}
    return client.post("/login", data=data, follow_redirects=False)


def _set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def _audit(seeded) -> list[tuple[str, str]]:
    with session_scope(seeded.engine) as s:
        return [(a.action, a.target) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_sign_in_sets_safe_cookies_and_reaches_the_staff_area(env) -> None:
    client, seeded, _ = env
    response = _login(client, "Admin@Example.org", next="/users")
    assert response.status_code == 303 and response.headers["location"] == "/users"
    cookies = _set_cookies(response)
    session = cookies[auth.SESSION_COOKIE]
    for attribute in ("HttpOnly", "SameSite=lax", "Path=/", "Max-Age=43200"):
        assert attribute.lower() in session.lower()
    assert "secure" not in session.lower()  # plain http (auto)
    assert "httponly" in cookies[auth.CSRF_COOKIE].lower()  # a new CSRF secret with the session
    page = client.get("/users")
    assert (
        page.status_code == 200 and "Signed in as" in page.text and 'action="/logout"' in page.text
    )
    assert ("login", "user:1") in _audit(seeded)
    # roles go to their own areas
    home = client.get("/staff")
    assert home.status_code == 200 and 'href="/users"' in home.text
    client.cookies.clear()
    _login(client, "rec@example.org")
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/openings"
    client.cookies.clear()
    _login(client, "lead@example.org")
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/banks"


@pytest.mark.parametrize(
    "mode,base,secure",
    [
        ("always", "http://testserver", True),
        ("auto", "http://testserver", False),
        ("auto", "https://testserver", True),
        ("never", "https://testserver", False),
    ],
)
def test_secure_flag(tmp_path: Path, mode: str, base: str, secure: bool) -> None:
    app, _, _ = _app(tmp_path, secure_cookies=mode)
    with TestClient(app, base_url=base) as client:
        first = client.get("/")
        assert ("; secure" in _set_cookies(first)[auth.CSRF_COOKIE].lower()) is secure
        if base.startswith("https"):
            response = _login(client, "admin@example.org")
            assert response.status_code == 303
            for header in _set_cookies(response).values():
                assert ("; secure" in header.lower()) is secure, header


def test_a_session_fixed_before_sign_in_is_never_used_after(env) -> None:
    client, _, _ = env
    # An attacker plants its own valid session (or any value) in the victim's browser...
    _login(client, "rec@example.org")
    planted = client.cookies.get(auth.SESSION_COOKIE)
    planted_csrf = csrf_token(client, "/staff")
    # ...the victim signs in: a new session, and the planted one is ended.
    response = _login(client, "admin@example.org")
    fresh = client.cookies.get(auth.SESSION_COOKIE)
    assert response.status_code == 303 and fresh and fresh != planted
    thief = TestClient(client.app)
    thief.cookies.set(auth.SESSION_COOKIE, planted)
    assert thief.get("/staff", follow_redirects=False).headers["location"].startswith("/login")
    # a CSRF token from before sign-in no longer works
    stale = client.post(
        "/users", data={"email": "x@example.org", "role": "recruiter", "csrf_token": planted_csrf}
    )
    assert stale.status_code == 403
    # an invented session token gets nobody in
    thief.cookies.set(auth.SESSION_COOKIE, "A" * 43)
    assert thief.get("/users", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_on_the_server(env) -> None:
    client, seeded, _ = env
    _login(client, "admin@example.org")
    copied = client.cookies.get(auth.SESSION_COOKIE)
    token = csrf_token(client, "/users")
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?signed_out=1"
    assert "max-age=0" in _set_cookies(out)[auth.SESSION_COOKIE].lower()
    assert "You are signed out" in client.get("/login?signed_out=1").text
    other = TestClient(client.app)
    other.cookies.set(auth.SESSION_COOKIE, copied)
    assert other.get("/users", follow_redirects=False).headers["location"] == "/login?next=%2Fusers"
    assert "logout" in [a for a, _ in _audit(seeded)]
    # logging out without a CSRF token is refused (a page cannot sign you out behind your back)
    _login(client, "admin@example.org")
    assert client.post("/logout", follow_redirects=False).status_code == 403


def test_deactivation_signs_out_at_once_and_blocks_sign_in(env) -> None:
    client, seeded, _ = env
    rec = TestClient(client.app)
    _login(rec, "rec@example.org")
    assert rec.get("/staff", follow_redirects=False).headers["location"] == "/openings"
    _login(client, "admin@example.org")
    token = csrf_token(client, "/users")
    with session_scope(seeded.engine) as s:
        rec_id = accounts.user_by_email(s, "rec@example.org").id
    done = client.post(
        f"/users/{rec_id}/deactivate", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/users?done=deactivate"
    assert "signed out everywhere" in client.get("/users?done=deactivate").text
    assert rec.get("/staff", follow_redirects=False).headers["location"] == "/login?next=%2Fstaff"
    again = _login(rec, "rec@example.org")
    assert again.status_code == 403 and "deactivated" in again.text and "Ask an admin" in again.text
    assert ("user.deactivate", f"user:{rec_id}") in _audit(seeded)
    # the last admin cannot lock everyone out
    with session_scope(seeded.engine) as s:
        admin_id = accounts.user_by_email(s, "admin@example.org").id
    refused = client.post(f"/users/{admin_id}/deactivate", data={"csrf_token": token})
    assert refused.status_code == 400 and "only active admin" in refused.text


def test_login_is_throttled_per_account_and_per_address(tmp_path: Path) -> None:
    app, seeded, settings = _app(tmp_path, login_max_failures=3)  # 3 per account, 12 per address
    with TestClient(app) as client:
        _throttled(client, seeded, settings)


def _throttled(client: TestClient, seeded, settings) -> None:
    for attempt in range(settings.login_max_failures - 1):
        wrong = _login(client, "rec@example.org", "wrong password!")
        assert wrong.status_code == 401, attempt
        assert "Wrong email or password" in wrong.text and "after 3 failed tries" in wrong.text
        assert "15 minutes" in wrong.text
        assert "wrong password!" not in wrong.text
    last = _login(client, "rec@example.org", "wrong password!")
    assert last.status_code == 429 and "try again in 15 minutes" in last.text
    # now even the right password waits, with a message saying what to do
    paused = _login(client, "rec@example.org")
    assert paused.status_code == 429 and "ask an admin to set a new password" in paused.text
    assert auth.SESSION_COOKIE not in _set_cookies(paused)
    actions = [a for a, t in _audit(seeded)]
    assert actions.count("login.failed") == settings.login_max_failures
    assert actions.count("login.locked") == 1
    # another account from the same address still signs in (the address limit is higher)
    assert _login(client, "admin@example.org").status_code == 303
    client.cookies.clear()
    # ...until the address itself has failed too often, whatever the accounts
    limit = settings.login_max_failures * auth.IP_FAILURE_FACTOR
    for n in range(limit):
        _login(client, f"nobody{n}@example.org", "wrong password!")
    blocked = _login(client, "lead@example.org")
    assert blocked.status_code == 429


def test_throttle_window_slides() -> None:
    now = [1000.0]
    throttle = LoginThrottle(3, 60, ip_factor=2, clock=lambda: now[0])
    keys = ("acct:a", "ip:1")
    assert not throttle.failure(*keys) and not throttle.failure(*keys)
    assert throttle.retry_after(*keys) == 0
    assert throttle.failure(*keys)  # the third reaches the account limit
    assert throttle.retry_after(*keys) == pytest.approx(60)
    now[0] += 30
    assert throttle.retry_after(*keys) == pytest.approx(30)
    assert throttle.retry_after("acct:b", "ip:1") == 0  # the address limit is 6
    now[0] += 31
    assert throttle.retry_after(*keys) == 0
    throttle.failure(*keys)
    throttle.reset("acct:a")
    assert throttle.retry_after(*keys) == 0


def test_csrf_on_staff_forms_and_fetch(env) -> None:
    client, seeded, settings = env
    _login(client, "admin@example.org")
    token = csrf_token(client, "/users")
    form = {"email": "new@example.org", "role": "recruiter"}
    before = _audit(seeded)
    for bad in (None, "", "garbage", auth.csrf_token_for(settings, auth.new_nonce()), token + "x"):
        data = dict(form) if bad is None else {**form, "csrf_token": bad}
        refused = client.post("/users", data=data)
        assert refused.status_code == 403, bad
        assert "Reload the page" in refused.text
    assert _audit(seeded) == before  # nothing happened
    # fetch()-style: JSON refusal, then the header works
    api = client.post("/users", data=form, headers={"accept": "application/json"})
    assert api.status_code == 403 and api.json()["csrf"] == "missing"
    ok = client.post("/users", data=form, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201
    password = re.search(r"data-password>([^<]+)<", ok.text).group(1)
    assert password not in client.get("/users").text  # shown once
    # multipart forms carry it too
    ok2 = client.post(
        "/users",
        files={
            "email": (None, "new2@example.org"),
            "role": (None, "domain_lead"),
            "csrf_token": (None, token),
        },
    )
    assert ok2.status_code == 201
    # a browser without the cookie is told to allow cookies
    stranger = TestClient(client.app)
    no_cookie = stranger.post(
        "/login", data={"email": "a@b.c", "password": "x", "csrf_token": token}
    )
    assert no_cookie.status_code == 403 and "Allow cookies" in no_cookie.text


def test_csrf_on_the_applicants_consent_and_uploads(env) -> None:
    client, seeded, _ = env
    base = f"/i/{seeded.token}"
    refused = client.post(base + "/consent", data=AGREE, follow_redirects=False)
    assert refused.status_code == 403 and "Reload the page" in refused.text
    page = client.get(base)
    assert 'name="csrf_token"' in page.text and '<meta name="csrf-token"' in page.text
    token = csrf_token(client, base)
    fresh = client.get("/csrf")  # what a page with a stale token asks for
    assert fresh.json() == {"token": token} and fresh.headers["cache-control"] == "no-store"
    ok = client.post(base + "/consent", data={**AGREE, "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    webm = {"content-type": "video/webm"}
    upload = client.post(base + "/media/camera?chunk=0", content=b"x", headers=webm)
    assert upload.status_code == 403 and upload.json()["csrf"] == "missing"
    upload = client.post(
        base + "/media/camera?chunk=0", content=b"x", headers={**webm, "X-CSRF-Token": token}
    )
    assert upload.status_code == 201


def test_users_page_add_role_password(env) -> None:
    client, seeded, _ = env
    _login(client, "admin@example.org")
    token = csrf_token(client, "/users")
    added = client.post(
        "/users",
        data={"email": "Ed@Example.org", "name": "Ed", "role": "recruiter", "csrf_token": token},
    )
    assert added.status_code == 201 and "ed@example.org" in added.text
    password = re.search(r"data-password>([^<]+)<", added.text).group(1)
    dup = client.post(
        "/users", data={"email": "ed@example.org", "role": "admin", "csrf_token": token}
    )
    assert dup.status_code == 400 and "already exists" in dup.text
    bad = client.post("/users", data={"email": "nobody", "role": "admin", "csrf_token": token})
    assert bad.status_code == 400 and "not an email address" in bad.text
    with session_scope(seeded.engine) as s:
        ed = accounts.user_by_email(s, "ed@example.org")
        assert accounts.authenticate(s, "ed@example.org", password) is not None
    role = client.post(
        f"/users/{ed.id}/role",
        data={"role": "domain_lead", "csrf_token": token},
        follow_redirects=False,
    )
    assert role.status_code == 303
    reset = client.post(f"/users/{ed.id}/password", data={"csrf_token": token})
    new_password = re.search(r"data-password>([^<]+)<", reset.text).group(1)
    assert new_password != password
    with session_scope(seeded.engine) as s:
        assert s.get(User, ed.id).role is Role.domain_lead
        assert accounts.authenticate(s, "ed@example.org", new_password) is not None
    actions = [(a, t) for a, t in _audit(seeded) if t == f"user:{ed.id}"]
    assert [a for a, _ in actions] == ["user.add", "user.role", "user.password"]
    with session_scope(seeded.engine) as s:
        row = s.scalars(select(AuditLog).where(AuditLog.action == "user.role")).first()
        assert row.detail == {"old": "recruiter", "new": "domain_lead"} and row.user_id == 1


@pytest.fixture(scope="module")
def module_client(tmp_path_factory: pytest.TempPathFactory):
    app, _, _ = _app(tmp_path_factory.mktemp("hyp"))
    with TestClient(app) as client:
        yield client


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    email=st.text(max_size=400),
    password=st.text(max_size=300),
    next_=st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            ["//evil.example", "https://evil.example/x", "/\\evil", "javascript:alert(1)", "/users"]
        ),
    ),
)
def test_login_form_survives_hostile_input(
    module_client, email: str, password: str, next_: str
) -> None:
    client = module_client
    client.cookies.clear()
    password = "Pw7~" + password  # so that an echo of it could not be a coincidence
    token = csrf_token(client, "/login")
    data = {"email": email, "password": password, "next": next_, "csrf_token": token}
    response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code in (400, 401, 403, 429), response.status_code
    assert auth.SESSION_COOKIE not in _set_cookies(response)
    assert password not in response.text
    assert "Traceback" not in response.text


@given(st.text(max_size=300))
def test_safe_next_never_leaves_the_site(target: str) -> None:
    result = safe_next(target)
    assert result.startswith("/") and not result.startswith("//")
    parts = urlsplit(result)
    assert not parts.scheme and not parts.netloc and "\\" not in result
    assert (
        safe_next("https://evil.example") == "/staff"
        and safe_next("/openings/1?x=2") == "/openings/1?x=2"
    )
