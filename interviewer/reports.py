"""One applicant's full report as plain data: what the recruiter page shows and the exports hold.

The recruiter's applicant page, its CSV/JSON exports and the data-subject export zip all read
:func:`build_report`, so what a person sees on screen and what leaves the system in a file are
the same facts. The result is JSON-serialisable (datetimes as ISO strings) and never holds a
file path a client could send back: recordings are named by database ids (answer id, camera
part number, event id) and served by routes that check who is asking.

Camera video and answers are tied together by time. A camera "part" (one page load's
MediaRecorder stream) has no clock of its own, so its start is estimated from its first chunk's
mtime minus the recorder's timeslice; an answer then sits at ``answer.started_at - part start``
seconds into the part. The estimate is good to about a second, which the page says.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from interviewer import csvout
from interviewer.interview import PRACTICE_ID
from interviewer.proctoring.events import summary as integrity_summary
from interviewer.scoring import ranking
from interviewer.store.models import (
    Answer,
    Applicant,
    AuditLog,
    CriterionScore,
    Interview,
    Opening,
    User,
    as_utc,
)
from interviewer.store.recordings import Recordings, stored_keys
from interviewer.store.repo import answers_of, bank_of

CAMERA_KIND = "camera"
CHUNKS_PER_PART = 100_000  # as the upload route names chunks: part * 100_000 + chunk
RECORDER_TIMESLICE_S = 4.0  # interview.js: recorder.start(4000); the first chunk lands then
RED_FLAG_SHOWN_AT = 0.5  # a red flag is listed as raised from this probability on
_CHUNK_NAME = re.compile(r"^(\d{8})\.(webm|mp4)$")

MEDIA_TYPES = {
    "wav": "audio/wav",
    "webm": "video/webm",
    "mp4": "video/mp4",
    "ogg": "audio/ogg",
    "jpg": "image/jpeg",
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


# --- camera parts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraPart:
    part: int
    chunks: tuple[Path, ...]
    ext: str
    started_at: datetime  # estimated
    ended_at: datetime

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.chunks)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.ext, "application/octet-stream")

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "chunks": len(self.chunks),
            "bytes": self.bytes,
            "media_type": self.media_type,
            "started_at_estimate": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
        }


def camera_parts(recordings: Recordings, interview_id: int) -> dict[int, CameraPart]:
    """The interview's camera recordings by part number; each chunk path checked by Recordings.

    Timing comes from the chunks' mtimes (written as they were uploaded). A chunk fetched back
    from a bucket carries its download time instead, so with ``INTERVIEWER_STORAGE=s3`` and no
    local copy the camera's alignment with the answers is off (the video itself plays)."""
    prefix = f"{interview_id}/media/{CAMERA_KIND}/"
    found: dict[int, list[tuple[int, Path]]] = {}
    for key in stored_keys(recordings, interview_id):
        match = _CHUNK_NAME.match(key.removeprefix(prefix)) if key.startswith(prefix) else None
        if not match:
            continue
        try:
            path = recordings.open_for_read(key)  # a bucket backend fetches it first
        except (FileNotFoundError, ValueError):
            continue
        seq = int(match.group(1))
        found.setdefault(seq // CHUNKS_PER_PART, []).append((seq, path))
    parts = {}
    for part, chunks in sorted(found.items()):
        ordered = tuple(p for _, p in sorted(chunks))
        first = datetime.fromtimestamp(ordered[0].stat().st_mtime, UTC)
        last = datetime.fromtimestamp(ordered[-1].stat().st_mtime, UTC)
        parts[part] = CameraPart(
            part=part,
            chunks=ordered,
            ext=ordered[0].suffix.lstrip("."),
            started_at=first - timedelta(seconds=RECORDER_TIMESLICE_S),
            ended_at=last,
        )
    return parts


def camera_for(parts: dict[int, CameraPart], started_at: datetime | None) -> dict[str, Any] | None:
    """Which camera part was recording when an answer started, and how far into it."""
    if started_at is None:
        return None
    when = as_utc(started_at)
    for part in parts.values():
        if part.started_at <= when <= part.ended_at:
            offset = round((when - part.started_at).total_seconds(), 3)
            return {"part": part.part, "offset_s": offset}
    return None


# --- the report ------------------------------------------------------------------------------


def _media_type(path: str | None) -> str:
    return MEDIA_TYPES.get(Path(path or "").suffix.lstrip("."), "application/octet-stream")


def _answer(answer: Answer, parts: dict[int, CameraPart], recordings: Recordings) -> dict[str, Any]:
    has_audio = False
    if answer.audio_path:
        try:
            recordings.open_for_read(answer.audio_path)
            has_audio = True
        except (FileNotFoundError, ValueError):
            has_audio = False
    duration = None
    if answer.started_at is not None and answer.ended_at is not None:
        duration = round((as_utc(answer.ended_at) - as_utc(answer.started_at)).total_seconds(), 3)
    return {
        "answer_id": answer.id,
        "attempt": answer.attempt,
        "status": str(answer.status),
        "transcript": answer.transcript,
        "words": [
            {
                "word": str(w.get("word", "")),
                "start": w.get("start"),
                "end": w.get("end"),
                "probability": w.get("probability"),
            }
            for w in answer.words or []
        ],
        "started_at": _iso(answer.started_at),
        "ended_at": _iso(answer.ended_at),
        "duration_s": duration,
        "speech_duration_s": answer.speech_duration_s,
        "onset_latency_s": answer.onset_latency_s,
        "has_audio": has_audio,
        "audio_type": _media_type(answer.audio_path) if has_audio else None,
        "score": answer.score,
        "score_confidence": answer.score_confidence,
        "camera": camera_for(parts, answer.started_at),
    }


def _quotes(evidence: list[dict[str, Any]], primary_id: int | None) -> list[dict[str, Any]]:
    return [
        {
            "quote": q.get("quote", ""),
            "start": q.get("start"),
            "end": q.get("end"),
            "similarity": q.get("similarity"),
            "answer_id": q.get("answer_id") or primary_id,
            "key_point": q.get("key_point"),
        }
        for q in evidence or []
    ]


def _standing(session: Session, interview: Interview) -> dict[str, Any]:
    """Score interval and rank, as the opening's ranking computes them.

    Only this applicant's interval is bootstrapped (it is seeded per interview, so it equals the
    one on the shortlist); the rank is the competition rank of the displayed score among the
    opening's ranked interviews, as ``ranking.rank`` assigns it.
    """
    candidates = ranking.load_candidates(session, interview.opening_id)
    mine = next((c for c in candidates if c.interview_id == interview.id), None)
    ranked_keys = [round(c.score, ranking.DISPLAY_DECIMALS) for c in candidates if c.rankable]
    alone = ranking.rank([mine]) if mine is not None else None
    out: dict[str, Any] = {
        "rank": None,
        "tied": False,
        "ranked_of": len(ranked_keys),
        "low": None,
        "high": None,
        "confidence": ranking.CONFIDENCE,
        "unranked_reason": None,
    }
    if alone is None:
        return out
    if alone.ranked:
        row = alone.ranked[0]
        key = round(row.score, ranking.DISPLAY_DECIMALS)
        out.update(
            rank=1 + sum(k > key for k in ranked_keys),
            tied=ranked_keys.count(key) > 1,
            low=row.low,
            high=row.high,
        )
    elif alone.unranked:
        out["unranked_reason"] = alone.unranked[0].reason
    return out


ACTION_LABELS = {
    "integrity_analysis": "Integrity checks run",
    "decision": "Decision",
    "report.export": "Report exported",
    "applicant.export": "Personal data exported",
    "retention.purge": "Recordings deleted (retention period)",
}


def decision_history(session: Session, interview_id: int) -> list[dict[str, Any]]:
    """Audit entries about this interview (decisions, exports, purges), newest first."""
    rows = session.execute(
        select(AuditLog, User.name, User.email)
        .outerjoin(User, User.id == AuditLog.user_id)
        .where(AuditLog.target.in_([f"interview:{interview_id}", f"interview/{interview_id}"]))
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
    ).all()
    return [
        {
            "at": _iso(r.at),
            "user_id": r.user_id,
            "by": (name or email or "") if r.user_id else "system",
            "action": r.action,
            "label": ACTION_LABELS.get(r.action, r.action),
            "detail": r.detail,
        }
        for r, name, email in rows
    ]


def build_report(session: Session, recordings: Recordings, interview_id: int) -> dict[str, Any]:
    """Everything about one interview a recruiter may see, as JSON-ready data."""
    interview = session.get(Interview, interview_id)
    if interview is None:
        raise LookupError(f"no interview with id {interview_id}")
    opening = session.get(Opening, interview.opening_id)
    applicant = session.get(Applicant, interview.applicant_id)
    bank = bank_of(session, interview.bank_version_id)
    answers = answers_of(session, interview_id)
    ids = [a.id for a in answers]
    scores: dict[int, list[CriterionScore]] = {}
    if ids:
        for row in session.scalars(
            select(CriterionScore)
            .where(CriterionScore.answer_id.in_(ids))
            .order_by(CriterionScore.id)
        ):
            scores.setdefault(row.answer_id, []).append(row)
    parts = camera_parts(recordings, interview_id)
    integrity = integrity_summary(session, interview_id).as_dict()
    events_by_question: dict[str | None, list[int]] = {}
    for event in integrity["timeline"]:
        events_by_question.setdefault(event["question_id"], []).append(event["id"])

    by_question: dict[str, list[Answer]] = {}
    for answer in answers:
        by_question.setdefault(answer.question_id, []).append(answer)

    questions = []
    practice = by_question.get(PRACTICE_ID, [])
    if practice:
        questions.append(
            {
                "question_id": PRACTICE_ID,
                "number": 0,
                "prompt": bank.practice_question,
                "practice": True,
                "weight": 0.0,
                "score": None,
                "score_confidence": None,
                "answers": [_answer(a, parts, recordings) for a in practice],
                "criteria": [],
                "red_flags": [],
                "events": events_by_question.get(PRACTICE_ID, []),
            }
        )
    for number, question in enumerate(bank.questions, start=1):
        attempts = by_question.get(question.id, [])
        primary = attempts[0] if attempts else None
        stored = scores.get(primary.id, []) if primary is not None else []
        rows = {(r.kind, r.criterion_id): r for r in stored}
        primary_id = primary.id if primary is not None else None
        criteria = []
        for c in question.rubric.criteria:
            row = rows.get(("criterion", c.id))
            levels = [lv.score for lv in c.levels]
            criteria.append(
                {
                    "criterion_id": c.id,
                    "description": c.description,
                    "weight": c.weight,
                    "max_level": max(levels),
                    "min_level": min(levels),
                    "probability": row.probability if row else None,
                    "level": row.level if row else None,
                    "model": row.model if row else None,
                    "evidence": _quotes(row.evidence, primary_id) if row else [],
                }
            )
        red_flags = []
        for flag in question.rubric.red_flags:
            row = rows.get(("red_flag", flag.id))
            red_flags.append(
                {
                    "red_flag_id": flag.id,
                    "description": flag.description,
                    "penalty": flag.penalty,
                    "probability": row.probability if row else None,
                    "raised": bool(row and row.probability >= RED_FLAG_SHOWN_AT),
                    "evidence": _quotes(row.evidence, primary_id) if row else [],
                }
            )
        questions.append(
            {
                "question_id": question.id,
                "number": number,
                "prompt": question.prompt,
                "practice": False,
                "weight": float(getattr(question, "weight", 1.0)),
                "score": primary.score if primary else None,
                "score_confidence": primary.score_confidence if primary else None,
                "answers": [_answer(a, parts, recordings) for a in attempts],
                "criteria": criteria,
                "red_flags": red_flags,
                "events": events_by_question.get(question.id, []),
            }
        )

    history = decision_history(session, interview_id)
    return {
        "format": "interviewer.applicant-report/1",
        "generated_at": _iso(datetime.now(UTC)),
        "interview": {
            "id": interview.id,
            "state": str(interview.state),
            "consented_at": _iso(interview.consented_at),
            "started_at": _iso(interview.started_at),
            "completed_at": _iso(interview.completed_at),
            "updated_at": _iso(interview.updated_at),
            "score": interview.score,
            "score_confidence": interview.score_confidence,
            "scored_at": _iso(interview.scored_at),
            "decision": interview.decision,
            "standing": _standing(session, interview),
        },
        "opening": {
            "id": opening.id if opening else interview.opening_id,
            "slug": opening.slug if opening else None,
            "title": opening.title if opening else bank.title,
            "retention_days": opening.retention_days if opening else None,
        },
        "bank": {"id": bank.id, "version": bank.version, "title": bank.title},
        "applicant": {
            "id": applicant.id if applicant else interview.applicant_id,
            "name": applicant.name if applicant else "",
            "email": applicant.email if applicant else "",
        },
        "questions": questions,
        "integrity": integrity,
        "camera": [p.as_dict() for p in parts.values()],
        "history": history,
        "analysis": next(
            (h["detail"] for h in history if h["action"] == "integrity_analysis"), None
        ),
    }


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "record",
    "status",
    "question_id",
    "answer_id",
    "attempt",
    "item_id",
    "text",
    "start",
    "end",
    "probability",
    "level",
    "score",
    "confidence",
    "low",
    "high",
    "rank",
    "decision",
    "severity",
    "at",
    "duration_s",
    "count",
]


