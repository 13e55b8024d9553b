"""`interviewer score`: (re)score one interview, or every interview of an opening, in this process.

The voice agent scores answers as they arrive (``scoring.process.ScorerProcess``); this command
is for catching up (after a crash, a model change or a rubric fix: ``--rescore``) and for demos.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from interviewer.cli._common import UrlOption, err_console, open_database, run_or_exit
from interviewer.errors import UserError
from interviewer.scoring import service
from interviewer.scoring.evidence import EvidenceFinder
from interviewer.scoring.judge import Judge
from interviewer.scoring.ranking import find_opening
from interviewer.store.db import session_scope
from interviewer.store.models import Interview


def score(
    interview_id: int | None = typer.Argument(
        None, metavar="[INTERVIEW_ID]", help="The interview to score."
    ),
    opening: str | None = typer.Option(
        None, "--opening", help="Score every interview of this opening (slug or id) instead."
    ),
    rescore: bool = typer.Option(
        False, "--rescore", help="Judge again questions that already have scores (replaces them)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Judge model (default: INTERVIEWER_SCORING_MODEL)."
    ),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Model directory (default: INTERVIEWER_MODEL_DIR)."
    ),
    evidence: bool = typer.Option(
        True, "--evidence/--no-evidence", help="Quote supporting sentences for each criterion."
    ),
    url: str | None = UrlOption,
) -> None:
    """Score answers against their rubrics with the local judge and write the scores."""
    # Before torch loads: idle OpenMP threads sleep instead of spinning on shared cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with run_or_exit():
        if (interview_id is None) == (opening is None):
            raise UserError("give one INTERVIEW_ID or --opening SLUG (see `interviewer score -h`)")

        engine = open_database(url)
        with session_scope(engine) as session:
            ids = [interview_id] if interview_id is not None else _interviews_of(session, opening)
            totals = {i: service.questions_to_score(session, i) for i in _existing(session, ids)}
        judge = Judge(model, model_dir)
        finder = EvidenceFinder(model_dir) if evidence else None
        results = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(
                f"loading the judge ({judge.dtype})", total=sum(totals.values()) or 1
            )
            judge.load()
            if finder is not None:
                finder.load()
            for i in totals:
                progress.update(task, description=f"interview {i}")
                results.append(  # never holding the database while the model runs
                    service.score_interview(
                        engine,
                        i,
                        judge,
                        finder,
                        rescore=rescore,
                        on_question=lambda _q: progress.advance(task),
                    )
                )
        _print(results, judge.model_name)


def _interviews_of(session, opening: str | None) -> list[int]:

    row = find_opening(session, opening)
    ids = list(
        session.scalars(
            select(Interview.id).where(Interview.opening_id == row.id).order_by(Interview.id)
        )
    )
    if not ids:
        raise UserError(f"opening {row.slug!r} has no interviews yet")
    return ids


def _existing(session, ids: list[int]) -> list[int]:

    for i in ids:
        if session.get(Interview, i) is None:
            raise UserError(f"no interview with id {i} in the database (`interviewer rank` lists)")
    return ids


def _print(results, model: str) -> None:
    table = Table(title=Text(f"Scored with {model}"))
    table.add_column("interview", justify="right")
    table.add_column("questions", justify="right")
    table.add_column("judged now", justify="right")
    table.add_column("score", justify="right")
    table.add_column("confidence", justify="right")
    for r in results:
        table.add_row(
            str(r.interview_id),
            str(len(r.questions)),
            str(sum(q.judgement is not None for q in r.questions)),
            "–" if r.score is None else f"{r.score * 100:.1f}",
            "–" if r.confidence is None else f"{r.confidence:.2f}",
        )
    Console().print(table)
