"""Kill `interviewer interview` mid-interview (SIGKILL) and resume it: nothing lost or misfiled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from test_session_audio import ANSWERS, BANK

from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    CriterionScore,
    Interview,
    InterviewState,
)
from interviewer.voice.io import answers_wav

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("interviewer")


def _cli(tmp: Path, url: str, *args: str, model_dir: Path | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "INTERVIEWER_DATA_DIR": str(tmp / "data"),
        "INTERVIEWER_RECORDINGS_DIR": str(tmp / "rec"),
        "INTERVIEWER_SCORING_MODEL": "smollm2-135m",
        "HF_HUB_OFFLINE": "1",
    }
    if model_dir is not None:
        env["INTERVIEWER_MODEL_DIR"] = str(model_dir)
    cmd = [str(CLI), "interview", "--url", url, "--fast", "--stt-model", "tiny.en", *args]
    return subprocess.Popen(
        cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _answers(engine, interview_id: int) -> dict[tuple[str, int], Answer]:
    with session_scope(engine) as s:
        rows = s.scalars(select(Answer).where(Answer.interview_id == interview_id)).all()
        return {(a.question_id, a.attempt): a for a in rows}


def test_sigkill_mid_interview_then_resume(tmp_path: Path, model_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_db_engine(url)
    migrate(engine)
    with session_scope(engine) as s:
        version = repo.publish_bank(s, BANK)
        repo.create_opening(s, slug="resume", title="Resume", bank_version=version)

    texts = {qid: text for qid, (text, _) in ANSWERS.items()}
    first = tmp_path / "first.wav"  # practice, colour, animal...: killed during animal
    answers_wav([texts["practice"], texts["colour"], texts["animal"]], first, gap_s=4.0)
    rest = tmp_path / "rest.wav"  # what the applicant says after reconnecting
    answers_wav([texts["animal"], texts["city"]], rest, gap_s=4.0)

    proc = _cli(tmp_path, url, "--opening", "resume", "--answers", str(first), "--no-score")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("interview "), line
        interview_id = int(line.split()[1])
        deadline = time.monotonic() + 240
        while ("colour", 0) not in _answers(engine, interview_id):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the colour answer was never stored"
            time.sleep(0.2)
        time.sleep(1.0)  # into the next question
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    before = _answers(engine, interview_id)
    assert set(before) == {("practice", 0), ("colour", 0)}
    with session_scope(engine) as s:
        row = s.get(Interview, interview_id)
        assert row is not None
        assert InterviewState(row.state) is InterviewState.in_progress
        assert row.next_question_index == 1  # the animal question is next

    # this run scores as it goes (SmolLM2), including the answers the killed run left unscored
    resumed = _cli(
        tmp_path, url, "--interview", str(interview_id), "--answers", str(rest), model_dir=model_dir
    )
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out

    after = _answers(engine, interview_id)
    assert list(sorted(after)) == sorted(
        [("practice", 0), ("colour", 0), ("animal", 0), ("city", 0)]
    ), out
    for key in before:  # completed answers survive untouched
        assert after[key].transcript == before[key].transcript
        assert after[key].audio_path == before[key].audio_path
    for qid in ("animal", "city"):
        answer = after[(qid, 0)]
        assert answer.status is AnswerStatus.answered
        assert any(k in answer.transcript.lower() for k in ANSWERS[qid][1]), answer.transcript
        assert (tmp_path / "rec" / answer.audio_path).stat().st_size > 16_000
    with session_scope(engine) as s:
        row = s.get(Interview, interview_id)
        assert row is not None and InterviewState(row.state) is InterviewState.completed
        assert row.score is not None and "interview score" in out, out
        for qid in ("colour", "animal", "city"):
            answer = s.get(Answer, after[(qid, 0)].id)
            assert answer.scored_at is not None, qid
            rows = s.scalars(select(CriterionScore).where(CriterionScore.answer_id == answer.id))
            assert [r.model for r in rows] == ["smollm2-135m"], qid
