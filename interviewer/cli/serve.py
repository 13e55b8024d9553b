"""`interviewer serve`: the web app under uvicorn, optionally with demo openings and links."""

from __future__ import annotations

import copy
import logging
import logging.config
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import typer
import uvicorn
from rich.console import Console
from rich.text import Text
from sqlalchemy import Engine, select

from interviewer import invites
from interviewer.accounts import ensure_first_admin
from interviewer.banks.drafts import BankStore
from interviewer.cli._common import open_database, run_or_exit
from interviewer.cli.interview import _demo_opening
from interviewer.config import Settings, get_settings
from interviewer.openings.demo import start_demo_interviews
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Applicant

console = Console(highlight=False)

WS_MAX_BYTES = 64 * 1024
"""Larger WebSocket messages are refused by the protocol layer before the app reads them."""
DEMO_APPLICANT_EMAIL = "browser-demo@example.invalid"
_TOKEN = re.compile(r"/i/[^/\s\"'?#]+")


class MaskTokens(logging.Filter):
    """Masks invite tokens (``/i/<token>/...`` -> ``/i/…/...``) in every line a handler writes.

    On the handlers, not the loggers: uvicorn logs each WebSocket handshake with its whole path
    (``"WebSocket /i/<token>/ws" [accepted]``) on ``uvicorn.error``, and a handler's filter
    also sees what child loggers propagate to it. A token in a log is an interview anyone can
    take.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _TOKEN.sub("/i/…", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging config, plus the root logger (the app's own lines) on the same stream,
    every handler masking tokens."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"mask_tokens": {"()": MaskTokens}}
    config["formatters"]["app"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["app"] = {
        "formatter": "app",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["mask_tokens"]
    config["root"] = {"handlers": ["app"], "level": "INFO"}
    return config


def server_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How `interviewer serve` runs uvicorn (tests run the same config).

    Forwarded headers (X-Forwarded-For/-Proto) are believed only from the configured proxies:
    uvicorn's default trusts them from loopback, so anyone on the machine, or a proxy that
    passes the header on, could pick the client address the sign-in limit counts.
    """
    trusted = settings.forwarded_allow_ips
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,  # the app logs requests itself, with invite tokens masked
        log_config=log_config(),
        log_level="info",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=list(trusted) if trusted else "",
        ws_max_size=WS_MAX_BYTES,
        timeout_graceful_shutdown=10,
    )


@dataclass
class DemoLink:
    title: str
    url: str
    questions: int


def seed_demo(
    engine: Engine, settings: Settings, base_url: str, banks: list[str] | None = None
) -> list[DemoLink]:
    """A demo opening per shipped bank (the `interviewer demo` ones) and a fresh invite link for
    a demo applicant in each. Links are new on every call: only their hashes are stored."""

    links: list[DemoLink] = []
    # A draft being edited in the browser may be invalid or not yet published under a new
    # version: the demo then uses the bank's latest published version instead.
    store = BankStore(settings.banks_dir, engine, settings.data_dir / "locks")
    for bank in store.usable_banks():
        if banks and bank.id not in banks:
            continue
        opening = _demo_opening(engine, bank)
        with session_scope(engine) as s:
            applicant = s.scalars(
                select(Applicant).where(Applicant.email == DEMO_APPLICANT_EMAIL)
            ).first()
            if applicant is None:
                applicant = repo.create_applicant(
                    s, name="Browser demo applicant", email=DEMO_APPLICANT_EMAIL
                )
            issued = invites.issue_invite(
                s, settings, opening=opening, applicant=applicant, ttl=timedelta(days=7)
            )
        links.append(DemoLink(opening.title, f"{base_url}/i/{issued.token}", len(bank.questions)))
    return links


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _first_admin(engine: Engine, base: str) -> None:
    """With no admin in the database, create one and print its password to this console once:
    not to the log (a file), and never again (the next start finds the admin)."""

    new = ensure_first_admin(engine)
    if new is None:
        return
    console.print(Text("First run: an admin account was created.", style="bold"))
    console.print(Text(f"  sign in at {base}/login"))
    console.print(Text(f"  email:    {new.user.email}"))
    console.print(Text(f"  password: {new.password}", style="bold"), soft_wrap=True)
    console.print(
        Text(
            "  Shown only now: keep it somewhere safe. Lost it? "
            f"`interviewer user set-password {new.user.email}`",
            style="dim",
        ),
        soft_wrap=True,
    )


def serve(
    seed_demo_: bool = typer.Option(
        False,
        "--seed-demo",
        help="Create demo openings from the shipped banks and print invite links.",
    ),
    host: str | None = typer.Option(
        None, "--host", help="Interface to listen on (default: settings)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (default: settings, 8000)."),
) -> None:
    """Run the web app: applicants open their invite link and take the interview in a browser."""
    from interviewer.web import create_app  # lazy: the whole web app, only for this command

    demo_run = None

    logging.config.dictConfig(log_config())
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    with run_or_exit():
        engine = open_database(settings.resolved_database_url, schema="migrate")
        base = _base_url(host, port)
        _first_admin(engine, base)
        if seed_demo_:
            links = seed_demo(engine, settings, base)
            console.print(
                Text(
                    "Demo interviews (open a link in Chrome, Edge, Firefox or Safari):",
                    style="bold",
                )
            )
            for link in links:
                console.print(Text(f"  {link.title}, {link.questions} questions"))
                console.print(Text(f"    {link.url}", style="cyan"), soft_wrap=True)
        console.print(
            Text(f"Serving on {base}  (Ctrl+C stops; interviews resume on restart)", style="dim")
        )
        app: Any = create_app(settings)
        if seed_demo_:  # once the app is built: a failed start leaves no child behind
            store = BankStore(settings.banks_dir, engine, settings.data_dir / "locks")
            demo_run = start_demo_interviews(engine, settings, store.usable_banks())
            if demo_run is not None:
                console.print(
                    Text(
                        "Interviewing the demo applicants in the background: their shortlist "
                        f"fills within minutes (log: {settings.data_dir / 'demo-interviews.log'})",
                        style="dim",
                    ),
                    soft_wrap=True,
                )
    try:
        uvicorn.Server(server_config(app, settings, host, port)).run()
    finally:
        if demo_run is not None and demo_run.poll() is None:
            demo_run.terminate()  # an interview cut short resumes on the next start
            demo_run.wait(30)
