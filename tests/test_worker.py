"""The LiveKit worker without a LiveKit server (none installs here).

What needs a server is replaced, nothing else: the job context is livekit-agents' own
``testing.fake_job_context`` (a real ``JobContext`` of a fake job, with an unconnected room),
and in the whole-interview test the room's audio is a WAV (``voice.io``), where RoomIO would
carry the applicant's track. The session is the worker's real one: ``RoomInterview.run`` ->
``run_interview`` with silero, whisper tiny.en and pyttsx3, writing answers through the S3
storage into a real S3 server (Ceph RGW, tests/s3_server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import wave
from pathlib import Path
from typing import Any

import pytest
import s3_server
from livekit import api, rtc
from livekit.agents.testing import fake_job_context
from sqlalchemy import select
from web_support import FIXTURE_ANSWERS, FIXTURE_BANK, make_settings, seed_interview

from interviewer import invites
from interviewer.errors import UserError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import Answer, AnswerStatus, Interview, InterviewState, Invite
from interviewer.store.storage import S3Storage
from interviewer.transports import livekit as lk
from interviewer.transports.livekit.server import (
    RoomInterview,
    build_server,
    room_options,
    target_of_room,
)
from interviewer.voice.stack import VoiceStack


def _issue(engine: Any, settings: Any, email: str) -> invites.IssuedInvite:
    with session_scope(engine) as s:
        version = repo.publish_bank(s, FIXTURE_BANK)
        opening = repo.create_opening(s, slug=f"w-{email[:3]}", title="W", bank_version=version)
        applicant = repo.create_applicant(s, name="A", email=email)
        return invites.issue_invite(s, settings, opening=opening, applicant=applicant)


def test_a_room_is_served_only_for_an_open_interview(db_engine: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    issued = _issue(db_engine, settings, "one@example.invalid")
    iid = issued.interview_id
    target = target_of_room(db_engine, f"interview-{iid}", settings)
    assert target is not None
    assert (target.interview_id, target.identity) == (iid, f"invite-{issued.invite_id}")
    for name in (f"interview-{iid + 100}", f"other-{iid}", "interview-", f"interview-0{iid}",
                 f"interview-{iid}x", "interview--1"):  # fmt: skip
        assert target_of_room(db_engine, name, settings) is None, name
    with session_scope(db_engine) as s:
        s.get(Interview, iid).state = InterviewState.completed
    assert target_of_room(db_engine, f"interview-{iid}", settings) is None
    custom = make_settings(tmp_path, livekit_room_prefix="acme-")
    issued2 = _issue(db_engine, settings, "two@example.invalid")
    assert target_of_room(db_engine, f"acme-{issued2.interview_id}", custom) is not None
    assert target_of_room(db_engine, f"interview-{issued2.interview_id}", custom) is None


def test_room_io_listens_to_the_applicant_only() -> None:
    opts = room_options("invite-7")
    assert opts.participant_identity == "invite-7"
    assert opts.get_audio_input_options().sample_rate == 16_000
    assert opts.close_on_disconnect is False  # a dropped applicant comes back to the session


async def test_a_stray_room_is_left_without_a_session(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    seeded = seed_interview(settings)
    worker = RoomInterview(settings, engine=seeded.engine)
    with fake_job_context(room=rtc.Room()) as ctx:
        ctx.job.room.name = "somebody-elses-room"
        assert await worker.run(ctx) is None
    with session_scope(seeded.engine) as s:
        assert s.get(Interview, seeded.interview_id).state == InterviewState.invited


def test_the_worker_needs_livekit_settings(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="INTERVIEWER_LIVEKIT_API_SECRET"):
        build_server(make_settings(tmp_path, livekit_url="wss://lk.example.invalid"))
    server = build_server(
        make_settings(
            tmp_path,
            livekit_url="wss://lk.example.invalid",
            livekit_api_key="key",
            livekit_api_secret="a-secret-of-at-least-32-characters!!",
        ),
        http_port=0,
    )
    assert server._agent_name == lk.AGENT_NAME  # explicit dispatch: only our tokens call it


def test_max_interviews_makes_the_worker_busy_at_exactly_that_many(tmp_path: Path) -> None:
    """livekit-agents calls load_fnc(server) and marks the worker unavailable once the load
    exceeds load_threshold: with --max-interviews 3 that is at the third running interview."""
    from types import SimpleNamespace

    settings = make_settings(tmp_path, livekit_url="wss://lk.example.invalid",
                             livekit_api_key="key",
                             livekit_api_secret="a-secret-of-at-least-32-characters!!")  # fmt: skip
    server = build_server(settings, max_interviews=3, http_port=0)
    threshold = server._load_threshold
    for running, available in ((0, True), (1, True), (2, True), (3, False), (5, False)):
        jobs = SimpleNamespace(active_jobs=[object()] * running)  # the server's job list
        load = server.load_fnc(jobs)
        assert (load < threshold) is available, (running, load, threshold)  # as livekit checks
    assert build_server(settings, http_port=0).load_fnc is None  # default: livekit's CPU load


def test_egress_request_records_the_applicant_into_the_bucket(tmp_path: Path) -> None:
    local = make_settings(tmp_path, livekit_egress=True)
    with pytest.raises(UserError, match="INTERVIEWER_STORAGE=s3"):
        lk.egress_request(local, interview_id=3, identity="invite-9")
    settings = make_settings(
        tmp_path,
        storage="s3",
        s3_bucket="rec",
        s3_endpoint_url="http://minio:9000",
        s3_access_key_id="ak",
        s3_secret_access_key="sk",
        s3_prefix="acme/",
        livekit_egress=True,
    )
    req = lk.egress_request(settings, interview_id=3, identity="invite-9")
    assert (req.room_name, req.identity) == ("interview-3", "invite-9")
    (out,) = req.file_outputs
    assert out.filepath == "acme/3/media/egress/interview-3.mp4"
    assert out.file_type == api.EncodedFileType.MP4
    assert (out.s3.bucket, out.s3.endpoint, out.s3.force_path_style) == (
        "rec",
        "http://minio:9000",
        True,
    )


# --- a whole interview through the worker -----------------------------------------------------


@pytest.fixture
def s3(s3_server: s3_server.CephS3) -> s3_server.CephS3:
    """The session's Ceph S3 server (tests/conftest.py)."""
    return s3_server


