"""Invite links: signed, expiring, bound to one interview, stored only as a hash."""

from __future__ import annotations

import html
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from web_support import make_settings, seed_interview

from interviewer import invites
from interviewer.store.db import session_scope
from interviewer.store.models import Interview, InterviewState, Invite
from interviewer.web import create_app
from interviewer.web.live import VoiceOptions


@pytest.fixture
def settings(tmp_path: Path):
    return make_settings(tmp_path)


def _verify(seeded, settings, token: str, **kw) -> int:
    with session_scope(seeded.engine) as s:
        return invites.verify_invite(s, settings, token, **kw)


def test_valid_token_opens_its_interview_and_only_the_hash_is_stored(settings) -> None:
    seeded = seed_interview(settings)
    assert _verify(seeded, settings, seeded.token) == seeded.interview_id
    with session_scope(seeded.engine) as s:
        invite = s.get(Invite, seeded.invite_id)
        interview = s.scalars(select(Interview).where(Interview.invite_id == invite.id)).one()
        assert invite.token_hash == invites.token_hash(seeded.token)
        assert len(invite.token_hash) == 64 and seeded.token not in invite.token_hash
        assert interview.id == seeded.interview_id
    # nothing in the database file holds the token itself
    db_file = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert seeded.token.encode() not in raw


def test_expired_token(settings) -> None:
    seeded = seed_interview(settings, ttl=timedelta(hours=1))
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(invites.InviteExpired):
        _verify(seeded, settings, seeded.token, now=later)
    # the row's expiry counts too: shortening an invite in the database takes effect at once
    with session_scope(seeded.engine) as s:
        s.get(Invite, seeded.invite_id).expires_at = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(invites.InviteExpired):
        _verify(seeded, settings, seeded.token)


def test_used_token(settings) -> None:
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        s.get(Interview, seeded.interview_id).state = InterviewState.completed
    with pytest.raises(invites.InviteUsed):
        _verify(seeded, settings, seeded.token)
    with session_scope(seeded.engine) as s:
        check = invites.check_invite(s, settings, seeded.token, allow_used=True)
        assert check.state is InterviewState.completed
        invites.mark_used(s, seeded.invite_id)
        assert s.get(Invite, seeded.invite_id).used_at is not None
    # a finished interview is reported as finished even once its link has expired
    with pytest.raises(invites.InviteUsed):
        _verify(seeded, settings, seeded.token, now=datetime.now(UTC) + timedelta(days=30))


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature altered
        lambda t: "x" + t,  # payload altered
        lambda t: "not-a-token",
        lambda t: "",
        lambda t: "a" * 5000,
        lambda t: URLSafeSerializer("another-key", salt=invites.SALT).dumps({"i": 1, "e": 2**40}),
    ],
    ids=["signature", "payload", "garbage", "empty", "huge", "other-key"],
)
def test_forged_tokens(settings, forge) -> None:
    seeded = seed_interview(settings)
    with pytest.raises(invites.InviteForged):
        _verify(seeded, settings, forge(seeded.token))


def test_a_correctly_signed_token_that_was_never_issued_is_forged(settings) -> None:
    seeded = seed_interview(settings)
    # signed with the right key, for the right invite, but not the token that was issued
    # (e.g. the invite was re-issued and the old link leaked)
    other = URLSafeSerializer(settings.secret_key, salt=invites.SALT).dumps(
        {"i": seeded.invite_id, "e": 2**40, "n": "x"}
    )
    with pytest.raises(invites.InviteForged):
        _verify(seeded, settings, other)


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, secret_key=None)
    first = invites.secret_key(settings)
    path = settings.data_dir / "secret_key"
    assert path.read_text().strip() == first and len(first) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert invites.secret_key(make_settings(tmp_path, secret_key=None)) == first
    seeded = seed_interview(settings)
    assert _verify(seeded, settings, seeded.token) == seeded.interview_id
    # a configured key wins, and tokens signed with another key do not verify
    with pytest.raises(invites.InviteForged):
        _verify(seeded, make_settings(tmp_path, secret_key="configured"), seeded.token)


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("valid", 200, "Before you start"),
        ("expired", 410, "This invite has expired"),
        ("used", 200, "you're done"),  # the link of a finished interview shows its end
        ("forged", 403, "This link doesn't work"),
    ],
)
def test_invite_pages(settings, case: str, status: int, text: str) -> None:
    seeded = seed_interview(settings, ttl=timedelta(hours=1))
    token = seeded.token
    with session_scope(seeded.engine) as s:
        if case == "expired":
            s.get(Invite, seeded.invite_id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
        elif case == "used":
            s.get(Interview, seeded.interview_id).state = InterviewState.completed
    if case == "forged":
        token = token[:-3] + "abc"
    with TestClient(create_app(settings, voice=VoiceOptions(warm_up=False))) as client:
        page = client.get(f"/i/{token}", follow_redirects=True)
        assert page.status_code == status
        assert text in html.unescape(page.text)
        if case not in ("valid", "used"):
            assert "What to do:" in page.text  # every error page says what to do next
        if case == "used":
            again = client.get(f"/i/{token}/interview")
            assert again.status_code == 410 and "already complete" in again.text
