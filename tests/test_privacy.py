"""Personal data: the retention purge and erasure/access requests, on real files, on SQLite and
PostgreSQL.

Each test seeds two applicants of one opening (real espeak-ng answers, a real WebM camera
recording, a real JPEG thumbnail) and checks that exactly one of them is affected."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from report_support import seed_report
from sqlalchemy import func, select
from typer.testing import CliRunner
from web_support import make_settings

from interviewer import privacy, reports
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    Applicant,
    ApplicantDemographics,
    AuditLog,
    CriterionScore,
    IntegrityEvent,
    Interview,
    Invite,
    Opening,
    VoicePrint,
)
from interviewer.store.recordings import Recordings


@pytest.fixture
def two(tmp_path: Path):
    return _two(make_settings(tmp_path))


@pytest.fixture
def two_db(tmp_path: Path, db_url: str):
    """On SQLite and on the real PostgreSQL server (JSON columns and casts differ)."""
    return _two(make_settings(tmp_path, database_url=db_url))


def _two(settings):
    a = seed_report(settings, email="ada@example.invalid", name="Ada Lovelace")
    b = seed_report(settings, email="bob@example.invalid", name="Bob Babbage")
    with session_scope(a.seeded.engine) as s:
        s.add(ApplicantDemographics(applicant_id=a.applicant_id, age_band="30-39"))
        repo.audit(s, None, "decision", f"interview:{a.interview_id}", note="Ada was great")
        repo.audit(
            s,
            None,
            "invite.create",
            f"opening:{a.opening_id}",
            emails=["ada@example.invalid", "bob@example.invalid"],
        )
    return settings, a, b


def _count(s, model, *where) -> int:
    return s.scalar(select(func.count()).select_from(model).where(*where))


def test_report_holds_answers_scores_events_and_camera(two) -> None:
    settings, a, _ = two
    recordings = Recordings(settings.recordings_dir)
    with session_scope(a.seeded.engine) as s:
        report = reports.build_report(s, recordings, a.interview_id)
    assert report["applicant"]["name"] == "Ada Lovelace"
    ids = [q["question_id"] for q in report["questions"]]
    assert ids == ["practice", "colour", "animal"]
    colour = report["questions"][1]
    assert colour["answers"][0]["has_audio"] and colour["answers"][0]["words"]
    assert colour["criteria"][0]["evidence"][0]["quote"]
    # answers sit inside the camera part, at increasing offsets
    offsets = [q["answers"][0]["camera"]["offset_s"] for q in report["questions"]]
    assert offsets == sorted(offsets) and 0 < offsets[0] < 5
    assert report["integrity"]["by_severity"] == {"info": 0, "warning": 1, "high": 1}
    assert report["interview"]["standing"]["rank"] in (1, 2)
    assert any(h["action"] == "decision" for h in report["history"])
    rows = list(__import__("csv").DictReader(io.StringIO(reports.report_csv(report))))
    kinds = {r["record"] for r in rows}
    assert {"interview", "answer", "word", "criterion", "evidence", "integrity_event"} <= kinds


def test_retention_purges_only_expired_recordings(two_db) -> None:
    settings, a, b = two_db
    recordings = Recordings(settings.recordings_dir)
    engine = a.seeded.engine
    with session_scope(engine) as s:
        s.get(Opening, a.opening_id).retention_days = 30
        # a finished 40 days ago, b today
        iv = s.get(Interview, a.interview_id)
        iv.completed_at = datetime.now(UTC) - timedelta(days=40)
    dry = privacy.purge_expired(engine, recordings, dry_run=True)
    assert [p.interview_id for p in dry] == [a.interview_id]
    assert all(f.exists() for f in a.files)

    done = privacy.purge_expired(engine, recordings)
    assert [p.interview_id for p in done] == [a.interview_id]
    assert done[0].files == len(a.files)
    assert not any(f.exists() for f in a.files)
    assert not (recordings.root / str(a.interview_id)).exists()
    assert all(f.exists() for f in b.files)
    with session_scope(engine) as s:
        answers = s.scalars(select(Answer).where(Answer.interview_id == a.interview_id)).all()
        assert answers and all(x.audio_path is None for x in answers)
        assert all(x.transcript for x in answers)  # transcripts stay
        face = s.get(IntegrityEvent, a.event_ids["no_face"])
        assert "thumbnail" not in face.evidence and face.evidence["thumbnail_purged"]
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "retention.purge")).one()
        assert entry.target == f"interview:{a.interview_id}"
        assert entry.detail["files"] == len(a.files)
    # nothing left: a second run does nothing and logs nothing
    assert privacy.purge_expired(engine, recordings) == []


def test_delete_one_applicant_leaves_the_other_whole(two_db) -> None:
    settings, a, b = two_db
    recordings = Recordings(settings.recordings_dir)
    engine = a.seeded.engine
    with session_scope(engine) as s:  # b's answer was found to duplicate a's
        dup = IntegrityEvent(
            interview_id=b.interview_id,
            question_id="animal",
            kind="duplicate_answer",
            severity="warning",
            evidence={
                "answer_id": b.answer_ids["animal"],
                "other_interview_id": a.interview_id,
                "other_answer_id": a.answer_ids["animal"],
                "similarity": 0.95,
                "key": "duplicates:animal",
                "source": "duplicates",
            },
        )
        s.add(dup)
        s.flush()
        dup_id = dup.id
    result = privacy.delete_interviews(engine, recordings, [a.interview_id], user_id=None)
    assert result.interviews == [a.interview_id] and result.applicants == [a.applicant_id]
    assert not any(f.exists() for f in a.files)
    assert all(f.exists() for f in b.files)
    with session_scope(engine) as s:
        assert s.get(Interview, a.interview_id) is None
        assert s.get(Applicant, a.applicant_id) is None
        assert s.get(ApplicantDemographics, a.applicant_id) is None
        assert _count(s, Answer, Answer.interview_id == a.interview_id) == 0
        assert _count(s, CriterionScore, CriterionScore.answer_id.in_(a.answer_ids.values())) == 0
        assert _count(s, IntegrityEvent, IntegrityEvent.interview_id == a.interview_id) == 0
        assert _count(s, Invite, Invite.applicant_id == a.applicant_id) == 0
        # the other applicant is untouched
        assert s.get(Interview, b.interview_id) is not None
        assert _count(s, Answer, Answer.interview_id == b.interview_id) == 3
        assert _count(s, CriterionScore, CriterionScore.answer_id.in_(b.answer_ids.values())) == 2
        assert _count(s, IntegrityEvent, IntegrityEvent.interview_id == b.interview_id) == 3
        evidence = s.get(IntegrityEvent, dup_id).evidence
        assert evidence["other_deleted"] and "other_interview_id" not in evidence
        assert evidence["similarity"] == 0.95
        # the audit keeps what happened, without personal data
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "applicant.delete")).one()
        assert entry.target == f"interview:{a.interview_id}"
        assert entry.detail["rows"]["answer"] == 3 and entry.detail["files"] == len(a.files)
        dump = json.dumps([r.detail for r in s.scalars(select(AuditLog))])
        assert "Ada" not in dump and "ada@example.invalid" not in dump
        assert "bob@example.invalid" in dump  # someone else's address stays


def test_export_zip_has_report_recordings_and_record(two) -> None:
    settings, a, b = two
    recordings = Recordings(settings.recordings_dir)
    data = privacy.export_interviews(a.seeded.engine, recordings, [a.interview_id])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        report = json.loads(zf.read(f"interview-{a.interview_id}/report.json"))
        record = json.loads(zf.read(f"applicant-{a.applicant_id}.json"))
        wav = [n for n in names if n.endswith(".wav")]
        assert len(wav) == 3 and zf.read(wav[0])[:4] == b"RIFF"
    assert report["applicant"]["email"] == "ada@example.invalid"
    assert record["demographics"]["age_band"] == "30-39"
    assert "token_hash" not in json.dumps(record)
    assert any(n.endswith(".jpg") for n in names) and any(n.endswith(".webm") for n in names)
    assert not any(f"interview-{b.interview_id}" in n for n in names)
    with session_scope(a.seeded.engine) as s:
        assert _count(s, AuditLog, AuditLog.action == "applicant.export") == 1


def test_cli_purge_and_applicant_requests(two, tmp_path: Path, monkeypatch) -> None:
    settings, a, b = two
    from interviewer.cli import app

    monkeypatch.setenv("INTERVIEWER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("INTERVIEWER_RECORDINGS_DIR", str(settings.recordings_dir))
    from interviewer.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    fresh = runner.invoke(app, ["db", "purge", "--url", empty])
    assert fresh.exit_code == 1 and "run `interviewer db upgrade`" in fresh.output
    assert "Traceback" not in fresh.output
    with session_scope(a.seeded.engine) as s:
        s.get(Opening, a.opening_id).retention_days = 0
    dry = runner.invoke(app, ["db", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and all(f.exists() for f in a.files)
    out = tmp_path / "ada.zip"
    export = runner.invoke(app, ["applicant", "export", "ADA@example.invalid", "--out", str(out)])
    assert export.exit_code == 0, export.output
    assert zipfile.is_zipfile(out)
    refused = runner.invoke(app, ["applicant", "delete", "ada@example.invalid"], input="n\n")
    assert refused.exit_code != 0 and all(f.exists() for f in a.files)
    gone = runner.invoke(app, ["applicant", "delete", "ada@example.invalid", "--yes"])
    assert gone.exit_code == 0, gone.output
    assert not any(f.exists() for f in a.files)
    purge = runner.invoke(app, ["db", "purge"])
    assert purge.exit_code == 0, purge.output
    assert not any(f.exists() for f in b.files)  # retention 0: b's recordings go too
    missing = runner.invoke(app, ["applicant", "delete", "nobody@example.invalid", "--yes"])
    assert missing.exit_code != 0 and "no applicant" in missing.output
    get_settings.cache_clear()


def test_voice_prints_go_with_the_recordings_and_the_interview(two_db) -> None:
    """A voice print is biometric: purged with the recordings, erased with the interview; the
    other applicant's duplicate_voice event keeps itself but loses the pointer."""
    settings, a, b = two_db
    recordings = Recordings(settings.recordings_dir)
    engine = a.seeded.engine
    with session_scope(engine) as s:
        for seeded in (a, b):
            iid = seeded.interview_id
            s.add(VoicePrint(interview_id=iid, seconds=9.0, vector=[1.0], model="m"))
        s.get(Opening, a.opening_id).retention_days = 30
        s.get(Interview, a.interview_id).completed_at = datetime.now(UTC) - timedelta(days=40)
        same = IntegrityEvent(
            interview_id=b.interview_id,
            kind="duplicate_voice",
            severity="high",
            evidence={"other_interview_id": a.interview_id, "other_opening_id": a.opening_id},
        )
        s.add(same)
        s.flush()
        same_id = same.id
    assert [p.interview_id for p in privacy.purge_expired(engine, recordings)] == [a.interview_id]
    with session_scope(engine) as s:
        assert [p.interview_id for p in s.scalars(select(VoicePrint))] == [b.interview_id]
    privacy.delete_interviews(engine, recordings, [a.interview_id], user_id=None)
    with session_scope(engine) as s:
        evidence = s.get(IntegrityEvent, same_id).evidence
        assert evidence == {"other_deleted": True}
