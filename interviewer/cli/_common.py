"""Plumbing shared by the command modules: one-line errors, and the one way to open the database.

``run_or_exit()`` is how every command reports a problem the user can fix: a ``UserError`` raised
inside it is printed as its one-line message in red on stderr and the command exits with status 1,
without a traceback (any other exception still shows one: that is a bug). Use it as a context
manager around the library call, or as a decorator under ``@app.command()``::

    @app.command()
    def install() -> None:
        with run_or_exit():
            weights.install()

``open_database(url, schema=...)`` is how every command opens the database, with ``UrlOption``
as its ``--url``: commands that may be the first to use a database migrate it, those that
only read or delete check it is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from interviewer.errors import UserError
from interviewer.store import db

# Resolves sys.stderr at each print, so it also writes where CliRunner captures.
err_console = Console(stderr=True, highlight=False)


@contextmanager
def run_or_exit() -> Iterator[None]:
    try:
        yield
    except UserError as err:
        # soft_wrap: one line however narrow the terminal, so it can be grepped and copied whole.
        err_console.print(str(err), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


UrlOption = typer.Option(
    None, "--url", help="SQLAlchemy URL; default: INTERVIEWER_DATABASE_URL or the SQLite file."
)


def open_database(
    url: str | None = None, *, schema: Literal["migrate", "check", "as-is"] = "as-is"
) -> Engine:
    """The engine for ``url`` (default: the configured database).

    ``schema="migrate"`` brings the schema up to date first (creating the database if absent);
    ``"check"`` turns a database that is down or never migrated into a one-line UserError
    (``check_database``); ``"as-is"`` touches nothing (``interviewer db`` manages the schema
    itself, and readers that diagnose their own errors)."""
    engine = db.create_db_engine(url)
    if schema == "migrate":
        db.migrate(engine)
    elif schema == "check":
        check_database(engine)
    return engine


def check_database(engine: Engine) -> None:
    """A one-line UserError for a database that is down or never migrated."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        migrated = db.current_revision(engine) is not None
    except OperationalError:
        raise UserError(
            f"cannot reach the database {where}: check --url or INTERVIEWER_DATABASE_URL"
        ) from None
    if not migrated:
        raise UserError(f"the database {where} has no tables yet: run `interviewer db upgrade`")
