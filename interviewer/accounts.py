"""Staff accounts: argon2 password hashes, sign-in sessions, and the first admin.

Used by both the CLI (`interviewer user ...`, `interviewer serve`) and the web app
(:mod:`interviewer.web.auth`), so it knows nothing about HTTP.

* Passwords are stored only as argon2id hashes (argon2-cffi's defaults, rehashed on sign-in when
  those defaults grow). A generated password is 24 URL-safe characters (144 bits).
* A session is a random 256-bit token in the browser's cookie; the database holds only its
  sha256 (``StaffSession.id``), so a copy of the database signs nobody in. Sessions end on
  logout, on deactivation and on a password change, and expire after ``session_hours``.
* Emails are compared lower-cased: ``Ana@X.org`` and ``ana@x.org`` are one account.

Functions take a session and flush, never commit (the caller's ``session_scope`` owns the
transaction), like :mod:`interviewer.store.repo`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from interviewer.errors import UserError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Role, StaffSession, User, as_utc, utcnow

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
"""Longer input is refused unhashed: argon2 of a megabyte is a cheap denial of service."""
FIRST_ADMIN_EMAIL = "admin@localhost"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_hasher = PasswordHasher()
_dummy_hash: str | None = None


class AccountError(UserError):
    """An account change that cannot be made; the message says why and what to do."""


# --- passwords -------------------------------------------------------------------------------


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters: choose a longer one, "
            "or leave it out to have one generated"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"a password may have at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    if not password or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn_time(password: str) -> None:
    """Hash against a dummy so an unknown email takes as long as a wrong password."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(18))
    verify_password(_dummy_hash, password or "x")


# --- users -----------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccountError(f"{email!r} is not an email address: use the form name@example.org")
    return email


def parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {role!r}: use one of {choices}") from None


def user_by_email(session: Session, email: str) -> User | None:
    try:
        email = normalize_email(email)
    except AccountError:
        return None
    return session.scalars(select(User).where(func.lower(User.email) == email)).first()


def _user(session: Session, user_or_email: User | int | str) -> User:
    if isinstance(user_or_email, User):
        return user_or_email
    if isinstance(user_or_email, int):
        user = session.get(User, user_or_email)
    else:
        user = user_by_email(session, user_or_email)
    if user is None:
        raise AccountError(
            f"no account {user_or_email!r}: `interviewer user list` shows the accounts"
        )
    return user


@dataclass(frozen=True)
class NewAccount:
    user: User
    password: str
    generated: bool


def create_user(
    session: Session,
    *,
    email: str,
    role: Role | str,
    name: str = "",
    password: str | None = None,
    by: User | None = None,
) -> NewAccount:
    """A new active account; ``password=None`` generates one (returned once, never stored)."""
    email = normalize_email(email)
    role = parse_role(role)
    if user_by_email(session, email) is not None:
        raise AccountError(f"an account {email} already exists: choose another email")
    generated = password is None
    password = password if password is not None else generate_password()
    user = User(email=email, name=name.strip()[:200], role=role, password_hash="")
    user.password_hash = hash_password(password)
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise AccountError(f"an account {email} already exists: choose another email") from None
    repo.audit(session, by, "user.add", f"user:{user.id}", email=email, role=role.value)
    return NewAccount(user, password, generated)


def active_admins(session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.admin, User.active)
    return int(session.scalar(query) or 0)


def _keep_an_admin(session: Session, user: User) -> None:
    if user.role is Role.admin and user.active and active_admins(session) <= 1:
        raise AccountError(
            f"{user.email} is the only active admin: make another account admin first"
        )


def set_role(session: Session, user: User | int | str, role: Role | str, *, by: User | None = None):
    user = _user(session, user)
    role = parse_role(role)
    if role is user.role:
        return user
    if role is not Role.admin:
        _keep_an_admin(session, user)
    old = user.role
    user.role = role
    session.flush()
    repo.audit(session, by, "user.role", f"user:{user.id}", old=old.value, new=role.value)
    return user


def set_password(
    session: Session, user: User | int | str, password: str | None = None, *, by: User | None = None
) -> str:
    """Sets (or generates) a password and signs the account out everywhere; returns it."""
    user = _user(session, user)
    password = password if password is not None else generate_password()
    user.password_hash = hash_password(password)
    end_sessions_of(session, user.id)
    session.flush()
    repo.audit(session, by, "user.password", f"user:{user.id}")
    return password


def set_active(
    session: Session, user: User | int | str, active: bool, *, by: User | None = None
) -> User:
    """Deactivating also ends every session of the account at once."""
    user = _user(session, user)
    if user.active == active:
        return user
    if not active:
        _keep_an_admin(session, user)
        end_sessions_of(session, user.id)
    user.active = active
    session.flush()
    repo.audit(session, by, "user.activate" if active else "user.deactivate", f"user:{user.id}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.email)))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The account when ``password`` is right (active or not: the caller says which), else None.
    Always costs one argon2 verification, so timing does not tell which emails exist."""
    user = user_by_email(session, email)
    if user is None:
        _burn_time(password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.flush()
    return user


def ensure_first_admin(engine: Engine) -> NewAccount | None:
    """On a database without an admin, create one with a generated password (shown once by the
    caller, never logged); None when an admin exists (so a restart prints nothing)."""
    with session_scope(engine, write=True) as s:
        if s.scalars(select(User).where(User.role == Role.admin)).first() is not None:
            return None
        email = FIRST_ADMIN_EMAIL
        if user_by_email(s, email) is not None:
            email = f"admin-{secrets.token_hex(3)}@localhost"
        try:
            return create_user(s, email=email, role=Role.admin, name="Administrator")
        except AccountError:
            return None  # another process created it a moment ago


# --- sessions ----------------------------------------------------------------------------------


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, user: User, *, hours: float) -> str:
    """A new session for ``user``; returns the cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Sweep this account's expired rows: the table stays small without a background job.
    session.execute(
        delete(StaffSession).where(StaffSession.user_id == user.id, StaffSession.expires_at < now)
    )
    session.add(
        StaffSession(
            id=_session_id(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    session.flush()
    return token


def user_for_session(session: Session, token: str | None) -> User | None:
    """The active account a session token belongs to, or None (unknown, expired, deactivated)."""
    if not token or len(token) > 128:
        return None
    row = session.get(StaffSession, _session_id(token))
    if row is None or as_utc(row.expires_at) <= datetime.now(UTC):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user


def end_session(session: Session, token: str | None) -> None:
    if token and len(token) <= 128:
        session.execute(delete(StaffSession).where(StaffSession.id == _session_id(token)))
        session.flush()


def end_sessions_of(session: Session, user_id: int) -> None:
    session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
    session.flush()
