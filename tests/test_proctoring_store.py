"""Integrity events in the database (SQLite and PostgreSQL): record, summarise, replace, and a
whole-interview analysis run twice over real speech and transcripts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import Engine, func, select

from interviewer.banks.model import Bank
from interviewer.proctoring import voices
from interviewer.proctoring.analyze import SUMMARY_ACTION, analyze_interview
from interviewer.proctoring.browser import to_drafts
from interviewer.proctoring.events import (
    EventKind,
    Severity,
    draft,
    record,
    replace_source,
    save_thumbnail,
    summary,
)
from interviewer.proctoring.pool import AnalysisPool
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, AuditLog, IntegrityEvent, Interview
from interviewer.store.recordings import Recordings
from interviewer.voice.tts import render_with_espeak_binary

BANKS = Path(__file__).parent.parent / "question_banks"
QID = "idempotent-payments"
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T = ProctoringThresholds()


def se_bank() -> Bank:
    return Bank.model_validate(yaml.safe_load((BANKS / "software-engineering.yaml").read_text()))


def new_interviews(engine: Engine, count: int = 1, settings: dict | None = None) -> list[int]:
    with session_scope(engine) as s:
        version = repo.publish_bank(s, se_bank())
        opening = repo.create_opening(
            s, slug="backend", title="Backend", bank_version=version, settings=settings or {}
        )
        ids = []
        for n in range(count):
            applicant = repo.create_applicant(s, name=f"A{n}", email=f"a{n}@example.org")
            interview = repo.create_interview(s, opening=opening, applicant=applicant)
            interview.started_at = START
            ids.append(interview.id)
    return ids


def browser_batch() -> bytes:
    sent = 1_000_000
    events = [
        {"seq": 1, "type": "tab_hidden", "t_ms": sent - 30_000, "duration_ms": 40_000},
        {"seq": 2, "type": "paste", "t_ms": sent - 20_000, "chars": 25},
        {"seq": 3, "type": "window_blur", "t_ms": sent - 10_000, "duration_ms": 1_000},
    ]
    return json.dumps({"page_id": "page-abcdefgh", "sent_at_ms": sent, "events": events}).encode()


def test_record_is_idempotent_and_summary_orders_and_counts(db_engine: Engine) -> None:
    (interview_id,) = new_interviews(db_engine)
    received = START + timedelta(minutes=5)
    drafts = to_drafts(browser_batch(), thresholds=T, received_at=received)
    with session_scope(db_engine) as s:
        assert len(record(s, interview_id, *drafts)) == 3
    resent = to_drafts(browser_batch(), thresholds=T, received_at=received)
    with session_scope(db_engine) as s:  # the page resent the batch after a network error
        assert record(s, interview_id, *resent) == []
    with session_scope(db_engine) as s:
        got = summary(s, interview_id)
    assert got.total == 3
    assert got.counts == {
        "paste": {"warning": 1},
        "tab_hidden": {"high": 1},
        "window_blurred": {"info": 1},
    }
    assert got.by_severity == {"info": 1, "warning": 1, "high": 1}
    assert [e["kind"] for e in got.timeline] == ["tab_hidden", "paste", "window_blurred"]
    first = got.timeline[0]
    assert datetime.fromisoformat(first["at"]).replace(tzinfo=UTC) == received - timedelta(
        seconds=30
    )
    assert first["duration_s"] == 40.0 and first["evidence"]["source"] == "browser"
    json.dumps(got.as_dict())  # what a page or an API returns must serialise


def test_replace_source_keeps_ids_and_removes_dropped_thumbnails(
    db_engine: Engine, tmp_path: Path
) -> None:
    (interview_id,) = new_interviews(db_engine)
    recordings = Recordings(tmp_path / "recordings")
    frame = np.full((240, 320, 3), 90, np.uint8)
    thumbs = [save_thumbnail(recordings, interview_id, i, frame) for i in range(2)]
    assert all(t.startswith(f"{interview_id}/media/proctoring/") for t in thumbs)
    assert recordings.open_for_read(thumbs[0]).read_bytes()[:2] == b"\xff\xd8"  # a JPEG

    def faces_run(*keys: str) -> list:
        made = []
        for i, key in enumerate(keys):
            item = draft(
                EventKind.no_face, 12.0, T, key=key, source="faces", at=START, duration_s=12.0
            )
            assert item is not None
            item.evidence["thumbnail"] = thumbs[i]
            made.append(item)
        return made

    with session_scope(db_engine) as s:
        first = {e.evidence["key"]: e.id for e in replace_source(s, interview_id, "faces",
                 faces_run("faces:a", "faces:b"), recordings=recordings)}  # fmt: skip
        record(s, interview_id, *to_drafts(browser_batch(), thresholds=T, received_at=START))
    with session_scope(db_engine) as s:
        again = replace_source(
            s, interview_id, "faces", faces_run("faces:a"), recordings=recordings
        )
    assert [e.id for e in again] == [first["faces:a"]]
    assert (recordings.root / thumbs[0]).exists() and not (recordings.root / thumbs[1]).exists()
    with session_scope(db_engine) as s:
        kinds = sorted(k for (k,) in s.execute(select(IntegrityEvent.kind)))
    assert kinds == ["no_face", "paste", "tab_hidden", "window_blurred"]  # browser ones untouched


# --- a whole analysis --------------------------------------------------------------------------

PRACTICE = (
    "I'm a senior backend engineer at a payments company. I mostly write Go and Python, and I "
    "look after our transaction service and its Postgres databases. Before that I worked on "
    "billing systems for a telecom operator for four years."
)


def _write_wav(path: Path, signal: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(signal, -1, 1) * 32767).astype(np.int16).tobytes())


def _say(tmp: Path, voice: str, text: str) -> np.ndarray:
    path = tmp / f"{abs(hash((voice, text)))}.wav"
    render_with_espeak_binary(text, voice, 160, path)
    return voices.read_wav(path)


def _timed(text: str, gaps: list[float]) -> list[dict]:
    words, t = [], 0.0
    for i, word in enumerate(text.split()):
        words.append({"word": word, "start": round(t, 3), "end": round(t + 0.28, 3)})
        t += 0.28 + gaps[i % len(gaps)]
    return words


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_analyze_interview_finds_the_signals_and_is_idempotent(
    db_engine: Engine, db_url: str, tmp_path: Path, model_dir: Path
) -> None:
    first, second = new_interviews(db_engine, 2)
    recordings = Recordings(tmp_path / "recordings")
    reference = se_bank().question(QID).reference_answer
    read_out = reference.lower().replace(",", "").replace(".", "")
    sentences = [s for s in reference.split(". ") if s]
    # the answer: the applicant starts, someone else (another voice) says the middle
    parts = [
        _say(tmp_path, "en-us", ". ".join(sentences[:2])),
        _say(tmp_path, "en-us+f4", ". ".join(sentences[2:4])),
        _say(tmp_path, "en-us", ". ".join(sentences[4:])),
    ]
    audio = {
        "practice": _say(tmp_path, "en-us", PRACTICE),
        QID: np.concatenate(parts),
    }
    with session_scope(db_engine) as s:
        for index, (qid, text, onset, gaps) in enumerate(
            [
                ("practice", PRACTICE, 0.8, [0.05, 0.3, 0.1, 1.1, 0.15, 0.6]),
                (QID, read_out, 12.0, [0.1]),
            ]
        ):
            path = recordings.answer_audio(first, qid)
            _write_wav(path, audio[qid])
            repo.save_answer(
                s,
                Answer(
                    interview_id=first,
                    question_id=qid,
                    question_index=index - 1,
                    audio_path=recordings.relative(path),
                    transcript=text,
                    words=_timed(text, gaps),
                    onset_latency_s=onset,
                    started_at=START + timedelta(minutes=index),
                    ended_at=START + timedelta(minutes=index, seconds=50),
                ),
            )
        # another applicant of the same opening gave (almost) the same answer
        repo.save_answer(
            s,
            Answer(
                interview_id=second,
                question_id=QID,
                question_index=0,
                transcript=reference.replace("I'd", "I would"),
            ),
        )

    sources = ("voices", "duplicates")
    options = {"recordings": recordings, "model_dir": model_dir, "sources": sources}
    report = analyze_interview(db_engine, first, **options)
    assert report.answers_analyzed == 1 and not report.skipped
    with session_scope(db_engine) as s:
        events = s.scalars(select(IntegrityEvent).where(IntegrityEvent.interview_id == first))
        found = {(e.kind, e.question_id): e for e in events}
    assert set(found) == {
        (EventKind.speaker_change, QID),
        (EventKind.reading_pattern, QID),
        (EventKind.duplicate_answer, QID),
        (EventKind.reference_match, QID),
    }
    change = found[(EventKind.speaker_change, QID)]
    # the speaker encoder checks each stretch against the practice and the answer's own voice
    assert change.evidence["compared_with"] == "practice and answer"
    assert change.evidence["whole_answer"] is False
    switch = len(parts[0]) / 16_000
    assert abs(change.evidence["start_s"] - switch) < 1.6
    assert found[(EventKind.reference_match, QID)].severity == Severity.high
    assert found[(EventKind.duplicate_answer, QID)].evidence["other_interview_id"] == second
    ids = sorted(e.id for e in found.values())

    again = analyze_interview(db_engine, first, **options)
    assert again.events == report.events
    with session_scope(db_engine) as s:
        rows = s.scalars(select(IntegrityEvent).where(IntegrityEvent.interview_id == first))
        assert sorted(e.id for e in rows) == ids
        assert s.scalar(select(func.count()).select_from(IntegrityEvent)) == len(ids)
        assert s.get(Interview, first) is not None

    # what the web server runs after an interview: the same analysis in a worker process,
    # every detector, then the summary stored; still idempotent
    pool = AnalysisPool(db_url, recordings.root, model_dir)
    try:
        detail = asyncio.run(pool.analyze(first))
    finally:
        pool.close()
    assert {k: detail["events"][k] for k in sources} == report.events
    assert detail["events"].get("faces", 0) == 0  # no camera recording, no camera events
    assert detail["total"] == len(ids) and detail["by_severity"]["high"] >= 1
    with session_scope(db_engine) as s:
        rows = s.scalars(select(IntegrityEvent).where(IntegrityEvent.interview_id == first))
        assert sorted(e.id for e in rows) == ids
        logged = s.scalars(select(AuditLog).where(AuditLog.action == SUMMARY_ACTION)).all()
        assert [(a.target, a.user_id) for a in logged] == [(f"interview:{first}", None)]
        assert logged[0].detail["counts"][EventKind.speaker_change] == {"warning": 1}


def test_cli_analyze_stores_a_summary_and_names_a_missing_interview(
    db_engine: Engine, db_url: str, tmp_path: Path, model_dir: Path
) -> None:
    from typer.testing import CliRunner

    from interviewer.cli import app

    (interview_id,) = new_interviews(db_engine)
    env = {"INTERVIEWER_RECORDINGS_DIR": str(tmp_path / "rec")}
    runner = CliRunner()
    args = ["integrity", "analyze", "--url", db_url, "--model-dir", str(model_dir)]
    result = runner.invoke(app, [*args, str(interview_id)], env=env)
    assert result.exit_code == 0, result.output
    assert str(interview_id) in result.output
    with session_scope(db_engine) as s:
        logged = s.scalars(select(AuditLog).where(AuditLog.action == SUMMARY_ACTION)).all()
        assert [a.detail["total"] for a in logged] == [0]  # nothing recorded, nothing found
    result = runner.invoke(app, [*args, "999999"], env=env)
    assert result.exit_code == 1 and "no interview 999999" in result.output


def test_analysis_worker_runs_below_the_interviews_priority(
    db_url: str, tmp_path: Path, model_dir: Path
) -> None:
    """The pool's process lowers its own priority when it starts (interviewer.priority)."""
    from interviewer.config import get_settings

    pool = AnalysisPool(db_url, tmp_path, model_dir)
    try:
        niceness = asyncio.run(pool.niceness())
    finally:
        pool.close()
    expected = min(19, os.nice(0) + get_settings().background_niceness)
    assert niceness == expected > os.nice(0)


