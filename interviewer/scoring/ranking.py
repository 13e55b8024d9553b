"""Per-opening ranking: interview scores with an uncertainty, ties, integrity flags, shortlists.

The ranking itself is a pure function over plain data (``Candidate`` in, ``Ranking`` out), so the
web app, the CLI and the tests all rank the same way; ``load_ranking`` is the one place that
reads the database.

Decisions, and why:

* **Scale.** Scores are in [0, 1] (as the judge writes them) and shown as 0-100 with one decimal.
* **Ties.** Two applicants tie when their scores are equal *at the displayed precision*
  (``DISPLAY_DECIMALS`` on the [0, 1] scale, i.e. 0.1 point on 0-100); tied applicants share the
  best rank of the group ("1, 2, 2, 4"), and the table marks them ``=2``. We do not tie on
  overlapping intervals: overlap is not transitive (A overlaps B, B overlaps C, A clear of C),
  so it cannot define ranks; the intervals are shown instead, and ``overlaps_previous`` says
  when an applicant's interval overlaps the one ranked just above, i.e. when the order of the
  two is within the noise.
* **Uncertainty.** A percentile bootstrap over the interview's question scores (questions drawn
  with replacement, ``BOOTSTRAP_SAMPLES`` times, the mean taken each time), seeded per interview
  so an applicant's interval never depends on who else applied. It is the spread of "the same
  applicant asked another draw of questions like these". With fewer than two scored questions
  there is nothing to resample and the interval is ``None`` rather than a misleading zero
  width.
  Questions are weighted and unanswered ones count 0, as in the interview score
  (scoring/service.py); should a stored score still differ from that mean, the interval is
  shifted by the difference so it stays centred the same way on the score shown.
* **Incomplete interviews.** Only interviews that are completed *and* scored are ranked; the
  others (invited, in progress, abandoned, or completed but not scored yet) are listed after the
  ranking with their state, never given a rank or shortlisted.
* **Shortlist.** An opening may set ``shortlist_top_n``, ``shortlist_threshold`` or both. Top N
  takes everyone ranked N or better, so a tie across the cut takes the whole tied group (the
  shortlist can exceed N rather than separate applicants whose displayed scores are equal); the
  threshold takes everyone whose displayed score is at least the threshold; with both, an
  applicant must pass both. With neither, nobody is marked: the opening has no rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from interviewer.errors import UserError
from interviewer.interview import PRACTICE_ID
from interviewer.store.models import Answer, Applicant, IntegrityEvent, Interview, Opening
from interviewer.store.repo import bank_of

DISPLAY_DECIMALS = 3  # on [0, 1]: one decimal on the 0-100 scale shown to recruiters
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.90
SEVERITIES = ("high", "warning", "info")


@dataclass(frozen=True)
class ShortlistRule:
    top_n: int | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.top_n is not None and self.top_n < 1:
            raise ValueError(f"shortlist top N must be at least 1, not {self.top_n}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"shortlist threshold must be in [0, 1], not {self.threshold}")

    @property
    def active(self) -> bool:
        return self.top_n is not None or self.threshold is not None

    def describe(self) -> str:
        parts = []
        if self.top_n is not None:
            parts.append(f"top {self.top_n}")
        if self.threshold is not None:
            parts.append(f"score ≥ {display_score(self.threshold)}")
        return " and ".join(parts) or "no shortlisting rule"


@dataclass(frozen=True)
class Candidate:
    """One applicant's interview, as the ranking needs it (no demographics: see audit.py)."""

    interview_id: int
    applicant_id: int
    name: str
    state: str
    score: float | None
    question_scores: Sequence[float] = ()
    integrity: dict[str, int] = field(default_factory=dict)  # severity -> count
    question_weights: Sequence[float] | None = None  # None: equal weights
    answered: int | None = None  # questions with a score of their own; None: all of them

    @property
    def rankable(self) -> bool:
        return self.state == "completed" and self.score is not None


@dataclass(frozen=True)
class RankedCandidate:
    rank: int
    tied: bool
    interview_id: int
    applicant_id: int
    name: str
    score: float
    low: float | None
    high: float | None
    questions: int
    answered: int
    integrity: dict[str, int]
    shortlisted: bool
    overlaps_previous: bool


@dataclass(frozen=True)
class UnrankedCandidate:
    interview_id: int
    applicant_id: int
    name: str
    state: str
    reason: str
    integrity: dict[str, int]


