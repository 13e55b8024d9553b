"""A finished, scored, proctored interview on disk and in the database, for the report tests.

Answers are real espeak-ng speech written where the voice session writes them
(``Recordings.answer_audio``); word timings are spread over each clip's spoken span (the
report only displays them); the camera is a real VP8 WebM from ffmpeg, cut into MediaRecorder-
style chunks with the mtimes an uploading page would leave; a camera event has a real JPEG
thumbnail written by ``proctoring.events.save_thumbnail``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from web_support import FIXTURE_ANSWERS, FIXTURE_BANK, Seeded, seed_interview

from interviewer.banks.model import Bank
from interviewer.config import Settings
from interviewer.proctoring.events import save_thumbnail
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    CriterionScore,
    IntegrityEvent,
    Interview,
    InterviewState,
)
from interviewer.store.recordings import Recordings


def _levels(top: int) -> list[dict[str, Any]]:
    return [{"score": n, "descriptor": f"level {n} of {top}"} for n in range(top + 1)]


# The web fixture bank's two questions with rubrics a recruiter would recognise, and a red flag.
REPORT_BANK = Bank.model_validate(
    {
        **FIXTURE_BANK.model_dump(mode="json"),
        "id": "report-fixture",
        "title": "Report test screen",
        "questions": [
            {
                **FIXTURE_BANK.questions[0].model_dump(mode="json"),
                "rubric": {
                    "criteria": [
                        {
                            "id": "names-colour",
                            "description": "Names one colour and says why.",
                            "weight": 1,
                            "levels": _levels(2),
                        }
                    ]
                },
            },
            {
                **FIXTURE_BANK.questions[1].model_dump(mode="json"),
                "rubric": {
                    "criteria": [
                        {
                            "id": "features",
                            "description": "Mentions the trunk and the size.",
                            "weight": 2,
                            "levels": _levels(2),
                        }
                    ],
                    "red_flags": [
                        {"id": "tiny", "description": "Says elephants are small.", "penalty": 0.3}
                    ],
                },
            },
        ],
    }
)
CRITERIA = {"colour": "names-colour", "animal": "features"}

CAMERA_PART = 1
CHUNK_S = 4.0
TAB_HIDDEN_AT_S = 1.5  # into the "colour" answer


@dataclass
class SeededReport:
    seeded: Seeded
    interview_id: int
    opening_id: int
    applicant_id: int
    answer_ids: dict[str, int]
    event_ids: dict[str, int]
    files: list[Path]
    words: dict[str, list[dict[str, Any]]]


_SPEECH: dict[str, tuple[bytes, float, float, float]] = {}
_WEBM: dict[int, bytes] = {}


def _speech(text: str, path: Path) -> tuple[float, float, float]:
    """espeak-ng ``text`` into ``path`` with 0.5 s of lead silence; (start, end, total) s.
    Synthesised once per test session, then copied (seeding stays fast on a busy machine)."""
    from interviewer.voice.io import answers_wav, read_wav

    if text not in _SPEECH:
        spans = answers_wav([text], path, lead_s=0.5, gap_s=0.5)
        data, rate = read_wav(path)
        _SPEECH[text] = (path.read_bytes(), spans[0][0], spans[0][1], len(data) / rate)
    data, start, end, total = _SPEECH[text]
    path.write_bytes(data)
    return start, end, total


def _timed_words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    tokens = text.split()
    step = (end - start) / len(tokens)
    return [
        {
            "word": (" " if i else "") + tok,
            "start": round(start + i * step, 3),
            "end": round(start + (i + 0.9) * step, 3),
            "probability": 0.9,
        }
        for i, tok in enumerate(tokens)
    ]


def camera_webm(path: Path, seconds: int) -> Path:
    """A VP8 test pattern. One encoder thread: on a busy 2-core machine libvpx's extra threads
    mostly wait on each other (40 s of video: ~0.5 s with one thread, up to ~18 s without)."""
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size=160x120:rate=10:duration={seconds}",
            "-c:v", "libvpx", "-b:v", "150k", "-deadline", "realtime", "-threads", "1",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def seed_report(
    settings: Settings,
    *,
    email: str = "ada@example.invalid",
    slug: str = "web-report",
    name: str = "Ada Lovelace",
    score: float = 0.72,
    camera: bool = True,
    red_flag: bool | None = False,  # None: checked but not raised
    finished_days_ago: float = 0.0,
    tmp: Path | None = None,
) -> SeededReport:
    seeded = seed_interview(settings, REPORT_BANK, email=email, slug=slug)
    recordings = Recordings(settings.recordings_dir)
    iid = seeded.interview_id
    t0 = datetime.now(UTC) - timedelta(days=finished_days_ago, minutes=5)
    files: list[Path] = []
    answer_ids: dict[str, int] = {}
    words: dict[str, list[dict[str, Any]]] = {}
    order = ["practice", "colour", "animal"]
    starts: dict[str, datetime] = {}
    with session_scope(seeded.engine) as s:
        interview = s.get(Interview, iid)
        opening_id = interview.opening_id
        applicant_id = interview.applicant_id
        applicant = interview.applicant_id
        from interviewer.store.models import Applicant

        s.get(Applicant, applicant).name = name
        at = t0 + timedelta(seconds=2)
        for index, qid in enumerate(order):
            text = FIXTURE_ANSWERS[qid][0]
            path = recordings.answer_audio(iid, qid)
            begin, end, total = _speech(text, path)
            files.append(path)
            timed = _timed_words(text, begin, end)
            words[qid] = timed
            answer = repo.save_answer(
                s,
                Answer(
                    interview_id=iid,
                    question_id=qid,
                    question_index=index - 1,
                    status=AnswerStatus.answered,
                    audio_path=recordings.relative(path),
                    transcript=text,
                    words=timed,
                    started_at=at,
                    ended_at=at + timedelta(seconds=total),
                    speech_duration_s=end - begin,
                    onset_latency_s=begin,
                    score=None if qid == "practice" else score + (0.1 if qid == "colour" else -0.1),
                    score_confidence=None if qid == "practice" else 0.8,
                ),
            )
            answer_ids[qid] = answer.id
            starts[qid] = at
            at += timedelta(seconds=total + 4)
            if qid == "practice":
                continue
            quote_words = timed[3:6]
            if qid == "animal" and red_flag is not False:
                flagged = timed[4:7]
                s.add(
                    CriterionScore(
                        answer_id=answer.id,
                        criterion_id="tiny",
                        kind="red_flag",
                        probability=0.7 if red_flag is True else 0.2,
                        evidence=[
                            {
                                "quote": "".join(w["word"] for w in flagged).strip(),
                                "start": flagged[0]["start"],
                                "end": flagged[-1]["end"],
                                "similarity": 0.6,
                                "answer_id": answer.id,
                            }
                        ],
                        model="test-judge",
                    )
                )
            s.add(
                CriterionScore(
                    answer_id=answer.id,
                    criterion_id=CRITERIA[qid],
                    kind="criterion",
                    probability=0.8 if qid == "colour" else 0.4,
                    level=1.6 if qid == "colour" else 0.8,
                    evidence=[
                        {
                            "quote": "".join(w["word"] for w in quote_words).strip(),
                            "start": quote_words[0]["start"],
                            "end": quote_words[-1]["end"],
                            "similarity": 0.77,
                            "char_start": 0,
                            "char_end": 10,
                            "answer_id": answer.id,
                            "key_point": None,
                        }
                    ],
                    model="test-judge",
                )
            )
        interview.state = InterviewState.completed
        interview.started_at = t0
        interview.completed_at = at
        interview.updated_at = at
        interview.consented_at = t0
        interview.score = score
        interview.score_confidence = 0.8
        interview.scored_at = at
        s.flush()
        events: dict[str, int] = {}
        tab = IntegrityEvent(
            interview_id=iid,
            question_id="colour",
            kind="tab_hidden",
            severity="warning",
            at=starts["colour"] + timedelta(seconds=TAB_HIDDEN_AT_S),
            duration_s=7.5,
            evidence={"seconds": 7.5, "key": "browser:p:1", "source": "browser"},
        )
        s.add(tab)
        s.flush()
        events["tab_hidden"] = tab.id
        if camera:
            frame = np.zeros((120, 160, 3), dtype=np.uint8)
            frame[40:80, 60:100] = (0, 0, 255)
            thumb = save_thumbnail(recordings, iid, CAMERA_PART * 10_000, frame)
            files.append(recordings.open_for_read(thumb))
            face = IntegrityEvent(
                interview_id=iid,
                question_id="animal",
                kind="no_face",
                severity="high",
                at=t0 + timedelta(seconds=30),
                duration_s=31.0,
                evidence={
                    "seconds": 31.0,
                    "part": CAMERA_PART,
                    "offset_s": 30.0,
                    "thumbnail": thumb,
                    "key": "faces:no_face:1:30.0",
                    "source": "faces",
                },
            )
            s.add(face)
            s.flush()
            events["no_face"] = face.id
    if camera:
        seconds = int((at - t0).total_seconds()) + 4
        chunks = _camera(recordings, iid, seconds, t0, tmp or Path(settings.recordings_dir).parent)
        files.extend(chunks)
    return SeededReport(seeded, iid, opening_id, applicant_id, answer_ids, events, files, words)


def _camera(
    recordings: Recordings, interview_id: int, seconds: int, t0: datetime, tmp: Path
) -> list[Path]:
    """A WebM cut into byte chunks named and timed as the upload route leaves them."""
    if seconds not in _WEBM:
        whole = camera_webm(tmp / f"camera-{interview_id}.webm", seconds)
        _WEBM[seconds] = whole.read_bytes()
        whole.unlink()
    data = _WEBM[seconds]
    count = max(1, int(seconds // CHUNK_S))
    size = -(-len(data) // count)
    out = []
    for chunk in range(count):
        seq = CAMERA_PART * 100_000 + chunk
        path = recordings.media_chunk(interview_id, "camera", seq)
        path.write_bytes(data[chunk * size : (chunk + 1) * size])
        stamp = (t0 + timedelta(seconds=CHUNK_S * (chunk + 1))).timestamp()
        os.utime(path, (stamp, stamp))
        out.append(path)
    return out
