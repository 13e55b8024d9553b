"""From check probabilities to a score: anchoring on the non-answer and the reference answer,
criterion levels, red flag penalties, the question score and its confidence (the arithmetic the
``judge`` module docstring explains)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from interviewer.banks.model import Criterion, Question
from interviewer.scoring.judge_checks import CheckResult

REFERENCE_WEIGHT = 0.25
"""Weight of the reference check beside the criteria (whose weights count as 1 together): on
human grades it helped on the train split and, unseen, on the other questions (``judge``
module docstring)."""
ANCHOR_TOP = 0.6
"""Where on the non-answer (0) .. reference answer (1) scale full marks begin: an answer need
not match the reference's own wording to earn them (tuned on human grades, ``judge`` module
docstring)."""
NO_ANSWER_CONFIDENCE = 0.99
MIN_SPREAD = 0.05
"""Anchors closer than this on a criterion give no scale; its raw reading is used instead."""
GOOD_SPREAD = 0.4
"""A criterion whose checks separate the anchors by this much gets full separation confidence."""


@dataclass(frozen=True)
class CriterionJudgement:
    criterion_id: str
    probability: float
    """Probability the criterion is met: its expected share of the level scale."""
    level: float
    """Expected level, on the criterion's own level scores (min..max)."""
    max_level: int
    weight: float
    confidence: float
    key_points: dict[str, float] = field(default_factory=dict)
    levels: dict[int, float] = field(default_factory=dict)
    """P(descriptor fits) per level score, as judged (not normalised)."""


@dataclass(frozen=True)
class RedFlagJudgement:
    red_flag_id: str
    probability: float
    penalty: float


@dataclass(frozen=True)
class AnswerJudgement:
    question_id: str
    score: float
    confidence: float
    criteria: list[CriterionJudgement]
    red_flags: list[RedFlagJudgement]
    model: str
    empty: bool = False
    truncated: bool = False
    checks: int = 0
    seconds: float = 0.0
    prefix_tokens: int = 0
    reference_match: float | None = None
    """How far the answer says what the reference answer says (the reference check, anchored)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- from check probabilities to scores ------------------------------------------------------


def empty_judgement(question: Question, model: str) -> AnswerJudgement:
    """Nothing was said: every criterion at its lowest level, no red flag, score 0."""
    criteria = [
        CriterionJudgement(
            criterion_id=c.id,
            probability=0.0,
            level=float(min(level.score for level in c.levels)),
            max_level=c.max_score,
            weight=c.weight,
            confidence=NO_ANSWER_CONFIDENCE,
            key_points={k.id: 0.0 for k in c.key_points},
        )
        for c in question.rubric.criteria
    ]
    flags = [RedFlagJudgement(r.id, 0.0, r.penalty) for r in question.rubric.red_flags]
    return AnswerJudgement(
        question_id=question.id,
        score=0.0,
        confidence=NO_ANSWER_CONFIDENCE,
        criteria=criteria,
        red_flags=flags,
        model=model,
        empty=True,
    )


Probabilities = dict[tuple[str, str | None, str], float]
"""P(Yes) per check, keyed by (kind, criterion id, id)."""


@dataclass(frozen=True)
class Anchors:
    """The same checks run on two fixed answers to the question: a non-answer and the reference
    answer itself. They fix, per question, where 'nothing said' and 'everything said' lie on the
    model's probability scale, which a small model shifts a lot from one rubric to another."""

    null: Probabilities
    reference: Probabilities


