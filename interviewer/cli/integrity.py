"""`interviewer integrity analyze`: run the proctoring detectors over finished interviews again;
`interviewer integrity voices`: the second-voice check on WAV files, as the analysis runs it.

The web server does this by itself after each interview (``proctoring.pool.AnalysisPool``);
this command is for catching up (the server stopped first, thresholds changed, more applicants
answered so duplicates compare with more of them). It is always safe to repeat: each
detector's events are replaced, never duplicated (docs/proctoring.md).
"""

from __future__ import annotations

import json
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


@app.command("voices")
def voices_command(
    answers: list[Path] = typer.Argument(..., metavar="ANSWER.wav...", exists=True),
    practice: Path | None = typer.Option(
        None, "--practice", exists=True, help="The applicant's practice answer (WAV)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per answer: file, second_voice, stretches."
    ),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Model directory (default: INTERVIEWER_MODEL_DIR)."
    ),
) -> None:
    """For each answer: is a second voice present, and where (the product's detector and
    default thresholds). An answer wholly in another voice than the practice is one stretch."""
    # Lazy: torch, scipy and the speaker encoder, only for this command.
    import numpy as np

    from interviewer.proctoring import speakers, voices
    from interviewer.proctoring.thresholds import ProctoringThresholds

    def read(path: Path) -> np.ndarray:
        try:
            return voices.read_wav(path)
        except (ValueError, EOFError, OSError) as err:
            raise UserError(f"{path}: not a readable 16-bit PCM WAV file ({err})") from None

    thresholds = ProctoringThresholds()
    with run_or_exit():
        encoder = speakers.SpeakerEncoder.load(model_dir or get_settings().model_dir)
        reference = None
        if practice is not None:
            reference = speakers.windows(encoder, read(practice)).voice()
            if reference is None:
                raise UserError(f"{practice}: no speech found in the practice answer")
        table = Table(title="Second voices", title_justify="left")
        for column in ("file", "second voice", "where (s)", "similarity", "sure"):
            table.add_column(column)
        for answer in answers:
            found = speakers.second_voices(
                speakers.windows(encoder, read(answer)), reference, thresholds
            )
            if as_json:
                line = {
                    "file": str(answer),
                    "second_voice": bool(found),
                    "stretches": [s.as_dict() for s in found],
                }
                typer.echo(json.dumps(line))
                continue
            table.add_row(
                str(answer),
                "yes" if found else "no",
                ", ".join(f"{s.start_s:g}-{s.end_s:g}" for s in found) or "-",
                ", ".join(f"{s.similarity:.2f}" for s in found) or "-",
                ", ".join(s.sure for s in found) or "-",
            )
    if not as_json:
        console.print(table)
