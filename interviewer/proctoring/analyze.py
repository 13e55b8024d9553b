"""Run the server-side detectors over what an interview stored, and write their events.

``analyze_interview(engine, interview_id)`` reads the answers (WAVs, transcripts, word timings),
the camera recording and the other applicants' answers of the opening, and writes what it
found as IntegrityEvents. It is idempotent: each detector's events carry deterministic keys and
a run replaces that detector's previous findings (``events.replace_source``), so running it
again (after a crash, after changing an opening's thresholds, after more applicants answered)
never duplicates anything.

Blocking and CPU-heavy (MFCCs, a face detector at 1 fps, a sentence embedder): call it from a
worker process or an executor, after the interview has ended. The database session is open only
to read the inputs and to write the results, never during the computation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, select
from sqlmodel import Session

from interviewer.config import get_settings
from interviewer.errors import UserError
from interviewer.interview import PRACTICE_ID
from interviewer.priority import yield_to_live
from interviewer.proctoring import duplicates as dup
from interviewer.proctoring import face_model, faces, speakers, voices
from interviewer.proctoring.events import (
    EventDraft,
    EventKind,
    draft,
    replace_source,
    save_thumbnail,
    summary,
)
from interviewer.proctoring.thresholds import ProctoringThresholds, thresholds_from_settings
from interviewer.store.db import create_db_engine, session_scope
from interviewer.store.models import (
    Answer,
    AnswerStatus,
    Interview,
    Opening,
    VoicePrint,
    utcnow,
)
from interviewer.store.recordings import Recordings
from interviewer.store.repo import answers_of, audit, bank_of

CAMERA_KIND = "camera"
# The web layer names camera chunks part * 100_000 + chunk (one part = one page load's
# recording, its chunks concatenated in order form a playable file).
CHUNKS_PER_PART = 100_000
THUMBS_PER_PART = 10_000
_CHUNK_NAME = re.compile(r"^(\d{8})\.(webm|mp4|mkv|y4m)$")
SOURCES = ("voices", "faces", "duplicates")


@dataclass
class AnalysisReport:
    interview_id: int
    events: dict[str, int] = field(default_factory=dict)  # source -> events stored
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it did not run
    frames_sampled: int = 0
    answers_analyzed: int = 0


@dataclass
class _AnswerData:
    id: int
    question_id: str
    attempt: int
    transcript: str
    words: list[dict[str, Any]]
    onset_s: float | None
    started_at: datetime | None
    ended_at: datetime | None
    audio: Path | None


@dataclass
class _Inputs:
    interview_id: int
    applicant_id: int
    opening_id: int
    started_at: datetime | None
    thresholds: ProctoringThresholds
    answers: list[_AnswerData]
    references: dict[str, str]
    others: list[dup.AnswerText]
    other_voices: list[dup.StoredVoice]


def analyze_interview(
    engine: Engine,
    interview_id: int,
    *,
    recordings: Recordings | None = None,
    sources: Sequence[str] = SOURCES,
    face_detector: faces.FaceDetector | None = None,
    embed: dup.Embed | None = None,
    model_dir: Path | None = None,
) -> AnalysisReport:
    """Detect and store; a detector that cannot run (face models or embedder not installed)
    is reported in ``skipped`` and leaves its previous events alone."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(sorted(unknown))}")
    recordings = recordings or Recordings(get_settings().recordings_dir)
    inputs = _load(engine, interview_id, recordings)
    report = AnalysisReport(interview_id=interview_id)
    found: dict[str, list[EventDraft]] = {}
    voice_print: VoicePrint | None = None

    if "voices" in sources:
        try:
            encoder = speakers.SpeakerEncoder.load(model_dir)
        except UserError as err:
            report.skipped["voices"] = str(err)
        else:
            found["voices"], voice_print = _voice_events(inputs, encoder, report)
            found["voices"] += _duplicate_voice_events(inputs, voice_print)
    yield_to_live()  # between detectors: a live interview on this machine comes first
    if "faces" in sources:
        try:
            detector = face_detector or face_model.load_face_model(model_dir)
        except UserError as err:
            report.skipped["faces"] = str(err)
        else:
            found["faces"] = _face_events(inputs, recordings, detector, report)
    yield_to_live()
    if "duplicates" in sources:
        try:
            found["duplicates"] = _text_events(inputs, embed or dup.embedder(model_dir))
        except UserError as err:
            report.skipped["duplicates"] = str(err)

    with session_scope(engine) as session:
        if "voices" in found:
            _store_voice_print(session, interview_id, voice_print)
        for source, drafts in found.items():
            rows = replace_source(session, interview_id, source, drafts, recordings=recordings)
            report.events[source] = len(rows)
    return report


# --- inputs -------------------------------------------------------------------------------------