def combine(
    question: Question,
    results: Sequence[CheckResult],
    model: str,
    anchors: Anchors | None = None,
) -> AnswerJudgement:
    """Criterion levels, red flags, the question score and its confidence from check results."""
    by_key = _by_key(results)
    criteria = [criterion_judgement(c, by_key, anchors) for c in question.rubric.criteria]
    flags = [
        RedFlagJudgement(
            r.id, _red_flag_probability(("red_flag", None, r.id), by_key, anchors), r.penalty
        )
        for r in question.rubric.red_flags
    ]
    total = sum(c.weight for c in criteria)
    earned = sum(c.weight * c.probability for c in criteria) / total
    key = ("reference", None, "reference")
    reference_match = by_key[key]
    if anchors is not None:
        reference_match = _anchored(reference_match, anchors.null[key], anchors.reference[key])
    earned = (earned + REFERENCE_WEIGHT * reference_match) / (1 + REFERENCE_WEIGHT)
    penalty = sum(f.penalty * f.probability for f in flags)
    score = _clip(earned - penalty)
    confidence = _clip(sum(c.weight * c.confidence for c in criteria) / total)
    return AnswerJudgement(
        question_id=question.id,
        score=score,
        confidence=confidence,
        criteria=criteria,
        red_flags=flags,
        model=model,
        reference_match=reference_match,
    )


def _by_key(results: Sequence[CheckResult]) -> Probabilities:
    return {(r.check.kind, r.check.criterion_id, r.check.id): r.probability for r in results}


def criterion_judgement(
    criterion: Criterion, by_key: Probabilities, anchors: Anchors | None = None
) -> CriterionJudgement:
    scores = sorted(level.score for level in criterion.levels)
    low, high = scores[0], scores[-1]
    if criterion.key_points:
        points = {k.id: by_key[("key_point", criterion.id, k.id)] for k in criterion.key_points}
        levels: dict[int, float] = {}
        read = lambda p: _better_half([p[("key_point", criterion.id, k)] for k in points])  # noqa: E731
    else:
        points = {}
        levels = {s: by_key[("level", criterion.id, str(s))] for s in scores}
        read = lambda p: _descriptor_share(  # noqa: E731
            scores, {s: p[("level", criterion.id, str(s))] for s in scores}
        )
    share = read(by_key)
    spread = None
    if anchors is not None:
        null, reference = read(anchors.null), read(anchors.reference)
        spread = reference - null
        share = _anchored(share, null, reference)
    share = _clip(share)
    # A reading far from the middle of the scale, from checks that tell a non-answer from the
    # reference well (without anchors, only the first half counts).
    decisiveness = abs(2 * share - 1)
    separation = 0.0 if spread is None else min(1.0, max(0.0, spread) / GOOD_SPREAD)
    return CriterionJudgement(
        criterion_id=criterion.id,
        probability=share,
        level=low + share * (high - low),
        max_level=high,
        weight=criterion.weight,
        confidence=_clip(0.5 * decisiveness + 0.5 * separation),
        key_points=points,
        levels=levels,
    )


def _better_half(values: Sequence[float]) -> float | None:
    """The mean of the higher half of the key-point readings (the higher one of two, two of
    three): a 1.5B model misses many a point made in the applicant's own words, rarely one
    that was not made, so what it does recognise is the better evidence of coverage."""
    if not values:
        return None
    ranked = sorted(values)
    top = ranked[len(ranked) // 2 :]
    return sum(top) / len(top)


def _anchored(value: float, null: float, reference: float) -> float:
    """``value`` on the scale where the non-answer is 0 and ``ANCHOR_TOP`` of the way to the
    reference answer is 1; as judged when the two anchors are too close to define a scale (the
    checks do not tell them apart)."""
    if reference - null < MIN_SPREAD:
        return _clip(value)
    return _clip((value - null) / ((reference - null) * ANCHOR_TOP))


def _red_flag_probability(
    key: tuple[str, str | None, str], by_key: Probabilities, anchors: Anchors | None
) -> float:
    """Only what rises above both clean anchors counts: neither a non-answer nor the reference
    answer commits the mistake, so the model's P(Yes) on them is its bias for this check."""
    p = by_key[key]
    if anchors is None:
        return p
    base = max(anchors.null[key], anchors.reference[key])
    return _clip((p - base) / (1 - base)) if base < 1 else 0.0


def _descriptor_share(scores: Sequence[int], fits: dict[int, float]) -> float:
    """Expected share of the level scale with levels weighted by how well their descriptor fits."""
    low, high = scores[0], scores[-1]
    total = sum(fits.values())
    if total <= 0 or high == low:
        return 0.0
    expected = sum(s * p for s, p in fits.items()) / total
    return (expected - low) / (high - low)


def _clip(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))
