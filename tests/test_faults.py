"""Hold under faults (issue 18): the server SIGKILLed mid-answer, PostgreSQL restarted
mid-interview, the recordings disk full. Each runs `interviewer serve` as a child process and an
applicant on its socket (tests/fault_support.py); nothing stored before the fault may be lost or
changed, and the applicant is told what happened in words, never a stack trace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_support import Server, Visit, answer_clips, visit
from sqlalchemy import select
from web_support import FIXTURE_ANSWERS, make_settings, seed_interview

from interviewer.store.db import create_db_engine, dispose_engine, session_scope
from interviewer.store.models import Answer, AnswerStatus, Interview, InterviewState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    return answer_clips()


def _answers(url: str, interview_id: int) -> dict[str, dict[str, Any]]:
    with session_scope(create_db_engine(url)) as s:
        rows = s.scalars(select(Answer).where(Answer.interview_id == interview_id)).all()
        return {
            a.question_id: {
                "attempt": a.attempt,
                "status": a.status,
                "transcript": a.transcript,
                "audio_path": a.audio_path,
            }
            for a in rows
        }


def _interview(url: str, interview_id: int) -> tuple[InterviewState, int]:
    with session_scope(create_db_engine(url)) as s:
        row = s.get(Interview, interview_id)
        assert row is not None
        return InterviewState(row.state), row.next_question_index


def _heard(answer: dict[str, Any], qid: str) -> bool:
    return any(k in answer["transcript"].lower() for k in FIXTURE_ANSWERS[qid][1])


def _no_traceback(seen: Visit) -> None:
    for m in seen.messages:
        text = str(m.get("message", ""))
        assert "Traceback" not in text and 'File "' not in text and "Error" not in text, m


def _recording_bytes(settings: Any, answers: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    root = Path(settings.recordings_dir)
    return {qid: (root / a["audio_path"]).read_bytes() for qid, a in answers.items()}


def test_server_sigkilled_mid_answer_resumes_at_that_question(
    tmp_path: Path, db_url: str, clips: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path, database_url=db_url)
    seeded = seed_interview(settings)
    url = settings.resolved_database_url
    server = Server(settings, tmp_path / "serve.log").start()
    try:
        server.consent(seeded.token)
        first = asyncio.run(visit(server, seeded.token, clips, during=("animal", 1.5, server.kill)))
    finally:
        server.kill()
    assert first.answered == ["practice", "colour", "animal"], first.messages[-5:]
    assert first.of_type("done") == []

    before = _answers(url, seeded.interview_id)
    assert set(before) == {"practice", "colour"}, before
    assert _interview(url, seeded.interview_id) == (InterviewState.in_progress, 1)
    files = _recording_bytes(settings, before)
    dispose_engine(url)

    server = Server(settings, tmp_path / "serve.log").start()
    try:
        second = asyncio.run(visit(server, seeded.token, clips))
    finally:
        server.stop()
    ready = second.of_type("ready")
    assert ready and ready[0]["resumed"] is True and ready[0]["question"]["id"] == "animal"
    assert second.answered == ["animal"], second.messages[-5:]
    assert second.of_type("done"), second.messages[-5:]
    _no_traceback(second)

    after = _answers(url, seeded.interview_id)
    assert set(after) == {"practice", "colour", "animal"}
    for qid in before:  # what was stored before the kill is untouched
        assert after[qid] == before[qid]
    assert _recording_bytes(settings, before) == files
    animal = after["animal"]
    assert animal["status"] is AnswerStatus.answered and _heard(animal, "animal"), animal
    assert _interview(url, seeded.interview_id)[0] is InterviewState.completed


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs for the recordings (mounting needs root; skipped, saying so, without it)."""
    import subprocess

    mount = tmp_path / "recordings"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the full-disk test: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> None:
    with (directory / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_recordings_disk_full_pauses_the_interview(
    tmp_path: Path, small_disk: Path, clips: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path, recordings_dir=small_disk)
    seeded = seed_interview(settings)
    url = settings.resolved_database_url
    log = tmp_path / "serve.log"
    server = Server(settings, log).start()
    files: dict[str, bytes] = {}

    def disk_fills_up() -> None:  # during the animal answer, the earlier ones all stored
        files.update(_recording_bytes(settings, _answers(url, seeded.interview_id)))
        _fill(small_disk)

    try:
        server.consent(seeded.token)
        first = asyncio.run(
            visit(server, seeded.token, clips, during=("animal", 0.5, disk_fills_up))
        )
        errors = first.of_type("error")
        assert errors and errors[-1]["code"] == "paused", first.messages[-5:]
        assert "paused" in errors[-1]["message"] and "saved" in errors[-1]["message"]
        assert first.close_code == 1011 and first.of_type("done") == []
        _no_traceback(first)
        text = log.read_text()
        assert "paused (recording not written)" in text and "No space left on device" in text

        answers = _answers(url, seeded.interview_id)
        assert set(answers) == {"practice", "colour"} and set(files) == set(answers), answers
        assert _recording_bytes(settings, answers) == files  # nothing stored was touched
        assert _interview(url, seeded.interview_id) == (InterviewState.in_progress, 1)

        (small_disk / "filler").unlink()  # space again: the interview continues at "animal"
        second = asyncio.run(visit(server, seeded.token, clips))
        assert second.of_type("ready")[0]["question"]["id"] == "animal"
        assert second.of_type("done"), second.messages[-5:]
    finally:
        server.stop()
    after = _answers(url, seeded.interview_id)
    assert _heard(after["animal"], "animal"), after["animal"]
    assert _recording_bytes(settings, {q: after[q] for q in files}) == files
    assert _interview(url, seeded.interview_id)[0] is InterviewState.completed


def _restart_postgres(admin_url: str, back_when: Callable[[], bool], max_down_s: float) -> None:
    """Stop the test session's PostgreSQL server (tests/conftest.py), wait until ``back_when()``
    (or ``max_down_s``), start it again with the same options: every open connection is lost."""
    import os
    import shlex
    import subprocess

    import psycopg
    from conftest import _postgres_bin_dir

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
    # the server's own command line (port, socket dir, settings), as `pg_ctl restart` reuses it
    options = shlex.split((data / "postmaster.opts").read_text())[1:]
    pg_ctl = _postgres_bin_dir() / "pg_ctl"
    runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*runas, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"], check=True)
    deadline = time.monotonic() + max_down_s
    while not back_when() and time.monotonic() < deadline:
        time.sleep(0.2)
    start = [pg_ctl, "-D", data, "-l", data.parent / "server.log", "-w", "-t", "60"]
    subprocess.run(
        [*runas, *start, "-o", shlex.join(options), "start"], check=True, capture_output=True
    )


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_restarted_mid_interview(
    tmp_path: Path, db_url: str, postgres_server: str, clips: dict[str, bytes]
) -> None:
    """Down while the applicant answers, until the answer's save has failed once (it is retried
    for 20 s): the interview goes on, nothing stored is lost, no error reaches the page."""
    settings = make_settings(tmp_path, database_url=db_url)
    seeded = seed_interview(settings)
    url = settings.resolved_database_url
    log = tmp_path / "serve.log"
    server = Server(settings, log).start()
    before: dict[str, dict[str, Any]] = {}

    def restart() -> None:
        before.update(_answers(url, seeded.interview_id))
        dispose_engine(url)
        _restart_postgres(
            postgres_server, lambda: "saving the step failed" in log.read_text(), max_down_s=30
        )

    try:
        server.consent(seeded.token)
        seen = asyncio.run(visit(server, seeded.token, clips, during=("animal", 1.0, restart)))
    finally:
        server.stop()
    assert seen.answered == ["practice", "colour", "animal"], seen.messages[-5:]
    assert seen.of_type("error") == [] and seen.of_type("done"), seen.messages[-5:]
    assert "saving the step failed" in log.read_text()  # the outage hit the save: retried
    _no_traceback(seen)
    assert set(before) == {"practice", "colour"}
    after = _answers(url, seeded.interview_id)
    for qid in before:
        assert after[qid] == before[qid]
    assert _heard(after["animal"], "animal"), after["animal"]
    assert _interview(url, seeded.interview_id)[0] is InterviewState.completed
