"""`interviewer db ...`: schema migrations (Alembic, with the scripts shipped in the package)."""

from __future__ import annotations

import typer
from alembic import command
from sqlalchemy import Engine

from interviewer import privacy
from interviewer.cli._common import UrlOption, open_database, run_or_exit
from interviewer.config import get_settings
from interviewer.store import db
from interviewer.store.storage import open_storage

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."), url: str | None = UrlOption
) -> None:
    """Migrate the database up (to the newest schema by default); creates it if absent."""
    engine = open_database(url)
    db.migrate(engine, revision)
    typer.echo(f"{_safe(engine)}: at {db.current_revision(engine)}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision: an id, -1, or base (drops all)."),
    url: str | None = UrlOption,
) -> None:
    """Migrate the database down. `base` deletes every table and its data."""
    engine = open_database(url)
    db.downgrade(engine, revision)
    typer.echo(f"{_safe(engine)}: at {db.current_revision(engine) or 'base'}")


@app.command()
def current(url: str | None = UrlOption) -> None:
    """Show the database's revision and the newest one this version of the code knows."""
    engine = open_database(url)
    at, head = db.current_revision(engine), db.head_revision()
    note = "up to date" if at == head else "run `interviewer db upgrade`"
    typer.echo(f"{_safe(engine)}: at {at or 'base (empty)'}, head {head} ({note})")


@app.command()
def revision(
    message: str = typer.Option(..., "-m", "--message", help="What the migration changes."),
    url: str | None = UrlOption,
) -> None:
    """(Developers) autogenerate a migration from the models against a database at head."""
    engine = open_database(url)
    config = db.alembic_config(engine)
    config.set_section_option("post_write_hooks", "hooks", "ruff")
    config.set_section_option("post_write_hooks", "ruff.type", "module")
    config.set_section_option("post_write_hooks", "ruff.module", "ruff")
    config.set_section_option("post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME")
    head = db.head_revision()
    rev_id = f"{int(head) + 1:04d}" if head and head.isdigit() else None  # 0001, 0002, ...
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


@app.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; delete nothing."),
    url: str | None = UrlOption,
) -> None:
    """Delete recordings older than their opening's retention period (the web app does this
    every hour); transcripts and scores stay. Each deletion is written to the audit log."""
    recordings = open_storage(get_settings())  # the bucket too when INTERVIEWER_STORAGE=s3
    with run_or_exit():
        engine = open_database(url, schema="check")
        items = privacy.purge_expired(engine, recordings, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for item in items:
        typer.echo(
            f"{verb} interview {item.interview_id} (opening {item.opening_id}, last activity "
            f"{item.last_activity[:10]}, kept {item.retention_days} days): "
            f"{item.files} file(s), {item.bytes} bytes"
        )
    typer.echo(f"{len(items)} interview(s) past retention{' (dry run)' if dry_run else ''}")


def _safe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
