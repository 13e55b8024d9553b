"""Several scorers sharing one database's answers (interviewer.scoring.claims): each question
judged once, a killed scorer's question retaken after its lease, progress in ``--status``.

The process tests run the real ``interviewer scorer`` command, twice, on a real PostgreSQL
database with SmolLM2 (the code path, not the agreement) and kill one with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from web_support import FIXTURE_ANSWERS, FIXTURE_BANK, make_settings, seed_interview

from interviewer.scoring import claims
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    CriterionScore,
    Interview,
    InterviewState,
    ScoringClaim,
    utcnow,
)

QUESTIONS = [q.id for q in FIXTURE_BANK.questions]


def _seed(tmp_path: Path, db_url: str, interviews: int) -> tuple[Any, list[int]]:
    """``interviews`` interviews under way, each with both questions answered: the attempt-0
    answer ids (one per question, the unit a scorer claims)."""
    settings = make_settings(tmp_path, database_url=db_url)
    primaries = []
    engine = None
    for n in range(interviews):
        seeded = seed_interview(settings, email=f"a{n}@example.invalid")
        engine = seeded.engine
        with session_scope(engine) as s:
            s.get(Interview, seeded.interview_id).state = InterviewState.in_progress
            for i, qid in enumerate(QUESTIONS):
                answer = Answer(
                    interview_id=seeded.interview_id,
                    question_id=qid,
                    question_index=i,
                    status=AnswerStatus.answered,
                    transcript=FIXTURE_ANSWERS[qid][0],
                )
                repo.save_answer(s, answer)
                primaries.append(answer.id)
    return engine, primaries


def _ok_claims(engine: Any) -> Counter[int]:
    with session_scope(engine) as s:
        rows = s.scalars(select(ScoringClaim.answer_id).where(ScoringClaim.outcome == "ok"))
        return Counter(rows)


def test_concurrent_claims_take_each_question_once(db_url: str, tmp_path: Path) -> None:
    """Four threads claiming at once (no model: a claim is marked scored by hand): every
    question is claimed by exactly one of them, on SQLite and on PostgreSQL."""
    engine, primaries = _seed(tmp_path, db_url, 8)
    taken: dict[str, list[int]] = {}

    def scorer(name: str) -> None:
        mine = taken.setdefault(name, [])
        while (got := claims.claim(engine, name, lease_s=60)) is not None:
            answer_id, claim_id = got
            mine.append(answer_id)
            with session_scope(engine, write=True) as s:
                s.get(Answer, answer_id).scored_at = utcnow()
            claims.release(engine, answer_id, claim_id, name, "ok")

    threads = [threading.Thread(target=scorer, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [a for mine in taken.values() for a in mine]
    assert sorted(claimed) == sorted(primaries)
    assert _ok_claims(engine) == Counter(primaries)
    status = claims.status(engine)
    assert (status.backlog, status.claimed) == (0, 0)
    assert sum(r.scored for r in status.scorers) == len(primaries)


def test_a_lease_expires_and_is_retaken(db_url: str, tmp_path: Path) -> None:
    engine, primaries = _seed(tmp_path, db_url, 1)
    first = claims.claim(engine, "dead", lease_s=3)
    assert first is not None and first[0] == primaries[0]
    second = claims.claim(engine, "alive", lease_s=60)
    assert second is not None and second[0] == primaries[1]  # the leased one is skipped
    assert claims.claim(engine, "alive", lease_s=60) is None
    assert claims.status(engine).claimed == 2
    time.sleep(3.2)
    again = claims.claim(engine, "alive", lease_s=60)
    assert again is not None and again[0] == primaries[0]
    with session_scope(engine) as s:
        assert s.get(Answer, primaries[0]).claimed_by == "alive"


# --- real scorer processes ---------------------------------------------------------------------


def _start_scorer(db_url: str, model_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        INTERVIEWER_DATABASE_URL=db_url,
        INTERVIEWER_SCORING_MODEL="smollm2-135m",
        INTERVIEWER_MODEL_DIR=str(model_dir),
        INTERVIEWER_BACKGROUND_NICENESS="0",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    command = [sys.executable, "-c", "from interviewer.cli import app; app()", "scorer"]
    return subprocess.Popen(
        [*command, "--interval", "0.2", "--threads", "1", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until_started(procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    """Wait for each scorer's first line (its model is loaded)."""
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("scorer "), line + p.stdout.read()


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _until_scored(engine: Any, primaries: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine) as s:
            left = s.scalar(
                select(func.count(Answer.id)).where(
                    Answer.id.in_(primaries), Answer.scored_at.is_(None)
                )
            )
        if left == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"{left} answers still unscored after {timeout} s")


