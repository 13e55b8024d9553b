"""`make run`'s first look: `interviewer serve --seed-demo` interviews one demo opening's strong,
average and weak applicants in the background (espeak answers, tiny.en, the SmolLM2 judge), once,
and the shortlist badges them as demo data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from test_session_audio import ANSWERS, BANK
from web_support import make_settings

from interviewer.openings.demo import (
    DEMO_LEVELS,
    demo_email,
    interviewed,
    is_demo_email,
    start_demo_interviews,
)
from interviewer.openings.shortlist import load_shortlist
from interviewer.store.db import create_db_engine, session_scope
from interviewer.store.models import Answer, Applicant, Interview, InterviewState, Opening

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("interviewer")
WEAK = "I am not sure, I would have to look that up."


def _banks(folder: Path) -> Path:
    """The small audio bank, with demo answers: the strong applicant says the right thing, the
    average one half of it, the weak one nothing to the point."""
    folder.mkdir()
    (folder / f"{BANK.id}.yaml").write_text(yaml.safe_dump(BANK.model_dump(mode="json")))
    answers = {}
    for qid, (text, _) in ANSWERS.items():
        half = text.split(".")[0].split(",")[0] + "."
        answers[qid] = {"strong": text, "average": half, "weak": WEAK}
    practice = answers.pop("practice")
    demo = {"bank_id": BANK.id, "practice": practice, "answers": answers}
    (folder / "demo_answers").mkdir()
    (folder / "demo_answers" / f"{BANK.id}.yaml").write_text(yaml.safe_dump(demo))
    return folder


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_is_demo_email() -> None:
    assert all(is_demo_email(demo_email(level)) for level in DEMO_LEVELS)
    assert is_demo_email("browser-demo@example.invalid")
    assert not is_demo_email("demo-strong@example.com")
    assert not is_demo_email("ada@example.invalid")


def test_serve_seeds_scored_demo_interviews_once(tmp_path: Path, model_dir: Path) -> None:
    banks = _banks(tmp_path / "banks")
    settings = make_settings(
        tmp_path, banks_dir=banks, score_answers=True, scoring_model="smollm2-135m"
    )
    env = {
        **os.environ,
        "INTERVIEWER_DATA_DIR": str(settings.data_dir),
        "INTERVIEWER_DATABASE_URL": settings.resolved_database_url,
        "INTERVIEWER_RECORDINGS_DIR": str(settings.recordings_dir),
        "INTERVIEWER_BANKS_DIR": str(banks),
        "INTERVIEWER_SECRET_KEY": str(settings.secret_key),
        "INTERVIEWER_STT_MODEL": "tiny.en",
        "INTERVIEWER_SCORING_MODEL": "smollm2-135m",
        "INTERVIEWER_ANALYZE_INTEGRITY": "false",
        "INTERVIEWER_MODEL_DIR": str(model_dir),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("INTERVIEWER_DEMO_INTERVIEWS", None)  # the default: on
    levels = [demo_email(level) for level in DEMO_LEVELS]
    port = str(_port())
    serve = subprocess.Popen(
        [str(CLI), "serve", "--seed-demo", "--port", port],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    engine = None
    try:
        deadline = time.monotonic() + 900
        while engine is None or not interviewed(engine, BANK):
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
            assert time.monotonic() < deadline, (
                settings.data_dir / "demo-interviews.log"
            ).read_text()
            time.sleep(2)
            if engine is None and Path(settings.resolved_database_url[10:]).exists():
                engine = create_db_engine(settings.resolved_database_url)
        with session_scope(engine) as s:  # scored as they are stored: wait for the last one
            opening = s.scalars(select(Opening).where(Opening.slug == f"demo-{BANK.id}")).one()
            opening_id = opening.id
        while True:
            with session_scope(engine) as s:
                scores = s.scalars(
                    select(Interview.score)
                    .join(Applicant, Applicant.id == Interview.applicant_id)
                    .where(Interview.opening_id == opening_id, Applicant.email.in_(levels))
                ).all()
            if len(scores) == 3 and all(v is not None for v in scores):
                break
            assert time.monotonic() < deadline, scores
            time.sleep(2)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        out = serve.communicate(timeout=60)[0]
    assert "Interviewing the demo applicants in the background" in out, out

    with session_scope(engine) as s:
        opening = s.get(Opening, opening_id)
        sl = load_shortlist(s, opening)
        rows = sl.ranked + sl.unranked
        by_email = {r.email: r for r in rows}
        # the three interviewed, and the browser demo applicant's invite (--seed-demo's link)
        assert set(by_email) == {*levels, "browser-demo@example.invalid"}
        assert all(r.demo for r in rows)
        assert all(by_email[e].state == InterviewState.completed for e in levels)
        strong, weak = by_email[demo_email("strong")], by_email[demo_email("weak")]
        assert strong.score is not None and weak.score is not None
        answers = s.scalars(select(Answer).where(Answer.interview_id == strong.interview_id)).all()
        heard = " ".join(a.transcript.lower() for a in answers)
        assert {"green", "elephant", "paris"} <= set(re.findall(r"[a-z]+", heard)), heard
        assert all(a.audio_path for a in answers)  # playable: each answer's recording stored

    # once only: the next start finds them done; and the setting turns it off
    assert start_demo_interviews(engine, settings, [BANK]) is None
    off = settings.model_copy(update={"demo_interviews": False})
    with session_scope(engine) as s:
        s.execute(Interview.__table__.update().values(state=InterviewState.in_progress))
    assert not interviewed(engine, BANK)
    assert start_demo_interviews(engine, off, [BANK]) is None
