"""The data layer on both engines: migrations, tables, the bank lock, answer upserts, media paths.

Tests taking ``db_url`` / ``db_engine`` (tests/conftest.py) run once on SQLite and once on a real
PostgreSQL server.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from interviewer.banks.model import Bank
from interviewer.cli import app as cli_app
from interviewer.errors import BankError, UserError
from interviewer.store import db, repo
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    Applicant,
    ApplicantDemographics,
    AuditLog,
    BankVersion,
    CriterionScore,
    IntegrityEvent,
    Interview,
    InterviewState,
    Invite,
    LockedBankVersion,
    LoginAttempt,
    Opening,
    OpeningRecruiter,
    Role,
    ScoringClaim,
    StaffSession,
    User,
    VoicePrint,
)
from interviewer.store.recordings import Recordings

BANK = {
    "id": "dermatology",
    "title": "Dermatology consultant screen",
    "domain": "medicine",
    "version": 1,
    "description": "For board-certified dermatologists.",
    "questions": [
        {
            "id": "melanoma-abcde",
            "prompt": "How do you assess a pigmented lesion for melanoma?",
            "reference_answer": "I use the ABCDE criteria and dermoscopy.",
            "follow_ups": [{"trigger": "dermoscopy", "prompt": "Where does dermoscopy fit?"}],
            "rubric": {
                "criteria": [
                    {
                        "id": "clinical-criteria",
                        "description": "Names and applies the ABCDE criteria.",
                        "weight": 2,
                        "levels": [
                            {"score": 0, "descriptor": "None."},
                            {"score": 2, "descriptor": "All five."},
                        ],
                        "key_points": [
                            {"id": "abcde", "text": "Asymmetry, Border, Colour, Diameter."},
                            {"id": "dermoscopy", "text": "Uses dermoscopy."},
                        ],
                    }
                ],
                "red_flags": [{"id": "size-only", "description": "Size alone.", "penalty": 0.3}],
            },
        }
    ],
}


def make_bank(**changes: object) -> Bank:
    return Bank.model_validate({**BANK, **changes})


def tables_in(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def make_interview(session: Session, slug: str = "derm-2025") -> Interview:
    bank_version = repo.publish_bank(session, make_bank())
    opening = repo.create_opening(
        session, slug=slug, title="Dermatologist", bank_version=bank_version
    )
    applicant = repo.create_applicant(session, name="Ada", email="ada@example.org")
    return repo.create_interview(session, opening=opening, applicant=applicant)


# --- engine and migrations ------------------------------------------------------------------


def test_migrations_up_down_up_match_the_models(db_url: str) -> None:
    engine = db.create_db_engine(db_url)
    assert db.current_revision(engine) is None
    db.migrate(engine)
    assert db.current_revision(engine) == db.head_revision() is not None
    model_tables = set(SQLModel.metadata.tables)
    assert tables_in(engine) == model_tables | {"alembic_version"}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []

    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert tables_in(engine) == {"alembic_version"}

    db.migrate(engine)
    db.migrate(engine)  # already at head: a no-op
    assert db.current_revision(engine) == db.head_revision()
    assert tables_in(engine) == model_tables | {"alembic_version"}


def test_cli_db_commands(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["db", "current", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert "base (empty)" in result.output
    result = runner.invoke(cli_app, ["db", "upgrade", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert f"at {db.head_revision()}" in result.output
    result = runner.invoke(cli_app, ["db", "current", "--url", db_url])
    assert "up to date" in result.output
    result = runner.invoke(cli_app, ["db", "downgrade", "base", "--url", db_url])
    assert result.exit_code == 0, result.output
    assert db.current_revision(db.create_db_engine(db_url)) is None


def test_engines_are_cached_per_url(db_url: str) -> None:
    assert db.create_db_engine(db_url) is db.create_db_engine(db_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'interviewer.db'}"
    engine = db.create_db_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert (tmp_path / "nested" / "dir" / "interviewer.db").exists()
    finally:
        db.dispose_engine(url)


def test_postgresql_urls_use_psycopg_3() -> None:
    assert db.normalize_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_foreign_keys_are_enforced(db_engine: Engine) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"), db.session_scope(db_engine) as s:
        s.add(Invite(opening_id=999, applicant_id=999, token_hash="x", expires_at=_now()))


def test_session_scope_rolls_back_on_error(db_engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.session_scope(db_engine) as session:
        repo.create_applicant(session, name="Gone", email="gone@example.org")
        raise RuntimeError("boom")
    with db.session_scope(db_engine) as session:
        assert session.scalars(select(Applicant)).all() == []


# --- every table round-trips ------------------------------------------------------------------


def _now() -> datetime:
    return datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def test_every_table_round_trips(db_engine: Engine) -> None:
    now = _now()
    with db.session_scope(db_engine) as s:
        user = User(email="rec@example.org", name="Rec", role=Role.recruiter, password_hash="h")
        s.add(user)
        interview = make_interview(s)
        bank_version = s.get(BankVersion, interview.bank_version_id)
        opening = s.get(Opening, interview.opening_id)
        opening.settings = {"language": "en", "weights": [1, 2.5]}
        applicant = repo.create_applicant(
            s, name="Bo", email="bo@example.org", demographics={"sex": "f", "age_band": "30-39"}
        )
        s.flush()
        s.add(OpeningRecruiter(opening_id=opening.id, user_id=user.id))
        invite = Invite(
            opening_id=opening.id,
            applicant_id=applicant.id,
            token_hash="a" * 64,
            expires_at=now + timedelta(days=7),
            used_at=now,
        )
        s.add(invite)
        s.flush()
        second = repo.create_interview(s, opening=opening, applicant=applicant, invite=invite)
        answer = repo.save_answer(
            s,
            Answer(
                interview_id=second.id,
                question_id="melanoma-abcde",
                question_index=0,
                status=AnswerStatus.timed_out,
                audio_path="2/melanoma-abcde.wav",
                transcript="I look at asymmetry — and the border.",
                words=[{"word": "I", "start": 0.0, "end": 0.1, "probability": 0.99}],
                started_at=now,
                ended_at=now + timedelta(seconds=30),
                speech_duration_s=28.5,
                onset_latency_s=0.8,
            ),
        )
        s.add(
            CriterionScore(
                answer_id=answer.id,
                criterion_id="clinical-criteria",
                probability=0.75,
                level=1.5,
                evidence=[{"quote": "asymmetry", "start": 0.2, "end": 0.9, "similarity": 1.0}],
                model="qwen2.5-1.5b",
            )
        )
        s.add(
            IntegrityEvent(
                interview_id=second.id,
                question_id="melanoma-abcde",
                kind="tab_hidden",
                severity="warning",
                at=now,
                duration_s=4.2,
                evidence={"count": 2},
            )
        )
        s.add(AuditLog(user_id=user.id, action="publish", target="bank:dermatology@1", detail={}))
        staff_session = StaffSession(
            id="f" * 64, user_id=user.id, created_at=now, expires_at=now + timedelta(hours=12)
        )
        s.add(staff_session)
        attempt = LoginAttempt(id="acct:ada@example.org", count=2, window_start=1.7e9)
        s.add(attempt)
        claim = ScoringClaim(answer_id=answer.id, scorer="host:1", outcome="ok", finished_at=now)
        s.add(claim)
        voice_print = VoicePrint(
            interview_id=second.id,
            answer_id=answer.id,
            seconds=12.5,
            vector=[0.6, -0.8, 0.0],
            model="ge2e-speaker",
            created_at=now,
        )
        s.add(voice_print)
        s.flush()
        written = {
            type(obj): obj.model_dump()
            for obj in [
                user,
                bank_version,
                opening,
                applicant,
                invite,
                second,
                answer,
                staff_session,
                attempt,
                claim,
                voice_print,
            ]
        }
    covered = {"applicantdemographics", "openingrecruiter", "criterionscore", "integrityevent"}
    covered |= {"auditlog", *(cls.__tablename__ for cls in written)}
    assert covered == set(SQLModel.metadata.tables), "a new table needs a round-trip here"

    with Session(db_engine) as s:
        for cls, values in written.items():
            assert s.get(cls, values["id"]).model_dump() == values, cls.__name__
        user = s.scalars(select(User)).one()
        assert user.role is Role.recruiter
        assert s.get(Interview, second.id).state is InterviewState.invited
        stored_answer = s.scalars(select(Answer)).one()
        assert stored_answer.status is AnswerStatus.timed_out
        assert stored_answer.started_at == now and stored_answer.started_at.tzinfo is not None
        assert s.get(Opening, opening.id).settings == {"language": "en", "weights": [1, 2.5]}
        score = s.scalars(select(CriterionScore)).one()
        assert score.evidence[0]["quote"] == "asymmetry" and score.level == 1.5
        event = s.scalars(select(IntegrityEvent)).one()
        assert (event.kind, event.severity, event.evidence) == (
            "tab_hidden",
            "warning",
            {"count": 2},
        )
        assert s.scalars(select(AuditLog)).one().target == "bank:dermatology@1"
        assert s.scalars(select(OpeningRecruiter)).one().user_id == user.id
        demographics = s.get(ApplicantDemographics, applicant.id)
        assert (demographics.sex, demographics.race_ethnicity, demographics.age_band) == (
            "f",
            None,
            "30-39",
        )


def test_demographics_live_in_their_own_table(db_engine: Engine) -> None:
    applicant_columns = {c["name"] for c in inspect(db_engine).get_columns("applicant")}
    assert applicant_columns.isdisjoint({"sex", "race_ethnicity", "age_band"})
    with db.session_scope(db_engine) as s:
        quiet = repo.create_applicant(s, name="Q", email="q@example.org", demographics={"sex": ""})
        told = repo.create_applicant(
            s, name="T", email="t@example.org", demographics={"race_ethnicity": "x"}
        )
        with pytest.raises(ValueError, match="unknown demographic"):
            repo.create_applicant(s, name="U", email="u@x.org", demographics={"religion": "y"})
    with Session(db_engine) as s:
        assert s.get(ApplicantDemographics, quiet.id) is None
        assert s.get(ApplicantDemographics, told.id).race_ethnicity == "x"


# --- banks ---------------------------------------------------------------------------------------


def test_publish_bank_is_idempotent_and_refuses_changed_content(db_engine: Engine) -> None:
    with db.session_scope(db_engine) as s:
        first = repo.publish_bank(s, make_bank())
    with db.session_scope(db_engine) as s:
        again = repo.publish_bank(s, make_bank())
        assert again.id == first.id and again.sha256 == first.sha256
        assert len(s.scalars(select(BankVersion)).all()) == 1
        with pytest.raises(BankError) as raised:
            repo.publish_bank(s, make_bank(title="Renamed"))
        assert str(raised.value) == (
            "bank dermatology version 1 is already published with different content: bump `version`"
        )
        assert isinstance(raised.value, UserError)
        bumped = repo.publish_bank(s, make_bank(title="Renamed", version=2))
        assert bumped.id != first.id and bumped.title == "Renamed"
    with db.session_scope(db_engine) as s:
        assert repo.bank_of(s, first.id) == make_bank()
        assert repo.bank_of(s, bumped.id).version == 2
        with pytest.raises(LookupError):
            repo.bank_of(s, 12345)


def test_bank_hash_ignores_key_order() -> None:
    assert repo.content_sha256({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == repo.content_sha256(
        {"b": [1, {"d": 3, "c": 2}], "a": 1}
    )


def test_a_bank_version_used_by_an_interview_cannot_change(db_engine: Engine) -> None:
    with db.session_scope(db_engine) as s:
        bank_version = repo.publish_bank(s, make_bank())
        assert not bank_version.locked
        bank_version.title = "Draft title"  # unlocked rows are not guarded
    with db.session_scope(db_engine) as s:
        interview = make_interview(s)
        assert s.get(BankVersion, interview.bank_version_id).locked
    version_id = interview.bank_version_id

    changes = {
        "content": lambda bv: setattr(bv, "content", {**bv.content, "title": "Changed"}),
        "title": lambda bv: setattr(bv, "title", "Changed"),
        "sha256": lambda bv: setattr(bv, "sha256", "0" * 64),
        "version": lambda bv: setattr(bv, "version", 9),
        "locked": lambda bv: setattr(bv, "locked", False),
    }
    for field, change in changes.items():
        raises = pytest.raises(LockedBankVersion, match=rf"\({field}\)")
        with raises, db.session_scope(db_engine) as s:
            change(s.get(BankVersion, version_id))
    with pytest.raises(LockedBankVersion, match="deleted"), db.session_scope(db_engine) as s:
        s.delete(s.get(BankVersion, version_id))

    with db.session_scope(db_engine) as s:
        bank_version = s.get(BankVersion, version_id)
        bank_version.content = dict(bank_version.content)  # equal value: not a change
        assert repo.publish_bank(s, make_bank()).id == version_id
        with pytest.raises(BankError, match="bump `version`"):
            repo.publish_bank(s, make_bank(title="Different"))
    with Session(db_engine) as s:
        stored = s.get(BankVersion, version_id)
        assert (stored.title, stored.version, stored.locked) == ("Draft title", 1, True)
        assert repo.bank_of(s, version_id) == make_bank()


def test_openings_and_interviews(db_engine: Engine) -> None:
    with db.session_scope(db_engine) as s:
        interview = make_interview(s, slug="derm-a")
        opening = s.get(Opening, interview.opening_id)
        assert interview.bank_version_id == opening.bank_version_id
        bank_version = s.get(BankVersion, opening.bank_version_id)
        with pytest.raises(UserError, match="already exists"):
            repo.create_opening(s, slug="derm-a", title="Again", bank_version=bank_version)
        with pytest.raises(UserError, match="lowercase"):
            repo.create_opening(s, slug="Bad Slug", title="x", bank_version=bank_version)
        with pytest.raises(TypeError, match="colour"):
            repo.create_opening(s, slug="derm-b", title="x", bank_version=bank_version, colour=1)
        tuned = repo.create_opening(
            s,
            slug="derm-c",
            title="Tuned",
            bank_version=bank_version,
            silence_threshold_s=2.0,
            shortlist_top_n=5,
        )
        assert (tuned.silence_threshold_s, tuned.shortlist_top_n) == (2.0, 5)
        other = repo.create_applicant(s, name="O", email="o@example.org")
        invite = Invite(
            opening_id=opening.id,
            applicant_id=interview.applicant_id,
            token_hash="b" * 64,
            expires_at=_now(),
        )
        s.add(invite)
        s.flush()
        with pytest.raises(ValueError, match="not for this opening"):
            repo.create_interview(s, opening=opening, applicant=other, invite=invite)


# --- answers and progress ---------------------------------------------------------------------


def test_save_answer_upserts_on_interview_question_attempt(db_engine: Engine) -> None:
    with db.session_scope(db_engine) as s:
        interview_id = make_interview(s).id
        first = repo.save_answer(
            s,
            Answer(interview_id=interview_id, question_id="melanoma-abcde", question_index=0),
        )
        s.add(CriterionScore(answer_id=first.id, criterion_id="c", probability=0.1, model="m"))
    with db.session_scope(db_engine) as s:
        same_words = repo.save_answer(
            s,
            Answer(
                interview_id=interview_id,
                question_id="melanoma-abcde",
                question_index=0,
                speech_duration_s=3.0,
            ),
        )
        assert same_words.id == first.id
        assert len(s.scalars(select(CriterionScore)).all()) == 1  # same transcript: scores stay
        replaced = repo.save_answer(
            s,
            Answer(
                interview_id=interview_id,
                question_id="melanoma-abcde",
                question_index=0,
                transcript="Asymmetry and border.",
                status=AnswerStatus.answered,
            ),
        )
        assert replaced.id == first.id
        assert s.scalars(select(CriterionScore)).all() == []  # they judged the old transcript
        follow_up = repo.save_answer(
            s,
            Answer(
                interview_id=interview_id,
                question_id="melanoma-abcde",
                question_index=0,
                attempt=1,
                transcript="Dermoscopy.",
            ),
        )
        practice = repo.save_answer(
            s,
            Answer(interview_id=interview_id, question_id="practice", question_index=-1),
        )
        assert follow_up.id != first.id
        assert repo.save_answer(s, follow_up) is follow_up  # saving the stored row again
    with db.session_scope(db_engine) as s:
        answers = repo.answers_of(s, interview_id)
        assert [a.id for a in answers] == [practice.id, first.id, follow_up.id]
        assert answers[1].transcript == "Asymmetry and border."
        assert answers[1].speech_duration_s is None  # a save replaces the whole answer
        assert repo.answers_of(s, interview_id + 1) == []


def test_save_progress_is_the_resume_point(db_engine: Engine) -> None:
    with db.session_scope(db_engine) as s:
        interview_id = make_interview(s).id
    core_state = {"asked": ["practice"], "follow_ups": {"melanoma-abcde": 1}}
    with db.session_scope(db_engine) as s:
        interview = repo.save_progress(
            s, interview_id, next_question_index=0, core_state=core_state, state="in_progress"
        )
        started = interview.started_at
        assert started is not None
    core_state["asked"].append("melanoma-abcde")  # the caller mutates its own dict...
    with db.session_scope(db_engine) as s:
        assert s.get(Interview, interview_id).core_state == {  # ...the stored copy is unchanged
            "asked": ["practice"],
            "follow_ups": {"melanoma-abcde": 1},
        }
        repo.save_progress(
            s, interview_id, next_question_index=1, core_state=core_state, state="in_progress"
        )
    with db.session_scope(db_engine) as s:
        interview = s.get(Interview, interview_id)
        assert interview.core_state["asked"] == ["practice", "melanoma-abcde"]
        assert (interview.next_question_index, interview.state) == (1, InterviewState.in_progress)
        assert interview.started_at == started
        repo.save_progress(
            s, interview_id, next_question_index=1, core_state={}, state=InterviewState.completed
        )
        assert interview.completed_at is not None
        with pytest.raises(ValueError, match="completed"):
            repo.save_progress(
                s, interview_id, next_question_index=0, core_state={}, state="in_progress"
            )
        with pytest.raises(TypeError):
            repo.save_progress(
                s,
                interview_id,
                next_question_index=1,
                core_state={"x": object()},
                state="completed",
            )
        with pytest.raises(LookupError):
            repo.save_progress(s, 999_999, next_question_index=0, core_state={}, state="invited")


def test_concurrent_sessions_see_committed_answers(db_engine: Engine) -> None:
    """A reader (the recruiter's page) while the interview writes; WAL makes this work on SQLite."""
    with db.session_scope(db_engine) as s:
        interview_id = make_interview(s).id
    with Session(db_engine) as reader, db.session_scope(db_engine) as writer:
        assert repo.answers_of(reader, interview_id) == []
        repo.save_answer(
            writer, Answer(interview_id=interview_id, question_id="practice", question_index=-1)
        )
        writer.commit()
        reader.rollback()
        assert len(repo.answers_of(reader, interview_id)) == 1
        assert reader.execute(text("SELECT 1")).scalar() == 1


def test_concurrent_read_then_write_transactions_queue_instead_of_failing(
    db_engine: Engine,
) -> None:
    """Two live interviews (or an interview and the scoring worker) each read and then write.
    On SQLite a deferred transaction whose snapshot went stale fails at once with "database is
    locked"; write blocks take the lock up front, so the second waits its turn."""
    import threading

    with db.session_scope(db_engine) as s:
        interview_id = make_interview(s).id
    first_has_read = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.session_scope(db_engine, write=True) as s:
                s.get(Interview, interview_id)
                first_has_read.set()
                threading.Event().wait(0.5)  # the other writer tries to commit meanwhile
                s.get(Interview, interview_id).next_question_index = 1
        except BaseException as err:
            errors.append(err)
            first_has_read.set()

    def second() -> None:
        first_has_read.wait(5)
        try:
            with db.session_scope(db_engine, write=True) as s:
                s.get(Interview, interview_id).state = InterviewState.in_progress
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with db.session_scope(db_engine) as s:
        row = s.get(Interview, interview_id)
        assert (row.next_question_index, row.state) == (1, InterviewState.in_progress)


# --- recordings --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recordings_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recordings, Path]:
    """A root with one real recording, plus a secret next to it that must stay unreachable."""
    base = tmp_path_factory.mktemp("media")
    (base / "secret.txt").write_text("not yours")
    recordings = Recordings(base / "recordings")
    recordings.answer_audio(1, "practice").write_bytes(b"RIFF")
    return recordings, base


def _assert_inside(recordings: Recordings, path: Path) -> None:
    assert path == path.resolve()
    assert path.is_relative_to(recordings.root) and path != recordings.root


def test_recording_paths_and_relative_round_trip(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path / "rec")
    audio = recordings.answer_audio(7, "melanoma-abcde", 2)
    assert audio == (tmp_path / "rec/7/melanoma-abcde.followup-2.wav").resolve()
    assert audio.parent.is_dir()
    main = recordings.answer_audio(7, "melanoma-abcde")
    assert recordings.relative(main) == "7/melanoma-abcde.wav"
    chunk = recordings.media_chunk(7, "camera", 12)
    assert recordings.relative(chunk) == "7/media/camera/00000012.webm"
    chunk.write_bytes(b"\x1a\x45\xdf\xa3")
    assert recordings.open_for_read("7/media/camera/00000012.webm") == chunk
    with pytest.raises(FileNotFoundError):
        recordings.open_for_read(recordings.relative(audio))  # inside, but never written
    with pytest.raises(ValueError):
        recordings.relative(tmp_path / "elsewhere.wav")
    assert recordings.purge_interview(7) is True
    assert not (tmp_path / "rec/7").exists() and recordings.purge_interview(7) is False


hostile_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(["..", ".", "/", "\\", "a", "practice", "%2e%2e", "\x00", "~", "\n", " "]),
        max_size=8,
    ).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(question_id=hostile_text, kind=hostile_text)
