"""`interviewer models ...`: assemble and verify the packaged model weights."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model weights from installed packages.", no_args_is_help=True)
