"""The graded answers of an ASAG evaluation: reading and checking their CSV, and sampling them."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interviewer.errors import UserError

REQUIRED_COLUMNS = ("question", "reference_answer", "answer", "human_score", "max_score")
MAKE_CSV = "make one with `python scripts/asag_to_csv.py saf -o FILE.csv`"


class AsagDataError(UserError):
    """A problem in the CSV of graded answers: names the file (and line) and what to fix."""


@dataclass(frozen=True)
class GradedAnswer:
    line: int
    question: str
    reference_answer: str
    answer: str
    human_score: float
    max_score: float
    columns: dict[str, str] = field(default_factory=dict, compare=False)  # every column, as read

    @property
    def human_normalized(self) -> float:
        return self.human_score / self.max_score


# --- reading the CSV -------------------------------------------------------------------------


def read_csv(path: Path) -> list[GradedAnswer]:
    """Every row of ``path``; the first problem raises ``AsagDataError`` in one line."""
    path = Path(path)
    try:
        f = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise AsagDataError(f"{path}: no such file; {MAKE_CSV}") from None
    except OSError as err:
        raise AsagDataError(f"{path}: cannot read it ({err.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as err:
            raise AsagDataError(f"{path}: not a UTF-8 CSV file ({err})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise AsagDataError(
                f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                f"{','.join(REQUIRED_COLUMNS)} (other columns are ignored)"
            )
        rows = []
        try:
            for record in reader:
                rows.append(_row(path, reader.line_num, record))
        except (csv.Error, UnicodeDecodeError) as err:
            raise AsagDataError(f"{path}:{reader.line_num}: unreadable CSV ({err})") from None
    if not rows:
        raise AsagDataError(f"{path}: no answers below the header; {MAKE_CSV}")
    return rows


def _row(path: Path, line: int, record: dict[str, Any]) -> GradedAnswer:
    if None in record:  # more cells than header names
        raise AsagDataError(f"{path}:{line}: more cells than columns in the header")
    where = f"{path}:{line}"
    text = {c: (record.get(c) or "").strip() for c in ("question", "reference_answer", "answer")}
    for column in ("question", "reference_answer"):
        if not text[column]:
            raise AsagDataError(f"{where}: {column} is empty")
    human = _number(where, "human_score", record.get("human_score"))
    maximum = _number(where, "max_score", record.get("max_score"))
    if maximum <= 0:
        raise AsagDataError(f"{where}: max_score must be above 0, not {maximum:g}")
    if not 0 <= human <= maximum:
        raise AsagDataError(f"{where}: human_score {human:g} is outside 0..max_score ({maximum:g})")
    return GradedAnswer(
        line=line,
        question=text["question"],
        reference_answer=text["reference_answer"],
        answer=text["answer"],
        human_score=human,
        max_score=maximum,
        columns={k: v for k, v in record.items() if k is not None},
    )


def _number(where: str, column: str, value: str | None) -> float:
    try:
        number = float((value or "").strip())
    except ValueError:
        raise AsagDataError(f"{where}: {column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise AsagDataError(f"{where}: {column} {value!r} is not a finite number")
    return number


def sample(rows: Sequence[Any], limit: int | None, seed: int = 0) -> list[Any]:
    """A fixed seeded sample of ``limit`` rows, kept in file order; all rows without a limit."""
    if limit is None or limit >= len(rows):
        return list(rows)
    if limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    picks = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return [rows[i] for i in sorted(picks)]
