"""`interviewer applicant export|delete EMAIL`: an applicant's access and erasure requests.

The person is found by email address (case-insensitive), across every opening: one invite per
opening makes one applicant row each, and the request covers them all. See privacy.py.
"""

from __future__ import annotations

from pathlib import Path

import typer

from interviewer import privacy
from interviewer.cli._common import open_database, run_or_exit
from interviewer.config import get_settings
from interviewer.errors import UserError
from interviewer.store.db import session_scope
from interviewer.store.recordings import Recordings
from interviewer.store.storage import open_storage

app = typer.Typer(help="An applicant's personal data: export or delete on request.")


def _find(email: str) -> tuple[object, Recordings, list[int], list[int]]:
    settings = get_settings()
    engine = open_database(settings.resolved_database_url, schema="check")
    with session_scope(engine) as s:
        interviews = privacy.interviews_of_email(s, email)
        applicants = privacy.applicants_of_email(s, email)
    if not applicants:
        raise UserError(
            f"no applicant with email {email!r} in the database: check the address "
            "(the opening's shortlist lists its applicants)"
        )
    return engine, open_storage(settings), interviews, applicants


@app.command()
def export(
    email: str = typer.Argument(..., help="The applicant's email address."),
    out: Path = typer.Option(..., "--out", "-o", help="The zip file to write."),
) -> None:
    """Write everything stored about one person (reports, recordings, their record) to a zip."""
    with run_or_exit():
        engine, recordings, interviews, applicants = _find(email)
        with out.open("wb") as f:  # written as it is zipped: recordings may be gigabytes
            privacy.write_export(engine, recordings, interviews, f, applicant_ids=applicants)
    typer.echo(f"wrote {out} ({out.stat().st_size} bytes, {len(interviews)} interview(s))")


@app.command()
def delete(
    email: str = typer.Argument(..., help="The applicant's email address."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete one person's recordings, transcripts, scores, events and record, everywhere."""
    with run_or_exit():
        engine, recordings, interviews, applicants = _find(email)
        if not yes:
            typer.confirm(
                f"Delete everything about {email} ({len(interviews)} interview(s))? "
                "This cannot be undone",
                abort=True,
            )
        result = privacy.delete_interviews(engine, recordings, interviews, applicant_ids=applicants)
    typer.echo(
        f"deleted {len(result.interviews)} interview(s), {result.files} file(s), "
        f"{sum(result.rows.values())} row(s); logged in the audit log"
    )
