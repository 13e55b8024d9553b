"""Integrity events: what a human proctor would have noticed, kept as evidence for a person.

Nothing here decides anything about an applicant. A detector turns what it saw into an
:class:`EventDraft` (kind, time, measured amount, evidence); :func:`severity_of` grades it with
the opening's thresholds; :func:`record` stores it; :func:`summary` is what the recruiter page
shows. Severity orders the reviewer's attention ("high": look at this first); it is never a
verdict and no code path rejects or ranks anyone by it.

Idempotency: every draft carries a deterministic ``key`` (e.g. ``browser:<page>:<seq>``,
``faces:<part>:<offset>``). :func:`record` skips a key already stored for the interview, so a
client that resends a batch or an analysis that runs twice never duplicates an event, and
:func:`replace_source` swaps all of one detector's events for a fresh run's.
"""

from __future__ import annotations

import contextlib
import enum
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.store.models import IntegrityEvent, utcnow
from interviewer.store.recordings import Recordings

THUMBNAIL_KIND = "proctoring"  # <root>/<interview>/media/proctoring/<seq>.jpg
THUMBNAIL_WIDTH = 160


class EventKind(enum.StrEnum):
    # reported by the browser
    tab_hidden = "tab_hidden"
    window_blurred = "window_blurred"
    fullscreen_exited = "fullscreen_exited"
    paste = "paste"
    drop = "drop"
    concurrent_session = "concurrent_session"
    page_reloaded = "page_reloaded"
    # found by the server in the recordings
    no_face = "no_face"
    multiple_faces = "multiple_faces"
    looking_away = "looking_away"
    different_person = "different_person"
    speaker_change = "speaker_change"
    background_voice = "background_voice"
    reading_pattern = "reading_pattern"
    duplicate_answer = "duplicate_answer"
    duplicate_voice = "duplicate_voice"
    reference_match = "reference_match"


class Severity(enum.StrEnum):
    info = "info"
    warning = "warning"
    high = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.info: 0, Severity.warning: 1, Severity.high: 2}


@dataclass(frozen=True)
class Rule:
    """How one kind is graded: ``amount >= warning`` -> warning, ``>= high`` -> high.

    Below ``warning`` the event is ``info`` when ``below`` is "info" (the browser's short
    blips are still worth listing) or not recorded at all when it is "drop" (a detector's
    below-threshold finding is noise). ``warning``/``high`` name ProctoringThresholds fields;
    None means "always this level".
    """

    measure: str  # what ``amount`` is: "seconds", "characters", "frames", "count", ...
    warning: str | None
    high: str | None
    below: str = "info"
    fixed: Severity | None = None


SEVERITY_RULES: dict[EventKind, Rule] = {
    EventKind.tab_hidden: Rule("seconds", "tab_hidden_warning_s", "tab_hidden_high_s"),
    EventKind.window_blurred: Rule("seconds", "window_blur_warning_s", "window_blur_high_s"),
    EventKind.fullscreen_exited: Rule("seconds", None, "fullscreen_exit_high_s"),
    EventKind.paste: Rule("characters", "paste_warning_chars", "paste_high_chars"),
    EventKind.drop: Rule("characters", "paste_warning_chars", "paste_high_chars"),
    EventKind.concurrent_session: Rule("count", None, None, fixed=Severity.high),
    EventKind.page_reloaded: Rule("count", "reload_warning_count", None),
    EventKind.no_face: Rule("seconds", "no_face_warning_s", "no_face_high_s", below="drop"),
    EventKind.multiple_faces: Rule(
        "frames", "multiple_faces_warning_frames", "multiple_faces_high_frames", below="drop"
    ),
    EventKind.looking_away: Rule(
        "seconds", "looking_away_warning_s", "looking_away_high_s", below="drop"
    ),
    EventKind.different_person: Rule(
        "seconds", "different_person_warning_s", "different_person_high_s", below="drop"
    ),
    EventKind.speaker_change: Rule(
        "seconds", "speaker_min_segment_s", "speaker_change_high_s", below="drop"
    ),
    EventKind.background_voice: Rule(
        "seconds", "background_voice_warning_s", "background_voice_high_s", below="drop"
    ),
    EventKind.reading_pattern: Rule("count", None, None, fixed=Severity.warning),
    EventKind.duplicate_answer: Rule(
        "similarity", "duplicate_similarity", "duplicate_high_similarity", below="drop"
    ),
    EventKind.duplicate_voice: Rule(
        "similarity", "duplicate_voice_similarity", "duplicate_voice_high_similarity", below="drop"
    ),
    EventKind.reference_match: Rule(
        "overlap", "reference_overlap_warning", "reference_overlap_high", below="drop"
    ),
}


def severity_of(
    kind: EventKind | str, amount: float | None, thresholds: ProctoringThresholds
) -> Severity | None:
    """The severity of ``amount`` for ``kind``; None when it should not be recorded."""
    rule = SEVERITY_RULES[EventKind(kind)]
    if rule.fixed is not None:
        return rule.fixed
    value = 0.0 if amount is None else float(amount)
    if rule.high is not None and value >= getattr(thresholds, rule.high):
        return Severity.high
    if rule.warning is None or value >= getattr(thresholds, rule.warning):
        return Severity.warning
    return Severity.info if rule.below == "info" else None


@dataclass
class EventDraft:
    """An event before it is stored; ``key`` makes storing it idempotent."""

    kind: EventKind
    severity: Severity
    at: datetime
    key: str
    source: str  # "browser", "faces", "voices", "duplicates", "server"
    question_id: str | None = None
    duration_s: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def row(self, interview_id: int) -> IntegrityEvent:
        evidence = {**self.evidence, "key": self.key, "source": self.source}
        return IntegrityEvent(
            interview_id=interview_id,
            question_id=self.question_id,
            kind=str(self.kind),
            severity=str(self.severity),
            at=self.at,
            duration_s=None if self.duration_s is None else round(float(self.duration_s), 3),
            evidence=evidence,
        )


