"""The demo data a first `make run` shows: which applicants are demo ones, and the background run
that interviews one demo opening's strong, average and weak applicants through the real pipeline.

Demo applicants are known by their addresses (``demo-strong@example.invalid``, the browser demo's
``browser-demo@example.invalid``; ``.invalid`` never delivers mail), so the shortlist can badge
them without a column of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select

from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.store.db import session_scope
from interviewer.store.models import Applicant, Interview, InterviewState, Opening

DEMO_LEVELS = ("strong", "average", "weak")
DEMO_DOMAIN = "example.invalid"
PREFERRED_BANK = "software-engineering"
"""The opening interviewed in the background when its bank is there (else the first one)."""


def demo_email(level: str) -> str:
    return f"demo-{level}@{DEMO_DOMAIN}"


def is_demo_email(email: str) -> bool:
    local, _, domain = email.partition("@")
    return domain == DEMO_DOMAIN and (
        local in {f"demo-{level}" for level in DEMO_LEVELS} or local == "browser-demo"
    )


def pick_bank(banks: list[Bank]) -> Bank | None:
    for bank in banks:
        if bank.id == PREFERRED_BANK:
            return bank
    return banks[0] if banks else None


def interviewed(engine: Engine, bank: Bank) -> bool:
    """Every demo level has a completed interview in the bank's demo opening: seeded already (a
    half-done one is resumed by the next start, never started again)."""
    slug = f"demo-{bank.id}"[:64]
    emails = [demo_email(level) for level in DEMO_LEVELS]
    with session_scope(engine) as s:
        done = s.scalars(
            select(Applicant.email)
            .join(Interview, Interview.applicant_id == Applicant.id)
            .join(Opening, Opening.id == Interview.opening_id)
            .where(
                Opening.slug == slug,
                Applicant.email.in_(emails),
                Interview.state == InterviewState.completed,
            )
        ).all()
    return set(done) == set(emails)


def start_demo_interviews(
    engine: Engine, settings: Settings, banks: list[Bank]
) -> subprocess.Popen[bytes] | None:
    """Interview one demo opening's three applicants in a child process (`interviewer demo
    --score`: espeak answers, whisper, the scorer), unless done before or turned off. A child,
    not a thread: whisper and the judge would otherwise share the web app's process and GIL.
    Its output goes to ``data_dir/demo-interviews.log``."""
    bank = pick_bank(banks)
    if not settings.demo_interviews or bank is None or interviewed(engine, bank):
        return None
    log = Path(settings.data_dir) / "demo-interviews.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from interviewer.cli import app; app()", "demo"]
    command += ["--banks", bank.id, "--score"]
    env = dict(os.environ, INTERVIEWER_DATABASE_URL=settings.resolved_database_url)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,  # the URL in the environment, not on a command line `ps` shows
            preexec_fn=lambda: os.nice(10),  # live interviews on this machine come first
        )
