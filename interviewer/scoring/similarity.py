"""Semantic similarity beside the judge (issue 19): how close an answer is to its question's
reference answer moves the question's score, and an answer about something else is capped.

The judge (Qwen 1.5B, Yes/No checks) and the embedding cosine make different mistakes on human
grades, so a weighted blend of the two agrees better than either (figures and fit in
docs/scoring.md, "Agreement with human graders"). The judge keeps everything a reviewer reads:
criterion levels, red flags and the quoted evidence are its own; the similarity only moves
the question's score.

**Similarity share.** The cosine of all-MiniLM-L6-v2 embeddings of the answer and the reference
answer, placed on the scale where the judge's non-answer (``NULL_ANSWER``) is 0 and
``SIMILARITY_TOP`` of the way to the reference itself is 1, as the judge anchors its checks:
raw cosines of related texts start around 0.2 and depend on the question's wording.

**Relevance cap.** A small judge says Yes too easily: in a browser trial an audiobook sentence
("He could wait no longer.") earned a criterion on escalation and 29 of 100. An answer whose
sentences are, on average, far from the question, its reference answer and its key points, and
which as a whole is far from the question (``Similarity.relevance``), is about something else:
its score is capped at 0 below ``RELEVANCE_FLOOR``, rising linearly to no cap at
``RELEVANCE_FULL``; criterion shares are capped the same way, so the levels shown agree with the
score. The thresholds lie between off-topic speech (asterisk prompts, audiobook sentences: at
most 0.26 on the 48 shipped questions) and the shipped demo answers, weak ones included (at
least 0.325): a thin margin, set on those texts (tests/test_similarity.py), checked on the
real answers of the SAF train split (docs/scoring.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from interviewer.banks.model import Question
from interviewer.scoring.evidence import split_sentences
from interviewer.scoring.judge_checks import NULL_ANSWER, is_empty
from interviewer.scoring.judge_combine import AnswerJudgement

SIMILARITY_WEIGHT = 0.1
"""Share of the question score from the similarity (the judge's score has the rest). Fit on
judged SAF train answers only (``scripts/asag_agree.py report``: the best mean of Pearson r and
QWK; the train rows fix it loosely, 0.0-0.55 over resamples); docs/scoring.md."""
SIMILARITY_TOP = 0.8
"""Where on the non-answer (0) .. reference answer (1) cosine scale the similarity share is full."""
RELEVANCE_FLOOR = 0.27
"""Relevance below which an answer is about something else (score capped at 0)."""
RELEVANCE_FULL = 0.32
"""Relevance from which an answer is on topic and not capped at all."""
PROMPT_SHARE = 0.3
"""Relevance: this share from the whole answer's cosine to the question, the rest from how close
its sentences are, on average, each to the nearest of the question's texts."""

Embed = Callable[[Sequence[str]], Any]
"""Texts to unit-length embeddings, one row per text (``EvidenceFinder.embed``)."""


@dataclass(frozen=True)
class Similarity:
    reference: float
    """Cosine of the whole answer to the reference answer."""
    null: float
    """Cosine of the judge's non-answer to the reference answer: the question's zero."""
    relevance: float
    """How far the answer is about the question: ``PROMPT_SHARE`` its cosine to the question,
    the rest the mean over its sentences of each one's best cosine to the question's texts."""

    @property
    def share(self) -> float:
        """The answer's similarity on the non-answer (0) .. ``SIMILARITY_TOP`` (1) scale."""
        spread = (1.0 - self.null) * SIMILARITY_TOP
        if spread <= 0:
            return _clip(self.reference)
        return _clip((self.reference - self.null) / spread)

    @property
    def cap(self) -> float:
        """The highest score an answer this (un)related to the question can get."""
        return _clip((self.relevance - RELEVANCE_FLOOR) / (RELEVANCE_FULL - RELEVANCE_FLOOR))


def remembered(embed: Embed) -> Embed:
    """``embed`` with each distinct text embedded once, for sweeps that score many answers
    against the same questions (one batch gives the same vectors up to float rounding)."""
    known: dict[str, Any] = {}

    def cached(texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in known})
        if missing:
            known.update(zip(missing, embed(missing), strict=True))
        return np.stack([known[t] for t in texts])

    return cached


def topic_texts(question: Question) -> list[str]:
    """What an on-topic answer is close to: the question, its reference answer, its key points."""
    points = [k.text for c in question.rubric.criteria for k in c.key_points]
    return [question.prompt, question.reference_answer, *points]


def measure(embed: Embed, question: Question, transcript: str) -> Similarity:
    """The answer's similarity to its reference and its relevance to the question (one
    embedding call: the answer, its sentences, the non-answer and the question's texts)."""
    sentences = [s.text for s in split_sentences(transcript)] or [transcript]
    topic = topic_texts(question)
    vectors = np.asarray(embed([transcript, NULL_ANSWER, *sentences, *topic]))
    answer, null = vectors[0], vectors[1]
    said = vectors[2 : 2 + len(sentences)]
    targets = vectors[2 + len(sentences) :]
    on_topic = float((said @ targets.T).max(axis=1).mean())
    return Similarity(
        reference=float(answer @ targets[1]),
        null=float(null @ targets[1]),
        relevance=PROMPT_SHARE * float(answer @ targets[0]) + (1 - PROMPT_SHARE) * on_topic,
    )


def blend(judge_score: float, similarity: Similarity) -> float:
    """The question score: the judge's and the similarity's, weighted, under the relevance cap."""
    mixed = (1 - SIMILARITY_WEIGHT) * judge_score + SIMILARITY_WEIGHT * similarity.share
    return min(_clip(mixed), similarity.cap)


def apply(
    judgement: AnswerJudgement, similarity: Similarity, question: Question
) -> AnswerJudgement:
    """``judgement`` with its score blended and capped; criterion shares only capped."""
    cap = similarity.cap
    lowest = {c.id: min(level.score for level in c.levels) for c in question.rubric.criteria}
    criteria = [
        c
        if c.probability <= cap
        else replace(
            c,
            probability=cap,
            level=lowest[c.criterion_id] + cap * (c.max_level - lowest[c.criterion_id]),
        )
        for c in judgement.criteria
    ]
    return replace(judgement, score=blend(judgement.score, similarity), criteria=criteria)


def score(judge: Any, embed: Embed | None, question: Question, transcript: str) -> AnswerJudgement:
    """The judge's judgement of ``transcript`` with the similarity applied (the judge's alone
    without an embedder, or when nothing was said)."""
    judgement = judge.score(question, transcript)
    if embed is None or is_empty(transcript) or judgement.empty:
        return judgement
    return apply(judgement, measure(embed, question, transcript), question)


def _clip(x: float) -> float:
    return 0.0 if np.isnan(x) else min(1.0, max(0.0, x))