def draft(
    kind: EventKind | str,
    amount: float | None,
    thresholds: ProctoringThresholds,
    *,
    key: str,
    source: str,
    at: datetime | None = None,
    question_id: str | None = None,
    duration_s: float | None = None,
    evidence: dict[str, Any] | None = None,
) -> EventDraft | None:
    """A graded draft, or None when the rule says the amount is below recording."""
    kind = EventKind(kind)
    severity = severity_of(kind, amount, thresholds)
    if severity is None:
        return None
    evidence = dict(evidence or {})
    evidence.setdefault(SEVERITY_RULES[kind].measure, amount)
    return EventDraft(
        kind=kind,
        severity=severity,
        at=at or utcnow(),
        key=key,
        source=source,
        question_id=question_id,
        duration_s=duration_s,
        evidence=evidence,
    )


# --- storing ------------------------------------------------------------------------------------


def _events_of(session: Session, interview_id: int) -> list[IntegrityEvent]:
    query = select(IntegrityEvent).where(IntegrityEvent.interview_id == interview_id)
    return list(session.scalars(query.order_by(IntegrityEvent.at, IntegrityEvent.id)))


def record(session: Session, interview_id: int, *drafts: EventDraft) -> list[IntegrityEvent]:
    """Store drafts whose key is new for this interview; returns the rows actually added.

    Flushes, never commits (the caller's session_scope owns the transaction). Two writers
    racing on one key could both insert: callers serialise per interview (the web handler
    holds the interview's lock; analysis runs once per interview at a time).
    """
    known = {e.evidence.get("key") for e in _events_of(session, interview_id)}
    added = []
    for item in drafts:
        if item.key in known:
            continue
        known.add(item.key)
        row = item.row(interview_id)
        session.add(row)
        added.append(row)
    session.flush()
    return added


def replace_source(
    session: Session,
    interview_id: int,
    source: str,
    drafts: list[EventDraft],
    *,
    recordings: Recordings | None = None,
) -> list[IntegrityEvent]:
    """Make one detector's stored events exactly ``drafts`` (a re-run's findings).

    An event whose key is found again is updated in place (its id, which a reviewer's notes may
    point at, survives); events no longer found are deleted, new ones inserted. Thumbnails of
    deleted events are removed when ``recordings`` is given, so a re-run with stricter
    thresholds leaves no orphaned frames of the applicant on disk. Returns the current rows.
    """
    old = {
        e.evidence.get("key"): e
        for e in _events_of(session, interview_id)
        if e.evidence.get("source") == source
    }
    wanted = {d.key: d for d in drafts}
    kept_files = {d.evidence.get("thumbnail") for d in drafts} - {None}
    current = []
    for key, event in old.items():
        item = wanted.get(key)
        if item is None:
            thumb = event.evidence.get("thumbnail")
            session.delete(event)
            if recordings is not None and thumb and thumb not in kept_files:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    recordings.open_for_read(thumb).unlink()
            continue
        fresh = item.row(interview_id)
        for name in ("question_id", "kind", "severity", "at", "duration_s", "evidence"):
            setattr(event, name, getattr(fresh, name))
        current.append(event)
    session.flush()
    current += record(session, interview_id, *(d for k, d in wanted.items() if k not in old))
    return current


# --- thumbnails ---------------------------------------------------------------------------------


def save_thumbnail(recordings: Recordings, interview_id: int, seq: int, frame_bgr: Any) -> str:
    """A small JPEG of a camera frame under the interview's folder; returns the stored path.

    The path comes from ``Recordings`` (server ids only), never from anything a client sent.
    """
    import cv2

    height, width = frame_bgr.shape[:2]
    if width > THUMBNAIL_WIDTH:
        size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
        frame_bgr = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:
        raise RuntimeError("could not encode a thumbnail")
    path = recordings.media_chunk(interview_id, THUMBNAIL_KIND, seq, ext="jpg")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(jpeg.tobytes())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return recordings.relative(path)


# --- what the recruiter sees --------------------------------------------------------------------


@dataclass
class Summary:
    counts: dict[str, dict[str, int]]  # kind -> severity -> n
    by_severity: dict[str, int]
    timeline: list[dict[str, Any]]  # events sorted by time

    @property
    def total(self) -> int:
        return len(self.timeline)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": self.counts,
            "by_severity": self.by_severity,
            "timeline": self.timeline,
        }


def summary(session: Session, interview_id: int) -> Summary:
    """Counts by kind and severity, and every event in time order with its evidence.

    ``thumbnail`` (camera events) is a path relative to the recordings root, to be served
    through ``Recordings.open_for_read`` by a page that checks the viewer may see it.
    """
    events = _events_of(session, interview_id)
    counts: dict[str, Counter[str]] = {}
    for event in events:
        counts.setdefault(event.kind, Counter())[event.severity] += 1
    by_severity = Counter(event.severity for event in events)
    timeline = [
        {
            "id": event.id,
            "at": event.at.isoformat(),
            "kind": event.kind,
            "severity": event.severity,
            "question_id": event.question_id,
            "duration_s": event.duration_s,
            "thumbnail": event.evidence.get("thumbnail"),
            "evidence": {k: v for k, v in event.evidence.items() if k not in ("key",)},
        }
        for event in events
    ]
    return Summary(
        counts={kind: dict(per) for kind, per in sorted(counts.items())},
        by_severity={s.value: by_severity.get(s.value, 0) for s in Severity},
        timeline=timeline,
    )
