"""Hold under faults (issue 18): the server SIGKILLed mid-answer, PostgreSQL restarted
mid-interview, the recordings disk full. Each runs `interviewer serve` as a child process and an
applicant on its socket (tests/fault_support.py); nothing stored before the fault may be lost or
changed, and the applicant is told what happened in words, never a stack trace.
"""

from __future__ import annotations

import asyncio
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
