"""An answer's stored audio, end to end: real silero VAD, whisper tiny.en, pyttsx3 and SQLite.

The file starts just before the applicant's speech (not when the question went out), and an
answer taken up again after "I wasn't finished" is one file and one transcript holding both
parts. The applicant is a WAV of espeak-ng answers that waits, like a polite person, while the
interviewer speaks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from sqlalchemy import Engine
from web_support import CUT_OFF_ANSWERS, CUT_OFF_BANK, cut_off_parts_heard

from interviewer.interview import Script
from interviewer.store import repo
from interviewer.store.db import create_db_engine, migrate, session_scope
from interviewer.store.models import AnswerStatus
from interviewer.store.recordings import Recordings
from interviewer.voice.agent import InterviewAgent
from interviewer.voice.capture import PRE_SPEECH_S
from interviewer.voice.io import (
    StreamingWavWriter,
    WavAudioInput,
    WavAudioOutput,
    answers_wav,
    read_wav,
)
from interviewer.voice.session import InterviewReport, SessionOptions, run_interview
from interviewer.voice.stack import VoiceModels
from interviewer.voice.stt import WhisperSTT
from interviewer.voice.tts import Pyttsx3TTS
from interviewer.voice.vad import load_vad

pytestmark = pytest.mark.slow

BANK = CUT_OFF_BANK
PRACTICE, MORE, COLOUR = CUT_OFF_ANSWERS


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return {"stt": WhisperSTT(model="tiny.en"), "vad": load_vad(0.3)}


def _interview(engine: Engine) -> int:
    with session_scope(engine) as s:
        version = repo.publish_bank(s, BANK)
        opening = repo.create_opening(s, slug="audio", title="Audio", bank_version=version)
        applicant = repo.create_applicant(s, name="A", email="a@example.invalid")
        return repo.create_interview(s, opening=opening, applicant=applicant).id


async def _run(
    tmp_path: Path,
    models: dict[str, Any],
    answers: list[str],
    *,
    gap_s: float,
    on_session: Any = None,
    first_gap_s: float | None = None,
    options: SessionOptions | None = None,
    speed: float = 6.0,
) -> tuple[InterviewReport, Recordings]:
    """``first_gap_s``: the pause between the first two answers, when it differs; ``speed``:
    how much faster than real time the agent's lines play."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    interview_id = _interview(engine)
    wav = tmp_path / "answers.wav"
    spans = answers_wav(answers, wav, gap_s=gap_s)
    if first_gap_s is not None:
        pcm, rate = read_wav(wav)
        cut = int((spans[0][1] + first_gap_s) * rate), int(spans[1][0] * rate)
        out = StreamingWavWriter(wav, rate)
        out.write(np.concatenate([pcm[: cut[0]], pcm[cut[1] :]]).tobytes())
        out.close()
    recordings = Recordings(tmp_path / "rec")
    audio_out = WavAudioOutput(None, speed=speed)
    report = await run_interview(
        engine,
        interview_id,
        audio_input=WavAudioInput(wav, fast=True),
        audio_output=audio_out,
        recordings=recordings,
        models=VoiceModels(
            stt=models["stt"],
            vad=models["vad"],
            tts=Pyttsx3TTS(cache_dir=tmp_path.parent / "tts-cache"),
        ),
        options=options or SessionOptions(timeout_s=240, max_follow_ups=0),
        on_session=on_session,
    )
    await audio_out.aclose()
    return report, recordings


def _pcm(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def _voiced_from_s(pcm: np.ndarray, rate: int) -> float:
    """Where the first 20 ms with speech-like energy starts (the WAV's silences are zeros)."""
    frame = rate // 50
    for i in range(0, len(pcm) - frame, frame):
        chunk = pcm[i : i + frame].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) > 300:
            return i / rate
    raise AssertionError("no speech in the file")


