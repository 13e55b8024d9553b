"""The LL144 bias audit, checked against an example computed by hand.

The example: 60 audited applicants. Every cell of sex x race/ethnicity below has ``n`` people,
the first ``high`` of whom score 0.8 and the rest 0.4 (so 30 score 0.8, 30 score 0.4, and the
median of the full sample is 0.6: "above the median" = scored 0.8), and the first ``sel`` of whom
were selected (shortlisted).

    sex      race       n  sel  high
    Male     White     12    6     8
    Male     Black      8    2     3
    Male     Asian      6    3     4
    Female   White     10    4     6
    Female   Black     10    3     4
    Female   Asian      6    3     3
    Female   NHPI       1    1     1     1/60 = 1.67% of the data: under 2%, excluded from ratios
    Male     (missing)  3    0     0
    (missing) White     2    1     1
    (missing)(missing)  2    0     0
                       --   --    --
                       60   23    30

By hand:

Sex            n  sel  rate          IR                     high  rate          IR
  Male        29   11  11/29=.37931  (11/29)/(11/27)=.93103    15  15/29=.51724  (15/29)/(14/27)
                                                                                 = 405/406=.99754
  Female      27   11  11/27=.40741  1 (highest)               14  14/27=.51852  1 (highest)
  Unknown      4    1  .25           - (not in ratios)          1  .25           -

Race           n  sel  rate          IR                   high  rate          IR
  Asian       12    6  .5            1 (highest incl.)       7  7/12=.58333   (7/12)/(15/24)=.93333
  Black       18    5  5/18=.27778   5/9=.55556  FLAG        7  7/18=.38889   (7/18)/(5/8)=.62222 !
  NHPI         1    1  1.0           - (excluded, <2%)       1  1.0           - (excluded)
  White       24   11  11/24=.45833  11/12=.91667           15  15/24=.625    1 (highest)
  Unknown      5    0  0             -                       0  0             -
  (! = FLAG. NHPI's rate 1.0 would be the highest: excluding it changes every other ratio.)

Intersection   n  sel  rate  IR                high  rate   IR
  F / Asian    6    3  .5    1                    3  .5     .5/(2/3)=.75   FLAG
  F / Black   10    3  .3    .6   FLAG            4  .4     .6             FLAG
  F / NHPI     1    1  1.0   - (excluded)         1  1.0    -
  F / White   10    4  .4    .8   (not < .8)      6  .6     .9
  M / Asian    6    3  .5    1                    4  2/3    1
  M / Black    8    2  .25   .5   FLAG            3  .375   .5625          FLAG
  M / White   12    6  .5    1                    8  2/3    1
  Unknown      7    1  1/7   -                    1  1/7    -     (3 M/missing + 2 missing/W + 2)
"""

from __future__ import annotations

import csv
import io

import pytest

from interviewer.scoring.audit import Subject, audit, load_audit
from interviewer.store.db import session_scope

CELLS = [
    ("Male", "White", 12, 6, 8),
    ("Male", "Black", 8, 2, 3),
    ("Male", "Asian", 6, 3, 4),
    ("Female", "White", 10, 4, 6),
    ("Female", "Black", 10, 3, 4),
    ("Female", "Asian", 6, 3, 3),
    ("Female", "Native Hawaiian or Pacific Islander", 1, 1, 1),
    ("Male", None, 3, 0, 0),
    (None, "White", 2, 1, 1),
    (None, None, 2, 0, 0),
]


def subjects() -> list[Subject]:
    out = []
    for sex, race, n, sel, high in CELLS:
        for i in range(n):
            out.append(
                Subject(
                    applicant_id=len(out) + 1,
                    sex=sex,
                    race_ethnicity=race,
                    score=0.8 if i < high else 0.4,
                    selected=i < sel,
                )
            )
    return out


def rates(result, category):
    return {
        r.group: (
            r.n,
            r.selected,
            r.selection_rate,
            r.selection_impact_ratio,
            r.above_median,
            r.scoring_rate,
            r.scoring_impact_ratio,
            r.status,
        )
        for r in result.category(category)
    }


def approx_rows(expected):
    return {
        group: tuple(
            None if v is None else (v if isinstance(v, str) else pytest.approx(v)) for v in row
        )
        for group, row in expected.items()
    }