@pytest.mark.slow
async def test_worker_runs_the_interview_session_and_stores_answers_in_s3(
    tmp_path: Path, s3: s3_server.CephS3, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from interviewer.voice.io import WavAudioInput, WavAudioOutput, answers_wav
    from interviewer.voice.stt import WhisperSTT
    from interviewer.voice.vad import load_vad

    settings = make_settings(tmp_path, data_dir=tmp_path_factory.getbasetemp() / "worker-data")
    seeded = seed_interview(settings)
    storage = S3Storage(
        tmp_path / "worker-staging",
        bucket="worker-test",
        endpoint_url=s3.endpoint,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        keep_local=False,  # the bucket must be the only copy
    )
    with contextlib.suppress(storage.client.exceptions.BucketAlreadyOwnedByYou):
        storage.client.create_bucket(Bucket="worker-test")
    wav = tmp_path / "answers.wav"
    answers_wav([text for text, _ in FIXTURE_ANSWERS.values()], wav, gap_s=4.0)
    out = WavAudioOutput(tmp_path / "agent.wav", speed=6.0)

    stack = VoiceStack(settings, vad=load_vad(0.3), stt=WhisperSTT(model="tiny.en"))
    worker = RoomInterview(settings, engine=seeded.engine, storage=storage, stack=stack)
    with fake_job_context(room=rtc.Room()) as ctx:
        ctx.job.room.name = f"interview-{seeded.interview_id}"
        report = await worker.run(
            ctx,
            audio_input=WavAudioInput(wav, fast=True),
            audio_output=out,
        )
    await out.aclose()

    assert report is not None and report.completed
    with session_scope(seeded.engine) as s:
        rows = s.scalars(select(Answer).where(Answer.interview_id == seeded.interview_id)).all()
        assert [a.question_id for a in rows] == list(FIXTURE_ANSWERS)
        keys = {a.question_id: a.audio_path for a in rows}
        for a in rows:
            assert a.status is AnswerStatus.answered
            assert any(k in a.transcript.lower() for k in FIXTURE_ANSWERS[a.question_id][1])
        assert s.get(Interview, seeded.interview_id).state == InterviewState.completed
        assert s.get(Invite, seeded.invite_id).used_at is not None  # the link is spent
    # every answer's WAV is in the bucket (and only there), readable through the interface
    iid = seeded.interview_id
    assert storage.list_keys(iid) == sorted(f"{iid}/{q}.wav" for q in FIXTURE_ANSWERS)
    assert not list((tmp_path / "worker-staging").rglob("*.wav"))
    app_side = S3Storage(
        tmp_path / "app-staging",
        bucket="worker-test",
        endpoint_url=s3.endpoint,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
    )
    for qid, key in keys.items():
        with wave.open(str(app_side.open_for_read(key))) as w:
            assert w.getnframes() / w.getframerate() > 1.0, qid


@pytest.mark.slow
async def test_scorer_scores_what_workers_stored(tmp_path: Path, model_dir: Path) -> None:
    """`interviewer scorer`'s loop (scoring/claims.py): answers a worker stored unscored get
    judged (SmolLM2: the code path), each once."""
    from interviewer.scoring.claims import score_claimed
    from interviewer.scoring.judge import Judge
    from interviewer.store.models import CriterionScore, ScoringClaim

    settings = make_settings(tmp_path)
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        s.get(Interview, seeded.interview_id).state = InterviewState.in_progress
        for i, qid in enumerate(["practice", "colour"]):
            answer = Answer(
                interview_id=seeded.interview_id,
                question_id=qid,
                question_index=i - 1,
                attempt=0,
                status=AnswerStatus.answered,
                transcript=FIXTURE_ANSWERS[qid][0],
            )
            repo.save_answer(s, answer)
    judge = Judge("smollm2-135m", model_dir)
    judged = await asyncio.to_thread(
        score_claimed, seeded.engine, judge, None, interval_s=0.2, until_idle=True
    )
    # a second pass finds nothing left: nothing is judged twice
    again = await asyncio.to_thread(
        score_claimed, seeded.engine, judge, None, interval_s=0.2, until_idle=True
    )
    assert judged == 1 and again == 0
    with session_scope(seeded.engine) as s:
        colour = s.scalars(select(Answer).where(Answer.question_id == "colour")).one()
        assert colour.scored_at is not None
        crit = s.scalars(select(CriterionScore).where(CriterionScore.answer_id == colour.id)).all()
        assert crit and all(c.model == "smollm2-135m" for c in crit)
        claims = s.scalars(select(ScoringClaim)).all()
        assert [(c.answer_id, c.outcome) for c in claims] == [(colour.id, "ok")]
