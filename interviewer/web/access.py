"""Who may call each route: one entry per (method, path), checked by tests/test_authz_matrix.py.

HOW TO ADD AN ENTRY (one line per route, in the block of your module below)::

    rule("GET", "/openings/{opening_id}/thing", OPENING)
    rule("POST", "/openings/{opening_id}/thing", OPENING, form={"note": "x"}, destructive=True)
    rule("WS", "/i/{token}/ws", APPLICANT)                  # a WebSocket route
    rule("GET", "/api/banks/{bank_id}/audio/{key}.wav", DOMAIN_LEAD, path={"key": "q1"})

* method: "GET" (covers HEAD), "POST", "PUT", "PATCH", "DELETE", or "WS"; path: exactly as the
  route declares it (``app.routes``), prefix included.
* policy: who is allowed (everyone else must be refused):

  ============  =======================================================================
  PUBLIC        anyone, signed in or not (login page, health check, landing page)
  APPLICANT     the invite token in the path: that interview's applicant only
  STAFF         any signed-in staff member
  RECRUITER     recruiters (all of them) and admins: e.g. the list of one's openings
  DOMAIN_LEAD   domain leads and admins
  ADMIN         admins only
  OPENING       admins and the recruiters assigned to the opening in the path (directly
                ``{opening_id}``, or through ``{interview_id}``); others get 404
  STATIC        the /static mount: public, so it must hold code and styles only
  ============  =======================================================================

* A sample request so that an allowed caller really gets through (not a 404 for missing
  data or a 415): ``path={...}`` for path parameters the matrix cannot fill itself (it fills
  token, opening_id, interview_id, applicant_id, invite_id, answer_id, event_id, user_id,
  bank_id, version, part from its seeded data), ``query={...}``, ``headers={...}``,
  ``form={...}``, ``json=...``, ``content=b"..."``.
* ``destructive=True`` when an allowed call changes or deletes its target (decisions, deletion,
  deactivation...): the matrix then seeds a fresh opening + interview for every call, so one
  actor's call cannot spoil the next.

The matrix calls every route as anonymous, the applicant of this interview, the applicant of
another interview, a recruiter of this opening, a recruiter of another opening, a domain lead and
an admin, with a valid CSRF token (CSRF has its own tests), and asserts allow/deny from the
policy. Allowed: any answer that is not a refusal. Refused: 401, 403, 404, or a 303 to
``/login?next=``; a refusal must not contain the seeded applicant's name or email. A route with
no entry here fails the test, naming the line to add.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIWebSocketRoute
from starlette.routing import Mount, WebSocketRoute


class Policy(enum.StrEnum):
    PUBLIC = "public"
    APPLICANT = "applicant"
    STAFF = "staff"
    RECRUITER = "recruiter"
    DOMAIN_LEAD = "domain_lead"
    ADMIN = "admin"
    OPENING = "opening"
    STATIC = "static"


PUBLIC = Policy.PUBLIC
APPLICANT = Policy.APPLICANT
STAFF = Policy.STAFF
RECRUITER = Policy.RECRUITER
DOMAIN_LEAD = Policy.DOMAIN_LEAD
ADMIN = Policy.ADMIN
OPENING = Policy.OPENING
STATIC = Policy.STATIC

ACTORS = (
    "anonymous",
    "applicant_this",
    "applicant_other",
    "recruiter_this",
    "recruiter_other",
    "domain_lead",
    "admin",
)

ALLOWED: dict[Policy, frozenset[str]] = {
    PUBLIC: frozenset(ACTORS),
    STATIC: frozenset(ACTORS),
    # The other applicant presents its own token: it reaches its own interview, never this one.
    APPLICANT: frozenset({"applicant_this", "applicant_other"}),
    STAFF: frozenset({"recruiter_this", "recruiter_other", "domain_lead", "admin"}),
    RECRUITER: frozenset({"recruiter_this", "recruiter_other", "admin"}),
    DOMAIN_LEAD: frozenset({"domain_lead", "admin"}),
    ADMIN: frozenset({"admin"}),
    OPENING: frozenset({"recruiter_this", "admin"}),
}


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    policy: Policy
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    destructive: bool = False

    def allows(self, actor: str) -> bool:
        return actor in ALLOWED[self.policy]


RULES: dict[tuple[str, str], Rule] = {}


def rule(method: str, route: str, policy: Policy, **sample: Any) -> Rule:
    """Register who may call ``method route``; ``sample`` as in the module docstring."""
    path_params = sample.pop("path", None) or {}
    key = (method.upper(), route)
    if key in RULES:
        raise ValueError(f"access.py: {method} {route} has two entries")
    entry = Rule(key[0], route, Policy(policy), path_params=path_params, **sample)
    RULES[key] = entry
    return entry


# --- the routes -------------------------------------------------------------------------------

# app.py
rule("GET", "/", PUBLIC)
rule("GET", "/healthz", PUBLIC)
rule("MOUNT", "/static", STATIC, path={"path": "style.css"})

# applicant.py (the invite token is the credential)
rule("GET", "/i/{token}", APPLICANT)
rule("POST", "/i/{token}/consent", APPLICANT, form={"recording": "yes"}, destructive=True)
rule("GET", "/i/{token}/check", APPLICANT)
rule("GET", "/i/{token}/interview", APPLICANT)
rule("GET", "/i/{token}/done", APPLICANT)
rule("WS", "/i/{token}/ws", APPLICANT, destructive=True)
rule(
    "POST",
    "/i/{token}/media/{kind}",
    APPLICANT,
    path={"kind": "camera"},
    query={"chunk": "0"},
    headers={"content-type": "video/webm"},
    content=b"x",
)

# livekit.py (SCALE): a LiveKit room token for this invite (409 unless the transport is livekit),
# and the livekit-client SDK from node_modules (503 with a fix when it is not installed)
rule("GET", "/i/{token}/livekit", APPLICANT)
rule("GET", "/vendor/livekit-client.mjs", PUBLIC)

# login.py, users.py
rule("GET", "/login", PUBLIC)
rule("POST", "/login", PUBLIC, form={"email": "", "password": ""})
rule("POST", "/logout", PUBLIC)
rule("GET", "/csrf", PUBLIC)
rule("GET", "/staff", STAFF)
rule("GET", "/users", ADMIN)
rule("POST", "/users", ADMIN, form={"email": "new-user@example.invalid", "role": "recruiter"})
rule("POST", "/users/{user_id}/role", ADMIN, form={"role": "domain_lead"}, destructive=True)
rule("POST", "/users/{user_id}/deactivate", ADMIN, destructive=True)
rule("POST", "/users/{user_id}/activate", ADMIN, destructive=True)
rule("POST", "/users/{user_id}/password", ADMIN, destructive=True)

# web/openings.py: a recruiter's own openings; everything under /openings/{opening_id} is OPENING
rule("GET", "/openings", RECRUITER)
rule("GET", "/openings/new", RECRUITER)
rule("POST", "/openings", RECRUITER, form={"title": "Matrix opening"})
rule("GET", "/openings/{opening_id}", OPENING)
rule("GET", "/openings/{opening_id}/shortlist.csv", OPENING)
rule("GET", "/openings/{opening_id}/shortlist.json", OPENING)
rule(
    "POST",
    "/openings/{opening_id}/decisions/{interview_id}",
    OPENING,
    form={"decision": "hold", "note": "matrix"},
    destructive=True,
)
rule("GET", "/openings/{opening_id}/history", OPENING)
rule("GET", "/openings/{opening_id}/charts", OPENING)
rule("GET", "/openings/{opening_id}/invites", OPENING)
rule("POST", "/openings/{opening_id}/invites", OPENING, form={"name": "M", "email": "m@x.org"})
rule("POST", "/openings/{opening_id}/invites/upload", OPENING, form={})
rule("GET", "/openings/{opening_id}/invites.csv", OPENING)
rule("POST", "/openings/{opening_id}/invites/{invite_id}/renew", OPENING, destructive=True)
rule("GET", "/openings/{opening_id}/settings", OPENING)
rule(
    "POST",
    "/openings/{opening_id}/settings",
    OPENING,
    form={"title": "Renamed", "retention_days": "90"},
    destructive=True,
)
rule("POST", "/openings/{opening_id}/recruiters", OPENING, form={"user_id": "0"})
rule("POST", "/openings/{opening_id}/recruiters/{user_id}/remove", OPENING, destructive=True)

# report.py (REPORT helper): the applicant page, its media, exports, compare, personal data
_APPLICANT_PAGE = "/openings/{opening_id}/applicants/{interview_id}"
rule("GET", _APPLICANT_PAGE, OPENING)
rule("GET", _APPLICANT_PAGE + "/media/answers/{answer_id}", OPENING)
rule("GET", _APPLICANT_PAGE + "/media/camera/{part}", OPENING)
rule("GET", _APPLICANT_PAGE + "/media/events/{event_id}", OPENING)
rule("GET", _APPLICANT_PAGE + "/report.json", OPENING)
rule("GET", _APPLICANT_PAGE + "/report.csv", OPENING)
rule("GET", _APPLICANT_PAGE + "/personal-data", OPENING)
rule("POST", _APPLICANT_PAGE + "/personal-data/export", OPENING)
rule(
    "POST",
    _APPLICANT_PAGE + "/personal-data/delete",
    OPENING,
    form={"confirm": "not-the-applicants-address"},
    destructive=True,
)
rule("GET", "/openings/{opening_id}/compare", OPENING)

# banks_editor.py: domain leads (and admins) only. The samples are real requests that get past
# the role check and then change nothing: a stale sha is a 409 conflict, a second create is "already
# exists", bad YAML a 422.
_SHA = "0" * 64
rule("GET", "/banks", DOMAIN_LEAD)
rule("GET", "/banks/new", DOMAIN_LEAD)
rule("POST", "/banks/new", DOMAIN_LEAD, form={"id": "matrix-bank", "title": "M", "domain": "d"})
rule("GET", "/banks/import", DOMAIN_LEAD)
rule("POST", "/banks/import", DOMAIN_LEAD, form={"yaml": "id: [unclosed"})
rule("GET", "/banks/{bank_id}", DOMAIN_LEAD)
rule("GET", "/banks/{bank_id}/edit", DOMAIN_LEAD)
rule("POST", "/banks/{bank_id}/draft", DOMAIN_LEAD, form={"yaml": "x: 1", "base_sha": _SHA})
rule("POST", "/banks/{bank_id}/publish", DOMAIN_LEAD, form={"sha": _SHA})
# web-fixture: the matrix's published bank (no draft file until the first allowed call)
rule(
    "POST",
    "/banks/{bank_id}/restore",
    DOMAIN_LEAD,
    path={"bank_id": "web-fixture"},
    form={"version": "1", "base_sha": _SHA},
)
rule("GET", "/banks/{bank_id}/diff", DOMAIN_LEAD)
rule("GET", "/banks/{bank_id}/export", DOMAIN_LEAD)
rule("POST", "/api/banks/{bank_id}/validate", DOMAIN_LEAD, json={"yaml": "id: x"})
rule("POST", "/api/banks/{bank_id}/draft", DOMAIN_LEAD, json={"yaml": "x: 1", "base_sha": _SHA})
rule("POST", "/api/banks/{bank_id}/audio", DOMAIN_LEAD, json={"text": "Hello."})
rule("GET", "/api/banks/{bank_id}/audio/{key}.wav", DOMAIN_LEAD, path={"key": _SHA})


# --- reading the app's routes -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    name: str
    param_names: tuple[str, ...]


def _params(path: str) -> tuple[str, ...]:
    return tuple(p.split(":", 1)[0] for p in re.findall(r"{([^}]+)}", path))


def iter_routes(app: Any) -> Iterator[RouteInfo]:
    """Every (method, path) the app answers, included routers flattened: HTTP routes (GET for
    GET+HEAD), WebSocket routes as "WS", mounts as "MOUNT"."""

    def walk(routes: list[Any]) -> Iterator[RouteInfo]:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # FastAPI's included router
                yield from walk(route.effective_candidates())
                continue
            original = getattr(route, "original_route", route)
            path = getattr(route, "path", None) or getattr(original, "path", "")
            name = getattr(original, "name", "") or ""
            if isinstance(original, Mount):
                yield RouteInfo("MOUNT", path, name, ())
            elif isinstance(original, APIWebSocketRoute | WebSocketRoute):
                yield RouteInfo("WS", path, name, _params(path))
            else:
                methods = set(getattr(route, "methods", None) or original.methods or ())
                if "GET" in methods:
                    methods.discard("HEAD")
                for method in sorted(methods):
                    yield RouteInfo(method, path, name, _params(path))

    seen: set[tuple[str, str]] = set()
    for info in walk(list(app.routes)):
        if (info.method, info.path) not in seen:
            seen.add((info.method, info.path))
            yield info