def _load(engine: Engine, interview_id: int, recordings: Recordings) -> _Inputs:
    with session_scope(engine) as session:
        interview = session.get(Interview, interview_id)
        if interview is None:
            raise LookupError(f"no interview with id {interview_id}")
        opening = session.get(Opening, interview.opening_id)
        assert opening is not None
        thresholds = thresholds_from_settings(opening.settings, where=f"opening {opening.slug}")
        bank = bank_of(session, interview.bank_version_id)
        answers = [_answer_data(a, recordings) for a in answers_of(session, interview_id)]
        query = (
            select(Answer, Interview.applicant_id)
            .join(Interview, Interview.id == Answer.interview_id)
            .where(Interview.opening_id == opening.id, Interview.id != interview_id)
            .where(Answer.attempt == 0, Answer.question_id != PRACTICE_ID)
        )
        others = [
            dup.AnswerText(a.interview_id, applicant_id, a.id, a.question_id, a.transcript)
            for a, applicant_id in session.execute(query)
            if a.transcript.strip()
        ]
        # every other interview's voice, whatever the opening: one person applying under
        # several names may well apply to several openings
        prints = (
            select(VoicePrint, Interview.applicant_id, Interview.opening_id)
            .join(Interview, Interview.id == VoicePrint.interview_id)
            .where(VoicePrint.interview_id != interview_id)
            .where(VoicePrint.model == speakers.MODEL)
        )
        other_voices = [
            dup.StoredVoice(
                p.interview_id, applicant_id, opening_id, p.answer_id, np.asarray(p.vector)
            )
            for p, applicant_id, opening_id in session.execute(prints)
        ]
        return _Inputs(
            interview_id=interview_id,
            applicant_id=interview.applicant_id,
            opening_id=opening.id,
            started_at=interview.started_at or interview.consented_at,
            thresholds=thresholds,
            answers=answers,
            references={q.id: q.reference_answer for q in bank.questions},
            others=others,
            other_voices=other_voices,
        )


def _answer_data(answer: Answer, recordings: Recordings) -> _AnswerData:
    audio = None
    if answer.audio_path and answer.status is not AnswerStatus.no_answer:
        try:
            audio = recordings.open_for_read(answer.audio_path)
        except (FileNotFoundError, ValueError):
            audio = None  # purged or never written: the transcript is still analysed
    assert answer.id is not None
    return _AnswerData(
        id=answer.id,
        question_id=answer.question_id,
        attempt=answer.attempt,
        transcript=answer.transcript,
        words=list(answer.words or []),
        onset_s=answer.onset_latency_s,
        started_at=answer.started_at,
        ended_at=answer.ended_at,
        audio=audio,
    )


def _at(base: datetime | None, offset_s: float) -> datetime:
    return _aware(base or utcnow()) + timedelta(seconds=offset_s)


# --- voices -------------------------------------------------------------------------------------


def _voice_events(
    inputs: _Inputs, encoder: speakers.SpeakerEncoder, report: AnalysisReport
) -> tuple[list[EventDraft], VoicePrint | None]:
    """The voice events of each answer, and the interview's voice print: the practice
    answer's voice, or without a usable one the first answer's with enough speech."""
    t = inputs.thresholds
    practice = next(
        (a for a in inputs.answers if a.question_id == PRACTICE_ID and a.attempt == 0), None
    )
    practice_voice, voice_print = None, None
    if practice is not None and practice.audio is not None:
        heard = speakers.windows(encoder, voices.read_wav(practice.audio))
        practice_voice, voice_print = heard.voice(), _print_of(inputs, practice, heard)
    practice_delivery = (
        voices.delivery(practice.words, practice.onset_s) if practice is not None else None
    )
    drafts: list[EventDraft] = []
    for answer in inputs.answers:
        if answer.question_id == PRACTICE_ID:
            continue
        report.answers_analyzed += 1
        tag = f"{answer.question_id}:{answer.attempt}"
        common = {"source": "voices", "question_id": answer.question_id}
        base_evidence = {"answer_id": answer.id, "attempt": answer.attempt}
        if answer.audio is not None:
            signal = voices.read_wav(answer.audio)
            heard = speakers.windows(encoder, signal)
            voice_print = voice_print or _print_of(inputs, answer, heard)
            changes = speakers.second_voices(heard, practice_voice, t)
            for i, change in enumerate(changes):
                made = draft(
                    EventKind.speaker_change,
                    change.duration_s,
                    t,
                    key=f"voices:speaker_change:{tag}:{i}",
                    at=_at(answer.started_at, change.start_s),
                    duration_s=change.duration_s,
                    evidence={
                        **base_evidence,
                        "start_s": change.start_s,
                        "end_s": change.end_s,
                        "similarity": change.similarity,
                        "whole_answer": change.whole_answer,
                        "compared_with": change.compared_with,
                        "threshold": change.threshold,
                        "sure": change.sure,
                    },
                    **common,
                )
                if made is not None:
                    drafts.append(made)
            background = voices.background_voice(
                signal, answer.words, below_db=t.background_voice_below_db
            )
            made = draft(
                EventKind.background_voice,
                background.seconds,
                t,
                key=f"voices:background_voice:{tag}",
                at=_at(answer.started_at, background.spans[0][0] if background.spans else 0),
                duration_s=background.seconds,
                evidence={
                    **base_evidence,
                    "level_below_applicant_db": background.level_below_db,
                    "spans": background.spans[:20],
                },
                **common,
            )
            if made is not None:
                drafts.append(made)
        pattern = voices.reading_pattern(
            voices.delivery(answer.words, answer.onset_s),
            practice_delivery,
            onset_min_s=t.reading_onset_min_s,
            onset_ratio=t.reading_onset_ratio,
            rate_ratio=t.reading_rate_ratio,
            pause_cv_ratio=t.reading_pause_cv_ratio,
        )
        if pattern is not None:
            made = draft(
                EventKind.reading_pattern,
                None,
                t,
                key=f"voices:reading_pattern:{tag}",
                at=_at(answer.started_at, 0),
                evidence={
                    **base_evidence,
                    "reasons": pattern.reasons,
                    "answer": pattern.answer.as_dict(),
                    "practice": pattern.practice.as_dict(),
                },
                **common,
            )
            if made is not None:
                drafts.append(made)
    return drafts, voice_print


