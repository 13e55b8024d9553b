"""The admin's Users page: list, add, change role, deactivate/reactivate, set a new password;
and the scorers' progress (what `interviewer scorer --status` prints: backlog, rate per scorer).

Every change goes through :mod:`interviewer.accounts` (which audits it and keeps at least one
active admin). A generated password is shown once, on the page that created it, and never stored
or logged; the page after a change is a redirect (no resubmission on reload), except those two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from interviewer import accounts
from interviewer.scoring.claims import status as scoring_status
from interviewer.store.db import session_scope
from interviewer.store.models import Role, User
from interviewer.web.auth import require_role
from interviewer.web.deps import services
from interviewer.web.inputs import Id
from interviewer.web.pages import render

router = APIRouter()
admin_only = require_role(Role.admin)

SCORING_WINDOW_MIN = 10.0
"""The scorers' rates on the page are over this many minutes (the CLI's --status default)."""

NOTICES = {
    "role": "Role changed.",
    "deactivate": "Account deactivated: it is signed out everywhere and cannot sign in.",
    "activate": "Account reactivated: it can sign in again.",
}


def _users(engine: Any) -> list[User]:
    with session_scope(engine) as s:
        return accounts.list_users(s)


async def _page(request: Request, status: int = 200, **context: Any) -> Response:
    engine = services(request).engine
    users = await asyncio.to_thread(_users, engine)
    scoring = await asyncio.to_thread(scoring_status, engine, SCORING_WINDOW_MIN)
    context.setdefault("notice", NOTICES.get(request.query_params.get("done", ""), ""))
    return render(
        request,
        "staff/users.html",
        status_code=status,
        users=users,
        roles=list(Role),
        scoring=scoring,
        **context,
    )


@router.get("/users", name="users")
async def users_page(request: Request, _admin: User = Depends(admin_only)) -> Response:
    return await _page(request)


@router.post("/users", name="users_add")
async def users_add(request: Request, admin: User = Depends(admin_only)) -> Response:
    form = await request.form()
    values = {k: str(form.get(k) or "")[:320] for k in ("email", "name", "role")}

    def add() -> accounts.NewAccount:
        with session_scope(services(request).engine, write=True) as s:
            return accounts.create_user(
                s, email=values["email"], role=values["role"], name=values["name"], by=admin
            )

    try:
        new = await asyncio.to_thread(add)
    except accounts.AccountError as err:
        return await _page(request, 400, error=_sentence(err), form=values)
    created = {"email": new.user.email, "password": new.password}
    return await _page(request, 201, created=created)


def _sentence(err: Exception) -> str:
    text = str(err)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def _change(request: Request, admin: User, user_id: Id, action: str) -> Response:
    form = await request.form()
    role = str(form.get("role") or "")[:32]

    def change() -> None:
        with session_scope(services(request).engine, write=True) as s:
            if action == "role":
                accounts.set_role(s, user_id, role, by=admin)
            else:
                accounts.set_active(s, user_id, action == "activate", by=admin)

    try:
        await asyncio.to_thread(change)
    except accounts.AccountError as err:
        return await _page(request, 400, error=_sentence(err))
    return RedirectResponse(f"/users?done={action}", status_code=303)


@router.post("/users/{user_id}/role", name="users_role")
async def users_role(request: Request, user_id: Id, admin: User = Depends(admin_only)) -> Response:
    return await _change(request, admin, user_id, "role")


@router.post("/users/{user_id}/deactivate", name="users_deactivate")
async def users_deactivate(
    request: Request, user_id: Id, admin: User = Depends(admin_only)
) -> Response:
    return await _change(request, admin, user_id, "deactivate")


@router.post("/users/{user_id}/activate", name="users_activate")
async def users_activate(
    request: Request, user_id: Id, admin: User = Depends(admin_only)
) -> Response:
    return await _change(request, admin, user_id, "activate")


@router.post("/users/{user_id}/password", name="users_password")
async def users_password(
    request: Request, user_id: Id, admin: User = Depends(admin_only)
) -> Response:
    def reset() -> tuple[str, str]:
        with session_scope(services(request).engine, write=True) as s:
            password = accounts.set_password(s, user_id, by=admin)
            return s.get(User, user_id).email, password

    try:
        email, password = await asyncio.to_thread(reset)
    except accounts.AccountError as err:
        return await _page(request, 400, error=_sentence(err))
    return await _page(request, created={"email": email, "password": password})