def test_hostile_ids_never_leave_the_root(
    recordings_tree: tuple[Recordings, Path], question_id: str, kind: str
) -> None:
    recordings, _ = recordings_tree
    for build in (
        lambda: recordings.answer_audio(3, question_id),
        lambda: recordings.media_chunk(3, kind, 0),
    ):
        try:
            path = build()
        except ValueError:
            continue
        _assert_inside(recordings, path)
        assert ".." not in recordings.relative(path).split("/")


@settings(max_examples=200, deadline=None)
@given(
    interview_id=st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
        st.text(max_size=10),
        st.floats(),
        st.none(),
    ),
    attempt=st.one_of(st.integers(min_value=-5, max_value=200), st.text(max_size=3)),
)
def test_hostile_numbers_are_refused(
    recordings_tree: tuple[Recordings, Path], interview_id: object, attempt: object
) -> None:
    recordings, _ = recordings_tree
    try:
        path = recordings.answer_audio(interview_id, "q1", attempt)  # type: ignore[arg-type]
    except ValueError:
        return
    assert type(interview_id) is int and interview_id >= 1
    assert type(attempt) is int and 0 <= attempt <= 99
    assert path.name == ("q1.wav" if attempt == 0 else f"q1.followup-{attempt}.wav")
    assert path.parent.name == str(interview_id)