def report_csv(report: dict[str, Any]) -> str:
    """The report as one flat table: ``record`` says what a row is (interview, question,
    answer, word, criterion, red_flag, evidence, integrity_count, integrity_event).

    Evidence rows hold the quote's similarity in ``probability``; word, evidence and answer
    times are seconds from the answer's start; ``at`` is an ISO time."""
    out = io.StringIO()
    writer = csvout.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise")
    writer.writeheader()
    iv = report["interview"]
    standing = iv["standing"]
    writer.writerow(
        {
            "record": "interview",
            "item_id": iv["id"],
            "text": f"{report['applicant']['name']} <{report['applicant']['email']}>",
            "score": iv["score"],
            "confidence": iv["score_confidence"],
            "low": standing["low"],
            "high": standing["high"],
            "rank": standing["rank"],
            "at": iv["completed_at"],
            "status": iv["state"],
            "decision": iv["decision"] or "",
        }
    )
    for q in report["questions"]:
        writer.writerow(
            {
                "record": "question",
                "question_id": q["question_id"],
                "text": q["prompt"],
                "score": q["score"],
                "confidence": q["score_confidence"],
            }
        )
        for a in q["answers"]:
            writer.writerow(
                {
                    "record": "answer",
                    "question_id": q["question_id"],
                    "answer_id": a["answer_id"],
                    "attempt": a["attempt"],
                    "status": a["status"],
                    "text": a["transcript"],
                    "at": a["started_at"],
                    "duration_s": a["duration_s"],
                    "score": a["score"],
                    "confidence": a["score_confidence"],
                }
            )
            for w in a["words"]:
                writer.writerow(
                    {
                        "record": "word",
                        "question_id": q["question_id"],
                        "answer_id": a["answer_id"],
                        "attempt": a["attempt"],
                        "text": w["word"],
                        "start": w["start"],
                        "end": w["end"],
                        "probability": w["probability"],
                    }
                )
        for kind, items, key in (
            ("criterion", q["criteria"], "criterion_id"),
            ("red_flag", q["red_flags"], "red_flag_id"),
        ):
            for item in items:
                writer.writerow(
                    {
                        "record": kind,
                        "question_id": q["question_id"],
                        "item_id": item[key],
                        "text": item["description"],
                        "probability": item["probability"],
                        "level": item.get("level"),
                    }
                )
                for quote in item["evidence"]:
                    writer.writerow(
                        {
                            "record": "evidence",
                            "question_id": q["question_id"],
                            "answer_id": quote["answer_id"],
                            "item_id": item[key],
                            "text": quote["quote"],
                            "start": quote["start"],
                            "end": quote["end"],
                            "probability": quote["similarity"],
                        }
                    )
    for kind, per in report["integrity"]["counts"].items():
        for severity, count in per.items():
            writer.writerow(
                {
                    "record": "integrity_count",
                    "item_id": kind,
                    "severity": severity,
                    "count": count,
                }
            )
    for event in report["integrity"]["timeline"]:
        writer.writerow(
            {
                "record": "integrity_event",
                "question_id": event["question_id"] or "",
                "item_id": event["kind"],
                "severity": event["severity"],
                "at": event["at"],
                "duration_s": event["duration_s"],
                "text": describe_event(event),
            }
        )
    return out.getvalue()


