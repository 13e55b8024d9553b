"""`interviewer rank`, `interviewer audit`, `interviewer eval asag`: what the scores say.

``rank`` and ``audit`` read one opening from the database (``--url`` or the configured one);
``eval asag`` needs no database, only the models. Tables go to stdout, progress and problems to
stderr; applicant names and data-set text are user text and are never read as Rich markup.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import OperationalError, ProgrammingError

from interviewer import csvout
from interviewer.cli._common import (
    UrlOption,
    check_database,
    err_console,
    open_database,
    run_or_exit,
)
from interviewer.config import get_settings
from interviewer.errors import UserError
from interviewer.scoring import asag
from interviewer.scoring.audit import FOUR_FIFTHS, load_audit
from interviewer.scoring.ranking import display_score, integrity_summary, load_ranking
from interviewer.store.db import session_scope

eval_app = typer.Typer(help="Check the scorer against human-graded data.", no_args_is_help=True)

OpeningArg = typer.Argument(..., metavar="OPENING", help="Opening slug (or id).")


@contextmanager
def _session(url: str | None) -> Iterator[Any]:
    """A read session; a database that cannot be read (down, never migrated) is one line."""
    engine = open_database(url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with session_scope(engine) as session:
            yield session
    except (OperationalError, ProgrammingError) as err:
        check_database(engine)  # down or never migrated: says so in one line
        raise UserError(
            f"cannot read the database {where} ({str(err.orig).splitlines()[0]}): run "
            "`interviewer db current` to check its schema"
        ) from None


def _pct(value: float | None) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value * 100:.1f}")
    )


# --- rank --------------------------------------------------------------------------------------


def rank(
    opening: str = OpeningArg,
    top: int | None = typer.Option(
        None,
        "--top",
        min=1,
        help="Shortlist the top N (overrides the opening's rule).",
    ),
    csv_file: Path | None = typer.Option(
        None, "--csv", help="Write the ranking to this CSV file instead of a table."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the ranking as JSON."),
    url: str | None = UrlOption,
) -> None:
    """Applicants of an opening by interview score, with intervals, flags and the shortlist."""

    with run_or_exit():
        if csv_file and as_json:
            raise UserError("choose one of --csv FILE and --json, not both")
        with _session(url) as session:
            ranking = load_ranking(session, opening, top_n=top)
        if as_json:
            typer.echo(json.dumps(ranking.to_json(), ensure_ascii=False, indent=1))
            return
        if csv_file:
            rows = ranking.rows()
            with _open_for_writing(csv_file) as f:
                writer = csvout.DictWriter(f, fieldnames=list(rows[0]) if rows else ["rank"])
                writer.writeheader()
                writer.writerows(rows)
            typer.echo(f"{csv_file}: {len(rows)} interviews", err=True)
            return
        _print_ranking(ranking)


def _open_for_writing(path: Path):
    try:
        return Path(path).open("w", newline="", encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot write it ({err.strerror})") from None


def _print_ranking(ranking) -> None:

    console = Console()
    level = round(ranking.confidence * 100)
    table = Table(
        title=Text(f"{ranking.opening}: {len(ranking.ranked)} ranked"),
        caption=Text(
            f"Shortlist: {ranking.rule.describe()}. Scores 0-100; '=' marks a tie at the "
            f"displayed precision; '~' an interval overlapping the one above. Range: {level}% "
            "bootstrap over the questions."
        ),
    )
    table.add_column("rank", justify="right")
    table.add_column("applicant", overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("range", justify="right", no_wrap=True)
    table.add_column("answered", justify="right")
    table.add_column("integrity")
    table.add_column("shortlist", justify="center")
    for r in ranking.ranked:
        interval = "–" if r.low is None else f"{_pct(r.low)}–{_pct(r.high)}"
        flags = integrity_summary(r.integrity)
        table.add_row(
            f"{'=' if r.tied else ''}{r.rank}",
            Text(r.name),
            display_score(r.score),
            f"{interval}{' ~' if r.overlaps_previous else '  '}",
            f"{r.answered}/{r.questions}",
            Text(flags, style="red" if r.integrity.get("high") else ""),
            "✓" if r.shortlisted else "",
        )
    console.print(table)
    if ranking.unranked:
        rest = Table(title=Text(f"Not ranked: {len(ranking.unranked)}"))
        rest.add_column("applicant", overflow="fold")
        rest.add_column("state")
        rest.add_column("integrity")
        for u in ranking.unranked:
            rest.add_row(Text(u.name), Text(u.reason), Text(integrity_summary(u.integrity)))
        console.print(rest)


# --- audit -------------------------------------------------------------------------------------


def audit(
    opening: str = OpeningArg,
    csv_file: Path | None = typer.Option(
        None, "--csv", help="Also write the audit table to this CSV file."
    ),
    url: str | None = UrlOption,
) -> None:
    """Bias audit (NYC Local Law 144 method): selection and scoring rates, impact ratios."""

    with run_or_exit():
        with _session(url) as session:
            result = load_audit(session, opening)
        _print_audit(result)
        if csv_file:
            try:
                result.to_csv(csv_file)
            except OSError as err:
                raise UserError(f"{csv_file}: cannot write it ({err.strerror})") from None
            typer.echo(f"{csv_file}: {len(result.rows)} groups", err=True)


_CATEGORY_TITLES = {
    "sex": "Sex",
    "race_ethnicity": "Race/ethnicity",
    "intersectional": "Sex × race/ethnicity",
}


def _ratio(value: float | None) -> Text:
    if value is None:
        return Text("–")

    return Text(f"{value:.3f}", style="bold red" if value < FOUR_FIFTHS else "")


def _print_audit(result) -> None:
    console = Console()
    median = "–" if result.median is None else _pct(result.median)
    console.print(
        Text(
            f"{result.opening}: {result.total} scored applicants, {result.selected} selected "
            f"({result.rule}); median score {median}. Impact ratios under 0.8 in red; groups "
            f"under {result.min_share:.0%} of the data are counted but excluded from ratios; "
            "Unknown is reported, never in ratios."
        )
    )
    for category, title in _CATEGORY_TITLES.items():
        rows = result.category(category)
        if not rows:
            continue
        table = Table(title=title)
        table.add_column("group", overflow="fold")
        table.add_column("n (share)", justify="right")
        table.add_column("selected (rate)", justify="right")
        table.add_column("impact ratio", justify="right")
        table.add_column("above median (rate)", justify="right")
        table.add_column("impact ratio", justify="right")
        for r in rows:
            group = Text(r.group)
            if r.status == "excluded":
                group.append(f" (under {result.min_share:.0%}: not in ratios)", style="dim")
            table.add_row(
                group,
                f"{r.n} ({r.share:.1%})",
                f"{r.selected} ({r.selection_rate:.3f})",
                _ratio(r.selection_impact_ratio),
                f"{r.above_median} ({r.scoring_rate:.3f})",
                _ratio(r.scoring_impact_ratio),
            )
        console.print(table)


# --- eval asag ---------------------------------------------------------------------------------


@eval_app.command("asag")
def eval_asag(
    file: Path = typer.Argument(
        ...,
        metavar="FILE.csv",
        help="Graded answers: question,reference_answer,answer,human_score,max_score.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write the rows with all their columns plus `predicted`."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Score a fixed seeded sample of N rows."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the --limit samples."),
    model: Literal["qwen2.5-1.5b", "smollm2-135m"] | None = typer.Option(
        None,
        "--model",
        help="Judge model (default: INTERVIEWER_SCORING_MODEL).",
        show_default=False,
    ),
    calibrate: Path | None = typer.Option(
        None,
        "--calibrate",
        help="Other graded answers (e.g. the train split) to fit the mapping to the human "
        "scale on; never the file under test.",
    ),
    calibrate_limit: int | None = typer.Option(
        100, "--calibrate-limit", min=1, help="Seeded sample of the calibration file."
    ),
    mapping: Literal["fixed", "linear", "isotonic"] | None = typer.Option(
        None,
        "--mapping",
        help="Score -> human scale: fixed (default without --calibrate), linear (default "
        "with it) or isotonic.",
        show_default=False,
    ),
    model_dir: Path | None = typer.Option(
        None, "--model-dir", help="Model directory (default: INTERVIEWER_MODEL_DIR)."
    ),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="JSONL file of judge scores: reused, and appended to as rows are scored, so an "
        "interrupted run resumes.",
    ),
) -> None:
    """Agreement of the rubric judge with human grades, next to an embedding baseline."""
    import os

    # Before torch loads: idle OpenMP threads sleep rather than spin on a shared machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with run_or_exit():
        rows = asag.sample(asag.read_csv(file), limit, seed)
        calibration = []
        if calibrate is not None:
            if calibrate.resolve() == file.resolve():
                raise UserError(
                    f"{calibrate}: the calibration file is the file under test; calibrate on "
                    "another split (`python scripts/asag_to_csv.py saf --split train -o T.csv`)"
                )
            calibration = asag.sample(asag.read_csv(calibrate), calibrate_limit, seed)
        model = model or get_settings().scoring_model
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        with progress:
            loading = progress.add_task(f"load {model} and the embedder", total=None)
            judge = asag.judge_scorer(model, model_dir, cache)
            baseline = asag.embedding_scorer(model_dir)
            progress.remove_task(loading)
            result = asag.evaluate(
                rows, judge, baseline, calibration=calibration, mapping=mapping, progress=progress
            )
        _print_eval(result, file, model)
        if out:
            try:
                result.write_csv(out)
            except OSError as err:
                raise UserError(f"{out}: cannot write it ({err.strerror})") from None
            typer.echo(f"{out}: {len(result.rows)} rows with predictions", err=True)


def _print_eval(result, file: Path, model: str) -> None:
    def number(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    calibration = (
        f", fitted on {result.calibration_rows} calibration rows" if result.calibration_rows else ""
    )
    table = Table(
        title=Text(f"{file.name}: {len(result.rows)} answers, judge {model}"),
        caption=Text(
            f"On score / max_score. Mapping to the human scale: {result.mapping}{calibration}. "
            "QWK on scores rounded to quarters."
        ),
    )
    table.add_column("scorer")
    for name in ("Pearson r", "Spearman rho", "RMSE", "QWK"):
        table.add_column(name, justify="right")
    for name, m in result.metrics.items():
        table.add_row(name, number(m.pearson), number(m.spearman), number(m.rmse), number(m.qwk))
    Console().print(table)
