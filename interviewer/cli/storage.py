"""`interviewer storage`: the recordings storage backend (INTERVIEWER_STORAGE) from a shell."""

from __future__ import annotations

import typer

from interviewer.cli._common import run_or_exit
from interviewer.config import get_settings
from interviewer.store.storage import S3Storage, open_storage

app = typer.Typer(help="Recordings storage: local folder or S3-compatible bucket.")


@app.command()
def check() -> None:
    """Say where recordings go, and reach the bucket when it is S3."""

    with run_or_exit():
        store = open_storage(get_settings())
        if isinstance(store, S3Storage):
            store.check()
        typer.echo(f"recordings: {store.describe()}")


@app.command()
def sync() -> None:
    """Upload staged recordings the bucket does not have (after an S3 outage)."""

    with run_or_exit():
        store = open_storage(get_settings())
        if isinstance(store, S3Storage):
            store.check()
        count = store.sync()
        typer.echo(f"uploaded {count} recording(s) to {store.describe()}")
