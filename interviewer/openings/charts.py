"""The numbers behind an opening's charts: score histograms (overall and per question) and the
fairness audit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session

from interviewer.openings.shortlist import Shortlist
from interviewer.scoring import audit as fairness
from interviewer.store.models import Opening


@dataclass(frozen=True)
class Bin:
    low: float  # 0-100
    high: float
    count: int


def histogram(values: Iterable[float], bins: int = 10) -> list[Bin]:
    """Counts of [0, 1] scores in equal bins over 0-100; the last bin includes 100."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    width = 100 / bins
    return [Bin(i * width, (i + 1) * width, n) for i, n in enumerate(counts)]


@dataclass(frozen=True)
class Distribution:
    label: str
    n: int
    bins: list[Bin]
    median: float | None  # 0-100

    @property
    def peak(self) -> int:
        return max((b.count for b in self.bins), default=0)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return (s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2) * 100


def distributions(shortlist: Shortlist) -> tuple[Distribution, list[Distribution]]:
    """Interview scores of the ranked applicants, and each question's scores (scored answers)."""
    scores = [r.score for r in shortlist.ranked if r.score is not None]
    overall = Distribution("Interview score", len(scores), histogram(scores), _median(scores))
    per_question = []
    for i, q in enumerate(shortlist.questions):
        values = [r.questions[i] for r in shortlist.ranked if r.questions[i] is not None]
        per_question.append(
            Distribution(f"Q{q.number} {q.prompt}", len(values), histogram(values), _median(values))
        )
    return overall, per_question


def load_audit(session: Session, opening: Opening) -> fairness.Audit:
    return fairness.load_audit(session, opening.id)
