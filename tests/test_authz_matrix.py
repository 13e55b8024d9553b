"""The authorization matrix: every route the app registers x every actor -> allow/deny, asserted.

The expectations live in interviewer/web/access.py (one entry per route; its docstring says how to
add one). Real data on a real SQLite database: two openings (X with recruiter R1, Y with R2), an
interview in each (A in X, B in Y) with an answer recording, a camera chunk and an integrity
event with a frame, a domain lead and an admin. Sessions are made directly (no argon2 per call);
every request carries a valid CSRF token, so a refusal here is the route's own check.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import FIXTURE_BANK, make_settings

from interviewer import accounts, invites
from interviewer.banks.check import load_banks
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import (
    Answer,
    IntegrityEvent,
    OpeningRecruiter,
    Role,
    User,
)
from interviewer.web import auth, create_app
from interviewer.web.access import ACTORS, RULES, Rule, iter_routes
from interviewer.web.live import VoiceOptions
from interviewer.web.pages import STATIC_DIR

REPO = Path(__file__).resolve().parents[1]
FORGED_TOKEN = "not-a-real-invite-token"
APPLICANT_A = ("Zyxwvu Applicant-Alpha", "zyxwvu-alpha@example.invalid")
MAY_SEE_APPLICANT_A = frozenset({"applicant_this", "recruiter_this", "admin"})
STAFF_ACTORS = {
    "recruiter_this": "r1@example.invalid",
    "recruiter_other": "r2@example.invalid",
    "domain_lead": "lead@example.invalid",
    "admin": "admin@example.invalid",
}


@dataclass
class Target:
    """One opening with one interview in it (and the other applicant's own interview)."""

    opening_id: int
    interview_id: int
    applicant_id: int
    invite_id: int
    token: str
    answer_id: int
    event_id: int
    other_token: str


@dataclass
class World:
    settings: Any
    engine: Any
    users: dict[str, int]
    shared: Target
    bank_id: str
    counter: list[int] = field(default_factory=lambda: [0])

    def next(self) -> int:
        self.counter[0] += 1
        return self.counter[0]


def _interview(s: Any, settings: Any, opening: Any, name: str, email: str, recordings: Any):
    applicant = repo.create_applicant(s, name=name, email=email)
    issued = invites.issue_invite(s, settings, opening=opening, applicant=applicant)
    audio = recordings.answer_audio(issued.interview_id, "colour")
    audio.write_bytes(b"RIFF....WAVEfmt ")
    answer = Answer(
        interview_id=issued.interview_id,
        question_id="colour",
        question_index=0,
        audio_path=recordings.relative(audio),
        transcript="My favourite colour is green.",
    )
    s.add(answer)
    frame = recordings.media_chunk(issued.interview_id, "frames", 1, ext="jpg")
    frame.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    event = IntegrityEvent(
        interview_id=issued.interview_id,
        kind="face_missing",
        evidence={"thumbnail": recordings.relative(frame)},
    )
    s.add(event)
    camera = recordings.media_chunk(issued.interview_id, "camera", 100_000)
    camera.write_bytes(b"\x1a\x45\xdf\xa3 webm")
    s.flush()
    return issued, applicant, answer, event


def _opening(s: Any, version: Any, slug: str, recruiter_id: int) -> Any:
    opening = repo.create_opening(s, slug=slug, title=f"Opening {slug}", bank_version=version)
    s.add(OpeningRecruiter(opening_id=opening.id, user_id=recruiter_id))
    s.flush()
    return opening


def _target(world_settings: Any, engine: Any, users: dict[str, int], n: int) -> Target:
    from interviewer.store.recordings import Recordings

    recordings = Recordings(world_settings.recordings_dir)
    with session_scope(engine) as s:
        version = repo.publish_bank(s, FIXTURE_BANK)
        x = _opening(s, version, f"x-{n}", users["recruiter_this"])
        y = _opening(s, version, f"y-{n}", users["recruiter_other"])
        name, email = APPLICANT_A
        a, applicant, answer, event = _interview(s, world_settings, x, name, email, recordings)
        b, *_ = _interview(
            s, world_settings, y, "Other Applicant", f"other-{n}@example.invalid", recordings
        )
        return Target(
            opening_id=x.id,
            interview_id=a.interview_id,
            applicant_id=applicant.id,
            invite_id=a.invite_id,
            token=a.token,
            answer_id=answer.id,
            event_id=event.id,
            other_token=b.token,
        )


def make_world(tmp: Path) -> tuple[Any, World]:
    """The app and its world (staff of every role, two interviews' worth of data), on SQLite in
    ``tmp``; the route fuzzing (tests/fuzz_support.py) builds the same one."""
    banks = tmp / "banks"
    shutil.copytree(REPO / "question_banks", banks)
    settings = make_settings(tmp, banks_dir=banks)
    engine = create_db_engine(settings.resolved_database_url)
    migrate(engine)
    users: dict[str, int] = {}
    with session_scope(engine) as s:
        for actor, email in STAFF_ACTORS.items():
            role = Role.recruiter if actor.startswith("recruiter") else Role(actor)
            user = User(email=email, name=actor, role=role, password_hash="unused")
            s.add(user)
            s.flush()
            users[actor] = user.id
    shared = _target(settings, engine, users, 0)
    bank_id = load_banks(banks)[0].id
    app = create_app(settings, voice=VoiceOptions(warm_up=False))
    return app, World(settings, engine, users, shared, bank_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    app, built = make_world(tmp_path_factory.mktemp("authz"))
    with TestClient(app) as client:
        yield client, built


def _victim(world: World, target: Target) -> str:
    """A user to change or remove: fresh for every call, assigned to the target opening."""
    n = world.next()
    with session_scope(world.engine) as s:
        user = User(
            email=f"victim-{n}@example.invalid",
            name="Victim",
            role=Role.recruiter,
            password_hash="unused",
        )
        s.add(user)
        s.flush()
        s.add(OpeningRecruiter(opening_id=target.opening_id, user_id=user.id))
        return str(user.id)


def _token(world: World, target: Target, actor: str) -> str:
    if actor == "applicant_this":
        return target.token
    if actor == "applicant_other":
        return target.other_token
    return FORGED_TOKEN


PARAMS: dict[str, Any] = {
    "token": _token,
    "opening_id": lambda w, t, a: str(t.opening_id),
    "interview_id": lambda w, t, a: str(t.interview_id),
    "applicant_id": lambda w, t, a: str(t.applicant_id),
    "invite_id": lambda w, t, a: str(t.invite_id),
    "answer_id": lambda w, t, a: str(t.answer_id),
    "event_id": lambda w, t, a: str(t.event_id),
    "user_id": lambda w, t, a: _victim(w, t),
    "bank_id": lambda w, t, a: w.bank_id,
    "version": lambda w, t, a: "1",
    "part": lambda w, t, a: "1",
}
"""How the matrix fills a path parameter (world, target, actor) -> value; a rule's
``path={...}`` wins. A new parameter name needs a line here or in its rule."""


def _url(world: World, rule: Rule, target: Target, actor: str) -> str:
    path = rule.path
    if rule.method == "MOUNT":
        return f"{path}/{rule.path_params.get('path', '')}"
    for name in _param_names(path):
        if name in rule.path_params:
            value = rule.path_params[name]
        elif name in PARAMS:
            value = PARAMS[name](world, target, actor)
        else:
            pytest.fail(
                f"{rule.method} {path}: no value for {{{name}}}: give it in access.py "
                f'(rule(..., path={{"{name}": "..."}})) or add a resolver to PARAMS in {__file__}'
            )
        path = path.replace("{" + name + "}", value)
    if rule.query:
        path += "?" + urlencode(rule.query)
    return path


def _param_names(path: str) -> list[str]:
    import re

    return [p.split(":", 1)[0] for p in re.findall(r"{([^}]+)}", path)]


def _credentials(client: TestClient, world: World, actor: str) -> dict[str, str]:
    """Cookies for ``actor`` (a fresh session for staff) and the matching CSRF header."""
    client.cookies.clear()
    nonce = auth.new_nonce()
    client.cookies.set(auth.CSRF_COOKIE, nonce)
    session = None
    if actor in world.users:
        with session_scope(world.engine) as s:
            user = s.get(User, world.users[actor])
            session = accounts.start_session(s, user, hours=1)
            client.cookies.set(auth.SESSION_COOKIE, session)
    return {"X-CSRF-Token": auth.csrf_token_for(world.settings, nonce, session)}


def _websocket_allowed(client: TestClient, url: str) -> tuple[bool, str]:
    with client.websocket_connect(url) as ws:
        first = ws.receive_json()
    code = first.get("code", "")
    return code != "forged", f"socket said {code!r}"


def _body(rule: Rule) -> dict[str, Any]:
    """The request body a rule declares, as TestClient keyword arguments."""
    body = {"data": rule.form, "json": rule.json, "content": rule.content}
    return {key: value for key, value in body.items() if value is not None}


def _call(client: TestClient, world: World, rule: Rule, target: Target, actor: str):
    headers = _credentials(client, world, actor)
    url = _url(world, rule, target, actor)
    if rule.method == "WS":
        allowed, what = _websocket_allowed(client, url)
        return allowed, what, ""
    headers.update(rule.headers)
    kwargs = _body(rule)
    method = "GET" if rule.method == "MOUNT" else rule.method
    response = client.request(method, url, headers=headers, follow_redirects=False, **kwargs)
    status = response.status_code
    location = response.headers.get("location", "")
    assert status < 500, f"{rule.method} {rule.path} as {actor}: server error {status}"
    refused = status in (401, 403, 404) or (
        status in (302, 303, 307) and location.startswith("/login?next=")
    )
    body = (
        ""
        if response.headers.get("content-type", "").startswith(("audio", "video", "image"))
        else response.text
    )
    return not refused, f"{status}{' -> ' + location if location else ''}", body


@pytest.mark.parametrize("key", sorted(RULES), ids=lambda k: f"{k[0]} {k[1]}")
def test_route_matrix(world, key: tuple[str, str]) -> None:
    client, w = world
    rule = RULES[key]
    wrong: list[str] = []
    for actor in ACTORS:
        target = _target(w.settings, w.engine, w.users, w.next()) if rule.destructive else w.shared
        allowed, what, body = _call(client, w, rule, target, actor)
        expected = rule.allows(actor)
        if allowed != expected:
            verdict = "allowed" if allowed else "refused"
            wrong.append(
                f"  {actor}: {verdict} ({what}), expected {'allow' if expected else 'deny'}"
            )
        # Applicant A's name and email reach only A, A's recruiters and admins: never a refusal,
        # and never another applicant, another opening's recruiter or a domain lead, even on a
        # page they may open (a list, a search, an export).
        if not allowed or actor not in MAY_SEE_APPLICANT_A:
            for secret in APPLICANT_A:
                if secret in body:
                    wrong.append(
                        f"  {actor}: the response ({what}) shows the applicant's {secret!r}"
                    )
    assert not wrong, f"{rule.method} {rule.path} ({rule.policy}):\n" + "\n".join(wrong)


def test_every_route_has_an_entry(world) -> None:
    client, _ = world
    declared = set(RULES)
    registered = {(r.method, r.path): r for r in iter_routes(client.app)}
    missing = [
        f'rule("{m}", "{p}", <PUBLIC|APPLICANT|STAFF|RECRUITER|DOMAIN_LEAD|ADMIN|OPENING>)'
        for m, p in sorted(set(registered) - declared)
    ]
    assert not missing, (
        "routes without an entry in interviewer/web/access.py (who may call them?); add:\n  "
        + "\n  ".join(missing)
    )
    stale = sorted(declared - set(registered))
    assert not stale, f"access.py has entries for routes the app does not register: {stale}"
    assert ("WS", "/i/{token}/ws") in registered and ("MOUNT", "/static") in registered


def test_every_state_changing_route_needs_a_csrf_token(world) -> None:
    """As an admin (allowed almost everywhere) and with the real applicant token: without the
    token, or with one signed for another browser, every POST/PUT/PATCH/DELETE is refused."""
    client, w = world
    checked = 0
    for (method, _path), rule in sorted(RULES.items()):
        if method in ("GET", "WS", "MOUNT"):
            continue
        actor = "applicant_this" if rule.policy == "applicant" else "admin"
        target = _target(w.settings, w.engine, w.users, w.next())
        url = _url(w, rule, target, actor)
        kwargs = _body(rule)
        for variant in ("none", "other browser's"):
            headers = _credentials(client, w, actor)
            if variant == "none":
                headers.pop("X-CSRF-Token")
            else:
                headers["X-CSRF-Token"] = auth.csrf_token_for(w.settings, auth.new_nonce())
            headers.update(rule.headers)
            response = client.request(
                method, url, headers=headers, follow_redirects=False, **kwargs
            )
            assert response.status_code == 403, (method, rule.path, variant, response.status_code)
            assert "Reload" in response.text or "reload" in response.text
        checked += 1
    assert checked >= 8


def test_static_files_hold_no_personal_data(world) -> None:
    client, w = world
    allowed_suffixes = {".js", ".css", ".svg", ".png", ".ico", ".woff2"}
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix in allowed_suffixes, f"{path} does not belong in /static"
        if path.suffix in (".js", ".css", ".svg"):
            text = path.read_text(encoding="utf-8")
            for secret in APPLICANT_A:
                assert secret not in text
    recordings = Path(w.settings.recordings_dir).resolve()
    static = STATIC_DIR.resolve()
    assert not recordings.is_relative_to(static) and not static.is_relative_to(recordings)
    for probe in (
        "/static/../applicant.py",
        "/static/%2e%2e/applicant.py",
        "/static/../../store/db.py",
    ):
        assert client.get(probe).status_code == 404, probe
    # a recording is never reachable by its path, signed in or not
    relative = f"{w.shared.interview_id}/colour.wav"
    _credentials(client, w, "admin")
    for probe in (f"/static/{relative}", f"/recordings/{relative}", f"/{relative}"):
        assert client.get(probe).status_code == 404, probe


def test_anonymous_html_goes_to_login_and_json_gets_401(world) -> None:
    client, w = world
    _credentials(client, w, "anonymous")
    page = client.get("/users?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fusers%3Fx%3D1"
    api = client.get("/users", headers={"accept": "application/json"}, follow_redirects=False)
    assert api.status_code == 401 and "sign in" in api.json()["error"]
    _credentials(client, w, "recruiter_this")
    denied = client.get("/users")
    assert denied.status_code == 403 and "ask an admin" in denied.text
    assert 'action="/logout"' in denied.text  # the 403 page still lets them sign out


def test_opening_access_is_by_assignment(world) -> None:
    """opening_for: admin and assigned recruiters get the opening; anyone else a 404."""
    client, w = world
    from starlette.exceptions import HTTPException

    from interviewer.web.auth import interview_for, opening_for

    class _Req:
        app = client.app

    with session_scope(w.engine) as s:
        users = {actor: s.get(User, uid) for actor, uid in w.users.items()}
    assert opening_for(_Req(), w.shared.opening_id, users["admin"]).id == w.shared.opening_id
    assert (
        opening_for(_Req(), w.shared.opening_id, users["recruiter_this"]).id == w.shared.opening_id
    )
    assert (
        interview_for(_Req(), w.shared.interview_id, users["recruiter_this"]).id
        == w.shared.interview_id
    )
    for actor in ("recruiter_other", "domain_lead"):
        with pytest.raises(HTTPException) as err:
            opening_for(_Req(), w.shared.opening_id, users[actor])
        assert err.value.status_code == 404
        with pytest.raises(HTTPException):
            interview_for(_Req(), w.shared.interview_id, users[actor])
    with pytest.raises(HTTPException):
        opening_for(_Req(), 999_999, users["admin"])
    with session_scope(w.engine) as s:
        assert s.scalars(select(OpeningRecruiter)).first() is not None


def test_the_personal_data_check_can_fail(world) -> None:
    """Positive control: the seeded applicant's name really is on the pages A's recruiter opens,
    so its absence from everyone else's responses in the matrix means something."""
    client, w = world
    shortlist = RULES[("GET", "/openings/{opening_id}")]
    allowed, _, body = _call(client, w, shortlist, w.shared, "recruiter_this")
    assert allowed and APPLICANT_A[0] in body
    allowed, _, body = _call(client, w, shortlist, w.shared, "recruiter_other")
    assert not allowed and APPLICANT_A[0] not in body
