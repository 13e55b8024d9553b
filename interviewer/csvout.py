"""The one CSV writer of every export (shortlist, invite links, report, ranking, fairness audit).

Names, answers, criteria and demographic labels are typed by applicants and staff; a cell that
a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab or carriage return first)
is written with a leading ``'``, so opening an export never runs what someone typed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet should see it: text that starts like a formula gets ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class DictWriter(csv.DictWriter):
    """:class:`csv.DictWriter` whose every row (header included) goes through :func:`cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)


class Writer:
    """:func:`csv.writer` (a C factory, so wrapped rather than subclassed) with :func:`cell`."""

    def __init__(self, f: Any, **options: Any) -> None:
        self._writer = csv.writer(f, **options)

    def writerow(self, row: Sequence[Any]) -> Any:
        return self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)