@settings(max_examples=400, deadline=None)
@given(relative_path=hostile_text)
def test_open_for_read_refuses_everything_outside(
    recordings_tree: tuple[Recordings, Path], relative_path: str
) -> None:
    recordings, base = recordings_tree
    for candidate in (relative_path, "../" + relative_path, "/" + relative_path):
        try:
            path = recordings.open_for_read(candidate)
        except (ValueError, FileNotFoundError):
            continue
        _assert_inside(recordings, path)
        assert path != base / "secret.txt"


def test_known_escapes_are_refused(recordings_tree: tuple[Recordings, Path]) -> None:
    recordings, base = recordings_tree
    assert recordings.open_for_read("1/practice.wav").read_bytes() == b"RIFF"
    for escape in [
        "../secret.txt",
        "1/../../secret.txt",
        str(base / "secret.txt"),
        "/etc/passwd",
        "",
        "1\\..\\..\\secret.txt",
        "1/practice.wav\x00.txt",
    ]:
        with pytest.raises(ValueError):
            recordings.open_for_read(escape)


def test_symlinks_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    recordings = Recordings(tmp_path / "rec")
    recordings.root.mkdir()

    # A folder link: writing through it must fail before any directory is created outside.
    (recordings.root / "5").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        recordings.answer_audio(5, "q1")
    with pytest.raises(ValueError):
        recordings.media_chunk(5, "camera", 0)
    with pytest.raises(ValueError):
        recordings.open_for_read("5/secret.txt")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert recordings.purge_interview(5) is True  # removes the link, not what it points at
    assert (outside / "secret.txt").exists() and not (recordings.root / "5").exists()

    # A file link inside a real interview folder.
    audio = recordings.answer_audio(6, "q1")
    audio.symlink_to(outside / "secret.txt")
    with pytest.raises(ValueError):
        recordings.open_for_read("6/q1.wav")
    with pytest.raises(ValueError):
        recordings.answer_audio(6, "q1")
    recordings.purge_interview(6)
    assert (outside / "secret.txt").read_text() == "not yours"


def test_relative_root_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recordings = Recordings("recordings")
    monkeypatch.chdir(tempfile.gettempdir())
    assert recordings.answer_audio(1, "q1").is_relative_to(tmp_path.resolve() / "recordings")
