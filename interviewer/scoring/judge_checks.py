"""The judge's prompts: the Yes/No checks asked about an answer, the text they follow, and the
results they give. Their wording is part of what the scores mean (see the ``judge`` module)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from interviewer.banks.model import Criterion, Question

NULL_ANSWER = "Hmm, I'm not really sure, I'd have to look it up."
"""The non-answer anchor: what 'nothing of substance said' looks like to the model."""

SYSTEM_PROMPT = (
    "You grade an applicant's spoken answer (an automatic transcript) in a job interview for "
    "domain experts. Answer each check with Yes or No, judging only what the applicant said."
)
_WORDS = re.compile(r"[^\W_]", re.UNICODE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Check:
    """One Yes/No question asked about an answer."""

    kind: str  # "key_point" | "level" | "red_flag" | "reference"
    id: str  # key point id, level score as text, or red flag id
    criterion_id: str | None
    text: str  # the check as appended after the prefix


@dataclass(frozen=True)
class CheckResult:
    check: Check
    probability: float  # P(Yes) among Yes/No
    format_mass: float  # P(Yes) + P(No) among all tokens: low means the model wanted to say else


# --- prompts ---------------------------------------------------------------------------------


def is_empty(transcript: str | None) -> bool:
    """No word at all: silence, or only punctuation from the recogniser."""
    return not transcript or not _WORDS.search(transcript)


def checks_for(question: Question) -> list[Check]:
    """Every Yes/No check the judge asks about an answer to ``question``, in rubric order.

    Key points are worded literally ("does the answer say this, perhaps in other words: ..."):
    on the demo answers, Qwen2.5-1.5B told strong from weak answers far better with the point's
    own text than with abstract wordings ("does the answer make this point", "does it make this
    mistake"), which it answered Yes to almost whatever the answer; "perhaps in other words"
    made it agree more with human graders (``judge`` module docstring). A criterion's level
    descriptors are asked about only when it has no key points: the tuning gave them no share of
    a score beside key points, and they were almost half of the tokens the model reads."""
    checks: list[Check] = []
    for criterion in question.rubric.criteria:
        for point in criterion.key_points:
            checks.append(
                Check(
                    "key_point",
                    point.id,
                    criterion.id,
                    "Does the applicant's answer say this, perhaps in other words: "
                    f'"{_clean(point.text)}"? Answer Yes or No.',
                )
            )
        if not criterion.key_points:
            checks.extend(level_checks(criterion))
    for flag in question.rubric.red_flags:
        checks.append(
            Check(
                "red_flag",
                flag.id,
                None,
                "Does the applicant's answer say or recommend this: "
                f'"{_clean(flag.description)}"? Answer Yes or No.',
            )
        )
    checks.append(
        Check(
            "reference",
            "reference",
            None,
            f'Reference answer: "{_clean(question.reference_answer)}"\n'
            "Does the applicant's answer say what this reference answer says, perhaps in other "
            "words? Answer Yes or No.",
        )
    )
    return checks


def level_checks(criterion: Criterion, kind: str = "level") -> list[Check]:
    """One check per level descriptor: does it describe the answer?"""
    return [
        Check(
            kind,
            str(level.score),
            criterion.id,
            f"Criterion: {_clean(criterion.description)}\n"
            f'Does this describe the applicant\'s answer: "{_clean(level.descriptor)}"? '
            "Answer Yes or No.",
        )
        for level in sorted(criterion.levels, key=lambda lv: lv.score)
    ]


def prefix_text(question: Question, transcript: str) -> str:
    """The user-message text shared by every check of one answer (without the chat template).

    The reference answer is not shown to the model here: it serves as the top anchor of the
    scale instead (see ``Anchors``). In the prompt, a 1.5B model credited applicants with
    points only the reference made."""
    return (
        f"Interview question: {_clean(question.prompt)}\n\n"
        f'Applicant\'s answer (transcript): """{_clean(transcript)}"""\n\n'
    )


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