def test_one_voice_in_two_applicants_interviews_is_flagged_with_both_recordings(
    db_engine: Engine, tmp_path: Path, model_dir: Path
) -> None:
    """Allison's practice answers under two names (different prompts) are one voice; Carlo's is
    not. Each interview's print is stored; the later analysis names the earlier recording."""
    from speech_support import recorded, require_recordings

    from interviewer.reports import describe_event
    from interviewer.store.models import VoicePrint

    require_recordings()
    first, second, third = new_interviews(db_engine, 3)
    recordings = Recordings(tmp_path / "recordings")
    speech = {first: recorded("en", 0, 12), second: recorded("it", 0, 12)}
    speech[third] = recorded("en", 150, 12, pause_s=1.5)
    with session_scope(db_engine) as s:
        for interview_id, signal in speech.items():
            path = recordings.answer_audio(interview_id, "practice")
            _write_wav(path, signal)
            repo.save_answer(
                s,
                Answer(
                    interview_id=interview_id,
                    question_id="practice",
                    question_index=-1,
                    audio_path=recordings.relative(path),
                    started_at=START,
                    ended_at=START + timedelta(seconds=15),
                ),
            )
    options = {"recordings": recordings, "model_dir": model_dir, "sources": ("voices",)}
    for interview_id in (first, second, third):
        analyze_interview(db_engine, interview_id, **options)
    with session_scope(db_engine) as s:
        prints = {p.interview_id: p for p in s.scalars(select(VoicePrint))}
        assert set(prints) == {first, second, third}
        assert all(len(p.vector) == 256 and p.seconds > 5 for p in prints.values())
        events = list(s.scalars(select(IntegrityEvent).order_by(IntegrityEvent.interview_id)))
        found = [(e.interview_id, e.kind, e.evidence.get("other_interview_id")) for e in events]
        assert found == [(third, EventKind.duplicate_voice, first)]
        event = events[0]
        opening_id = s.get(Interview, first).opening_id
        practice_of = {iv: p.answer_id for iv, p in prints.items()}
        assert event.evidence["answer_id"] == practice_of[third]
        assert event.evidence["other_answer_id"] == practice_of[first]
        assert event.evidence["other_opening_id"] == opening_id
        assert event.evidence["same_applicant"] is False
        assert event.evidence["similarity"] >= T.duplicate_voice_similarity
        line = describe_event({"kind": event.kind, "evidence": event.evidence})
        assert "how sure" in line and "an interview of another applicant" in line

    # analysed again: the same one event, and the print replaced, not added
    analyze_interview(db_engine, third, **options)
    with session_scope(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(VoicePrint)) == 3
        assert s.scalar(select(func.count()).select_from(IntegrityEvent)) == 1