def _print_of(inputs: _Inputs, answer: _AnswerData, heard: speakers.Windows) -> VoicePrint | None:
    voice = heard.voice()
    if voice is None or heard.speech_s < speakers.MIN_PRINT_SPEECH_S:
        return None
    return VoicePrint(
        interview_id=inputs.interview_id,
        answer_id=answer.id,
        seconds=round(heard.speech_s, 2),
        vector=[round(float(x), 6) for x in voice],
        model=speakers.MODEL,
    )


def _store_voice_print(session: Session, interview_id: int, found: VoicePrint | None) -> None:
    session.execute(delete(VoicePrint).where(VoicePrint.interview_id == interview_id))
    if found is not None:
        session.add(found)
    session.flush()


def _duplicate_voice_events(inputs: _Inputs, found: VoicePrint | None) -> list[EventDraft]:
    if found is None:
        return []
    t = inputs.thresholds
    mine = dup.StoredVoice(
        inputs.interview_id,
        inputs.applicant_id,
        inputs.opening_id,
        found.answer_id,
        np.asarray(found.vector),
    )
    source = next((a for a in inputs.answers if a.id == found.answer_id), None)
    drafts = []
    for match in dup.voice_duplicates(mine, inputs.other_voices, t):
        made = draft(
            EventKind.duplicate_voice,
            match.similarity,
            t,
            key=f"voices:duplicate_voice:{match.other.interview_id}",
            source="voices",
            at=_at(source.started_at if source else inputs.started_at, 0),
            question_id=source.question_id if source else None,
            evidence={
                **match.evidence(found.answer_id),
                "threshold": t.duplicate_voice_similarity,
                "sure": speakers.how_sure_same(match.similarity, t.duplicate_voice_similarity),
            },
        )
        if made is not None:
            drafts.append(made)
    return drafts


# --- camera -------------------------------------------------------------------------------------