async def test_an_answer_file_starts_just_before_its_speech(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    # 7 s between answers: the practice answer's turn ends up to the 3 s maximum pause after its
    # speech, the question takes about a second, so the second answer begins some 3 s after it
    report, recordings = await _run(tmp_path, models, [PRACTICE, COLOUR], gap_s=7.0)
    assert report.completed
    assert [a.question_id for a in report.answers] == ["practice", "colour"]
    for answer in report.answers:
        assert answer.status is AnswerStatus.answered
        if answer.question_id == "colour":  # (the practice answer is held in the file's lead)
            assert answer.onset_latency_s is not None and answer.onset_latency_s > 2.5
        pcm, rate = _pcm(recordings.open_for_read(answer.audio_path))
        onset = _voiced_from_s(pcm, rate)
        # about PRE_SPEECH_S of what came before, never the seconds since the question
        assert 0.1 <= onset <= 1.0, (answer.question_id, onset)
        assert onset >= PRE_SPEECH_S - 0.35, (answer.question_id, onset)
        # the word timings are the file's: the first word starts where the speech does
        assert abs(answer.words[0]["start"] - onset) < 0.6, (answer.words[0], onset)


async def test_i_was_not_finished_continues_the_same_answer(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    """The agent moved on after the first sentence; the applicant says they were not finished
    (the page's button: ``continue_answer``) and says a second sentence, which is appended to
    the practice answer's transcript, words and audio."""
    asked: list[str] = []

    def on_session(_session: Any, agent: InterviewAgent) -> None:
        def on_status(status: str, can_continue: bool) -> None:
            if can_continue and not asked:
                asked.append(status)
                asyncio.get_running_loop().create_task(agent.continue_answer())

        agent.on_status = on_status

    report, recordings = await _run(
        tmp_path, models, [PRACTICE, MORE, COLOUR], gap_s=3.0, on_session=on_session
    )
    assert asked and report.completed
    assert Script().go_on in report.said
    got = {a.question_id: a for a in report.answers}
    assert list(got) == ["practice", "colour"]
    practice = got["practice"]
    text = practice.transcript.lower()
    assert cut_off_parts_heard(text), text
    assert "green" not in text and "green" in got["colour"].transcript.lower()
    spoken = " ".join(w["word"].lower() for w in practice.words)
    assert cut_off_parts_heard(spoken)
    starts = [w["start"] for w in practice.words]
    assert starts == sorted(starts)  # the second part's words come after the first's
    # one file holds both parts: whisper hears both in it
    pcm, rate = _pcm(recordings.open_for_read(practice.audio_path))
    heard = await models["stt"].recognize(buffer=rtc.AudioFrame(pcm.tobytes(), rate, 1, len(pcm)))
    heard_text = heard.alternatives[0].text.lower()
    assert cut_off_parts_heard(heard_text), heard_text
    assert practice.words[-1]["end"] <= len(pcm) / rate + 0.2


async def test_speaking_again_right_after_the_turn_ended_takes_it_back(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    """The practice answer pauses 1.6 s between its two sentences, longer than this opening's
    maximum pause (1.0 s): the turn ends inside the pause and the interviewer starts its reply.
    The applicant's second sentence, within ``take_back_s`` of the first, takes the turn back:
    the reply stops, nothing more is said, and the second sentence joins the practice answer's
    transcript, words and audio, as if the turn had never ended."""
    agents: list[InterviewAgent] = []

    def on_session(session: Any, agent: InterviewAgent) -> None:
        agents.append(agent)
        capture = agent.capture
        assert capture is not None
        # a polite applicant waits once a pause has lasted 2.5 s while the interviewer is
        # busy, not inside the 1.6 s one (that would hide the take-back)
        session.input.audio.follow(
            lambda: (
                session.agent_state in ("initializing", "thinking", "speaking")
                or capture.transcribing()
                or capture.has_untaken_words()
                or (capture.current is not None and capture.current.prompt_end_s is None)
            ),
            hold_after_s=2.5,
        )

    report, recordings = await _run(
        tmp_path,
        models,
        [PRACTICE, MORE, COLOUR],
        gap_s=5.0,
        first_gap_s=1.6,
        on_session=on_session,
        speed=1.0,  # the next question is still being put when the applicant goes on
        options=SessionOptions(
            timeout_s=240, max_follow_ups=0, silence_threshold_s=1.0, hold_input=False
        ),
    )
    assert report.completed
    agent = agents[0]
    assert agent.taken_back == 1
    assert Script().go_on not in report.said  # they were talking: nothing to invite
    # the reply was begun once for the first sentence and once, in full, after the second
    assert report.said.count(Script().practice_done) == 2
    got = {a.question_id: a for a in report.answers}
    assert list(got) == ["practice", "colour"]
    practice = got["practice"]
    assert practice.status is AnswerStatus.answered
    text = practice.transcript.lower()
    assert cut_off_parts_heard(text), text
    assert "green" not in text and "green" in got["colour"].transcript.lower()
    starts = [w["start"] for w in practice.words]
    assert starts == sorted(starts)
    pcm, rate = _pcm(recordings.open_for_read(practice.audio_path))
    heard = await models["stt"].recognize(buffer=rtc.AudioFrame(pcm.tobytes(), rate, 1, len(pcm)))
    heard_text = heard.alternatives[0].text.lower()
    assert cut_off_parts_heard(heard_text), heard_text
    # the answer's pauses include the one that was taken back: the pace learns from it
    practice_recs = [r for r in agent.capture.history if r.ask.question_id == "practice"]
    assert any(1.2 <= p <= 2.2 for r in practice_recs for p in r.pauses), [
        r.pauses for r in practice_recs
    ]
    # one file per answer: the recording the withdrawn question had begun is gone
    assert len(list((tmp_path / "rec").rglob("*.wav"))) == 2


async def test_the_last_answer_is_acknowledged_at_once_and_closed_after_the_pause(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    """After the last question nothing can be taken back (the reply closes the interview), so
    the turn waits the longer, pace-unknown pause; the reply's first words, "Thank you.", come
    as soon as the answer sounds finished, and the closing follows without a second thanks."""
    agents: list[InterviewAgent] = []

    def on_session(_session: Any, agent: InterviewAgent) -> None:
        # a quick wait for turns that can be taken back, so that the thanks and the turn's
        # own end are far apart whatever the machine's speed
        agent.end_of_turn.policy = dataclasses.replace(
            agent.end_of_turn.policy, take_back_wait_s=0.8, unknown_pace_wait_s=2.5
        )
        agents.append(agent)

    report, _ = await _run(tmp_path, models, [PRACTICE, COLOUR], gap_s=7.0, on_session=on_session)
    assert report.completed
    agent = agents[0]
    verdicts = [v for _, v in agent.end_of_turn.verdicts]
    print([(v.reason, v.probability, v.text) for v in verdicts])
    last = verdicts[-1]
    assert last.reason.startswith("finished") and last.wait_s >= 2.0, last
    timing = next(t for t in report.turns if t.question_id == "colour")
    print(f"last answer: first audio {timing.turn_latency_s:.2f} s after its speech")
    policy = agent.end_of_turn.policy
    # "Thank you." at the quick wait, long before the turn's own wait is over
    assert timing.turn_latency_s is not None
    assert last.take_back_wait_s == policy.take_back_wait_s
    assert timing.turn_latency_s < policy.take_back_wait_s + 0.8 < last.wait_s
    assert report.said[-1] == Script().closing
    assert report.said.count(Script().ack) <= 1  # the practice reply has its own thanks
