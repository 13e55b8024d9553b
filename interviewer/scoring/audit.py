"""Fairness audit of one opening, following the bias-audit method of NYC Local Law 144.

The method is the one the NYC Department of Consumer and Worker Protection set out in its rules
for automated employment decision tools (6 RCNY § 5-300 and § 5-301):

* Categories: sex, race/ethnicity, and every intersection of the two, as the applicants reported
  them (``ApplicantDemographics``; this module is the only reader of that table).
* **Selection rate** = selected / applicants in the group, where "selected" means shortlisted
  by the opening's rule (see ranking.py). **Impact ratio** = the group's selection rate / the
  highest selection rate among the groups of the same category.
* For the continuous score, the **scoring rate** = the share of the group scoring *above the
  median of the full sample* (strictly above; the median of everyone audited, unknowns
  included), and its impact ratio = the group's scoring rate / the highest scoring rate.
* A group that is **under 2% of the data** (of everyone audited, unknowns included) may be left
  out of the impact ratios; it is still counted, its rates are still reported, and it is marked
  ``excluded``. The rules allow, not require, this: ``min_share=0`` keeps every group.
* Applicants with **unknown** (missing) demographics are counted in a group ``Unknown`` and
  reported, but never enter the ratios. In the intersection, an applicant missing either field
  is Unknown.
* An impact ratio under **0.8** is flagged: the four-fifths rule of the US Uniform Guidelines,
  the usual (not the legal) threshold for adverse impact. The law requires publishing the
  ratios, not passing it.

Who is audited: applicants whose interview was completed and scored, i.e. whom the tool assessed
(the ranked list of ranking.py); unfinished interviews were never scored or selected by it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interviewer import csvout
from interviewer.scoring.ranking import load_ranking
from interviewer.store.models import ApplicantDemographics

UNKNOWN = "Unknown"
MIN_SHARE = 0.02
FOUR_FIFTHS = 0.8
CATEGORIES = ("sex", "race_ethnicity", "intersectional")


@dataclass(frozen=True)
class Subject:
    """One audited applicant: what they reported, their score, whether the tool selected them."""

    applicant_id: int
    sex: str | None
    race_ethnicity: str | None
    score: float
    selected: bool


@dataclass(frozen=True)
class GroupRow:
    category: str  # sex | race_ethnicity | intersectional
    group: str
    n: int
    share: float  # n / everyone audited
    selected: int
    selection_rate: float
    selection_impact_ratio: float | None
    above_median: int
    scoring_rate: float
    scoring_impact_ratio: float | None
    status: str  # included | excluded | unknown

    @property
    def selection_flag(self) -> bool:
        return self.selection_impact_ratio is not None and self.selection_impact_ratio < FOUR_FIFTHS

    @property
    def scoring_flag(self) -> bool:
        return self.scoring_impact_ratio is not None and self.scoring_impact_ratio < FOUR_FIFTHS


@dataclass(frozen=True)
class Audit:
    opening: str
    rule: str  # the shortlisting rule that defined "selected", in words
    total: int
    selected: int
    median: float | None
    min_share: float
    rows: list[GroupRow]

    def category(self, category: str) -> list[GroupRow]:
        return [r for r in self.rows if r.category == category]

    def row(self, category: str, group: str) -> GroupRow:
        for r in self.rows:
            if r.category == category and r.group == group:
                return r
        raise KeyError((category, group))

    @property
    def flagged(self) -> list[GroupRow]:
        return [r for r in self.rows if r.selection_flag or r.scoring_flag]

    def records(self) -> list[dict[str, Any]]:
        return [
            {
                **asdict(r),
                "selection_flag": r.selection_flag,
                "scoring_flag": r.scoring_flag,
            }
            for r in self.rows
        ]

    def to_csv(self, path: Path | None = None) -> str:
        """The table as CSV (written to ``path`` when given); one row per group."""
        buffer = io.StringIO()
        records = self.records()
        fields = [*GroupRow.__dataclass_fields__, "selection_flag", "scoring_flag"]
        writer = csvout.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _csv_value(v) for k, v in record.items()})
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _label(value: str | None) -> str:
    value = (value or "").strip()
    return value or UNKNOWN


def group_of(subject: Subject, category: str) -> str:
    sex, race = _label(subject.sex), _label(subject.race_ethnicity)
    if category == "sex":
        return sex
    if category == "race_ethnicity":
        return race
    if category == "intersectional":
        return UNKNOWN if UNKNOWN in (sex, race) else f"{sex} / {race}"
    raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")


def audit(
    subjects: Iterable[Subject],
    *,
    opening: str = "",
    rule: str = "",
    min_share: float = MIN_SHARE,
    categories: Sequence[str] = CATEGORIES,
) -> Audit:
    """Selection and scoring rates and impact ratios per group (see module doc)."""
    subjects = list(subjects)
    total = len(subjects)
    median = float(np.median([s.score for s in subjects])) if subjects else None
    rows: list[GroupRow] = []
    for category in categories:
        groups: dict[str, list[Subject]] = {}
        for subject in subjects:
            groups.setdefault(group_of(subject, category), []).append(subject)
        stats = {}
        for group, members in groups.items():
            n = len(members)
            selected = sum(s.selected for s in members)
            above = sum(s.score > median for s in members)
            share = n / total
            if group == UNKNOWN:
                status = "unknown"
            elif share < min_share:
                status = "excluded"
            else:
                status = "included"
            stats[group] = (n, share, selected, above, status)
        included = [v for v in stats.values() if v[4] == "included"]
        best_selection = max((v[2] / v[0] for v in included), default=0.0)
        best_scoring = max((v[3] / v[0] for v in included), default=0.0)
        ordered = sorted(stats, key=lambda g: (g == UNKNOWN, g.casefold()))
        for group in ordered:
            n, share, selected, above, status = stats[group]
            selection_rate, scoring_rate = selected / n, above / n
            counted = status == "included"
            rows.append(
                GroupRow(
                    category=category,
                    group=group,
                    n=n,
                    share=share,
                    selected=selected,
                    selection_rate=selection_rate,
                    selection_impact_ratio=(
                        selection_rate / best_selection if counted and best_selection else None
                    ),
                    above_median=above,
                    scoring_rate=scoring_rate,
                    scoring_impact_ratio=(
                        scoring_rate / best_scoring if counted and best_scoring else None
                    ),
                    status=status,
                )
            )
    return Audit(
        opening=opening,
        rule=rule,
        total=total,
        selected=sum(s.selected for s in subjects),
        median=median,
        min_share=min_share,
        rows=rows,
    )


# --- loading from the database ---------------------------------------------------------------


def load_audit(
    session: Any,
    opening: str | int,
    *,
    top_n: int | None = None,
    threshold: float | None = None,
    min_share: float = MIN_SHARE,
) -> Audit:
    """Audit an opening: the ranking decides who was selected, demographics are joined here."""
    from sqlalchemy import select

    ranking = load_ranking(session, opening, top_n=top_n, threshold=threshold)
    ids = {r.applicant_id for r in ranking.ranked}
    demographics: dict[int, ApplicantDemographics] = {}
    if ids:
        query = select(ApplicantDemographics).where(ApplicantDemographics.applicant_id.in_(ids))
        demographics = {d.applicant_id: d for d in session.scalars(query)}
    subjects = []
    for r in ranking.ranked:
        d = demographics.get(r.applicant_id)
        subjects.append(
            Subject(
                applicant_id=r.applicant_id,
                sex=d.sex if d else None,
                race_ethnicity=d.race_ethnicity if d else None,
                score=r.score,
                selected=r.shortlisted,
            )
        )
    return audit(
        subjects, opening=ranking.opening, rule=ranking.rule.describe(), min_share=min_share
    )