def camera_parts(recordings: Recordings, interview_id: int) -> dict[int, list[Path]]:
    """The camera recording's parts: part number -> its chunk files in order (checked paths)."""
    folder = recordings.root / str(interview_id) / "media" / CAMERA_KIND
    if not folder.is_dir():
        return {}
    parts: dict[int, list[tuple[int, Path]]] = {}
    for entry in folder.iterdir():
        match = _CHUNK_NAME.match(entry.name)
        if not match:
            continue
        seq = int(match.group(1))
        relative = f"{interview_id}/media/{CAMERA_KIND}/{entry.name}"
        try:
            path = recordings.open_for_read(relative)
        except (FileNotFoundError, ValueError):
            continue
        parts.setdefault(seq // CHUNKS_PER_PART, []).append((seq, path))
    return {part: [p for _, p in sorted(chunks)] for part, chunks in sorted(parts.items())}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _question_at(answers: list[_AnswerData], when: datetime) -> str | None:
    for answer in answers:
        if answer.started_at is None or answer.ended_at is None:
            continue
        if _aware(answer.started_at) <= _aware(when) <= _aware(answer.ended_at):
            return answer.question_id
    return None


def _face_events(
    inputs: _Inputs,
    recordings: Recordings,
    detector: faces.FaceDetector,
    report: AnalysisReport,
) -> list[EventDraft]:
    t = inputs.thresholds
    drafts: list[EventDraft] = []
    reference = None  # the applicant's face, carried from the first part into later ones
    for part, chunks in camera_parts(recordings, inputs.interview_id).items():
        result = faces.camera_episodes(chunks, detector, t, reference=reference)
        episodes, frames, reference = result.episodes, result.frames, result.reference
        report.frames_sampled += frames
        # When the part started: its last chunk is written as the recording stops, so its
        # mtime minus the decoded length; the offset within the part is in the evidence.
        ended = datetime.fromtimestamp(chunks[-1].stat().st_mtime, UTC)
        started = ended - timedelta(seconds=frames / t.face_sample_fps)
        for i, episode in enumerate(episodes):
            at = started + timedelta(seconds=episode.start_s)
            key = f"faces:{episode.kind}:{part}:{episode.start_s}"
            made = draft(
                episode.kind,
                episode.amount,
                t,
                key=key,
                source="faces",
                at=at,
                question_id=_question_at(inputs.answers, at),
                duration_s=episode.duration_s,
                evidence={
                    "part": part,
                    "offset_s": episode.start_s,
                    "frames": episode.frames,
                    "max_faces": episode.max_faces,
                    "sample_fps": t.face_sample_fps,
                    **_face_measure(episode, t),
                },
            )
            if made is None:
                continue
            if episode.thumbnail is not None:
                seq = part * THUMBS_PER_PART + min(i, THUMBS_PER_PART - 1)
                made.evidence["thumbnail"] = save_thumbnail(
                    recordings, inputs.interview_id, seq, episode.thumbnail
                )
            drafts.append(made)
    return drafts


def _face_measure(episode: faces.Episode, t: ProctoringThresholds) -> dict[str, float]:
    """How sure a camera flag is: the strongest reading against the threshold it crossed."""
    if episode.peak is None:
        return {}
    if episode.kind == EventKind.looking_away:
        return {"max_yaw_deg": episode.peak, "yaw_threshold_deg": t.looking_away_yaw_deg}
    return {"max_distance": episode.peak, "same_person_below": t.face_match_distance}


# --- text ---------------------------------------------------------------------------------------


def _text_events(inputs: _Inputs, embed: dup.Embed) -> list[EventDraft]:
    t = inputs.thresholds
    mine = [
        dup.AnswerText(inputs.interview_id, inputs.applicant_id, a.id, a.question_id, a.transcript)
        for a in inputs.answers
        if a.question_id != PRACTICE_ID and a.attempt == 0 and a.transcript.strip()
    ]
    by_id = {a.id: a for a in inputs.answers}
    found = [
        (EventKind.duplicate_answer, m.similarity, m.answer, m.evidence())
        for m in dup.find_duplicates(mine, inputs.others, t, embed)
    ] + [
        (EventKind.reference_match, r.overlap, r.answer, r.evidence())
        for r in dup.reference_matches(mine, inputs.references, t, embed)
    ]
    drafts: list[EventDraft] = []
    for kind, amount, answer, evidence in found:
        made = draft(
            kind,
            amount,
            t,
            key=f"duplicates:{kind.value}:{answer.question_id}",
            source="duplicates",
            at=_at(by_id[answer.answer_id].started_at or inputs.started_at, 0),
            question_id=answer.question_id,
            evidence=evidence,
        )
        if made is not None:
            drafts.append(made)
    return drafts


# --- after a live interview -------------------------------------------------------------------

SUMMARY_ACTION = "integrity_analysis"


def analyze_and_summarize(
    database_url: str, recordings_root: str, interview_id: int, model_dir: str | None = None
) -> dict[str, Any]:
    """Run every detector over one finished interview, then store its integrity summary.

    The summary (what ran, what was skipped and why, counts by kind and severity) is an
    ``AuditLog`` row (action ``integrity_analysis``, target ``interview:<id>``, no user): a
    record that the analysis happened and what it found, next to the events themselves. A
    plain function of picklable arguments, for a worker process (:class:`AnalysisPool`).
    """

    engine = create_db_engine(database_url)
    report = analyze_interview(
        engine,
        interview_id,
        recordings=Recordings(recordings_root),
        model_dir=Path(model_dir) if model_dir else None,
    )
    with session_scope(engine) as session:
        found = summary(session, interview_id)
        detail = {
            "events": report.events,
            "skipped": report.skipped,
            "frames_sampled": report.frames_sampled,
            "answers_analyzed": report.answers_analyzed,
            "total": found.total,
            "counts": found.counts,
            "by_severity": found.by_severity,
        }
        audit(session, None, SUMMARY_ACTION, f"interview:{interview_id}", **detail)
    return detail
