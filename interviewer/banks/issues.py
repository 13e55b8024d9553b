"""Validator problems as the web editor shows them: each on a line of the text it checked and,
where it can be told, on the form field it is about (``questions.0.rubric.criteria.0.weight``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from interviewer.banks.check import Problem, check_text
from interviewer.banks.model import Bank
from interviewer.banks.yamltext import line_paths, parse_yaml


@dataclass(frozen=True)
class Issue:
    """A validator problem for the editor: line in the text it checked, and the form field."""

    line: int
    column: int | None
    message: str
    fix: str
    path: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message} (fix: {self.fix})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "fix": self.fix,
            "path": self.path,
            "text": str(self),
        }


@dataclass
class Checked:
    text: str
    issues: list[Issue]
    bank: Bank | None
    data: Any

    @property
    def ok(self) -> bool:
        return not self.issues and self.bank is not None


def text_issues(text: str, name: str) -> tuple[list[Issue], Bank | None, Any]:
    """The validator's problems with ``text`` as issues, the bank if it has none, and the data
    as far as it parses (a form can show a draft that does not validate)."""
    problems, bank = check_text(text, name)
    lines = line_paths(text)
    issues = [Issue(p.line, p.column, p.message, p.fix, _field(p, lines)) for p in problems]
    return issues, bank, parse_yaml(text)


def _field(problem: Problem, lines: dict[int, str]) -> str | None:
    """The form field a problem is about. A missing key is reported on its parent's first line,
    i.e. on the parent's first key: the field is then the parent itself."""
    path = lines.get(problem.line)
    if path is not None and "missing required key" in problem.message:
        path = path.rsplit(".", 1)[0] if "." in path else ""
    return path


def key_line(text: str, key: str) -> int:
    match = re.search(rf"^{key}:", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else 1