def test_hand_computed_example() -> None:
    result = audit(subjects(), opening="net-eng", rule="top 23")
    assert (result.total, result.selected, result.median) == (60, 23, pytest.approx(0.6))

    assert rates(result, "sex") == approx_rows(
        {
            "Female": (27, 11, 11 / 27, 1.0, 14, 14 / 27, 1.0, "included"),
            "Male": (29, 11, 11 / 29, 27 / 29, 15, 15 / 29, 405 / 406, "included"),
            "Unknown": (4, 1, 0.25, None, 1, 0.25, None, "unknown"),
        }
    )
    assert rates(result, "race_ethnicity") == approx_rows(
        {
            "Asian": (12, 6, 0.5, 1.0, 7, 7 / 12, 0.933333, "included"),
            "Black": (18, 5, 5 / 18, 0.555556, 7, 7 / 18, 0.622222, "included"),
            "Native Hawaiian or Pacific Islander": (1, 1, 1.0, None, 1, 1.0, None, "excluded"),
            "White": (24, 11, 11 / 24, 0.916667, 15, 0.625, 1.0, "included"),
            "Unknown": (5, 0, 0.0, None, 0, 0.0, None, "unknown"),
        }
    )
    assert rates(result, "intersectional") == approx_rows(
        {
            "Female / Asian": (6, 3, 0.5, 1.0, 3, 0.5, 0.75, "included"),
            "Female / Black": (10, 3, 0.3, 0.6, 4, 0.4, 0.6, "included"),
            "Female / Native Hawaiian or Pacific Islander": (
                *(1, 1, 1.0, None, 1, 1.0, None),
                "excluded",
            ),
            "Female / White": (10, 4, 0.4, 0.8, 6, 0.6, 0.9, "included"),
            "Male / Asian": (6, 3, 0.5, 1.0, 4, 2 / 3, 1.0, "included"),
            "Male / Black": (8, 2, 0.25, 0.5, 3, 0.375, 0.5625, "included"),
            "Male / White": (12, 6, 0.5, 1.0, 8, 2 / 3, 1.0, "included"),
            "Unknown": (7, 1, 1 / 7, None, 1, 1 / 7, None, "unknown"),
        }
    )
    # Order: groups alphabetically, Unknown last.
    assert [r.group for r in result.category("sex")] == ["Female", "Male", "Unknown"]


def test_four_fifths_flags() -> None:
    result = audit(subjects())
    flagged = {(r.category, r.group, r.selection_flag, r.scoring_flag) for r in result.flagged}
    assert flagged == {
        ("race_ethnicity", "Black", True, True),
        ("intersectional", "Female / Asian", False, True),
        ("intersectional", "Female / Black", True, True),
        ("intersectional", "Male / Black", True, True),
    }
    # Exactly 0.8 is not under four-fifths.
    assert result.row("intersectional", "Female / White").selection_impact_ratio == 0.8
    assert not result.row("intersectional", "Female / White").selection_flag


def test_small_groups_are_counted_and_excluded_only_from_ratios() -> None:
    result = audit(subjects())
    nhpi = result.row("race_ethnicity", "Native Hawaiian or Pacific Islander")
    assert (nhpi.n, nhpi.share, nhpi.selection_rate, nhpi.status) == (1, 1 / 60, 1.0, "excluded")
    assert nhpi.selection_impact_ratio is None and not nhpi.selection_flag
    assert sum(r.n for r in result.category("race_ethnicity")) == 60
    # Keeping every group: NHPI's 1.0 becomes the highest rate and every other ratio follows it.
    kept = audit(subjects(), min_share=0)
    assert kept.row("race_ethnicity", "Native Hawaiian or Pacific Islander").status == "included"
    assert kept.row("race_ethnicity", "Asian").selection_impact_ratio == pytest.approx(0.5)
    assert kept.row("race_ethnicity", "White").scoring_impact_ratio == pytest.approx(0.625)
    # 2% exactly is not under 2%: one person in 50 stays in.
    fifty = [Subject(i, "Male", "White", 0.5, False) for i in range(49)]
    fifty.append(Subject(99, "Female", "Asian", 0.9, True))
    assert audit(fifty).row("sex", "Female").status == "included"


def test_unknowns_blank_and_missing_are_one_group_outside_the_ratios() -> None:
    people = [
        Subject(1, "Female", "Asian", 0.9, True),
        Subject(2, "  ", "Asian", 0.9, True),  # blank counts as missing
        Subject(3, None, None, 0.1, False),
        Subject(4, "Male", "", 0.2, False),
    ]
    result = audit(people)
    sex = {r.group: (r.n, r.status) for r in result.category("sex")}
    assert sex == {"Female": (1, "included"), "Male": (1, "included"), "Unknown": (2, "unknown")}
    unknown_sex = result.row("sex", "Unknown")
    assert unknown_sex.selection_impact_ratio is None and unknown_sex.scoring_impact_ratio is None
    # Male's rate is 0 against Female's 1: ratio 0 and flagged; Unknown's 0.5 is ignored.
    assert result.row("sex", "Male").selection_impact_ratio == 0.0
    inter = {r.group: r.n for r in result.category("intersectional")}
    assert inter == {"Female / Asian": 1, "Unknown": 3}


