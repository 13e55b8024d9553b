"""`interviewer bank ...`: question-bank tools for domain leads."""

from __future__ import annotations

import typer

app = typer.Typer(help="Question banks.", no_args_is_help=True)
