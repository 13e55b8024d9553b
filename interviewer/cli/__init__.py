"""The `interviewer` command: one Typer group per concern, each a thin call into the library.

Each concern keeps its commands in its own module here; this file only assembles them.
"""

from __future__ import annotations

import typer

from interviewer.cli import applicant, bank, db, integrity, models, scoring, storage, users
from interviewer.cli.interview import demo, interview
from interviewer.cli.score import score
from interviewer.cli.serve import serve
from interviewer.cli.transcribe import transcribe
from interviewer.cli.turns import turns
from interviewer.cli.voice import say
from interviewer.cli.worker import scorer, worker

app = typer.Typer(
    name="interviewer",
    help="Self-hosted AI-proctored voice interviews.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

app.add_typer(models.app, name="models")
app.add_typer(bank.app, name="bank")
app.add_typer(db.app, name="db")
app.add_typer(applicant.app, name="applicant")
app.command("transcribe")(transcribe)
app.command("say")(say)
app.command("turns")(turns)
app.command("interview")(interview)
app.command("demo")(demo)
app.command("rank")(scoring.rank)
app.command("audit")(scoring.audit)
app.command("score")(score)
app.add_typer(scoring.eval_app, name="eval")
app.command("serve")(serve)
app.command("worker")(worker)
app.command("scorer")(scorer)
app.add_typer(storage.app, name="storage")
app.add_typer(users.app, name="user")
app.add_typer(integrity.app, name="integrity")