def describe_event(event: dict[str, Any]) -> str:
    """One line a reviewer can read: what was measured, in the event's own units."""
    ev = event.get("evidence") or {}
    bits = []
    for key, unit in (
        ("seconds", "s"),
        ("characters", " characters"),
        ("frames", " frames"),
        ("count", ""),
        ("similarity", " similarity"),
        ("overlap", " overlap"),
    ):
        value = ev.get(key)
        if key == "seconds" and event.get("duration_s") is not None:
            continue  # shown as the event's duration already
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            bits.append(f"{round(value, 2):g}{unit}")
    if ev.get("max_faces"):
        bits.append(f"up to {ev['max_faces']} faces")
    if ev.get("whole_answer"):
        bits.append("whole answer")
    if ev.get("sure"):
        # the voice checks: the score, the threshold it crossed, and how far past it
        side = "above" if event.get("kind") == "duplicate_voice" else "below"
        bits.append(f"{side} the {ev.get('threshold', 0):g} threshold: how sure: {ev['sure']}")
    if isinstance(ev.get("max_yaw_deg"), (int, float)) and ev.get("yaw_threshold_deg"):
        peak, threshold = ev["max_yaw_deg"], ev["yaw_threshold_deg"]
        bits.append(
            f"head turned up to {peak:.0f}° (looking away from {threshold:g}°): "
            f"how sure: {_past(peak, threshold)}"
        )
    if isinstance(ev.get("max_distance"), (int, float)) and ev.get("same_person_below"):
        peak, threshold = ev["max_distance"], ev["same_person_below"]
        bits.append(
            f"face {peak:.2f} from the applicant's (the same person below {threshold:g}): "
            f"how sure: {_past(peak, threshold)}"
        )
    if ev.get("same_applicant") is not None and event.get("kind") == "duplicate_voice":
        bits.append(
            "an earlier interview of this applicant"
            if ev["same_applicant"]
            else "an interview of another applicant"
        )
    if ev.get("offset_s") is not None and ev.get("part") is not None:
        bits.append(f"camera part {ev['part']} at {ev['offset_s']:g}s")
    return ", ".join(bits)


def _past(peak: float, threshold: float) -> str:
    """How sure a camera flag is, by how far its strongest reading went past the threshold:
    a reading just past it may be the model's noise (a head-turn estimate varies by ~15° from
    frame to frame on a still face), one half as far again past it is not."""
    margin = (peak - threshold) / threshold
    return "high" if margin >= 0.5 else "medium" if margin >= 0.2 else "low"