def _assert_scored_once(engine: Any, primaries: list[int]) -> None:
    assert _ok_claims(engine) == Counter(primaries)  # one finished judgement each
    with session_scope(engine) as s:
        for answer_id in primaries:
            answer = s.get(Answer, answer_id)
            assert answer.scored_at is not None and answer.lease_until is None
            rows = s.scalars(
                select(CriterionScore).where(CriterionScore.answer_id == answer_id)
            ).all()
            assert rows and all(r.model == "smollm2-135m" for r in rows)
        scored = s.scalars(select(Interview.score).where(Interview.score.is_not(None))).all()
        assert len(scored) == len(primaries) // len(QUESTIONS)  # every interview's score


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_scorer_processes_share_30_answers(
    db_url: str, tmp_path: Path, model_dir: Path
) -> None:
    settings = make_settings(tmp_path, database_url=db_url)
    seed_interview(settings, email="warm@example.invalid")  # the schema, before scorers poll
    procs = [_start_scorer(db_url, model_dir) for _ in range(2)]
    try:
        _until_started(procs)
        engine, primaries = _seed(tmp_path, db_url, 15)
        assert len(primaries) == 30
        _until_scored(engine, primaries, 50)
        time.sleep(0.6)  # a few more polls: nothing is judged twice
    finally:
        _stop(procs)
    _assert_scored_once(engine, primaries)
    with session_scope(engine) as s:
        by = Counter(s.scalars(select(ScoringClaim.scorer)))
    assert len(by) == 2, by  # both took a share
    status = claims.status(engine)
    assert status.backlog == 0 and sum(r.scored for r in status.scorers) == 30


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_scorer_killed_mid_answer_leaves_it_to_the_other(
    db_url: str, tmp_path: Path, model_dir: Path
) -> None:
    settings = make_settings(tmp_path, database_url=db_url)
    seed_interview(settings, email="warm@example.invalid")
    victim = _start_scorer(db_url, model_dir, "--lease", "4")
    _until_started([victim])
    engine, primaries = _seed(tmp_path, db_url, 3)
    name = None
    deadline = time.monotonic() + 30
    while name is None and time.monotonic() < deadline:
        with session_scope(engine) as s:
            held = s.scalars(select(Answer).where(Answer.lease_until.is_not(None))).first()
        if held is not None and held.scored_at is None:
            name, killed_answer = held.claimed_by, held.id
            os.kill(victim.pid, signal.SIGKILL)
        time.sleep(0.02)
    victim.wait(10)
    assert name is not None and name.endswith(f":{victim.pid}")
    survivor = _start_scorer(db_url, model_dir, "--lease", "4")
    try:
        _until_started([survivor])
        _until_scored(engine, primaries, 40)
        time.sleep(0.6)
    finally:
        _stop([survivor])
    _assert_scored_once(engine, primaries)
    with session_scope(engine) as s:
        log = s.scalars(
            select(ScoringClaim)
            .where(ScoringClaim.answer_id == killed_answer)
            .order_by(ScoringClaim.id)
        ).all()
    assert [(c.scorer == name, c.outcome) for c in log] == [(True, None), (False, "ok")]


def test_admin_page_shows_backlog_and_scorer_rates(db_url: str, tmp_path: Path) -> None:
    """What `interviewer scorer --status` prints is on the admin's Users page too."""
    from fastapi.testclient import TestClient
    from web_support import csrf_token

    from interviewer import accounts
    from interviewer.store.models import Role
    from interviewer.web import create_app
    from interviewer.web.live import VoiceOptions

    engine, primaries = _seed(tmp_path, db_url, 3)
    for _ in range(2):
        got = claims.claim(engine, "scorer-a", lease_s=60)
        assert got is not None
        with session_scope(engine, write=True) as s:
            s.get(Answer, got[0]).scored_at = utcnow()
        claims.release(engine, got[0], got[1], "scorer-a", "ok")
    assert claims.claim(engine, "scorer-b", lease_s=60) is not None  # one being judged
    with session_scope(engine) as s:
        accounts.create_user(
            s, email="admin@example.org", role=Role.admin, password="pw " * 6, name="Ad"
        )
    settings = make_settings(tmp_path, database_url=db_url)
    with TestClient(create_app(settings, voice=VoiceOptions(warm_up=False))) as client:
        form = {"email": "admin@example.org", "password": "pw " * 6}
        login = client.post("/login", data={**form, "csrf_token": csrf_token(client, "/")})
        assert login.status_code in (200, 303)
        page = client.get("/users").text
    waiting = len(primaries) - 3
    assert f"{waiting} questions waiting for a scorer; 1 being judged now." in page, page
    row = page[page.index('data-scorer="scorer-a"') :].split("</tr>")[0]
    assert '<td class="num">2</td>' in row and "0.20" in row, row  # 2 in 10 minutes