def test_median_is_strict_and_no_selection_means_no_ratio() -> None:
    people = [
        Subject(1, "Male", "White", 0.2, False),
        Subject(2, "Female", "White", 0.5, False),  # exactly the median: not above it
        Subject(3, "Female", "Black", 0.9, False),
    ]
    result = audit(people)
    assert result.median == 0.5
    assert [r.above_median for r in result.category("sex")] == [1, 0]
    # Nobody selected (no shortlisting rule): rates 0, ratios undefined rather than 0/0.
    assert all(r.selection_impact_ratio is None for r in result.rows)
    assert audit([]).rows == [] and audit([]).median is None


def test_csv_has_one_row_per_group_with_flags() -> None:
    result = audit(subjects())
    text = result.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(result.rows) == 3 + 5 + 8
    black = next(r for r in rows if r["category"] == "race_ethnicity" and r["group"] == "Black")
    assert black["n"] == "18" and black["selection_flag"] == "True"
    assert float(black["selection_impact_ratio"]) == pytest.approx(5 / 9, abs=1e-5)
    nhpi = next(r for r in rows if r["group"] == "Native Hawaiian or Pacific Islander")
    assert nhpi["selection_impact_ratio"] == "" and nhpi["status"] == "excluded"


def test_load_audit_joins_demographics_of_ranked_applicants(db_engine) -> None:
    from test_ranking import seed_opening  # tests/ is on sys.path (pytest prepend mode)

    people = [
        ("ada", "completed", 0.9, [0.9], {"sex": "Female", "race_ethnicity": "Asian"}, []),
        ("bob", "completed", 0.7, [0.7], {"sex": "Male", "race_ethnicity": "White"}, []),
        ("cy", "completed", 0.6, [0.6], {"sex": "Male"}, []),
        ("dee", "completed", 0.3, [0.3], None, []),
        ("eve", "abandoned", None, [], {"sex": "Female", "race_ethnicity": "Black"}, []),
    ]
    with session_scope(db_engine) as session:
        seed_opening(session, people, shortlist_top_n=2)
    with session_scope(db_engine) as session:
        result = load_audit(session, "net-eng")
    # eve never finished: not assessed by the tool, not audited.
    assert (result.total, result.selected, result.median) == (4, 2, pytest.approx(0.65))
    assert result.rule == "top 2"
    sex = {r.group: (r.n, r.selected, r.above_median) for r in result.category("sex")}
    assert sex == {"Female": (1, 1, 1), "Male": (2, 1, 1), "Unknown": (1, 0, 0)}
    assert result.row("sex", "Male").selection_impact_ratio == pytest.approx(0.5)
    inter = {r.group: r.n for r in result.category("intersectional")}
    assert inter == {"Female / Asian": 1, "Male / White": 1, "Unknown": 2}


def test_audit_cli_prints_tables_and_writes_csv(db_engine, db_url, tmp_path) -> None:
    from test_ranking import seed_opening
    from typer.testing import CliRunner

    from interviewer.cli import app

    people = [
        ("ada", "completed", 0.9, [0.9], {"sex": "Female", "race_ethnicity": "Asian"}, []),
        ("bob", "completed", 0.7, [0.7], {"sex": "Male", "race_ethnicity": "White"}, []),
        ("cy", "completed", 0.6, [0.6], {"sex": "Male", "race_ethnicity": "White"}, []),
    ]
    with session_scope(db_engine) as session:
        seed_opening(session, people, shortlist_top_n=1)
    out = tmp_path / "audit.csv"
    runner = CliRunner(env={"COLUMNS": "160"})
    result = runner.invoke(app, ["audit", "net-eng", "--url", db_url, "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 scored applicants, 1 selected (top 1)" in result.output
    assert "Sex × race/ethnicity" in result.output and "Female / Asian" in result.output
    rows = list(csv.DictReader(out.open()))
    male = next(r for r in rows if r["category"] == "sex" and r["group"] == "Male")
    assert (male["n"], male["selection_impact_ratio"], male["selection_flag"]) == ("2", "0", "True")
