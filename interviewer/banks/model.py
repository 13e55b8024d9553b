"""Question banks: the schema a domain lead writes in ``question_banks/*.yaml``.

A bank is the unit a domain lead owns and versions. Each question carries its own rubric, so a
scorer never needs anything but the question in front of it. The models below are the single
source of the format: the validator, the editor, the voice agent and the scorer all read them.

Example (abridged)::

    id: dermatology
    title: Dermatology consultant screen
    domain: medicine
    version: 1
    language: en
    description: For board-certified dermatologists reviewing clinical AI output.
    practice_question: Tell me briefly about your current clinical role.
    questions:
      - id: melanoma-abcde
        prompt: How do you assess a pigmented lesion for melanoma?
        time_limit_s: 120
        reference_answer: I use the ABCDE criteria ...
        follow_ups:
          - trigger: dermoscopy
            prompt: Where does dermoscopy fit in your assessment?
        rubric:
          criteria:
            - id: clinical-criteria
              description: Names and applies the ABCDE criteria correctly.
              weight: 2
              levels:
                - {score: 0, descriptor: No recognised criteria.}
                - {score: 1, descriptor: "Some criteria, partly correct."}
                - {score: 2, descriptor: "All five, correctly applied."}
              key_points:
                - {id: abcde, text: "Asymmetry, Border, Colour, Diameter over 6 mm, Evolution."}
                - {id: dermoscopy, text: Uses dermoscopy to look at structures.}
          red_flags:
            - {id: size-only, penalty: 0.3, description: "Treats a lesion under 6 mm as benign."}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.fields import FieldInfo

Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$"
    ),
]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a rubric must not silently drop a criterion."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Strict):
    score: int = Field(ge=0, description="Points for reaching this level; 0 is the lowest.")
    descriptor: NonEmptyText = Field(description="What an answer at this level looks like.")


class KeyPoint(_Strict):
    id: Identifier
    text: NonEmptyText = Field(description="A concrete point a strong answer makes.")


class RedFlag(_Strict):
    id: Identifier
    description: NonEmptyText = Field(description="A misconception or unsafe claim.")
    penalty: float = Field(
        default=0.25, gt=0, le=1, description="Share of the question score it costs."
    )


class Criterion(_Strict):
    id: Identifier
    description: NonEmptyText
    weight: float = Field(
        gt=0, allow_inf_nan=False, description="Relative weight within the question."
    )
    levels: list[Level] = Field(min_length=2)
    key_points: list[KeyPoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _levels_distinct(self) -> Criterion:
        scores = [level.score for level in self.levels]
        if len(set(scores)) != len(scores):
            raise ValueError(f"criterion {self.id!r}: level scores must be distinct")
        return self

    @property
    def max_score(self) -> int:
        return max(level.score for level in self.levels)


class Rubric(_Strict):
    criteria: list[Criterion] = Field(min_length=1)
    red_flags: list[RedFlag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Rubric:
        _require_unique("criterion", [c.id for c in self.criteria])
        _require_unique("key point", [k.id for c in self.criteria for k in c.key_points])
        _require_unique("red flag", [r.id for r in self.red_flags])
        return self

    @property
    def key_point_ids(self) -> set[str]:
        return {k.id for c in self.criteria for k in c.key_points}


class FollowUp(_Strict):
    trigger: Identifier = Field(description="Key point id: asked when the answer misses it.")
    prompt: NonEmptyText


class Question(_Strict):
    id: Identifier
    prompt: NonEmptyText = Field(description="What the agent says, word for word.")
    time_limit_s: int = Field(default=180, ge=15, le=1800)
    reference_answer: NonEmptyText
    follow_ups: list[FollowUp] = Field(default_factory=list)
    rubric: Rubric

    @model_validator(mode="after")
    def _follow_ups_point_at_key_points(self) -> Question:
        known = self.rubric.key_point_ids
        for follow_up in self.follow_ups:
            if follow_up.trigger not in known:
                raise ValueError(
                    f"question {self.id!r}: follow-up trigger {follow_up.trigger!r} is not a "
                    f"key point of its rubric (known: {', '.join(sorted(known)) or 'none'})"
                )
        return self


class Bank(_Strict):
    id: Identifier
    title: NonEmptyText
    domain: NonEmptyText
    version: int = Field(ge=1)
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    description: NonEmptyText
    practice_question: NonEmptyText = Field(
        default="To check your microphone, please tell me briefly about your current role.",
        description="Unscored warm-up question.",
    )
    questions: list[Question] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_question_ids(self) -> Bank:
        _require_unique("question", [q.id for q in self.questions])
        return self

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)


def _require_unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"duplicate {kind} id {item!r}")
        seen.add(item)


def bank_files(folder: Path) -> list[Path]:
    """Bank files are the YAML files directly inside the folder (subfolders hold other data)."""
    return sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    Bank,
    Question,
    FollowUp,
    Rubric,
    Criterion,
    Level,
    KeyPoint,
    RedFlag,
)
"""Every model a bank is made of, in the order the schema reference documents them."""


def _inner_type(info: FieldInfo) -> Any:
    """The type a field holds, or its items' type for a list: the validator, the schema reference
    and the YAML dumper all walk the models through it (package-private, hence the underscore)."""
    annotation = info.annotation
    if get_origin(annotation) is list:
        return get_args(annotation)[0]
    return annotation
