"""How fast do 1 and 2 `interviewer scorer` processes drain a burst of interviews' answers?

    .venv/bin/python bench/scorers.py --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        [--interviews 20] [--bank question_banks/software-engineering.yaml] \
        [--model smollm2-135m] [--scorers 1 2]

For each scorer count: a fresh database (a new one on the server of --url; SQLite when --url
is a sqlite URL), the scorers started and their models loaded, then the answers of
--interviews interviews handed to them at once (the interviews marked completed; each
question answered with its reference answer); the figure is the time from that burst to
the last score, and answers per minute. Each scorer gets an equal share of the CPUs as
torch threads. While the backlog drains, every --every seconds a progress line shows what the
admin page and `interviewer scorer --status` show: the backlog and each scorer's count so far.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select, update

from interviewer.banks.check import load_bank
from interviewer.scoring.claims import status
from interviewer.store import repo
from interviewer.store.db import create_db_engine, dispose_engine, migrate, session_scope
from interviewer.store.models import Answer, AnswerStatus, Interview, InterviewState

ROOT = Path(__file__).resolve().parents[1]


def fresh_database(url: str) -> tuple[str, str | None]:
    """A new empty database on the server of ``url``: (its url, its name to drop)."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    import psycopg  # lazy: only for a PostgreSQL --url

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(url: str, name: str | None) -> None:
    if name is None:
        return
    import psycopg  # lazy: only for a PostgreSQL --url

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store(engine: object, bank_path: Path, interviews: int) -> int:
    """Store ``interviews`` interviews' answers, not yet visible to scorers (the interviews
    are still ``invited``: ``burst`` completes them all at once); how many questions."""
    bank = load_bank(bank_path)
    stored = 0
    with session_scope(engine) as s:
        version = repo.publish_bank(s, bank)
        opening = repo.create_opening(s, slug="bench", title=bank.title, bank_version=version)
        for n in range(interviews):
            applicant = repo.create_applicant(s, name=f"B{n}", email=f"b{n}@example.invalid")
            interview = Interview(
                opening_id=opening.id,
                applicant_id=applicant.id,
                bank_version_id=version.id,
            )
            s.add(interview)
            s.flush()
            for i, question in enumerate(bank.questions):
                s.add(
                    Answer(
                        interview_id=interview.id,
                        question_id=question.id,
                        question_index=i,
                        status=AnswerStatus.answered,
                        transcript=question.reference_answer,
                    )
                )
                stored += 1
    return stored


def burst(engine: object) -> None:
    with session_scope(engine) as s:
        s.execute(update(Interview).values(state=InterviewState.completed))


def unscored(engine: object) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count(Answer.id)).where(Answer.scored_at.is_(None))) or 0)


def progress(engine: object, elapsed_s: float) -> str:
    """One line of the scorers' progress, read as the admin page reads it (claims.status)."""
    elapsed_s = max(elapsed_s, 1.0)
    st = status(engine, minutes=elapsed_s / 60)  # type: ignore[arg-type]
    per = ", ".join(
        f"pid {r.scorer.rsplit(':', 1)[-1]} {r.scored} ({r.scored / elapsed_s * 60:.1f}/min)"
        for r in st.scorers
    )
    return f"{elapsed_s:6.1f} s: backlog {st.backlog}, judging {st.claimed}; judged {per or '0'}"


def run(url: str, scorers: int, args: argparse.Namespace) -> tuple[int, float]:
    db_url, name = fresh_database(url)
    engine = create_db_engine(db_url)
    migrate(engine)
    env = dict(os.environ, INTERVIEWER_DATABASE_URL=db_url, INTERVIEWER_SCORING_MODEL=args.model)
    threads = max(1, len(os.sched_getaffinity(0)) // scorers)
    command = [sys.executable, "-c", "from interviewer.cli import app; app()", "scorer"]
    procs = [
        subprocess.Popen(
            [*command, "--interval", "0.2", "--threads", str(threads), "--until-idle"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(scorers)
    ]
    questions = store(engine, args.bank, args.interviews)
    try:
        for p in procs:
            assert p.stdout is not None
            print("  " + p.stdout.readline().strip(), flush=True)  # the model is loaded
        burst(engine)
        start = time.monotonic()
        shown = start
        while unscored(engine):
            time.sleep(0.2)
            if time.monotonic() - shown >= args.every:
                shown = time.monotonic()
                print("  " + progress(engine, shown - start), flush=True)
        drain = time.monotonic() - start
        print("  " + progress(engine, drain), flush=True)
    finally:
        for p in procs:
            p.wait(60)
        dispose_engine(db_url)
        drop_database(url, name)
    return questions, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="PostgreSQL (or sqlite) database URL")
    parser.add_argument("--interviews", type=int, default=20)
    parser.add_argument(
        "--bank", type=Path, default=ROOT / "question_banks" / "software-engineering.yaml"
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--scorers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--every", type=float, default=15.0, help="seconds between progress lines")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, model {args.model}, {args.interviews} interviews", flush=True)
    for n in args.scorers:
        questions, drain = run(args.url, n, args)
        rate = questions / drain * 60
        print(f"{n} scorer(s): {questions} answers drained in {drain:.1f} s = {rate:.1f}/min")


if __name__ == "__main__":
    main()
