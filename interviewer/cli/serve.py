"""`interviewer serve`: the web app under uvicorn, optionally with demo openings and links."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import Engine, select

from interviewer.cli._common import run_or_exit
from interviewer.config import Settings, get_settings

console = Console(highlight=False)

WS_MAX_BYTES = 64 * 1024
"""Larger WebSocket messages are refused by the protocol layer before the app reads them."""
DEMO_APPLICANT_EMAIL = "browser-demo@example.invalid"


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
    from interviewer import invites
    from interviewer.banks.drafts import BankStore
    from interviewer.cli.interview import _demo_opening
    from interviewer.store import repo
    from interviewer.store.db import session_scope
    from interviewer.store.models import Applicant

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
    from interviewer.accounts import ensure_first_admin

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
    import uvicorn

    from interviewer.store.db import create_db_engine, migrate
    from interviewer.web import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    with run_or_exit():
        engine = create_db_engine(settings.resolved_database_url)
        migrate(engine)
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
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,  # the app logs requests itself, with invite tokens masked
        ws_max_size=WS_MAX_BYTES,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
