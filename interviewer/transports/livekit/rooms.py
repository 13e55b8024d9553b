"""The LiveKit transport's contract: room names, applicant identities, tokens, Egress requests.

Shared by the web app (which mints an applicant's token) and the worker (which joins the room
and checks who it is talking to), so both agree without talking to each other:

- one room per interview: ``<INTERVIEWER_LIVEKIT_ROOM_PREFIX><interview id>``;
- the applicant's identity is bound to the invite: ``invite-<invite id>``; the worker listens
  to that participant only, so a second person in the room is never transcribed as the
  applicant;
- an applicant's token may join that one room and nothing else: ``roomJoin`` for the room,
  publish microphone and camera, subscribe (to hear the agent); no data channel, no
  ``roomAdmin``/``roomCreate``/``roomList``/``roomRecord``, no agent or hidden flags, and an
  expiry of ``INTERVIEWER_LIVEKIT_TOKEN_TTL_S`` (10 minutes by default: the page fetches a
  fresh one on every (re)connect);
- the token dispatches the ``interviewer`` agent into the room (explicit dispatch), so rooms
  that are not interviews never get a worker.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from livekit import api

from interviewer.errors import UserError

if TYPE_CHECKING:
    from interviewer.config import Settings

AGENT_NAME = "interviewer"
"""The worker registers under this name; applicant tokens dispatch it (explicit dispatch)."""
PUBLISH_SOURCES = ["microphone", "camera"]


class LiveKitNotConfigured(UserError):
    """INTERVIEWER_TRANSPORT=livekit without the server URL or API keys."""


def require_config(settings: Settings) -> tuple[str, str, str]:
    """(url, api key, api secret), or a one-line error naming the missing variables."""
    missing = [
        name
        for name, value in (
            ("INTERVIEWER_LIVEKIT_URL", settings.livekit_url),
            ("INTERVIEWER_LIVEKIT_API_KEY", settings.livekit_api_key),
            ("INTERVIEWER_LIVEKIT_API_SECRET", settings.livekit_api_secret),
        )
        if not value
    ]
    if missing:
        raise LiveKitNotConfigured(
            f"INTERVIEWER_TRANSPORT=livekit needs {', '.join(missing)} (see docs/deploy.md), "
            "or set INTERVIEWER_TRANSPORT=websocket"
        )
    assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
    return (
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
    )


def room_name(interview_id: int, prefix: str) -> str:
    if type(interview_id) is not int or interview_id < 1:
        raise ValueError(f"not an interview id: {interview_id!r}")
    return f"{prefix}{interview_id}"


def interview_of_room(name: str, prefix: str) -> int | None:
    """The interview a room belongs to, or None for a room that is not an interview's."""
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    if not re.fullmatch(r"[1-9][0-9]{0,18}", rest):
        return None
    return int(rest)


def applicant_identity(invite_id: int) -> str:
    return f"invite-{invite_id}"


def applicant_token(
    settings: Settings, *, interview_id: int, invite_id: int, display_name: str = ""
) -> str:
    """A short-lived JWT that lets the holder of invite ``invite_id`` into its interview's room."""
    _, key, secret = require_config(settings)
    room = room_name(interview_id, settings.livekit_room_prefix)
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=list(PUBLISH_SOURCES),
        can_subscribe=True,
        can_publish_data=False,
        can_update_own_metadata=False,
    )
    config = api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME)])
    return (
        api.AccessToken(key, secret)
        .with_identity(applicant_identity(invite_id))
        .with_name(display_name)
        .with_kind("standard")
        .with_grants(grants)
        .with_room_config(config)
        .with_ttl(timedelta(seconds=settings.livekit_token_ttl_s))
        .to_jwt()
    )


def egress_request(
    settings: Settings, *, interview_id: int, identity: str
) -> api.ParticipantEgressRequest:
    """LiveKit Egress: record the applicant's audio and camera into the recordings bucket.

    Egress is a separate LiveKit service that writes the file itself, straight to S3, as
    ``<prefix><interview>/media/egress/<room>.mp4`` (the worker's own per-answer WAVs stay the
    source of transcripts and scores). Needs ``INTERVIEWER_STORAGE=s3``.
    """
    if settings.storage != "s3" or not settings.s3_bucket:
        raise UserError(
            "INTERVIEWER_LIVEKIT_EGRESS=true needs INTERVIEWER_STORAGE=s3 and "
            "INTERVIEWER_S3_BUCKET (Egress uploads to the bucket itself)"
        )
    room = room_name(interview_id, settings.livekit_room_prefix)
    prefix = settings.s3_prefix.strip("/")
    path = f"{interview_id}/media/egress/{room}.mp4"
    secret = settings.s3_secret_access_key
    s3 = api.S3Upload(
        access_key=settings.s3_access_key_id or "",
        secret=secret.get_secret_value() if secret else "",
        region=settings.s3_region or "",
        endpoint=settings.s3_endpoint_url or "",
        bucket=settings.s3_bucket,
        force_path_style=bool(settings.s3_endpoint_url),
    )
    return api.ParticipantEgressRequest(
        room_name=room,
        identity=identity,
        file_outputs=[
            api.EncodedFileOutput(
                file_type=api.EncodedFileType.MP4,
                filepath=f"{prefix}/{path}" if prefix else path,
                s3=s3,
            )
        ],
    )
