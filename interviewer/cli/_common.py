"""Plumbing shared by the command modules.

``run_or_exit()`` is how every command reports a problem the user can fix: a ``UserError`` raised
inside it is printed as its one-line message in red on stderr and the command exits with status 1,
without a traceback (any other exception still shows one: that is a bug). Use it as a context
manager around the library call, or as a decorator under ``@app.command()``::

    @app.command()
    def install() -> None:
        with run_or_exit():
            weights.install()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from interviewer.errors import UserError

# Resolves sys.stderr at each print, so it also writes where CliRunner captures.
err_console = Console(stderr=True, highlight=False)


@contextmanager
def run_or_exit() -> Iterator[None]:
    try:
        yield
    except UserError as err:
        # soft_wrap: one line however narrow the terminal, so it can be grepped and copied whole.
        err_console.print(str(err), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
