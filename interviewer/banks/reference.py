"""The schema reference in docs/question-banks.md, generated from the pydantic models."""

from __future__ import annotations

from typing import get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from interviewer.banks.model import SCHEMA_MODELS, _inner_type

# Meanings for fields whose pydantic Field has no description yet (model.py is the better home).
_MEANINGS = {
    "Bank.id": "Stable id of the bank, unique across all bank files.",
    "Bank.title": "Human-readable name, shown by `interviewer bank list`.",
    "Bank.domain": "Field of expertise, e.g. medicine or law.",
    "Bank.version": "Bump it whenever questions or rubrics change.",
    "Bank.language": "Language of the questions: a code such as `en` or `en-GB`.",
    "Bank.description": "Who the bank is for.",
    "Bank.questions": "The scored questions.",
    "Question.id": "Stable id of the question, unique within the bank.",
    "Question.time_limit_s": "Seconds the applicant has to answer.",
    "Question.reference_answer": "A strong answer, for the scorer to compare against.",
    "Question.follow_ups": "Probes, each tied to a key point of this question's rubric.",
    "Question.rubric": "How the answer is scored.",
    "FollowUp.prompt": "What the agent asks, word for word.",
    "Rubric.criteria": "What the answer is scored on, each with a weight and levels.",
    "Rubric.red_flags": "Claims that cost points when an answer makes them.",
    "Criterion.id": "Id of the criterion, unique within the rubric.",
    "Criterion.description": "What the criterion measures.",
    "Criterion.levels": "The score ladder; scores must be distinct.",
    "Criterion.key_points": "Concrete points that show the criterion is met.",
    "KeyPoint.id": "Id of the key point, unique across all criteria of the question.",
    "RedFlag.id": "Id of the red flag, unique within the rubric.",
}


def schema_reference() -> str:
    """Markdown tables of every bank field, built from the pydantic models so the docs cannot
    drift from the schema (tests compare this with docs/question-banks.md)."""
    out = []
    for model in SCHEMA_MODELS:
        out.append(f"### {model.__name__}\n")
        out.append("| Field | Type | Default | Meaning |")
        out.append("|---|---|---|---|")
        for name, info in model.model_fields.items():
            meaning = info.description or _MEANINGS.get(f"{model.__name__}.{name}", "")
            out.append(f"| `{name}` | {_type_text(info)} | {_default_text(info)} | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _type_text(info: FieldInfo) -> str:
    inner = _inner_type(info)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        base = f"[{inner.__name__}](#{inner.__name__.lower()})"
    elif inner is str:
        base = "text"
    elif inner is int:
        base = "whole number"
    elif inner is float:
        base = "number"
    else:
        base = getattr(inner, "__name__", str(inner))
    rules = []
    for meta in info.metadata:
        pattern = getattr(meta, "pattern", None)
        if pattern == r"^[a-z0-9][a-z0-9_-]*$":
            base = "id"
            rules.append("lowercase letters, digits, `-`, `_`")
        elif pattern:
            rules.append(f"pattern `{pattern}`")
        if getattr(meta, "min_length", None) and inner is str and pattern is None:
            rules.append("not empty")
        for attr, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(meta, attr, None) is not None:
                rules.append(f"{symbol} {getattr(meta, attr)}")
        if getattr(meta, "max_length", None):
            rules.append(f"at most {meta.max_length} characters")
        if get_origin(info.annotation) is list and getattr(meta, "min_length", None):
            rules.append(f"at least {meta.min_length}")
    text = f"list of {base}" if get_origin(info.annotation) is list else base
    return f"{text} ({', '.join(rules)})" if rules else text


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is list:
        return "`[]`"
    return f"`{info.default}`"
