"""Staff accounts: argon2 hashes, `interviewer user ...`, the first-run admin, sessions ending."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from interviewer import accounts
from interviewer.cli import app as cli_app
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import AuditLog, Role, StaffSession, User


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    migrate(create_db_engine(url))
    return url


def _user(url: str, email: str) -> User:
    with session_scope(create_db_engine(url)) as s:
        return accounts.user_by_email(s, email)


def test_passwords_are_argon2id_and_checked() -> None:
    hashed = accounts.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$") and "a long enough" not in hashed
    assert accounts.verify_password(hashed, "a long enough password")
    assert not accounts.verify_password(hashed, "a long enough passworD")
    assert not accounts.verify_password("not a hash", "x" * 20)
    assert not accounts.verify_password(hashed, "")
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.hash_password("short")
    generated = {accounts.generate_password() for _ in range(50)}
    assert len(generated) == 50 and all(len(p) >= 24 for p in generated)


def test_user_add_generates_a_password_once(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["user", "add", "Rec@Example.org", "--role", "recruiter", "--name", "Rec", "--url", db_url],
    )
    assert result.exit_code == 0, result.output
    assert "added rec@example.org (recruiter)" in result.output
    password = result.output.split("(shown only now): ")[1].split()[0]
    user = _user(db_url, "rec@example.org")
    assert user.role is Role.recruiter and user.name == "Rec" and user.active
    assert password not in user.password_hash
    with session_scope(create_db_engine(db_url)) as s:
        assert accounts.authenticate(s, "REC@example.org", password).id == user.id
        assert accounts.authenticate(s, "rec@example.org", password + "x") is None
        actions = [a.action for a in s.scalars(select(AuditLog))]
    assert actions == ["user.add"]

    again = runner.invoke(
        cli_app, ["user", "add", "rec@example.org", "--role", "admin", "--url", db_url]
    )
    assert again.exit_code == 1 and "already exists" in again.output
    bad_role = runner.invoke(
        cli_app, ["user", "add", "x@example.org", "--role", "boss", "--url", db_url]
    )
    assert bad_role.exit_code == 1 and "use one of admin, recruiter, domain_lead" in bad_role.output
    bad_email = runner.invoke(
        cli_app, ["user", "add", "nobody", "--role", "admin", "--url", db_url]
    )
    assert bad_email.exit_code == 1 and "not an email address" in bad_email.output


def test_password_stdin_list_set_password_and_deactivate(db_url: str) -> None:
    runner = CliRunner()
    add = runner.invoke(
        cli_app,
        [
            "user",
            "add",
            "lead@example.org",
            "--role",
            "domain_lead",
            "--password-stdin",
            "--url",
            db_url,
        ],
        input="correct horse battery staple\n",
    )
    assert add.exit_code == 0, add.output
    assert "shown only now" not in add.output and "correct horse" not in add.output
    short = runner.invoke(
        cli_app,
        [
            "user",
            "add",
            "s@example.org",
            "--role",
            "recruiter",
            "--password-stdin",
            "--url",
            db_url,
        ],
        input="short\n",
    )
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    runner.invoke(cli_app, ["user", "add", "admin@example.org", "--role", "admin", "--url", db_url])

    listing = runner.invoke(cli_app, ["user", "list", "--url", db_url])
    assert listing.exit_code == 0
    for text in ("lead@example.org", "domain_lead", "admin@example.org", "active"):
        assert text in listing.output

    engine = create_db_engine(db_url)
    with session_scope(engine) as s:
        lead = accounts.authenticate(s, "lead@example.org", "correct horse battery staple")
        token = accounts.start_session(s, lead, hours=1)
        assert accounts.user_for_session(s, token).id == lead.id

    changed = runner.invoke(cli_app, ["user", "set-password", "lead@example.org", "--url", db_url])
    assert changed.exit_code == 0 and "signed out" in changed.output
    new_password = changed.output.split("(shown only now): ")[1].split()[0]
    with session_scope(engine) as s:
        assert accounts.user_for_session(s, token) is None  # a new password ends every session
        assert accounts.authenticate(s, "lead@example.org", "correct horse battery staple") is None
        lead = accounts.authenticate(s, "lead@example.org", new_password)
        token = accounts.start_session(s, lead, hours=1)

    gone = runner.invoke(cli_app, ["user", "deactivate", "lead@example.org", "--url", db_url])
    assert gone.exit_code == 0 and "deactivated" in gone.output
    with session_scope(engine) as s:
        assert accounts.user_for_session(s, token) is None
        assert s.scalars(select(StaffSession)).first() is None
    assert not _user(db_url, "lead@example.org").active
    listing = runner.invoke(cli_app, ["user", "list", "--url", db_url])
    assert "deactivated" in listing.output

    missing = runner.invoke(cli_app, ["user", "deactivate", "who@example.org", "--url", db_url])
    assert missing.exit_code == 1 and "interviewer user list" in missing.output


def test_the_last_active_admin_cannot_be_removed(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with session_scope(engine) as s:
        admin = accounts.create_user(s, email="a@example.org", role="admin").user
    with (
        session_scope(engine) as s,
        pytest.raises(accounts.AccountError, match="only active admin"),
    ):
        accounts.set_active(s, admin.id, False)
    with (
        session_scope(engine) as s,
        pytest.raises(accounts.AccountError, match="only active admin"),
    ):
        accounts.set_role(s, admin.id, "recruiter")
    with session_scope(engine) as s:
        accounts.create_user(s, email="b@example.org", role="admin")
        accounts.set_role(s, admin.id, "recruiter")
    assert _user(db_url, "a@example.org").role is Role.recruiter


def test_sessions_expire(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with session_scope(engine) as s:
        user = accounts.create_user(s, email="r@example.org", role="recruiter").user
        expired = accounts.start_session(s, user, hours=-1)
        live = accounts.start_session(s, user, hours=1)
        assert accounts.user_for_session(s, expired) is None
        assert accounts.user_for_session(s, live).id == user.id
        assert accounts.user_for_session(s, "x" * 500) is None
        assert accounts.user_for_session(s, None) is None
        rows = list(s.scalars(select(StaffSession)))
    # only hashes are stored
    assert {r.id for r in rows}.isdisjoint({expired, live})


def test_first_run_admin_is_printed_once_and_never_logged(db_url: str, capsys, caplog) -> None:
    from interviewer.cli.serve import _first_admin

    engine = create_db_engine(db_url)
    caplog.set_level(logging.DEBUG)
    _first_admin(engine, "http://127.0.0.1:8000")
    out = capsys.readouterr().out
    assert "First run: an admin account was created." in out
    assert "http://127.0.0.1:8000/login" in out
    email = out.split("email:")[1].split()[0]
    password = out.split("password:")[1].split()[0]
    assert email == accounts.FIRST_ADMIN_EMAIL
    assert password not in caplog.text
    with session_scope(engine) as s:
        admin = accounts.authenticate(s, email, password)
        assert admin is not None and admin.role is Role.admin and admin.active

    _first_admin(engine, "http://127.0.0.1:8000")  # a restart: an admin exists, nothing printed
    assert capsys.readouterr().out == ""
    with session_scope(engine) as s:
        assert len(accounts.list_users(s)) == 1
