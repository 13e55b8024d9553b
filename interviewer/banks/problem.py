"""A problem in a bank file: where it is and how to fix it, in one line a domain lead can act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOCS = "docs/question-banks.md"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a bank. ``line`` is 1-based; 0 means the path as a whole."""

    file: Path
    line: int
    column: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return _one_line(f"{where}: {self.message} (fix: {self.fix})")


def clip(text: str, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
