"""Invite links: a signed, expiring token that opens exactly one interview.

The token is the only credential an applicant has, so it is treated like a password:

- It is signed with the server's secret key (itsdangerous, HMAC-SHA256): a token nobody signed is
  refused before the database is even asked ("forged").
- Only its sha256 is stored (``Invite.token_hash``): a copy of the database does not hold working
  links, and the row for a token is found by hashing what the browser presents.
- It carries its own expiry, and the row's ``expires_at`` is checked too, so shortening an invite
  in the database takes effect at once ("expired").
- Once its interview is completed the link is spent ("used"); until then the same link reopens
  the interview wherever it stopped (a reload, a closed tab, a dropped network).
- Staff can see a link again (``link_token``): its random-looking part is an HMAC of the invite
  id and expiry under the secret key, so it is rebuilt from the row plus the key, never stored.
  ``renew_invite`` gives the same interview a new link and expiry, and the old link stops working.

``INTERVIEWER_SECRET_KEY`` unset means a random key created once in ``<data_dir>/secret_key``
(mode 0600): links stay valid across restarts without anyone having to invent a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlmodel import Session

from interviewer.config import Settings
from interviewer.errors import UserError
from interviewer.store import repo
from interviewer.store.models import Applicant, Interview, InterviewState, Invite, Opening

SALT = "interviewer.invite.v1"
DEFAULT_TTL = timedelta(days=14)
MAX_TOKEN_CHARS = 512
"""Longer input is refused unread: a real token is about 90 characters."""


class InviteError(UserError):
    """An invite link that cannot open an interview; ``code`` names the case for the web page."""

    code = "invalid"


class InviteForged(InviteError):
    """Not signed by this server, altered, or replaced by a newer invite."""

    code = "forged"


class InviteExpired(InviteError):
    code = "expired"


class InviteUsed(InviteError):
    """The interview behind the link is over."""

    code = "used"


@dataclass(frozen=True)
class IssuedInvite:
    token: str
    invite_id: int
    interview_id: int
    expires_at: datetime


@dataclass(frozen=True)
class InviteCheck:
    """What a valid token opens."""

    invite_id: int
    interview_id: int
    opening_id: int
    state: InterviewState
    expires_at: datetime
    consented: bool


# --- the secret key --------------------------------------------------------------------------


def secret_key(settings: Settings) -> str:
    """The configured key, else the one kept in ``<data_dir>/secret_key`` (created once)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).expanduser() / "secret_key"
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    try:
        # O_EXCL: when two processes start at once, exactly one key wins and both use it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="ascii").strip()
        if not key:
            raise UserError(
                f"{path} is empty: delete it (a new key is made; existing invite links stop "
                "working) or set INTERVIEWER_SECRET_KEY"
            ) from None
        return key
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(candidate + "\n")
    return candidate


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key(settings), salt=SALT)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- issuing and checking ----------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for values stored as aware UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def issue_invite(
    session: Session,
    settings: Settings,
    *,
    opening: Opening,
    applicant: Applicant,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> IssuedInvite:
    """A new invite and its interview (pinned to the opening's bank version); flushes only."""
    now = now or datetime.now(UTC)
    expires_at = now + ttl
    # The row id goes into the token, so insert first with a placeholder hash, then fill it.
    invite = Invite(
        opening_id=opening.id,
        applicant_id=applicant.id,
        token_hash=secrets.token_hex(32),
        expires_at=expires_at,
    )
    session.add(invite)
    session.flush()
    token = _sign(settings, invite.id, expires_at)
    invite.token_hash = token_hash(token)
    interview = repo.create_interview(session, opening=opening, applicant=applicant, invite=invite)
    session.flush()
    return IssuedInvite(token, invite.id, interview.id, expires_at)


def _sign(settings: Settings, invite_id: int, expires_at: datetime) -> str:
    """The token of an invite. Its nonce is an HMAC of the id and expiry under the secret key,
    so the server (and only a holder of the key) can show a recruiter the link again later
    (``link_token``) without the link being stored anywhere; a new expiry gives a new link."""
    expiry = int(_aware(expires_at).timestamp())
    mac = hmac.new(
        secret_key(settings).encode(), f"{SALT}:nonce:{invite_id}:{expiry}".encode(), "sha256"
    )
    nonce = base64.urlsafe_b64encode(mac.digest()[:12]).decode().rstrip("=")
    return _serializer(settings).dumps({"i": invite_id, "e": expiry, "n": nonce})


def link_token(settings: Settings, invite: Invite) -> str | None:
    """The token of ``invite`` rebuilt for staff, or None when it cannot be (an invite issued
    before links were rebuildable, or under another secret key): ``renew_invite`` then makes a
    new one."""
    token = _sign(settings, invite.id, invite.expires_at)
    return token if secrets.compare_digest(token_hash(token), invite.token_hash) else None


def renew_invite(
    session: Session,
    settings: Settings,
    invite: Invite,
    *,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> str:
    """A new link with a new expiry for the same invite and interview; the old link stops
    working ("replaced"). Refused for a completed interview, whose link is spent."""
    interview = session.scalars(select(Interview).where(Interview.invite_id == invite.id)).first()
    if invite.used_at is not None or (
        interview is not None and InterviewState(interview.state) is InterviewState.completed
    ):
        raise InviteUsed("this interview is already complete: its link cannot be renewed")
    now = now or datetime.now(UTC)
    expires_at = now + ttl
    if int(expires_at.timestamp()) == int(_aware(invite.expires_at).timestamp()):
        expires_at += timedelta(seconds=1)  # same second, same token: make it a new one
    invite.expires_at = expires_at
    token = _sign(settings, invite.id, invite.expires_at)
    invite.token_hash = token_hash(token)
    session.flush()
    return token


def check_invite(
    session: Session,
    settings: Settings,
    token: str,
    *,
    allow_used: bool = False,
    now: datetime | None = None,
) -> InviteCheck:
    """What ``token`` opens, or InviteForged / InviteUsed / InviteExpired (checked in that order:
    an applicant who finished is told so, not that the link later expired)."""
    now = now or datetime.now(UTC)
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise InviteForged("this invite link is not valid")
    try:
        payload = _serializer(settings).loads(token)
        invite_id, signed_expiry = int(payload["i"]), int(payload["e"])
    except (BadData, KeyError, TypeError, ValueError):
        raise InviteForged("this invite link is not valid") from None
    invite = session.get(Invite, invite_id)
    if invite is None or not secrets.compare_digest(invite.token_hash, token_hash(token)):
        raise InviteForged("this invite link is not valid (it may have been replaced)")
    interview = session.scalars(select(Interview).where(Interview.invite_id == invite.id)).first()
    if interview is None:
        raise InviteForged("this invite link has no interview")
    state = InterviewState(interview.state)
    if not allow_used and (invite.used_at is not None or state is InterviewState.completed):
        raise InviteUsed("this interview is already complete")
    expires_at = min(_aware(invite.expires_at), datetime.fromtimestamp(signed_expiry, UTC))
    if now >= expires_at and state is not InterviewState.completed:
        raise InviteExpired(f"this invite link expired on {expires_at:%Y-%m-%d %H:%M} UTC")
    return InviteCheck(
        invite_id=invite.id,
        interview_id=interview.id,
        opening_id=interview.opening_id,
        state=state,
        expires_at=expires_at,
        consented=interview.consented_at is not None,
    )


def verify_invite(
    session: Session, settings: Settings, token: str, *, now: datetime | None = None
) -> int:
    """The interview id a usable token opens; raises InviteForged / InviteUsed / InviteExpired."""
    return check_invite(session, settings, token, now=now).interview_id


def mark_used(session: Session, invite_id: int, *, now: datetime | None = None) -> None:
    """Spend the link (called when its interview completes)."""
    invite = session.get(Invite, invite_id)
    if invite is not None and invite.used_at is None:
        invite.used_at = now or datetime.now(UTC)
        session.flush()
