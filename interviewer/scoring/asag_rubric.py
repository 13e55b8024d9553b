"""A reference answer turned into a bank question: its points become the key points of a
rubric, as a domain lead would write them, so the judge is evaluated on the kind of question it
scores in the product."""

from __future__ import annotations

import hashlib
import re

from interviewer.banks import model as banks

MAX_KEY_POINTS = 6

_BULLET = re.compile(r"^(?:[-*•●○◦▪■□‣–—→]+|\(?\d{1,2}[.)]|\(?[a-hA-H][.)])\s+")
_POINTS = re.compile(r"\(\s*\d*\.?\d+\s*(?:p|pts?|points?)?\s*\)")  # "(0.25)" grading marks
_NOTE = re.compile(r"^(?:note|notes|hint|nb|n\.b\.)\s*[:.]", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\s*;\s+")
_SPACE = re.compile(r"\s+")


def key_points_of(reference_answer: str, max_points: int = MAX_KEY_POINTS) -> list[str]:
    """The points a reference answer makes: its sentences, clauses and bullet items.

    Reference answers written for human graders carry structure a rubric can use: lines
    hard-wrapped mid-sentence are joined again, bullet items under a heading ("Drawbacks:",
    "Replication") become "heading: item" points, grading notes ("Note: ...") and point marks
    ("(0.25)") are dropped, and fragments under three words stay with their sentence. Beyond
    ``max_points`` the shortest neighbours are merged (under one heading when they share it):
    every point still counts, and the judge's cost per answer stays bounded.
    """
    points: list[tuple[str | None, list[str]]] = []
    heading: str | None = None
    lines = _logical_lines(reference_answer)
    for i, (bullet, line) in enumerate(lines):
        if _NOTE.match(line):
            continue
        next_is_bullet = i + 1 < len(lines) and lines[i + 1][0]
        if line.endswith(":") or (
            not bullet and next_is_bullet and len(line.split()) <= 4 and line[-1] not in ".!?"
        ):
            heading = line.rstrip(":").strip()
            continue
        if not bullet:
            heading = None
        pieces: list[str] = []
        for piece in _SENTENCE.split(line):
            piece = piece.strip()
            if piece and pieces and len(piece.split()) < 3:
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
        for piece in pieces:
            point = (heading if bullet else None, [piece])
            if point not in points:
                points.append(point)
    if not points:
        return [_SPACE.sub(" ", reference_answer).strip()]
    while len(points) > max_points:
        i = min(range(len(points) - 1), key=lambda i: _merge_cost(points[i], points[i + 1]))
        (h1, t1), (h2, t2) = points[i], points[i + 1]
        if h1 == h2:
            points[i : i + 2] = [(h1, t1 + t2)]
        else:
            points[i : i + 2] = [(None, [_render(points[i]), _render(points[i + 1])])]
    return [_render(point) for point in points]


def _logical_lines(text: str) -> list[tuple[bool, str]]:
    """(is a bullet item, text) per line, with hard-wrapped continuation lines joined back."""
    out: list[tuple[bool, str]] = []
    for raw in text.splitlines():
        raw = _SPACE.sub(" ", raw).strip()
        if not raw:
            continue
        bullet = bool(_BULLET.match(raw))
        line = _SPACE.sub(" ", _POINTS.sub("", _BULLET.sub("", raw))).strip(" ,")
        if not line:
            continue
        continues = not bullet and (line[0].islower() or line[0] == "(")
        if out and continues and out[-1][1][-1] not in ".!?:":
            out[-1] = (out[-1][0], f"{out[-1][1]} {line}")
        else:
            out.append((bullet, line))
    return out


def _render(point: tuple[str | None, list[str]]) -> str:
    heading, texts = point
    body = texts[0] if len(texts) == 1 else "; ".join(t.rstrip(" ;.") for t in texts)
    return f"{heading}: {body}" if heading else body


def _lower_first(text: str) -> str:
    """Lower-case a sentence's first letter ("The bulb" -> "the bulb"), never an acronym's."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _merge_cost(a: tuple[str | None, list[str]], b: tuple[str | None, list[str]]) -> tuple:
    """Merge within a heading first, then the pair with the fewest words."""
    return (a[0] != b[0] or a[0] is None, len(_render(a).split()) + len(_render(b).split()))


def question_from_reference(
    question: str,
    reference_answer: str,
    max_score: float,
    *,
    max_points: int = MAX_KEY_POINTS,
) -> banks.Question:
    """A bank question whose rubric is the reference answer, its points as key points.

    The criterion is worth ``max_score`` (its weight) and has the key points of
    ``key_points_of``, as a domain lead would list them, with levels "none / some / all of
    these points" (two levels for a one-point answer). Its description lists the points, so the
    level checks make sense on their own: the judge does not show the model the reference
    answer (it judges the reference as its top anchor instead). One criterion rather than one
    per point: the judge reads a criterion's level mostly off its key points either way, and
    per-point criteria would add two level checks per point for little.
    """
    if max_score <= 0:
        raise ValueError(f"max_score must be above 0, not {max_score}")
    points = key_points_of(reference_answer, max_points)
    digest = hashlib.sha1(f"{question}\0{reference_answer}".encode()).hexdigest()[:10]
    if len(points) == 1:
        description = f"Says that {_lower_first(points[0])}"
        levels = [
            banks.Level(score=0, descriptor="Does not say this, or says something else."),
            banks.Level(score=1, descriptor="Says this."),
        ]
    else:
        description = "Says these points: " + " | ".join(points)
        levels = [
            banks.Level(score=0, descriptor="Says none of these points."),
            banks.Level(score=1, descriptor="Says some of these points."),
            banks.Level(score=2, descriptor="Says all of these points."),
        ]
    criterion = banks.Criterion(
        id="reference-points",
        description=description,
        weight=max_score,
        levels=levels,
        key_points=[
            banks.KeyPoint(id=f"point-{n}", text=text) for n, text in enumerate(points, start=1)
        ],
    )
    return banks.Question(
        id=f"asag-{digest}",
        prompt=question,
        reference_answer=reference_answer,
        rubric=banks.Rubric(criteria=[criterion]),
    )