@dataclass(frozen=True)
class Ranking:
    opening: str
    rule: ShortlistRule
    confidence: float
    ranked: list[RankedCandidate]
    unranked: list[UnrankedCandidate]

    @property
    def shortlisted(self) -> list[RankedCandidate]:
        return [r for r in self.ranked if r.shortlisted]

    def rows(self) -> list[dict[str, Any]]:
        """Flat records for CSV/JSON export: ranked first, then the unranked with empty ranks."""
        rows: list[dict[str, Any]] = []
        for r in self.ranked:
            rows.append(
                {
                    "rank": r.rank,
                    "tied": r.tied,
                    "interview_id": r.interview_id,
                    "applicant_id": r.applicant_id,
                    "name": r.name,
                    "state": "completed",
                    "score": round(r.score, 6),
                    "low": _maybe_round(r.low),
                    "high": _maybe_round(r.high),
                    "questions": r.questions,
                    "answered": r.answered,
                    "shortlisted": r.shortlisted,
                    "overlaps_previous": r.overlaps_previous,
                    **{f"integrity_{s}": r.integrity.get(s, 0) for s in SEVERITIES},
                    "note": "",
                }
            )
        for u in self.unranked:
            rows.append(
                {
                    "rank": None,
                    "tied": False,
                    "interview_id": u.interview_id,
                    "applicant_id": u.applicant_id,
                    "name": u.name,
                    "state": u.state,
                    "score": None,
                    "low": None,
                    "high": None,
                    "questions": 0,
                    "answered": 0,
                    "shortlisted": False,
                    "overlaps_previous": False,
                    **{f"integrity_{s}": u.integrity.get(s, 0) for s in SEVERITIES},
                    "note": u.reason,
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "opening": self.opening,
            "rule": asdict(self.rule),
            "confidence": self.confidence,
            "candidates": self.rows(),
        }


def _maybe_round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def display_score(score: float) -> str:
    """A [0, 1] score as recruiters see it: 0-100 with one decimal."""
    return f"{round(score, DISPLAY_DECIMALS) * 100:.1f}"


def bootstrap_interval(
    scores: Sequence[float],
    *,
    weights: Sequence[float] | None = None,
    seed: int | Sequence[int] = 0,
    confidence: float = CONFIDENCE,
    samples: int = BOOTSTRAP_SAMPLES,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the (weighted) mean of ``scores``; None below two."""
    values = np.asarray(scores, dtype=float)
    if values.size < 2:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(samples, values.size))
    if weights is None:
        means = values[picks].mean(axis=1)
    else:
        w = np.asarray(weights, dtype=float)[picks]
        means = (values[picks] * w).sum(axis=1) / w.sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def rank(
    candidates: Iterable[Candidate],
    rule: ShortlistRule | None = None,
    *,
    opening: str = "",
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Ranking:
    """Rank the completed, scored interviews; list the others after them (see module doc)."""
    rule = rule or ShortlistRule()
    candidates = list(candidates)
    rankable = [c for c in candidates if c.rankable]
    others = [c for c in candidates if not c.rankable]
    # Best first; equal displayed scores in a stable, meaningless-but-fixed order (interview id).
    rankable.sort(key=lambda c: (-round(c.score, DISPLAY_DECIMALS), c.interview_id))
    keys = [round(c.score, DISPLAY_DECIMALS) for c in rankable]
    counts = Counter(keys)
    first_place: dict[float, int] = {}
    for position, key in enumerate(keys, start=1):
        first_place.setdefault(key, position)  # competition ranking: ties share the best rank
    ranked: list[RankedCandidate] = []
    previous_low: float | None = None
    for cand, key in zip(rankable, keys, strict=True):
        place = first_place[key]
        interval = _interval(cand, seed=seed, confidence=confidence)
        # Without an interval an applicant is a point: two points overlap only when they tie.
        low, high = interval if interval is not None else (float(cand.score), float(cand.score))
        ranked.append(
            RankedCandidate(
                rank=place,
                tied=counts[key] > 1,
                interview_id=cand.interview_id,
                applicant_id=cand.applicant_id,
                name=cand.name,
                score=float(cand.score),
                low=interval[0] if interval is not None else None,
                high=interval[1] if interval is not None else None,
                questions=len(cand.question_scores),
                answered=len(cand.question_scores) if cand.answered is None else cand.answered,
                integrity=_severities(cand.integrity),
                shortlisted=_passes(rule, place, key),
                overlaps_previous=previous_low is not None and high >= previous_low,
            )
        )
        previous_low = low
    unranked = [
        UnrankedCandidate(
            interview_id=c.interview_id,
            applicant_id=c.applicant_id,
            name=c.name,
            state=c.state,
            reason=_why_unranked(c),
            integrity=_severities(c.integrity),
        )
        for c in sorted(others, key=lambda c: (c.state != "completed", c.state, c.interview_id))
    ]
    return Ranking(
        opening=opening, rule=rule, confidence=confidence, ranked=ranked, unranked=unranked
    )


def _interval(cand: Candidate, *, seed: int, confidence: float) -> tuple[float, float] | None:
    interval = bootstrap_interval(
        cand.question_scores,
        weights=cand.question_weights,
        seed=(seed, cand.interview_id),
        confidence=confidence,
    )
    if interval is None:
        return None
    mean = np.average(cand.question_scores, weights=cand.question_weights)
    shift = float(cand.score) - float(mean)
    low, high = interval[0] + shift, interval[1] + shift
    return max(0.0, low), min(1.0, high)


def _passes(rule: ShortlistRule, place: int, displayed: float) -> bool:
    if not rule.active:
        return False
    if rule.top_n is not None and place > rule.top_n:
        return False
    return rule.threshold is None or displayed >= round(rule.threshold, DISPLAY_DECIMALS)


def _severities(counts: dict[str, int]) -> dict[str, int]:
    """Known severities always present (zeros included), unknown ones kept after them."""
    out = {s: int(counts.get(s, 0)) for s in SEVERITIES}
    out.update({s: int(n) for s, n in counts.items() if s not in out})
    return out


def _why_unranked(cand: Candidate) -> str:
    if cand.state == "completed":
        return "completed, not scored yet"
    return {
        "invited": "not started",
        "consented": "consented, not started",
        "in_progress": "in progress",
        "abandoned": "abandoned",
    }.get(cand.state, cand.state)


def integrity_summary(counts: dict[str, int]) -> str:
    """``high 1 · warning 2``: only the non-zero severities, worst first; empty when clean."""
    return " · ".join(f"{s} {n}" for s, n in _severities(counts).items() if n)


# --- loading from the database ---------------------------------------------------------------


def load_candidates(session: Any, opening_id: int) -> list[Candidate]:
    """Every interview of the opening, with its question scores and integrity counts.

    As scoring/service.py scores: a question's score is on its first answer (attempt 0; the
    judge reads the follow-ups with it), and the interview score is the weighted mean over
    the bank's questions with unanswered ones at 0. The question scores given to the bootstrap
    follow the same rule, so the interval is around the same mean as the score.
    """
    from sqlalchemy import func, select

    interviews = session.execute(
        select(Interview, Applicant.name)
        .join(Applicant, Applicant.id == Interview.applicant_id)
        .where(Interview.opening_id == opening_id)
        .order_by(Interview.id)
    ).all()
    ids = [interview.id for interview, _ in interviews]
    scores: dict[int, dict[str, float]] = {i: {} for i in ids}
    integrity: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        answers = session.execute(
            select(Answer.interview_id, Answer.question_id, Answer.score)
            .where(Answer.interview_id.in_(ids))
            .where(Answer.question_id != PRACTICE_ID)
            .where(Answer.score.is_not(None))
            .order_by(Answer.interview_id, Answer.question_index, Answer.attempt)
        ).all()
        for interview_id, question_id, score in answers:
            scores[interview_id].setdefault(question_id, float(score))
        events = session.execute(
            select(IntegrityEvent.interview_id, IntegrityEvent.severity, func.count())
            .where(IntegrityEvent.interview_id.in_(ids))
            .group_by(IntegrityEvent.interview_id, IntegrityEvent.severity)
        ).all()
        for interview_id, severity, count in events:
            integrity[interview_id][severity] = int(count)
    banks: dict[int, Any] = {}
    candidates = []
    for interview, name in interviews:
        if interview.bank_version_id not in banks:
            banks[interview.bank_version_id] = bank_of(session, interview.bank_version_id)
        questions = banks[interview.bank_version_id].questions
        got = scores[interview.id]
        candidates.append(
            Candidate(
                interview_id=interview.id,
                applicant_id=interview.applicant_id,
                name=name,
                state=str(interview.state),
                score=interview.score,
                question_scores=tuple(got.get(q.id, 0.0) for q in questions),
                integrity=integrity[interview.id],
                question_weights=tuple(float(getattr(q, "weight", 1.0)) for q in questions),
                answered=sum(q.id in got for q in questions),
            )
        )
    return candidates


def find_opening(session: Any, opening: str | int) -> Any:
    """The ``Opening`` by slug (or id); a one-line ``UserError`` listing known slugs if absent."""
    from sqlalchemy import select

    row = None
    if isinstance(opening, int) or str(opening).isdigit():
        row = session.get(Opening, int(opening))
    if row is None:
        row = session.scalars(select(Opening).where(Opening.slug == str(opening))).first()
    if row is None:
        slugs = session.scalars(select(Opening.slug).order_by(Opening.slug)).all()
        known = ", ".join(slugs[:20]) or "none yet"
        raise UserError(f"no opening {opening!r} in the database (openings: {known})")
    return row


def load_ranking(
    session: Any,
    opening: str | int,
    *,
    top_n: int | None = None,
    threshold: float | None = None,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Ranking:
    """Rank an opening from the database; ``top_n``/``threshold`` override the opening's rule."""
    row = find_opening(session, opening)
    rule = ShortlistRule(
        top_n=top_n if top_n is not None else row.shortlist_top_n,
        threshold=threshold if threshold is not None else row.shortlist_threshold,
    )
    return rank(
        load_candidates(session, row.id),
        rule,
        opening=row.slug,
        seed=seed,
        confidence=confidence,
    )
