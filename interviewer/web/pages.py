"""Rendering helpers shared by the route modules: templates, error pages, masked paths, links."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
_TOKEN_IN_PATH = re.compile(r"^/i/[^/]+")


def mask_path(path: str) -> str:
    """``/i/<token>/check`` -> ``/i/…/check``: tokens never reach a log."""
    return _TOKEN_IN_PATH.sub("/i/…", path)


def public_link(request: Request, public_url: str | None, name: str, **params: Any) -> str:
    """An absolute link to route ``name`` for someone else to open (an invite link): from the
    public_url setting, never from a Host header; without it, from the request's own address,
    which the trusted-host check has already limited to allowed_hosts."""
    if public_url:
        return public_url + request.app.url_path_for(name, **params)
    return str(request.url_for(name, **params))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def error_page(
    request: Request, status_code: int, title: str, message: str, next_step: str, **extra: Any
) -> HTMLResponse:
    """A page for a problem the person can act on: what happened, and what to do next."""
    return render(
        request,
        "error.html",
        status_code=status_code,
        title=title,
        message=message,
        next_step=next_step,
        **extra,
    )
