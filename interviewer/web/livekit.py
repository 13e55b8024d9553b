"""The applicant's side of the LiveKit transport (``INTERVIEWER_TRANSPORT=livekit``).

Two routes:

- ``GET /i/{token}/livekit``: a fresh room token for this invite's interview (JSON: url, token,
  room, identity, expires_in). The invite link is the credential, as on every applicant page;
  the LiveKit token is minted by ``transports.livekit.applicant_token`` (that one room, this
  invite's identity, minutes of validity). The page asks for a new one at every (re)connect,
  so a short expiry never ends an interview. Never cached.
- ``GET /vendor/livekit-client.mjs``: the livekit-client browser SDK, served from the
  ``node_modules`` that ``make js`` (``npm ci``) installed; it is not committed and not bundled.

The page logic is ``static/livekit-interview.js``; ``interview.html`` loads it instead of
``interview.js`` when the transport is LiveKit. The embedded WebSocket stays the default.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from interviewer import invites
from interviewer.errors import UserError
from interviewer.store.db import session_scope
from interviewer.store.models import Applicant, Interview
from interviewer.transports.livekit import rooms as lk
from interviewer.web.deps import services
from interviewer.web.pages import public_link

router = APIRouter()

REPO_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
SDK_FILE = "livekit-client/dist/livekit-client.esm.mjs"

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def sdk_path(node_modules: Path | None = None) -> Path | None:
    """The SDK file: in ``node_modules`` (INTERVIEWER_NODE_MODULES_DIR), else the repository's
    node_modules (a checkout), else ./node_modules; None when none has it."""
    folders = [node_modules] if node_modules else [REPO_NODE_MODULES, Path.cwd() / "node_modules"]
    for folder in folders:
        path = folder / SDK_FILE
        if path.is_file():
            return path
    return None


def _problem(status: int, code: str, message: str, next_step: str, **extra: Any) -> JSONResponse:
    body = {"error": code, "message": message, "next": next_step, **extra}
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


def _mint(request: Request, token: str) -> dict[str, Any]:
    """Blocking: check the invite, then mint the room token (raises InviteError/UserError)."""
    svc = services(request)
    settings = svc.settings
    with session_scope(svc.engine) as s:
        check = invites.check_invite(s, settings, token)
        interview = s.get(Interview, check.interview_id)
        applicant = s.get(Applicant, interview.applicant_id) if interview else None
        consented = check.consented
        name = applicant.name if applicant is not None else ""
    if not consented:
        return {"consent": False}
    if settings.transport != "livekit":
        return {"transport": settings.transport}
    jwt = lk.applicant_token(
        settings, interview_id=check.interview_id, invite_id=check.invite_id, display_name=name
    )
    return {
        "url": settings.livekit_url,
        "token": jwt,
        "room": lk.room_name(check.interview_id, settings.livekit_room_prefix),
        "identity": lk.applicant_identity(check.invite_id),
        "expires_in": settings.livekit_token_ttl_s,
    }


@router.get("/i/{token}/livekit", name="livekit_token")
async def livekit_token(request: Request, token: str) -> Response:
    try:
        minted = await asyncio.to_thread(_mint, request, token)
    except invites.InviteUsed:
        return _problem(
            410,
            "used",
            "This interview is already complete.",
            "There is nothing more to do: you can close this tab.",
            done=public_link(request, services(request).settings.public_url, "done", token=token),
        )
    except invites.InviteError as err:
        return _problem(
            404, err.code, str(err), "Ask the recruiter for a new link, then open it again."
        )
    except UserError as err:  # LiveKit not configured on this server
        return _problem(
            503,
            "livekit-config",
            "The interview server is not set up for live interviews yet.",
            "Please tell the recruiter; your link stays valid, so try again later.",
            detail=str(err),
        )
    if minted.get("consent") is False:
        return _problem(
            409,
            "consent",
            "Please agree to the recording first.",
            "Open your invite link again and accept the consent page.",
            invite=public_link(
                request, services(request).settings.public_url, "invite", token=token
            ),
        )
    if "transport" in minted:  # checked after the invite, so a bad link learns nothing
        return _problem(
            409,
            "transport",
            "This server runs interviews over its own connection, not LiveKit.",
            "Reload the interview page.",
        )
    return JSONResponse(minted, headers=_NO_STORE)


@router.get("/vendor/livekit-client.mjs", name="livekit_sdk")
async def livekit_sdk(request: Request) -> Response:
    path = sdk_path(services(request).settings.node_modules_dir)
    if path is None:
        return Response(
            "// The LiveKit browser SDK is not installed on this server: run `make js` "
            "(npm ci) in the interviewer folder.\n"
            'throw new Error("livekit-client is not installed on the server (make js)");\n',
            status_code=503,
            media_type="text/javascript",
        )
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )
