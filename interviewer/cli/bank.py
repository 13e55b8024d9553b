"""`interviewer bank ...`: question-bank tools for domain leads.

Problems print as plain ``file:line: message (fix: ...)`` lines, not through Rich, so they never
wrap and editors and CI can jump to them. Tables (``list``, ``show``) use Rich, with every piece
of bank text escaped: a bank is user text and ``[bold]`` in a prompt must print as written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interviewer.banks.check import CheckResult, LoadedBank, check
from interviewer.banks.drafts import BankStore
from interviewer.banks.reference import schema_reference
from interviewer.cli._common import run_or_exit
from interviewer.config import get_settings
from interviewer.errors import BankError

app = typer.Typer(help="Question banks.", no_args_is_help=True)

PathsArg = typer.Argument(
    None,
    help="Bank files or folders of banks (default: INTERVIEWER_BANKS_DIR, question_banks/).",
    show_default=False,
)


def _paths(paths: list[Path] | None) -> list[Path]:
    return list(paths) if paths else [get_settings().banks_dir]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _warn_problems(result: CheckResult, paths: list[Path]) -> None:
    if result.problems:
        where = " ".join(str(p) for p in paths)
        typer.echo(
            f"banks with problems are left out ({_plural(len(result.problems), 'problem')}): "
            f"run `interviewer bank validate {where}`",
            err=True,
        )


@app.command()
def validate(paths: list[Path] | None = PathsArg) -> None:
    """Check bank files and report every problem with its line and a fix."""
    result = check(_paths(paths))
    for problem in result.problems:
        typer.echo(str(problem))
    banks = _plural(len(result.banks), "bank")
    if result.problems:
        files = len({p.file for p in result.problems})
        typer.echo(
            f"{_plural(len(result.problems), 'problem')} in {_plural(files, 'path')}; {banks} OK"
        )
        raise typer.Exit(1)
    typer.echo(f"{banks} OK")


@app.command("list")
def list_banks(paths: list[Path] | None = PathsArg) -> None:
    """Table of the banks that load cleanly."""
    paths = _paths(paths)
    result = check(paths)
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("version")
    table.add_column("title")
    table.add_column("questions")
    table.add_column("file", overflow="fold")
    for loaded in result.banks:
        bank = loaded.bank
        table.add_row(
            Text(bank.id),
            str(bank.version),
            Text(bank.title),
            str(len(bank.questions)),
            Text(str(loaded.path)),
        )
    with run_or_exit():
        if not result.banks:
            where = " ".join(str(p) for p in paths)
            raise BankError(
                f"no bank in {where} loads ({_plural(len(result.problems), 'problem')}); "
                f"run `interviewer bank validate {where}`"
            )
    Console().print(table)
    _warn_problems(result, paths)


@app.command()
def show(
    bank_id: str = typer.Argument(
        ..., metavar="ID", help="Bank id, as in `interviewer bank list`."
    ),
    paths: list[Path] | None = PathsArg,
) -> None:
    """Questions of one bank with a summary of each rubric."""
    paths = _paths(paths)
    result = check(paths)
    loaded = next((b for b in result.banks if b.bank.id == bank_id), None)
    if loaded is None:
        _warn_problems(result, paths)
        known = ", ".join(sorted(b.bank.id for b in result.banks)) or "none"
        with run_or_exit():
            raise BankError(
                f"no bank with id {bank_id!r} in {' '.join(str(p) for p in paths)} "
                f"(banks: {known}); run `interviewer bank list`"
            )
    _print_bank(loaded)


def _print_bank(loaded: LoadedBank) -> None:
    console, bank = Console(), loaded.bank
    console.print(Text.assemble((bank.title, "bold"), f"  {bank.id} v{bank.version}"))
    console.print(
        Text(f"domain {bank.domain} · language {bank.language} · {loaded.path}", style="dim")
    )
    console.print(Text(bank.description))
    console.print(Text.assemble(("Practice (unscored): ", "italic"), bank.practice_question))
    for number, question in enumerate(bank.questions, 1):
        rubric = question.rubric
        total = sum(c.weight for c in rubric.criteria)
        console.print()
        console.print(
            Text.assemble((f"{number}. {question.id}", "bold"), f"  ({question.time_limit_s} s)")
        )
        console.print(Text(question.prompt), soft_wrap=False)
        table = Table("criterion", "weight", "scores", "key points", box=None, padding=(0, 2))
        for criterion in rubric.criteria:
            scores = sorted(level.score for level in criterion.levels)
            table.add_row(
                Text(criterion.id),
                f"{criterion.weight:g} ({criterion.weight / total:.0%})",
                f"{scores[0]}-{scores[-1]} ({len(scores)} levels)",
                Text(", ".join(k.id for k in criterion.key_points) or "-"),
            )
        console.print(table)
        for flag in rubric.red_flags:
            console.print(
                Text.assemble(("  red flag ", "red"), f"{flag.id} (-{flag.penalty:.0%}): ")
                + Text(flag.description)
            )
        for follow_up in question.follow_ups:
            console.print(
                Text.assemble(("  follow-up ", "cyan"), f"if {follow_up.trigger} is missed: ")
                + Text(follow_up.prompt)
            )


UrlOption = typer.Option(
    None, "--url", help="SQLAlchemy URL; default: INTERVIEWER_DATABASE_URL or the SQLite file."
)


def _store(url: str | None, banks_dir: Path | None) -> BankStore:
    from interviewer.store import db

    settings = get_settings()
    engine = db.create_db_engine(url)
    db.migrate(engine)
    return BankStore(banks_dir or settings.banks_dir, engine, settings.data_dir / "locks")


STATE_TEXT = {
    "published": "published",
    "ready": "ready to publish",
    "invalid": "has problems",
    "older": "older than the latest version",
    "no-draft": "no draft file",
}


@app.command()
def status(
    url: str | None = UrlOption,
    banks_dir: Path | None = typer.Option(None, "--banks-dir", help="Default: question_banks/."),
) -> None:
    """Each bank's draft (its YAML file) against its published versions (the database)."""
    with run_or_exit():
        summaries = _store(url, banks_dir).summaries()
    table = Table()
    for column in ("id", "draft", "state", "published", "openings"):
        table.add_column(column)
    for summary in summaries:
        table.add_row(
            Text(summary.bank_id),
            Text(f"{summary.draft.file} v{summary.draft_version or '?'}" if summary.draft else "-"),
            Text(STATE_TEXT.get(summary.state, summary.state)),
            ", ".join(str(v.version) for v in summary.versions) or "-",
            str(sum(len(v.openings) for v in summary.versions)),
        )
    Console().print(table)


@app.command()
def publish(
    bank_id: str = typer.Argument(
        ..., metavar="ID", help="Bank id, as in `interviewer bank list`."
    ),
    url: str | None = UrlOption,
    banks_dir: Path | None = typer.Option(None, "--banks-dir", help="Default: question_banks/."),
) -> None:
    """Publish a bank's draft file as its version (immutable afterwards), as the web editor's
    Publish button does: validated first; a version number already used for other content is
    refused with the next free number."""
    with run_or_exit():
        store = _store(url, banks_dir)
        draft = store.draft(bank_id)
        if draft is None:
            raise BankError(
                f"no draft file with `id: {bank_id}` in {store.banks_dir}; run "
                "`interviewer bank status` to see the banks"
            )
        published = store.publish(bank_id, draft.sha)
    row = published.row
    if published.created:
        typer.echo(f"published {bank_id} version {row.version} (sha256 {row.sha256[:12]})")
    else:
        typer.echo(f"{bank_id} version {row.version} is already published with this content")


@app.command()
def schema() -> None:
    """Print the bank field reference (Markdown) that docs/question-banks.md embeds."""
    typer.echo(schema_reference(), nl=False)
