"""`interviewer integrity analyze`: run the proctoring detectors over finished interviews again.

The web server does this by itself after each interview (``proctoring.pool.AnalysisPool``);
this command is for catching up (the server stopped first, thresholds changed, more applicants
answered so duplicates compare with more of them). It is always safe to repeat: each
detector's events are replaced, never duplicated (docs/proctoring.md).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from interviewer.cli._common import UrlOption, run_or_exit
from interviewer.config import get_settings
from interviewer.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Integrity events (proctoring) of interviews.")
console = Console(highlight=False)


@app.command("analyze")
def analyze(
    interview_ids: list[int] = typer.Argument(..., metavar="INTERVIEW_ID..."),
    url: str | None = UrlOption,
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Model directory (default: INTERVIEWER_MODEL_DIR)."
    ),
) -> None:
    """Camera, voice and answer detectors over each interview; stores events and summary."""
    # Lazy: loads the camera/voice detectors' libraries (about a second), only for this command.
    from interviewer.proctoring.analyze import analyze_and_summarize

    settings = get_settings()
    table = Table(title="Integrity analysis", title_justify="left")
    for column in ("interview", "events", "info", "warning", "high", "skipped"):
        table.add_column(column)
    with run_or_exit():
        for interview_id in interview_ids:
            try:
                detail = analyze_and_summarize(
                    url or settings.resolved_database_url,
                    str(settings.recordings_dir),
                    interview_id,
                    str(model_dir or settings.model_dir),
                )
            except LookupError:
                raise UserError(
                    f"no interview {interview_id} in the database: check the id "
                    "(`interviewer rank OPENING` lists them)"
                ) from None
            severity = detail["by_severity"]
            table.add_row(
                str(interview_id),
                str(detail["total"]),
                str(severity.get("info", 0)),
                str(severity.get("warning", 0)),
                str(severity.get("high", 0)),
                "; ".join(f"{k}: {v}" for k, v in detail["skipped"].items()) or "-",
            )
    console.print(table)
